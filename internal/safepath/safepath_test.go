package safepath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/testenv"
)

// fakeInfo is a stat result with an owner.
type fakeInfo struct {
	mode fs.FileMode
	uid  uint32
}

func (f fakeInfo) Name() string       { return "" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return &syscall.Stat_t{Uid: f.uid} }

// TestWalk: every directory on the way must be root's and writable by no
// one else; a sticky world-writable directory may lie on the way, never be
// the directory read; a missing tail is no refusal.
func TestWalk(t *testing.T) {
	dir := fs.ModeDir
	base := map[string]fakeInfo{
		"/":         {dir | 0o755, 0},
		"/var":      {dir | 0o755, 0},
		"/var/lib":  {dir | 0o755, 0},
		"/run":      {dir | 0o755, 0},
		"/run/lock": {dir | fs.ModeSticky | 0o777, 0},
		"/tmp":      {dir | fs.ModeSticky | 0o777, 0},
	}
	for _, tt := range []struct {
		name  string
		extra map[string]fakeInfo
		path  string
		bad   string // the path the error names; "" for none
	}{
		{"root's", map[string]fakeInfo{"/var/lib/cni": {dir | 0o755, 0}}, "/var/lib/cni", ""},
		{"missing tail", nil, "/var/lib/cni/networks/x", ""},
		{"group-writable", map[string]fakeInfo{"/var/lib/cni": {dir | 0o775, 0}}, "/var/lib/cni", "/var/lib/cni"},
		{"world-writable on the way", map[string]fakeInfo{"/var/lib/cni": {dir | 0o777, 0}, "/var/lib/cni/networks": {dir | 0o755, 0}}, "/var/lib/cni/networks", "/var/lib/cni"},
		{"not root's", map[string]fakeInfo{"/run/lock/net": {dir | 0o755, 65534}}, "/run/lock/net", "/run/lock/net"},
		{"root's under a sticky directory", map[string]fakeInfo{"/run/lock/net": {dir | 0o755, 0}}, "/run/lock/net", ""},
		{"a sticky directory itself", nil, "/tmp", "/tmp"},
		{"a link of another user's", map[string]fakeInfo{"/var/lib/cni": {fs.ModeSymlink | 0o777, 1000}}, "/var/lib/cni", "/var/lib/cni"},
		{"a link of root's", map[string]fakeInfo{"/var/lib/cni": {fs.ModeSymlink | 0o777, 0}}, "/var/lib/cni", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stat := func(p string) (os.FileInfo, error) {
				if fi, ok := tt.extra[p]; ok {
					return fi, nil
				}
				if fi, ok := base[p]; ok {
					return fi, nil
				}
				return nil, fs.ErrNotExist
			}
			err := walk(tt.path, stat)
			var ue *UnsafeError
			switch {
			case tt.bad == "" && err != nil:
				t.Fatalf("walk(%s) = %v, want nil", tt.path, err)
			case tt.bad != "" && (!errors.As(err, &ue) || ue.Path != tt.bad || !errors.Is(err, ErrUnsafe)):
				t.Fatalf("walk(%s) = %v, want one naming %s", tt.path, err, tt.bad)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}

// TestCheckReal: on the real file system (as root, the only way to own a
// directory as root): a directory made by root is safe, made
// world-writable or given away it is not, and through a link the
// directory it leads to is checked too.
func TestCheckReal(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root: a directory owned by root")
	}
	top := t.TempDir()
	dir := filepath.Join(top, "networks", "default")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{top, filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Check(dir); err != nil {
		t.Fatalf("root's directory: %v", err)
	}
	if err := Check(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("a missing directory: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("world-writable: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("given away: %v", err)
	}
	link := filepath.Join(top, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := Check(link); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("through a link to a directory given away: %v", err)
	}
}

// TestMissing: a path that does not exist is not there, unless it lies
// in a directory the service manager hides from flatnet (its private /run):
// then flatnet cannot tell, and says how to bind it in; below a directory
// bound into the hidden one, missing is missing.
func TestMissing(t *testing.T) {
	root := t.TempDir() // stands for the private /run
	bound := filepath.Join(root, "netns")
	if err := os.Mkdir(bound, 0o755); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(root, "ipam-state", "net")
	if err := Missing(in); err != nil {
		t.Fatalf("nothing hidden: %v", err)
	}
	t.Setenv(HiddenEnv, root+" /var/run relative")
	for path, hidden := range map[string]bool{in: true, filepath.Join(root, "x"): true, filepath.Join(bound, "cni-1"): false, "/var/lib/cni/networks/none": false} {
		err := Missing(path)
		if hidden != errors.Is(err, ErrHidden) {
			t.Errorf("Missing(%s) = %v", path, err)
		}
		if hidden && !strings.Contains(err.Error(), "BindReadOnlyPaths="+path) {
			t.Errorf("Missing(%s) does not say how to bind it in: %v", path, err)
		}
	}
}
