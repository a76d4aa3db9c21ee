package cni

import (
	"errors"
	"reflect"
	"testing"
)

// crEntry parses a cache entry of network name, container id, interface
// eth0, with configuration config, cached in dir at mtime.
func crEntry(t *testing.T, dir, name, id, config string, mtime int64) CacheEntry {
	t.Helper()
	e, err := ParseCache(cacheFile(dir, name, id, "eth0", config, "", mtime))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// crMacvlan is a network list name of one macvlan plugin on master.
func crMacvlan(name, master string) string {
	return netListJSON(name, `{"type": "macvlan", "master": "`+master+`", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`)
}

// TestCombineNewestCopy: an attachment cached in two cache directories
// counts once, from its newest file whatever the paths, and of two files
// written at once from the smaller path, whatever the order given; only
// two reads of one file at one time, which nothing tells apart, go by the
// order given (the first). The file kept is the attachment's path and, for
// a network only in the cache, its configuration.
func TestCombineNewestCopy(t *testing.T) {
	type copyOf struct {
		dir, master string
		mtime       int64
	}
	tests := []struct {
		name        string
		copies      []copyOf
		dir, master string // of the file kept
	}{
		{"the newer file, with the larger path", []copyOf{{"/a", "eno1", 1}, {"/b", "eno2", 2}}, "/b", "eno2"},
		{"the newer file, given first", []copyOf{{"/b", "eno2", 2}, {"/a", "eno1", 1}}, "/b", "eno2"},
		{"the smaller path, at one time", []copyOf{{"/a", "eno1", 1}, {"/b", "eno2", 1}}, "/a", "eno1"},
		{"the smaller path, at one time, given last", []copyOf{{"/b", "eno2", 1}, {"/a", "eno1", 1}}, "/a", "eno1"},
		{"one file read twice: the first given", []copyOf{{"/a", "eno1", 1}, {"/a", "eno2", 1}}, "/a", "eno1"},
		{"one file read twice, the other first", []copyOf{{"/a", "eno2", 1}, {"/a", "eno1", 1}}, "/a", "eno2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var es []CacheEntry
			for _, c := range tt.copies {
				es = append(es, crEntry(t, c.dir, "x", "c1", crMacvlan("x", c.master), c.mtime))
			}
			d := Combine(nil, nil, es)
			path := tt.dir + "/results/x-c1-eth0"
			if len(d.Networks) != 1 || d.Networks[0].File != path || d.Networks[0].Master != tt.master ||
				!reflect.DeepEqual(paths(d.Attachments["x"]), []string{path}) || len(d.Refused) != 0 || len(d.Problems) != 0 {
				t.Errorf("networks %+v, attachments %v, refused %v, problems %v; want %s's, on %s", d.Networks, d.Attachments, d.Refused, d.Problems, path, tt.master)
			}
		})
	}
}

// TestCombineHeldByAnother: a name only the cache knows is held by its
// oldest attachment; when that one is not a macvlan attachment flatnet
// follows, the macvlan attachments under the name are refused, and the
// problem says what holds it: a plugin by its type, or, for a
// configuration that names no plugin of its own (a list whose plugins
// were not cached), another plugin.
func TestCombineHeldByAnother(t *testing.T) {
	tests := []struct {
		name, config, kind string
	}{
		{"a bridge", netListJSON("x", `{"type": "bridge"}`), "plugin bridge"},
		{"no plugins cached", `{"cniVersion": "1.0.0", "name": "x"}`, "another plugin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			holder := crEntry(t, "/c", "x", "c1", tt.config, 1)
			d := Combine(nil, nil, []CacheEntry{crEntry(t, "/c", "x", "c2", crMacvlan("x", "eno1"), 2), holder})
			var ce *ConflictError
			if len(d.Networks) != 0 || len(d.Attachments) != 0 || !reflect.DeepEqual(paths(d.Refused["x"]), []string{"/c/results/x-c2-eth0"}) ||
				len(d.Problems) != 1 || !errors.As(d.Problems[0].Err, &ce) || !errors.Is(d.Problems[0], ErrCacheConflict) {
				t.Fatalf("networks %+v, attachments %v, refused %v, problems %v", d.Networks, d.Attachments, d.Refused, d.Problems)
			}
			if want := "the first attachment of this name, which holds it, is of " + tt.kind; ce.Winner != "/c/results/x-c1-eth0" || ce.Differs != want {
				t.Errorf("winner %s, differs %q; want /c/results/x-c1-eth0, %q", ce.Winner, ce.Differs, want)
			}
		})
	}
}

// TestCombineAllRefused: when every cached attachment of a file's network
// was made with another configuration, the network has no attachments
// (no entry in Attachments, which lists followed attachments only) and one
// problem lists the refused ones: the first three by name, the others
// counted.
func TestCombineAllRefused(t *testing.T) {
	conf, _ := Discover([]File{{Name: "10-a.conflist", Data: []byte(crMacvlan("a", "eno1"))}})
	var es []CacheEntry
	for _, id := range []string{"c1", "c2", "c3", "c4", "c5"} {
		es = append(es, crEntry(t, "/c", "a", id, crMacvlan("a", "eno2"), 1))
	}
	d := Combine(conf, nil, es)
	if _, ok := d.Attachments["a"]; ok || len(d.Attachments) != 0 || len(d.Refused["a"]) != 5 || len(d.Problems) != 1 {
		t.Fatalf("attachments %v, refused %v, problems %v", d.Attachments, d.Refused, d.Problems)
	}
	want := `/c/results/a-c1-eth0: network "a": 5 cached attachments were made with another configuration than 10-a.conflist, which flatnet follows (master "eno2", not "eno1"): not routed, the node may not reach their pods until they are recreated (c1/eth0, c2/eth0, c3/eth0, 2 more)`
	if got := d.Problems[0].Error(); got != want {
		t.Errorf("problem\n got %s\nwant %s", got, want)
	}
}
