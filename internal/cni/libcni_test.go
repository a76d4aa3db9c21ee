package cni

// libcni itself is the oracle for the cache format: these tests hold
// ParseCache to what libcni's GetCachedAttachments accepts, and the
// configuration parser to what libcni's NetworkConfFromBytes accepts. The
// library is a test dependency only; the note in docs/discovery.md says why
// flatnet does not link it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// libcniAttachments is what libcni's GetCachedAttachments lists for a cache
// directory holding one file.
func libcniAttachments(t testing.TB, name string, data []byte) []*libcni.NetworkAttachment {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "results"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results", name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	atts, err := libcni.NewCNIConfigWithCacheDir(nil, dir, nil).GetCachedAttachments("")
	if err != nil {
		t.Fatal(err)
	}
	return atts
}

// checkAgainstLibcni compares ParseCache with libcni on one entry.
func checkAgainstLibcni(t testing.TB, name string, data []byte) {
	atts := libcniAttachments(t, name, data)
	e, err := ParseCache(CacheFile{Path: filepath.Join("/c/results", name), Data: data})
	accepted := err == nil || errors.Is(err, ErrUnfollowable)
	switch {
	case accepted && len(atts) != 1:
		t.Fatalf("flatnet reads an entry libcni does not list: %+v\n%q", e, data)
	case accepted:
		a := atts[0]
		if a.ContainerID != e.ContainerID || a.Network != e.NetworkName || a.IfName != e.IfName || a.NetNS != e.NetNS {
			t.Fatalf("flatnet reads %+v, libcni %+v", e, a)
		}
		// libcni caches what it parsed: the configuration must parse
		// there too, as the kind of configuration flatnet took it for.
		if len(e.Types) > 0 {
			var probe map[string]json.RawMessage
			_ = json.Unmarshal(a.Config, &probe)
			if _, ok := probe["plugins"]; ok {
				if _, err := libcni.NetworkConfFromBytes(a.Config); err != nil {
					t.Fatalf("flatnet reads a network list libcni refuses (%v):\n%s", err, a.Config)
				}
			} else if _, err := libcni.NetworkPluginConfFromBytes(a.Config); err != nil {
				t.Fatalf("flatnet reads a plugin configuration libcni refuses (%v):\n%s", err, a.Config)
			}
		}
	case len(atts) == 1 && !errors.Is(err, ErrCacheMisnamed) && !errors.Is(err, ErrCacheMalformed) && !Ignorable(err):
		// flatnet is stricter than GetCachedAttachments on purpose (the
		// file name, the container id, the configuration must make
		// sense); anything else libcni lists, flatnet must read.
		t.Fatalf("libcni lists an entry flatnet refuses with %v:\n%q", err, data)
	}
}

// TestCacheAgainstLibcni runs the comparison on every golden entry.
func TestCacheAgainstLibcni(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "cache", "*", "*", "results", "*"))
	n := 0
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // the directory in junk/
		}
		n++
		checkAgainstLibcni(t, filepath.Base(p), data)
	}
	if n < 20 {
		t.Fatalf("only %d entries", n)
	}
}

// TestConfListAgainstLibcni holds the configuration parser to libcni's on
// the golden configuration files: a network list Discover reads, libcni
// reads.
func TestConfListAgainstLibcni(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*", "*", "*.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // a directory
		}
		compareConfList(t, data)
		files++
	}
	// The discovery cases' conflists: a glob that matched none (testdata
	// moved) would pass without comparing anything.
	if files < 9 {
		t.Fatalf("compared %d conflists of testdata/*/*/*.conflist (%d paths), want the discovery cases' (at least 9)", files, len(paths))
	}
}

// compareConfList checks that parseConfList accepts exactly what
// libcni.NetworkConfFromBytes accepts with its plugins inline.
func compareConfList(t testing.TB, data []byte) {
	_, ours := parseConfList(data)
	list, theirs := libcni.NetworkConfFromBytes(data)
	if theirs == nil && len(list.Plugins) == 0 {
		theirs = errors.New("no inline plugins")
	}
	if (ours == nil) != (theirs == nil) {
		t.Fatalf("parseConfList: %v, libcni: %v, for\n%s", ours, theirs, data)
	}
}

// benchCacheDir writes n cache entries like cnitool's (macvlan +
// host-local and tuning) into a new cache directory.
func benchCacheDir(b *testing.B, n int) string {
	data, err := os.ReadFile(filepath.Join("testdata", "cache", "cnitool", "cni", "results", "nadnet-cnitool-b29afb41d571d0a105bd-eth0"))
	if err != nil {
		b.Fatal(err)
	}
	var e map[string]any
	if err := json.Unmarshal(data, &e); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "results"), 0o700); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("%064x", i)
		e["containerId"] = id
		out, _ := json.Marshal(e)
		if err := os.WriteFile(filepath.Join(dir, "results", "nadnet-"+id+"-eth0"), out, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkCacheDiscovery reads and parses n cache entries: flatnet's
// reader, parser and Combine, against libcni's GetCachedAttachments and
// configuration parser (which know nothing of macvlan or host-local).
func BenchmarkCacheDiscovery(b *testing.B) {
	for _, n := range []int{100, 1000} {
		dir := benchCacheDir(b, n)
		b.Run(fmt.Sprintf("flatnet/%d", n), func(b *testing.B) {
			for b.Loop() {
				files, err := ReadCache(dir)
				if err != nil {
					b.Fatal(err)
				}
				var es []CacheEntry
				for _, f := range files {
					e, err := ParseCache(f)
					if err != nil {
						b.Fatal(err)
					}
					es = append(es, e)
				}
				if d := Combine(nil, nil, es); len(d.Networks) != 1 || len(d.Attachments["nadnet"]) != n {
					b.Fatalf("%+v", d.Networks)
				}
			}
		})
		b.Run(fmt.Sprintf("cacheset/%d", n), func(b *testing.B) {
			// The daemon's reader: one configuration parsed for all.
			for b.Loop() {
				s := NewCacheSet()
				s.ReadAll([]string{dir})
				if len(s.entries) != n {
					b.Fatalf("%d entries", len(s.entries))
				}
			}
		})
		b.Run(fmt.Sprintf("libcni/%d", n), func(b *testing.B) {
			c := libcni.NewCNIConfigWithCacheDir(nil, dir, nil)
			for b.Loop() {
				atts, err := c.GetCachedAttachments("")
				if err != nil || len(atts) != n {
					b.Fatal(err, len(atts))
				}
				for _, a := range atts {
					if _, err := libcni.NetworkConfFromBytes(a.Config); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
