package statedir

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// TestCacheOwnerChanges: the cache tells an address given to another
// container (its neighbour entry must go) and a release (with the last
// owner, for the log line) from a plain allocation, whether it sees the
// change entry by entry or in a whole read.
func TestCacheOwnerChanges(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "192.168.1.2", "c1\r\neth0")
	write(t, dir, "192.168.1.3", "c2\r\neth0")
	c := NewCache()
	if notes := c.ReadAll(dir); len(notes) != 0 {
		t.Fatalf("notes: %v", notes)
	}
	if reused, released := c.TakeChanges(); reused != nil || released != nil {
		t.Fatalf("a first read found changes: %v %v", reused, released)
	}
	a2, a3, a4 := netip.MustParseAddr("192.168.1.2"), netip.MustParseAddr("192.168.1.3"), netip.MustParseAddr("192.168.1.4")

	write(t, dir, "192.168.1.2", "c9\r\neth0") // released and given to c9 between two looks
	if err := os.Remove(filepath.Join(dir, "192.168.1.3")); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "192.168.1.4", "c4\r\neth0")
	changed, _ := c.ReadNames(dir, map[string]bool{"192.168.1.2": true, "192.168.1.3": true, "192.168.1.4": true})
	slices.SortFunc(changed, netip.Addr.Compare)
	if !slices.Equal(changed, []netip.Addr{a2, a3, a4}) {
		t.Errorf("changed %v", changed)
	}
	reused, released := c.TakeChanges()
	if len(reused) != 1 || !reused[a2] || len(released) != 1 || released[a3].ContainerID != "c2" {
		t.Errorf("reused %v, released %v", reused, released)
	}
	// An event for a file that did not change changes nothing.
	if changed, _ := c.ReadNames(dir, map[string]bool{"192.168.1.4": true}); len(changed) != 0 {
		t.Errorf("unchanged file: changed %v", changed)
	}

	// The same, seen by a whole read.
	write(t, dir, "192.168.1.4", "c5\r\neth0")
	if err := os.Remove(filepath.Join(dir, "192.168.1.2")); err != nil {
		t.Fatal(err)
	}
	c.ReadAll(dir)
	reused, released = c.TakeChanges()
	if !reused[a4] || released[a2].ContainerID != "c9" {
		t.Errorf("whole read: reused %v, released %v", reused, released)
	}
}

// TestCacheUnreadableHolds: a directory that cannot be read keeps what
// was last seen of it (its routes are held) and is said once; when it is
// readable again that is said too.
func TestCacheUnreadableHolds(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "default")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "192.168.1.2", "c1\r\neth0")
	c := NewCache()
	c.ReadAll(dir)
	// A file in the directory's place makes it unreadable, even for root.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	write(t, root, "default", "not a directory")
	notes := c.ReadAll(dir)
	if len(notes) != 1 || !strings.Contains(notes[0].Msg, "holding its routes") {
		t.Errorf("notes %v", notes)
	}
	st, _ := c.State(dir)
	if st.Err == nil || len(st.Allocs) != 1 || c.Known(dir) {
		t.Errorf("state %+v, known %v: want the error and the last allocations", st, c.Known(dir))
	}
	if notes := c.ReadAll(dir); len(notes) != 0 {
		t.Errorf("said again: %v", notes)
	}
	if err := os.Remove(filepath.Join(root, "default")); err != nil {
		t.Fatal(err)
	}
	if notes := c.ReadAll(dir); len(notes) != 1 || !strings.Contains(notes[0].Msg, "readable again") {
		t.Errorf("back: notes %v", notes)
	}
}

// TestCacheBadEntriesOnce: an unusable entry is said once while it lasts,
// and again only if its reason changes.
func TestCacheBadEntriesOnce(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "192.168.001.002", "x")
	c := NewCache()
	if notes := c.ReadAll(dir); len(notes) != 1 || notes[0].File != "192.168.001.002" {
		t.Fatalf("notes %v", notes)
	}
	if notes := c.ReadAll(dir); len(notes) != 0 {
		t.Errorf("said again on a whole read: %v", notes)
	}
	if _, notes := c.ReadNames(dir, map[string]bool{"192.168.001.002": true}); len(notes) != 0 {
		t.Errorf("said again on its event: %v", notes)
	}
}

// TestCacheAllocationGoneBad: an allocation whose entry becomes unusable
// (grown past host-local's size, or replaced by a directory) and is read
// by its event is no longer held: the address leaves the state, so its
// route goes, and it is reported as changed and its entry noted once.
func TestCacheAllocationGoneBad(t *testing.T) {
	ip := netip.MustParseAddr("192.168.1.2")
	for _, tt := range []struct {
		name  string
		spoil func(t *testing.T, path string)
	}{
		{"too large", func(t *testing.T, path string) {
			write(t, filepath.Dir(path), filepath.Base(path), strings.Repeat("x", hostlocal.MaxFileSize+1))
		}},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, ip.String(), "c1\r\neth0")
			c := NewCache()
			c.ReadAll(dir)
			if st, _ := c.State(dir); st.Allocs[ip].ContainerID != "c1" {
				t.Fatalf("before: state %+v", st)
			}
			tt.spoil(t, filepath.Join(dir, ip.String()))
			changed, notes := c.ReadNames(dir, map[string]bool{ip.String(): true})
			if !slices.Equal(changed, []netip.Addr{ip}) || len(notes) != 1 || notes[0].File != ip.String() {
				t.Errorf("changed %v, notes %v", changed, notes)
			}
			if st, _ := c.State(dir); len(st.Allocs) != 0 {
				t.Errorf("an unusable entry is still held: %v", st.Allocs)
			}
		})
	}
}

// TestCacheMoreBadByEvent: a directory read whole with exactly
// MaxBadListed unusable entries lists them all and says nothing of more;
// the next unusable entry, read by its event, is counted (Bad, for
// flatnet check) and said once as "more", the one after only counted.
func TestCacheMoreBadByEvent(t *testing.T) {
	dir := t.TempDir()
	for i := range MaxBadListed {
		write(t, dir, fmt.Sprintf("junk-%04d", i), "x")
	}
	c := NewCache()
	if notes := c.ReadAll(dir); len(notes) != MaxBadListed {
		t.Fatalf("%d notes, want %d", len(notes), MaxBadListed)
	}
	if bad, more := c.Bad(dir); len(bad) != MaxBadListed || more != 0 {
		t.Fatalf("Bad: %d listed, %d more", len(bad), more)
	}
	for i, name := range []string{"junk-a", "junk-b"} {
		write(t, dir, name, "x")
		_, notes := c.ReadNames(dir, map[string]bool{name: true})
		if saysMore := len(notes) == 1 && strings.HasPrefix(notes[0].Msg, "more than "); saysMore != (i == 0) || len(notes) > 1 {
			t.Errorf("%s: notes %v", name, notes)
		}
		if bad, more := c.Bad(dir); len(bad) != MaxBadListed || more != i+1 {
			t.Errorf("%s: Bad: %d listed, %d more; want %d, %d", name, len(bad), more, MaxBadListed, i+1)
		}
	}
}
