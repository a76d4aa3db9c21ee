package statedir

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// TestReadOneContent: a file of exactly hostlocal.MaxFileSize bytes is
// read whole, one byte more is not host-local's; a symlink named as an
// address is not followed, nor a FIFO opened (read as not regular files
// when listed, and when swapped in after listing by Openat's flags); a
// directory is no allocation.
func TestReadOneContent(t *testing.T) {
	dir := t.TempDir()
	id := "c1"
	exact := id + "\r\n" + strings.Repeat("e", hostlocal.MaxFileSize-len(id)-2)
	write(t, dir, "10.0.0.2", exact)
	write(t, dir, "10.0.0.3", exact+"x")
	write(t, dir, "target", "c9\r\neth0")
	if err := os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, "10.0.0.4")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "10.0.0.5"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "10.0.0.6"), 0o755); err != nil {
		t.Fatal(err)
	}
	if ip, o, why := ReadOne(dir, "10.0.0.2"); !ip.IsValid() || o.ContainerID != id || why != "" {
		t.Errorf("a file of MaxFileSize bytes: %v %+v %q", ip, o, why)
	}
	if ip, _, why := ReadOne(dir, "10.0.0.3"); ip.IsValid() || !strings.Contains(why, "larger than") {
		t.Errorf("a file of MaxFileSize+1 bytes: %v %q", ip, why)
	}
	for _, name := range []string{"10.0.0.4", "10.0.0.5", "10.0.0.6"} {
		if ip, _, why := ReadOne(dir, name); ip.IsValid() || why == "" {
			t.Errorf("%s: %v %q", name, ip, why)
		}
	}
	// Listed as regular files, then swapped: Openat must neither follow
	// nor block.
	for _, name := range []string{"10.0.0.4", "10.0.0.5"} {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		ip, _, why := readEntry(int(f.Fd()), name, 0)
		f.Close()
		// The symlink fails to open (ELOOP); the FIFO opens without
		// blocking and reads as a file not written yet.
		if ip.IsValid() || (name == "10.0.0.4") != (why != "") {
			t.Errorf("%s swapped in after listing: %v %q", name, ip, why)
		}
	}
	if !IsDir(filepath.Join(dir, "10.0.0.6")) || IsDir(filepath.Join(dir, "10.0.0.2")) || IsDir(filepath.Join(dir, "none")) {
		t.Error("IsDir")
	}
	if err := os.Symlink(filepath.Join(dir, "10.0.0.6"), filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if IsDir(filepath.Join(dir, "linkdir")) {
		t.Error("IsDir follows a link")
	}
}

// TestReadLargeDirectory: a directory of more entries than one worker
// takes is read whole, whatever the batch.
func TestReadLargeDirectory(t *testing.T) {
	defer func(b int) { batch = b }(batch)
	batch = 4096
	dir := t.TempDir()
	n := 1500
	for i := range n {
		write(t, dir, netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}).String(), fmt.Sprintf("c%d\r\neth0", i))
	}
	allocs, bad, more, err := ReadLimit(dir, 0)
	if err != nil || len(allocs) != n || len(bad) != 0 || more != 0 {
		t.Fatalf("ReadLimit: %d allocations, %d bad, %d more, %v", len(allocs), len(bad), more, err)
	}
	// A limit of 0 lists none and counts every unusable entry.
	write(t, dir, "junk", "x")
	if _, bad, more, err := ReadLimit(dir, 0); err != nil || len(bad) != 0 || more != 1 {
		t.Fatalf("ReadLimit with a limit of 0: %d bad, %d more, %v", len(bad), more, err)
	}
}

// TestCacheManyBadEntries: past MaxBadListed unusable entries, one note
// says there are more, once while it lasts, however they are read; a
// reason that changes is said again; an entry that becomes good is
// forgotten.
func TestCacheManyBadEntries(t *testing.T) {
	dir := t.TempDir()
	for i := range MaxBadListed + 3 {
		write(t, dir, fmt.Sprintf("junk-%04d", i), "x")
	}
	c := NewCache()
	notes := c.ReadAll(dir)
	more := 0
	for _, n := range notes {
		if strings.HasPrefix(n.Msg, "more than ") {
			more++
		}
	}
	if len(notes) != MaxBadListed+1 || more != 1 {
		t.Fatalf("%d notes, %d of more; want %d and 1", len(notes), more, MaxBadListed+1)
	}
	if notes := c.ReadAll(dir); len(notes) != 0 {
		t.Errorf("said again: %v", notes)
	}
	// Another unlisted one comes by its event: no new note.
	write(t, dir, "junk-9999", "x")
	if _, notes := c.ReadNames(dir, map[string]bool{"junk-9999": true}); len(notes) != 0 {
		t.Errorf("a further unlisted entry said: %v", notes)
	}

	// A fresh directory: under the limit, a second full read with more
	// junk says "more" once.
	dir2 := t.TempDir()
	write(t, dir2, "junk-a", "x")
	c2 := NewCache()
	c2.ReadAll(dir2)
	for i := range MaxBadListed + 1 {
		write(t, dir2, fmt.Sprintf("junk-b%04d", i), "x")
	}
	notes = c2.ReadAll(dir2)
	more = 0
	for _, n := range notes {
		if strings.HasPrefix(n.Msg, "more than ") {
			more++
		}
	}
	if more != 1 {
		t.Errorf("more said %d times on the read that passed the limit", more)
	}

	// An entry whose reason changes is said again.
	dir3 := t.TempDir()
	write(t, dir3, "10.0.0.9", strings.Repeat("x", hostlocal.MaxFileSize+1))
	c3 := NewCache()
	if notes := c3.ReadAll(dir3); len(notes) != 1 {
		t.Fatalf("notes %v", notes)
	}
	os.Remove(filepath.Join(dir3, "10.0.0.9"))
	if err := os.Mkdir(filepath.Join(dir3, "10.0.0.9"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, notes := c3.ReadNames(dir3, map[string]bool{"10.0.0.9": true}); len(notes) != 1 {
		t.Errorf("a new reason is not said: %v", notes)
	}
	if _, notes := c3.ReadNames(dir3, map[string]bool{"10.0.0.9": true}); len(notes) != 0 {
		t.Errorf("the same reason said again: %v", notes)
	}
	// It becomes an allocation: forgotten as bad, said again if it goes bad.
	os.Remove(filepath.Join(dir3, "10.0.0.9"))
	write(t, dir3, "10.0.0.9", "c1\r\neth0")
	if changed, _ := c3.ReadNames(dir3, map[string]bool{"10.0.0.9": true}); len(changed) != 1 {
		t.Errorf("changed %v", changed)
	}
	write(t, dir3, "10.0.0.9", strings.Repeat("x", hostlocal.MaxFileSize+1))
	if _, notes := c3.ReadNames(dir3, map[string]bool{"10.0.0.9": true}); len(notes) != 1 {
		t.Errorf("bad again, not said: %v", notes)
	}
	// A bad name (not an address) read by its event is said.
	write(t, dir3, "not-an-ip", "x")
	if changed, notes := c3.ReadNames(dir3, map[string]bool{"not-an-ip": true}); len(notes) != 1 || len(changed) != 0 {
		t.Errorf("a junk name: changed %v notes %v", changed, notes)
	}
}

// TestWatcherWatchesOnlyWhatItNeeds: a wanted directory that exists has
// its own watch and no other, also when asked again; one that does not
// exist yet is watched through its nearest existing ancestor alone, whose
// other entries are not reported.
func TestWatcherWatchesOnlyWhatItNeeds(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "default")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	ch := make(chan note, 100)
	w, err := NewWatcher(func(dir, name string) { ch <- note{dir, name} })
	if err != nil {
		t.Fatal(err)
	}
	defer w.fs.Close()
	watched := func() []string {
		w.mu.Lock()
		defer w.mu.Unlock()
		var out []string
		for p := range w.watched {
			out = append(out, p)
		}
		return out
	}
	for range 2 {
		if err := w.Set([]string{d}); err != nil {
			t.Fatal(err)
		}
		if got := watched(); len(got) != 1 || got[0] != d {
			t.Fatalf("watched %q, want %s alone", got, d)
		}
	}
	later := filepath.Join(root, "x", "y")
	if err := w.Set([]string{later}); err != nil {
		t.Fatal(err)
	}
	if got := watched(); len(got) != 1 || got[0] != root {
		t.Fatalf("watched %q, want the nearest existing ancestor %s alone", got, root)
	}
	// An entry of the ancestor that leads nowhere wanted: no note.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	for len(ch) > 0 {
		<-ch
	}
	write(t, root, "unrelated", "x")
	if err := os.MkdirAll(later, 0o755); err != nil {
		t.Fatal(err)
	}
	for n := range ch {
		if n.dir == root {
			t.Fatalf("an entry of the ancestor was reported: %v", n)
		}
		if n == (note{later, ""}) {
			break
		}
	}
}

// TestChildToward: the entry of p on the way down to d.
func TestChildToward(t *testing.T) {
	for _, tt := range [][3]string{
		{"/a", "/a/b/c", "/a/b"},
		{"/a", "/a/b", "/a/b"},
		{"/", "/a/b", "/a"},
		{"/x", "/a/b", "/"},
	} {
		if got := childToward(tt[0], tt[1]); got != tt[2] {
			t.Errorf("childToward(%s, %s) = %s, want %s", tt[0], tt[1], got, tt[2])
		}
	}
}
