package cni

import (
	"maps"
	"reflect"
	"slices"
	"testing"
)

// TestIndexApplyInPlace: the changes a pod's life brings (its entry
// written, rewritten, removed) are taken in O(1), with the attachment to
// route or unroute, and not sent to a whole Combine; those that can alter
// what a network is are. TestIndexAgreesWithCombine checks that what
// Apply takes in O(1) agrees with Combine; this one that the common
// changes are taken so, which is what keeps a node with thousands of pods
// from recombining the whole cache on every pod.
func TestIndexApplyInPlace(t *testing.T) {
	ml := func(master, subnet string) string {
		return `{"type": "macvlan", "master": "` + master + `", "ipam": {"type": "host-local", "subnet": "` + subnet + `"}}`
	}
	confList := netListJSON("conf", ml("eno1", "10.1.0.0/24"))
	confNets, _ := Discover([]File{{Name: "10-conf.conflist", Data: []byte(confList)}})
	bridge := func(name string) string { return netListJSON(name, `{"type": "bridge"}`) }
	claims := Claims([]File{{Name: "10-conf.conflist", Data: []byte(confList)}, {Name: "20-br.conflist", Data: []byte(bridge("br"))}})
	configs := map[string]string{
		"conf": confList,
		"nad":  netListJSON("nad", ml("eno1", "10.2.0.0/24")),
		"rt":   netListJSON("rt", `{"type": "macvlan", "master": "eno1", "capabilities": {"ipRanges": true}, "ipam": {"type": "host-local"}}`),
	}
	// entry is the attachment of container id to network, cached in dir
	// at mtime, made with config ("" for the network's own).
	entry := func(dir, network, id, ifname, config string, mtime int64) *CacheEntry {
		t.Helper()
		capArgs := ""
		if network == "rt" {
			capArgs = `{"ipRanges": [[{"subnet": "10.40.0.0/24"}]]}`
		}
		if config == "" {
			config = configs[network]
		}
		e, err := ParseCache(cacheFile(dir, network, id, ifname, config, capArgs, mtime))
		if err != nil {
			t.Fatal(err)
		}
		return &e
	}
	at := func(network, id string, mtime int64) *CacheEntry { return entry("/c", network, id, "net1", "", mtime) }
	deref := func(es ...*CacheEntry) []CacheEntry {
		var out []CacheEntry
		for _, e := range es {
			out = append(out, *e)
		}
		return out
	}
	type want struct{ old, new string } // the paths of the attachment unrouted and routed
	tests := []struct {
		name     string
		entries  []CacheEntry
		change   EntryChange
		redefine bool
		changes  []want
	}{
		{"a pod joins a cache-only network",
			deref(at("nad", "c1", 1), at("nad", "c2", 2)), EntryChange{New: at("nad", "c3", 3)},
			false, []want{{"", "/c/results/nad-c3-net1"}}},
		{"a pod leaves a cache-only network",
			deref(at("nad", "c1", 1), at("nad", "c2", 2), at("nad", "c3", 3)), EntryChange{Old: at("nad", "c3", 3)},
			false, []want{{"/c/results/nad-c3-net1", ""}}},
		{"a pod's entry rewritten on a cache-only network",
			deref(at("nad", "c1", 1), at("nad", "c2", 2)), EntryChange{Old: at("nad", "c2", 2), New: at("nad", "c2", 5)},
			false, []want{{"/c/results/nad-c2-net1", "/c/results/nad-c2-net1"}}},
		{"the only pod of a cache-only network rewritten",
			deref(at("nad", "c1", 1)), EntryChange{Old: at("nad", "c1", 1), New: at("nad", "c1", 5)},
			false, []want{{"/c/results/nad-c1-net1", "/c/results/nad-c1-net1"}}},
		{"the last pod of a cache-only network leaves",
			deref(at("nad", "c1", 1)), EntryChange{Old: at("nad", "c1", 1)},
			true, nil},
		{"the oldest pod of a configuration directory's network leaves",
			deref(at("conf", "c1", 1), at("conf", "c2", 2)), EntryChange{Old: at("conf", "c1", 1)},
			false, []want{{"/c/results/conf-c1-net1", ""}}},
		{"an attachment not followed rewritten, under a configuration directory's network",
			deref(at("conf", "c1", 1), entry("/c", "conf", "b1", "net1", bridge("conf"), 2)),
			EntryChange{Old: entry("/c", "conf", "b1", "net1", bridge("conf"), 2), New: entry("/c", "conf", "b1", "net1", bridge("conf"), 3)},
			false, nil},
		{"an attachment not followed rewritten, under a network of run-time ranges",
			deref(at("rt", "c1", 1), entry("/c", "rt", "b1", "net1", bridge("rt"), 2)),
			EntryChange{Old: entry("/c", "rt", "b1", "net1", bridge("rt"), 2), New: entry("/c", "rt", "b1", "net1", bridge("rt"), 3)},
			false, nil},
		{"the oldest pod of a bridge network of the configuration directory leaves",
			deref(entry("/c", "br", "b1", "eth0", bridge("br"), 1), entry("/c", "br", "b2", "eth0", bridge("br"), 2)),
			EntryChange{Old: entry("/c", "br", "b1", "eth0", bridge("br"), 1)},
			false, nil},
		{"the same attachment cached in a second directory",
			deref(at("nad", "c1", 1)), EntryChange{New: entry("/m", "nad", "c1", "net1", "", 5)},
			true, nil},
		{"a file rewritten for another attachment: container a-b's c, not a's b-c",
			deref(entry("/c", "nad", "a", "b-c", "", 1), at("nad", "c2", 2)),
			EntryChange{Old: entry("/c", "nad", "a", "b-c", "", 1), New: entry("/c", "nad", "a-b", "c", "", 3)},
			true, nil},
		{"the newer file of an attachment cached twice is the one indexed",
			deref(entry("/m", "nad", "c1", "net1", "", 1), at("nad", "c1", 5)), EntryChange{Old: at("nad", "c1", 5), New: at("nad", "c1", 6)},
			false, []want{{"/c/results/nad-c1-net1", "/c/results/nad-c1-net1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := NewIndex(confNets, claims, tt.entries)
			changes, redefine := x.Apply(tt.change)
			var got []want
			for _, ch := range changes {
				var w want
				if ch.Old != nil {
					w.old = ch.Old.Path
				}
				if ch.New != nil {
					w.new = ch.New.Path
				}
				got = append(got, w)
			}
			if redefine != tt.redefine || !reflect.DeepEqual(got, tt.changes) {
				t.Errorf("Apply = %+v, redefine %v; want %+v, redefine %v", got, redefine, tt.changes, tt.redefine)
			}
			if redefine {
				return
			}
			// What Apply took in O(1) is what Combine makes of the change.
			after := slices.DeleteFunc(slices.Clone(tt.entries), func(e CacheEntry) bool { return tt.change.Old != nil && e.Path == tt.change.Old.Path })
			if tt.change.New != nil {
				after = append(after, *tt.change.New)
			}
			kept := ccFollowed(Combine(confNets, claims, tt.entries))
			for _, w := range got {
				delete(kept, w.old)
				if w.new != "" {
					kept[w.new] = true
				}
			}
			if want := ccFollowed(Combine(confNets, claims, after)); !maps.Equal(kept, want) {
				t.Errorf("after Apply the index follows %v, Combine %v", kept, want)
			}
		})
	}
}

// ccFollowed is the set of the paths of the attachments d follows.
func ccFollowed(d Discovery) map[string]bool {
	out := map[string]bool{}
	for _, as := range d.Attachments {
		for _, a := range as {
			out[a.Path] = true
		}
	}
	return out
}
