package cni

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCacheEntry is the event path's cost of one pod's cache entry
// in a cache set that has read its directory (the configuration, the same
// for all of a network's pods, parsed once): "new" reads an entry it does
// not hold yet, as for a new pod's IN_CREATE or IN_MODIFY; "unchanged"
// reads one it holds, as for the IN_MODIFY that follows an IN_CREATE whose
// read already saw the whole file.
func BenchmarkCacheEntry(b *testing.B) {
	const n = 10
	dir := benchCacheDir(b, n)
	name := "nadnet-" + fmt.Sprintf("%064x", 3) + "-eth0"
	path := filepath.Join(dir, "results", name)
	// A pod's namespace exists while it runs: one lstat, as on a node.
	var e map[string]any
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &e)
	}
	if err != nil {
		b.Fatal(err)
	}
	e["netns"] = "/proc/self/ns/net"
	if data, err = json.Marshal(e); err == nil {
		err = os.WriteFile(path, data, 0o600)
	}
	if err != nil {
		b.Fatal(err)
	}
	s := NewCacheSet()
	s.ReadAll([]string{dir})
	if len(s.entries) != n {
		b.Fatalf("%d entries, %v", len(s.entries), s.Problems())
	}
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			delete(s.entries, path) // as if the pod were new
			if ch := s.ReadNames(dir, []string{name}); len(ch) != 1 || ch[0].New == nil || ch[0].Old != nil {
				b.Fatalf("%+v", ch)
			}
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ch := s.ReadNames(dir, []string{name}); len(ch) != 1 || ch[0].New == nil || ch[0].Old == nil {
				b.Fatalf("%+v", ch)
			}
		}
	})
}
