// Package safepath tells whether a directory is root's alone: owned by
// root, and writable by no one else, nor is any directory above it. flatnet
// runs as root and acts on what it reads; a directory that others can
// write (or replace, through a directory above it) is their input, not
// root's, and flatnet does not read it. The rule is sshd's StrictModes,
// with the sticky-bit exception every /tmp needs: a world-writable
// directory with the sticky bit set (/tmp, /run/lock) may lie on the way,
// as long as what lies below it is root's, since others can then neither
// remove nor rename it.
package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// euid is the user flatnet runs as, root under systemd: a directory of
// its own is as good as root's (as sshd accepts the user's own files),
// which also lets the tests run as any user.
var euid = os.Geteuid()

// HiddenEnv names the environment variable through which the service
// manager tells flatnet which directories it hides from it, separated by
// spaces: the unit gives flatnet a private /run ("/run /var/run").
const HiddenEnv = "FLATNET_HIDDEN_DIRS"

// hiddenDirs are the directories v (HiddenEnv's value) names, cleaned.
func hiddenDirs(v string) []string {
	var out []string
	for _, d := range strings.Fields(v) {
		if filepath.IsAbs(d) {
			out = append(out, filepath.Clean(d))
		}
	}
	return out
}

// ErrHidden marks a directory the service's sandbox hides from flatnet:
// it cannot tell whether it holds anything.
var ErrHidden = errors.New("hidden from flatnet by its service's sandbox")

// Missing says what a path dir that does not exist means: nil when it is
// simply not there (yet), or an error matching ErrHidden when it lies in a
// directory the service manager hides from flatnet (HiddenEnv), which may
// well hold it: the caller must keep what it knew rather than take it for
// empty or gone. A path is hidden when the nearest directory above it
// that flatnet sees is one of those: a directory bound into the hidden one
// (the unit binds /run/netns into its private /run) is seen, and what is
// missing below it is missing.
func Missing(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	seen := abs
	for {
		if _, err := os.Lstat(seen); err == nil || seen == filepath.Dir(seen) {
			break
		}
		seen = filepath.Dir(seen)
	}
	for _, h := range hiddenDirs(os.Getenv(HiddenEnv)) {
		if seen == h {
			return fmt.Errorf("%w: %s lies under %s, which flatnet's service does not see (its private /run keeps container runtime sockets out of its reach); bind it in with a drop-in (systemctl edit flatnet): [Service] ExecStartPre=+/bin/mkdir -p %s, BindReadOnlyPaths=%s (docs/systemd.md)",
				ErrHidden, abs, h, abs, abs)
		}
	}
	return nil
}

// ErrUnsafe marks a directory others than root can write.
var ErrUnsafe = errors.New("writable by others than root")

// Check returns nil when dir, and every directory on its way from /, both
// as written and with its symbolic links resolved, is owned by root (or
// the user flatnet runs as) and writable by no group or other user (a sticky directory on the way is
// allowed); a symbolic link on the way must be root's too. A dir that does
// not exist is not refused: it holds nothing, and it is checked again once
// it appears. Otherwise the error, which matches ErrUnsafe, names the
// offending path, its owner and mode, and the fix.
func Check(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil // the read that follows says what is wrong
	}
	if err := walk(dir, os.Lstat); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return nil // unreadable: the read that follows says so
	}
	if real == dir {
		return nil
	}
	return walk(real, os.Stat)
}

// walk checks each existing component of path, from / down, with stat.
func walk(path string, stat func(string) (os.FileInfo, error)) error {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	p := "/"
	for i := -1; i < len(parts); i++ {
		if i >= 0 {
			p = filepath.Join(p, parts[i])
		}
		fi, err := stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return nil // unreadable: the read that follows says so
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		last := i == len(parts)-1
		mode := fi.Mode()
		switch {
		case st.Uid != 0 && st.Uid != uint32(euid):
			return &UnsafeError{Path: p, Dir: path, Uid: st.Uid, Mode: mode}
		case mode&fs.ModeSymlink != 0:
			// Root's link in a directory checked above: where it leads is
			// checked by the walk of the resolved path.
		case mode.Perm()&0o022 != 0 && (last || mode&fs.ModeSticky == 0):
			return &UnsafeError{Path: p, Dir: path, Uid: st.Uid, Mode: mode}
		}
	}
	return nil
}

// UnsafeError is a directory on the way to Dir (or Dir itself) that others
// than root own or can write.
type UnsafeError struct {
	Path string // the offending directory or link
	Dir  string // the directory checked
	Uid  uint32
	Mode fs.FileMode
}

func (e *UnsafeError) Error() string {
	what := fmt.Sprintf("owned by uid %d", e.Uid)
	fix := "chown root " + e.Path
	if e.Uid == 0 {
		what = fmt.Sprintf("mode %04o", e.Mode.Perm()|stickyBits(e.Mode))
		fix = "chmod go-w " + e.Path
	}
	where := e.Path
	if e.Path != e.Dir {
		where = fmt.Sprintf("%s, on the way to %s,", e.Path, e.Dir)
	}
	return fmt.Sprintf("%s is %s: others than root can write it, so flatnet does not read it (%s if it should be root's alone)", where, what, fix)
}

// Is makes errors.Is(e, ErrUnsafe) true.
func (e *UnsafeError) Is(target error) bool { return target == ErrUnsafe }

func stickyBits(m fs.FileMode) fs.FileMode {
	var b fs.FileMode
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	return b
}
