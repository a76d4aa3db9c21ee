package statedir

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/safepath"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "192.168.1.2", "7bd849c5\r\neth0")
	write(t, dir, "192.168.1.3", "oldstyle")
	write(t, dir, "192.168.1.4", "") // created, not yet written
	write(t, dir, "lock", "")
	write(t, dir, "last_reserved_ip.0", "192.168.1.3")
	write(t, dir, "192.168.001.005", "x")
	write(t, dir, "junk", "x")
	write(t, dir, "192.168.1.6", strings.Repeat("x", hostlocal.MaxFileSize+1))
	if err := os.Mkdir(filepath.Join(dir, "192.168.1.7"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "192.168.1.8")); err != nil {
		t.Fatal(err)
	}

	allocs, bad, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]hostlocal.Owner{
		netip.MustParseAddr("192.168.1.2"): {ContainerID: "7bd849c5", IfName: "eth0"},
		netip.MustParseAddr("192.168.1.3"): {ContainerID: "oldstyle"},
	}
	if len(allocs) != len(want) {
		t.Errorf("allocs = %v, want %v", allocs, want)
	}
	for ip, o := range want {
		if allocs[ip] != o {
			t.Errorf("allocs[%s] = %+v, want %+v", ip, allocs[ip], o)
		}
	}
	var names []string
	for _, b := range bad {
		names = append(names, b.Name+": "+b.Reason)
	}
	sort.Strings(names)
	wantBad := []string{"192.168.001.005: name", "192.168.1.6: larger than", "192.168.1.7: not a regular file", "192.168.1.8: not a regular file", "junk: name"}
	if len(names) != len(wantBad) {
		t.Fatalf("bad = %q, want %q", names, wantBad)
	}
	for i := range wantBad {
		if !strings.HasPrefix(names[i], wantBad[i]) {
			t.Errorf("bad[%d] = %q, want prefix %q", i, names[i], wantBad[i])
		}
	}
}

func TestReadMissingDirIsEmpty(t *testing.T) {
	allocs, bad, err := Read(filepath.Join(t.TempDir(), "nope"))
	if err != nil || len(allocs) != 0 || len(bad) != 0 {
		t.Fatalf("Read(missing) = %v, %v, %v; want empty, nil", allocs, bad, err)
	}
}

func TestReadOne(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "192.168.1.2", "abc\r\neth0")
	if ip, o, why := ReadOne(dir, "192.168.1.2"); ip.String() != "192.168.1.2" || o.ContainerID != "abc" || why != "" {
		t.Errorf("ReadOne = %v %+v %q", ip, o, why)
	}
	if ip, _, why := ReadOne(dir, "192.168.1.9"); ip.IsValid() || why != "" {
		t.Errorf("ReadOne(gone) = %v %q; want nothing", ip, why)
	}
	if err := os.Symlink(filepath.Join(dir, "192.168.1.2"), filepath.Join(dir, "192.168.1.3")); err != nil {
		t.Fatal(err)
	}
	if ip, _, why := ReadOne(dir, "192.168.1.3"); ip.IsValid() || why == "" {
		t.Errorf("ReadOne(symlink) = %v %q; want a rejection", ip, why)
	}
}

// TestReadLimit reads a directory of more entries than one batch: every
// allocation, the first unusable entries up to the limit and the count of
// the others.
func TestReadLimit(t *testing.T) {
	defer func(b int) { batch = b }(batch)
	batch = 64
	dir := t.TempDir()
	junk, good := 2*batch+10, 70
	for i := range junk {
		write(t, dir, fmt.Sprintf("junk-%04d", i), "x")
	}
	for i := range good {
		write(t, dir, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String(), "c"+strconv.Itoa(i)+"\r\neth0")
	}
	allocs, bad, more, err := ReadLimit(dir, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(allocs) != good || len(bad) != 20 || more != junk-20 {
		t.Errorf("ReadLimit: %d allocations, %d unusable listed, %d more; want %d, 20, %d", len(allocs), len(bad), more, good, junk-20)
	}
	for i, b := range bad {
		if want := fmt.Sprintf("junk-%04d", i); b.Name != want {
			t.Errorf("unusable entry %d listed: %s, want %s (the lowest names)", i, b.Name, want)
		}
	}
	if o := allocs[netip.MustParseAddr("10.1.0.42")]; o.ContainerID != "c42" {
		t.Errorf("10.1.0.42 owned by %+v", o)
	}
	_, all, more, err := ReadLimit(dir, -1)
	if err != nil || len(all) != junk || more != 0 {
		t.Errorf("ReadLimit without a limit: %d unusable listed, %d more, %v", len(all), more, err)
	}
}

// TestFindUnmatched: the root's directories not in known are listed in
// name order, empty ones too (the daemon watches them before counting);
// only those holding a file named by an address are unmatched, counted by
// those names (not host-local's lock and last_reserved_ip files, not
// subdirectories). A root that does not exist has none.
func TestFindUnmatched(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"default", "ghost", "empty", "books", "ghost/192.168.9.9"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(root, "default"), "192.168.1.2", "c1")
	write(t, filepath.Join(root, "ghost"), "192.168.5.9", "c2\r\neth0")
	write(t, filepath.Join(root, "ghost"), "fd00::9", "c3\r\neth0")
	write(t, filepath.Join(root, "ghost"), "lock", "")
	write(t, filepath.Join(root, "ghost"), "last_reserved_ip.0", "192.168.5.9")
	write(t, filepath.Join(root, "books"), "lock", "")
	write(t, root, "192.168.7.7", "a file in the root itself")
	known := map[string]bool{filepath.Join(root, "default"): true}

	dirs, err := Unexplained(root, known)
	if want := []string{filepath.Join(root, "books"), filepath.Join(root, "empty"), filepath.Join(root, "ghost")}; err != nil || !slices.Equal(dirs, want) {
		t.Errorf("Unexplained = %q, %v; want %q", dirs, err, want)
	}
	um, err := FindUnmatched(root, known)
	if want := []Unmatched{{Dir: filepath.Join(root, "ghost"), Allocated: 2}}; err != nil || !slices.Equal(um, want) {
		t.Errorf("FindUnmatched = %+v, %v; want %+v", um, err, want)
	}
	if n := Allocated(filepath.Join(root, "absent")); n != 0 {
		t.Errorf("Allocated of a missing directory = %d", n)
	}
	if dirs, err := Unexplained(filepath.Join(root, "absent"), nil); err != nil || dirs != nil {
		t.Errorf("Unexplained of a missing root = %q, %v", dirs, err)
	}
}

// TestReadHidden: a state directory that the service's sandbox hides (it
// lies in its private /run) is not empty: the read fails, so that the
// network's routes are held.
func TestReadHidden(t *testing.T) {
	root := t.TempDir()
	t.Setenv(safepath.HiddenEnv, root)
	if _, _, err := Read(filepath.Join(root, "ipam", "net")); !errors.Is(err, safepath.ErrHidden) {
		t.Fatalf("Read of a hidden directory: %v", err)
	}
	t.Setenv(safepath.HiddenEnv, "")
	if allocs, _, err := Read(filepath.Join(root, "ipam", "net")); err != nil || len(allocs) != 0 {
		t.Fatalf("Read of a missing directory: %v %v", allocs, err)
	}
}

// TestReadEntryShortReadIsTheEnd: an entry shorter than the buffer is
// taken from a single read(2), as a regular file's end is; no second read
// just to be told so (a system call per pod at start-up). The one entry
// that tells is a FIFO swapped in after listing whose writer holds it
// open: what it wrote reads as a file with that content would, with no
// EAGAIN from a read that would have to wait for more.
func TestReadEntryShortReadIsTheEnd(t *testing.T) {
	dir := t.TempDir()
	name := "192.168.1.2"
	if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
		t.Fatal(err)
	}
	// O_RDWR opens a FIFO at once on Linux, as its writer (and a reader).
	wr, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	if _, err := wr.WriteString("c1\r\neth0"); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ip, owner, why := readEntry(int(d.Fd()), name, 0) // listed as a regular file
	if ip.String() != name || owner != (hostlocal.Owner{ContainerID: "c1", IfName: "eth0"}) || why != "" {
		t.Errorf("readEntry = %v %+v %q; want %s owned by c1 eth0", ip, owner, why, name)
	}
}
