package cni

import (
	"bytes"
	"os"
	"path/filepath"
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
