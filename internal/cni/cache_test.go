package cni

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// renderDiscovery prints a Discovery for golden files: networks with their
// ranges and attachments, then problems with the sentinel they match.
func renderDiscovery(d Discovery) string {
	var b strings.Builder
	for _, n := range d.Networks {
		fmt.Fprintf(&b, "network %q file=%s master=%q mode=%q ipam=%q dataDir=%q fromCache=%v\n", n.Name, n.File, n.Master, n.Mode, n.IPAM, n.DataDir, n.FromCache())
		for _, r := range n.Ranges {
			fmt.Fprintf(&b, "  range %s start=%s end=%s gateway=%s\n", r.Subnet, r.Start, r.End, r.Gateway)
		}
		for _, a := range d.Attachments[n.Name] {
			fmt.Fprintf(&b, "  attachment %s container=%s ifname=%s netns=%s %s\n", a.Path, a.ContainerID, a.IfName, a.NetNS, renderResult(a))
		}
	}
	for name := range d.Attachments {
		found := false
		for _, n := range d.Networks {
			found = found || n.Name == name
		}
		if !found {
			fmt.Fprintf(&b, "attachments of unknown network %q\n", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Refused)) {
		for _, a := range d.Refused[name] {
			fmt.Fprintf(&b, "refused %q %s container=%s ifname=%s %s\n", name, a.Path, a.ContainerID, a.IfName, renderResult(a))
		}
	}
	for _, p := range d.Problems {
		fmt.Fprintf(&b, "problem [%s] %s\n", sentinelName(p.Err), p)
	}
	return b.String()
}

// renderResult prints what an attachment's cached result says.
func renderResult(a Attachment) string {
	var ips []string
	for _, x := range a.Addrs {
		s := x.Prefix.String()
		if x.Gateway.IsValid() {
			s += " via " + x.Gateway.String()
		}
		ips = append(ips, s)
	}
	return fmt.Sprintf("ips=[%s] mac=%s sandbox=%s gone=%v", strings.Join(ips, ", "), a.MAC, a.Sandbox, a.Gone)
}

// sentinels are the package's kinds of problem, most specific first.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrUnfollowable", ErrUnfollowable},
	{"ErrDuplicate", ErrDuplicate},
	{"ErrCacheUnreadable", ErrCacheUnreadable},
	{"ErrCacheIncomplete", ErrCacheIncomplete},
	{"ErrCacheMalformed", ErrCacheMalformed},
	{"ErrCacheMisnamed", ErrCacheMisnamed},
	{"ErrCacheLegacy", ErrCacheLegacy},
	{"ErrCacheKind", ErrCacheKind},
	{"ErrConflict", ErrConflict},
	{"ErrCacheConflict", ErrCacheConflict},
	{"ErrNameTaken", ErrNameTaken},
}

// sentinelName names the sentinels err matches, "none" for none.
func sentinelName(err error) string {
	var names []string
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			names = append(names, s.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// readCase reads a case directory of testdata/cache: net.d/ (optional) is
// the configuration directory, every other subdirectory a cache directory.
func readCase(t *testing.T, dir string) (Discovery, []CacheFile) {
	t.Helper()
	var files []File
	if fs, err := readDir(filepath.Join(dir, "net.d")); err == nil {
		files = fs
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	subs, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The namespaces the entries name are of the machine that made them:
	// gone unless named "…live…".
	defer func(f func(string) bool) { netnsGone = f }(netnsGone)
	netnsGone = func(p string) bool { return !strings.Contains(p, "live") }
	var cache []CacheFile
	for _, s := range subs {
		if !s.IsDir() || s.Name() == "net.d" {
			continue
		}
		cf, err := readCache(filepath.Join(dir, s.Name())) // testdata: wherever the checkout is
		if err != nil {
			t.Fatal(err)
		}
		for i := range cf {
			cf[i].ModTime = time.Time{} // a checkout's times say nothing: ties go by path
		}

		cache = append(cache, cf...)
	}
	return DiscoverAll(files, cache), cache
}

// renderEntries prints what ParseCache makes of each file.
func renderEntries(cache []CacheFile) string {
	var b strings.Builder
	for _, f := range cache {
		e, err := ParseCache(f)
		switch {
		case err != nil:
			fmt.Fprintf(&b, "file %s: [%s] ignorable=%v\n", f.Path, sentinelName(err), Ignorable(err))
		case e.Network != nil:
			fmt.Fprintf(&b, "file %s: network %q types %q: macvlan, IPAM %q\n", f.Path, e.NetworkName, e.Types, e.Network.IPAM)
		default:
			fmt.Fprintf(&b, "file %s: network %q types %q: ignored\n", f.Path, e.NetworkName, e.Types)
		}
	}
	return b.String()
}

// TestDiscoverCacheGolden reads each case under testdata/cache and compares
// what ParseCache makes of each file and what DiscoverAll finds with
// <case>.golden.
func TestDiscoverCacheGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "cache", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			d, cache := readCase(t, dir)
			got := renderEntries(cache) + renderDiscovery(d)
			golden(t, dir+".golden", got, "DiscoverAll("+dir+")")
		})
	}
	if n < 5 {
		t.Fatalf("found %d golden cases, want at least 5", n)
	}
}

func TestReadCacheMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadCache(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
	if _, err := ReadCache(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing results/: %v", err)
	}
	if f := ReadCacheFile(dir, "gone"); !errors.Is(f.Err, fs.ErrNotExist) || errors.Is(f.Err, ErrCacheUnreadable) {
		t.Errorf("ReadCacheFile of a missing file: %v", f.Err)
	}
}
