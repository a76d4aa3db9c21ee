package cni

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCacheSetRereads: an entry read again unchanged (a write's IN_MODIFY
// after the IN_CREATE whose read saw it whole) is the entry it was, with
// the file's time and its namespace looked at again; one changed in place
// to content of the same size is read anew; a file that once held an
// entry flatnet cannot follow is judged again every time.
func TestCacheSetRereads(t *testing.T) {
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	if err := os.Mkdir(results, 0o700); err != nil {
		t.Fatal(err)
	}
	const name = "n-c-eth0"
	path := filepath.Join(results, name)
	entryOf := func(plugin, ip string) []byte {
		return bytes.Replace(cacheJSON("n", "c", "eth0", netListJSON("n", plugin), ""), []byte("192.168.1.2/16"), []byte(ip), 1)
	}
	entry := func(ip string) []byte { return entryOf(macvlan(`{"type": "static"}`), ip) }
	write := func(data []byte) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := func(s *CacheSet) string {
		t.Helper()
		es := s.Entries()
		if len(es) != 1 || len(es[0].Addrs) != 1 {
			t.Fatalf("entries %+v, want one with one address", es)
		}
		return es[0].Addrs[0].Prefix.String()
	}

	gone := netnsGone
	t.Cleanup(func() { netnsGone = gone })
	netnsGone = func(string) bool { return false }
	write(entry("192.168.1.2/16"))
	s := NewCacheSet()
	s.ReadAll([]string{dir})
	if got := addr(s); got != "192.168.1.2/16" {
		t.Fatalf("after ReadAll: %s", got)
	}
	netnsGone = func(string) bool { return true }
	ch := s.ReadNames(dir, []string{name})
	if len(ch) != 1 || ch[0].Old == nil || ch[0].New == nil || ch[0].Old.Gone || !ch[0].New.Gone {
		t.Fatalf("read again unchanged, its namespace gone: %+v, want the same entry, now Gone", ch)
	}

	write(entry("192.168.1.3/16")) // the same size
	if err := os.Chtimes(path, ch[0].Old.ModTime, ch[0].Old.ModTime); err != nil {
		t.Fatal(err)
	}
	s.ReadNames(dir, []string{name})
	if got := addr(s); got != "192.168.1.3/16" {
		t.Fatalf("changed in place, same size and time: %s, want the new address", got)
	}

	// A master flatnet cannot follow: kept, with its problem, each read.
	write(entryOf(`{"type": "macvlan", "master": "eno1", "linkInContainer": true, "ipam": {"type": "static"}}`, "192.168.1.3/16"))
	for _, read := range []func(){
		func() { s.ReadNames(dir, []string{name}) },
		func() { s.ReadNames(dir, []string{name}) },
		func() { s.ReadAll([]string{dir}) },
	} {
		read()
		if ps := s.Problems(); len(ps) != 1 {
			t.Fatalf("problems %v, want the unfollowable entry's", ps)
		}
	}
}

// TestCacheSetOneBuffer: the event path reads every file into one buffer;
// what an entry keeps of its file is its own, whatever is read after it
// (a bigger file, a smaller one, one that is gone), and an entry read
// again unchanged is the very entry it was.
func TestCacheSetOneBuffer(t *testing.T) {
	dir, write := ccCacheDir(t)
	gone := netnsGone
	t.Cleanup(func() { netnsGone = gone })
	netnsGone = func(string) bool { return false }
	s := NewCacheSet()
	s.ReadAll([]string{dir})
	conf := netListJSON("n", macvlan(`{"type": "static"}`))
	big := netListJSON("n", macvlan(`{"type": "static", "routes": [`+strings.Repeat(`{"dst": "10.9.0.0/16"}, `, 200)+`{"dst": "10.8.0.0/16"}]}`))
	want := map[string]string{}
	for i, c := range []struct{ id, conf string }{{"a", conf}, {"b", big}, {"c", conf}} {
		ip := fmt.Sprintf("192.168.1.%d/16", 10+i)
		name := "n-" + c.id + "-eth0"
		write(name, bytes.Replace(cacheJSON("n", c.id, "eth0", c.conf, ""), []byte("192.168.1.2/16"), []byte(ip), 1))
		if ch := s.ReadNames(dir, []string{name, "n-gone-eth0"}); len(ch) != 1 || ch[0].New == nil {
			t.Fatalf("%s: changes %+v", name, ch)
		}
		want[c.id] = ip
	}
	es := s.Entries()
	if len(es) != len(want) {
		t.Fatalf("entries %+v", es)
	}
	for _, e := range es {
		if len(e.Addrs) != 1 || e.Addrs[0].Prefix.String() != want[e.ContainerID] || e.NetworkName != "n" || e.IfName != "eth0" || e.Network == nil {
			t.Errorf("entry %s after the reads that followed it: %+v, want address %s", e.ContainerID, e, want[e.ContainerID])
		}
	}
	prev := s.entries[filepath.Join(dir, CacheResultsDir, "n-a-eth0")]
	ch := s.ReadNames(dir, []string{"n-a-eth0"})
	if len(ch) != 1 || ch[0].Old != prev || ch[0].New != prev {
		t.Errorf("read again unchanged: %+v, want the entry it was (%p)", ch, prev)
	}
	if kept := cap(s.buf); kept < len(big) {
		t.Errorf("the read buffer kept is %d bytes, want room for the biggest entry read (over %d)", kept, len(big))
	}

	// A huge entry is read, and its memory is not kept.
	huge := netListJSON("n", macvlan(`{"type": "static", "routes": [`+strings.Repeat(`{"dst": "10.9.0.0/16"}, `, 4000)+`{"dst": "10.8.0.0/16"}]}`))
	data := cacheJSON("n", "h", "eth0", huge, "")
	write("n-h-eth0", data)
	if ch := s.ReadNames(dir, []string{"n-h-eth0"}); len(ch) != 1 || ch[0].New == nil {
		t.Fatalf("a huge entry: changes %+v, %v", ch, s.Problems())
	}
	if cap(s.buf) >= len(data) || cap(s.memo.key) >= len(huge) {
		t.Errorf("after a huge entry (%d bytes), %d bytes of read buffer and %d of memo key kept", len(data), cap(s.buf), cap(s.memo.key))
	}
}

// TestConfigMemoCapabilityArgs: the memo tells one configuration from
// another by the runtime's capability arguments too: the same NAD with
// other ipRanges is another network, and with none it has no ranges at all
// (an attachment flatnet cannot follow, which is not remembered).
func TestConfigMemoCapabilityArgs(t *testing.T) {
	conf := netListJSON("capnet", `{"type": "macvlan", "master": "eno1", "capabilities": {"ipRanges": true}, "ipam": {"type": "host-local"}}`)
	args := func(subnet string) string { return `{"ipRanges": [[{"subnet": "` + subnet + `"}]]}` }
	memo := newConfigMemo()
	for i, c := range []struct{ caps, want string }{
		{args("10.30.0.0/24"), "10.30.0.0/24"},
		{args("10.31.0.0/24"), "10.31.0.0/24"},
		{args("10.30.0.0/24"), "10.30.0.0/24"},
		{"", ""},
	} {
		for range 2 { // the second from the memo
			e, err := parseCache(cacheFile("/var/lib/cni", "capnet", fmt.Sprintf("c%d", i), "eth0", conf, c.caps, 1), memo)
			if c.want == "" {
				if !errors.Is(err, ErrUnfollowable) || e.Network != nil {
					t.Fatalf("no capability arguments: network %+v, %v; want none, unfollowable", e.Network, err)
				}
				continue
			}
			if err != nil || e.Network == nil || len(e.Network.Ranges) != 1 || e.Network.Ranges[0].Subnet.String() != c.want {
				t.Fatalf("capability arguments %s: network %+v, %v; want range %s", c.caps, e.Network, err, c.want)
			}
		}
	}
	if len(memo.m) != 2 {
		t.Errorf("%d configurations remembered, want 2", len(memo.m))
	}
}
