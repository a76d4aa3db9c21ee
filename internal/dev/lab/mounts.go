package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mounts and cgroups, as the lab's runtime (StartCRI) leaves them.

// cgroupMounts lists the mount points of the cgroup hierarchies (v1 and
// v2) this process sees.
func cgroupMounts() ([]string, error) {
	return mountsOf("/proc/self/mountinfo", func(fstype string) bool { return fstype == "cgroup" || fstype == "cgroup2" })
}

// mountPoints lists every mount point of a mountinfo file.
func mountPoints(mountinfo string) ([]string, error) {
	return mountsOf(mountinfo, func(string) bool { return true })
}

// mountsOf lists the mount points of a mountinfo file whose file system
// type is one keep wants.
func mountsOf(mountinfo string, keep func(fstype string) bool) ([]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint options [optional…] - fstype source superopts
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && i >= 5 {
				if keep(fields[i+1]) {
					out = append(out, unescapeMountinfo(fields[4]))
				}
				break
			}
		}
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCgroupTree removes the cgroup at path (absolute, as a pod's
// cgroup_parent) and every cgroup under it, deepest first, from every
// hierarchy. A cgroup whose last process has just died may stay busy for
// a moment: removal is retried up to StopTimeout.
func removeCgroupTree(path string) error {
	if path == "" || path == "/" || !strings.HasPrefix(path, "/") {
		return fmt.Errorf("refusing to remove cgroup %q", path)
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(StopTimeout)
	var errs []error
	for _, m := range mounts {
		root := filepath.Join(m, path)
		for {
			err := rmdirTree(root)
			if err == nil || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				if err != nil {
					errs = append(errs, fmt.Errorf("removing cgroup %s: %w", root, err))
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// rmdirTree removes a directory tree of cgroups with rmdir alone (a
// cgroup's files cannot be, and need not be, removed); a missing root is
// no error.
func rmdirTree(root string) error {
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := rmdirTree(filepath.Join(root, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(root); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "rmdir", Path: root, Err: err}
	}
	return nil
}
