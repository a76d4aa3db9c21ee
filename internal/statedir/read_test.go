package statedir

import (
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
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
