package cni

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCacheSetKeepsHalfWritten: an entry caught half-written keeps what
// its file said before, both when an event names the file (ReadNames) and
// when the whole directory is read again (ReadAll); the write that
// completes it brings the new entry; a removed file takes its entry with
// it (docs/discovery.md).
func TestCacheSetKeepsHalfWritten(t *testing.T) {
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	if err := os.Mkdir(results, 0o700); err != nil {
		t.Fatal(err)
	}
	const name = "n-c-eth0"
	write := func(data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(results, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := func(subnet string) []byte {
		return cacheJSON("n", "c", "eth0", netListJSON("n", macvlan(`{"type": "host-local", "subnet": "`+subnet+`"}`)), "")
	}
	subnet := func(s *CacheSet) string {
		t.Helper()
		es := s.Entries()
		if len(es) != 1 {
			t.Fatalf("%d entries, want 1: %+v", len(es), es)
		}
		if es[0].Network == nil || len(es[0].Network.Ranges) == 0 {
			t.Fatalf("entry without a network or ranges: %+v", es[0])
		}
		return es[0].Network.Ranges[0].Subnet.String()
	}

	first, second := conf("10.0.0.0/24"), conf("10.0.1.0/24")
	write(first)
	s := NewCacheSet()
	s.ReadAll([]string{dir})
	if got := subnet(s); got != "10.0.0.0/24" {
		t.Fatalf("after ReadAll: subnet %s", got)
	}

	for _, cut := range []int{0, 1, len(second) / 2, len(second) - 1} {
		write(second[:cut])
		ch := s.ReadNames(dir, []string{name})
		if got := subnet(s); got != "10.0.0.0/24" {
			t.Fatalf("ReadNames of the file cut at %d bytes: subnet %s, want the old entry's", cut, got)
		}
		if len(ch) != 1 || ch[0].Old == nil || ch[0].New == nil {
			t.Fatalf("ReadNames of the file cut at %d bytes: changes %+v, want the old entry as old and new", cut, ch)
		}
		s.ReadAll([]string{dir})
		if got := subnet(s); got != "10.0.0.0/24" {
			t.Fatalf("ReadAll of the file cut at %d bytes: subnet %s, want the old entry's", cut, got)
		}
		if p := s.Problems(); len(p) != 0 {
			t.Fatalf("a half-written file is no problem: %+v", p)
		}
	}

	write(second)
	s.ReadNames(dir, []string{name})
	if got := subnet(s); got != "10.0.1.0/24" {
		t.Fatalf("after the write completed: subnet %s", got)
	}

	if err := os.Remove(filepath.Join(results, name)); err != nil {
		t.Fatal(err)
	}
	ch := s.ReadNames(dir, []string{name})
	if es := s.Entries(); len(es) != 0 {
		t.Fatalf("a removed file keeps its entry: %+v", es)
	}
	if len(ch) != 1 || ch[0].Old == nil || ch[0].New != nil {
		t.Fatalf("removal: changes %+v, want old only", ch)
	}

	// A half-written file never seen whole holds nothing.
	write(first[:len(first)/2])
	s.ReadAll([]string{dir})
	if es := s.Entries(); len(es) != 0 {
		t.Fatalf("a half-written file never seen whole: %+v", es)
	}
}
