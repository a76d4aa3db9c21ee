package cni

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flatnet/flatnet/internal/safepath"
)

// ReadCache reads the entries of one libcni cache directory: every file of
// <dir>/results, in name order. Unlike ReadDir it follows no symlink (libcni
// writes regular files, and a link could lead anywhere): a symlink, a
// directory, a device or a file over MaxCacheFileSize comes back with Err
// set (ErrCacheUnreadable), without its content. Names starting with a dot
// are never libcni's and are left out, and so is a file removed while the
// directory is read.
//
// A missing dir or results/ is an error wrapping fs.ErrNotExist: no runtime
// has attached anything there yet, which the caller may take as "no
// entries" (and watch for the directory to appear).
//
// A results/ directory that others than root can write is not read
// (safepath.Check): the error matches ErrCacheUnreadable and
// safepath.ErrUnsafe.
func ReadCache(dir string) ([]CacheFile, error) {
	results := filepath.Join(dir, CacheResultsDir)
	if err := safepath.Check(results); err != nil {
		return nil, fmt.Errorf("reading CNI cache: %w: %w", ErrCacheUnreadable, err)
	}
	return readCache(dir)
}

// readCache is ReadCache without the check of who can write the
// directory.
func readCache(dir string) ([]CacheFile, error) {
	results := filepath.Join(dir, CacheResultsDir)
	entries, err := os.ReadDir(results)
	if errors.Is(err, fs.ErrNotExist) {
		if herr := safepath.Missing(results); herr != nil {
			return nil, fmt.Errorf("reading CNI cache: %w: %w", ErrCacheUnreadable, herr) // what it held stays
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading CNI cache: %w", err)
	}
	var files []CacheFile
	for _, e := range entries { // os.ReadDir sorts by name
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f := ReadCacheFile(dir, e.Name())
		if errors.Is(f.Err, fs.ErrNotExist) {
			continue // removed since the directory was listed
		}
		files = append(files, f)
	}
	return files, nil
}

// ReadCacheFile reads <dir>/results/<name>, as ReadCache does, for one
// file-system event. A file that is gone comes back with Err wrapping
// fs.ErrNotExist (and not ErrCacheUnreadable): its attachment was removed.
func ReadCacheFile(dir, name string) CacheFile { return readCacheFile(dir, name, nil) }

// readCacheFile is ReadCacheFile reading into buf's room, which it grows
// as it must: Data is buf's memory when it fits, so the caller that passes
// one reads it, and drops it, before its next read.
func readCacheFile(dir, name string, buf []byte) CacheFile {
	path := filepath.Join(dir, CacheResultsDir, name)
	f := CacheFile{Path: path}
	// O_NOFOLLOW: a symlink fails with ELOOP instead of being opened;
	// O_NONBLOCK: a FIFO cannot hang the caller. Plain system calls, not
	// os.File: one entry is one pod's event, and os.File's poller
	// registration and growing reads cost most of reading it.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.Err = &fs.PathError{Op: "open", Path: path, Err: err}
		return f
	case errors.Is(err, syscall.ELOOP):
		f.Err = fmt.Errorf("%w: a symlink; libcni writes regular files, so it is not followed", ErrCacheUnreadable)
		return f
	case err != nil:
		f.Err = fmt.Errorf("%w: %w", ErrCacheUnreadable, &fs.PathError{Op: "open", Path: path, Err: err})
		return f
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Err = fmt.Errorf("%w: %w", ErrCacheUnreadable, &fs.PathError{Op: "fstat", Path: path, Err: err})
		return f
	}
	f.ModTime = time.Unix(st.Mtim.Unix())
	switch typ := st.Mode & unix.S_IFMT; {
	case typ == unix.S_IFDIR:
		f.Err = fmt.Errorf("%w: a directory, not a file", ErrCacheUnreadable)
		return f
	case typ != unix.S_IFREG:
		f.Err = fmt.Errorf("%w: not a regular file (mode %s)", ErrCacheUnreadable, fileMode(st.Mode).Type())
		return f
	case st.Size > MaxCacheFileSize:
		f.Err = fmt.Errorf("%w: %d bytes, over the %d a cache entry may have; not read", ErrCacheUnreadable, st.Size, MaxCacheFileSize)
		return f
	}
	// Room for the size fstat gave and one more byte: a file that grew
	// since fills it, and is read on until its end or the limit.
	data := buf[:0]
	if int64(cap(data)) < st.Size+1 {
		data = make([]byte, 0, st.Size+1)
	}
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := unix.Read(fd, data[len(data):cap(data)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			f.Err = fmt.Errorf("%w: %w", ErrCacheUnreadable, &fs.PathError{Op: "read", Path: path, Err: err})
			return f
		}
		if n == 0 {
			break
		}
		data = data[:len(data)+n]
		if len(data) > MaxCacheFileSize {
			f.Err = fmt.Errorf("%w: over the %d bytes a cache entry may have; not read", ErrCacheUnreadable, MaxCacheFileSize)
			return f
		}
	}
	f.Data = data
	return f
}

// CheckNetNS sets e.Gone when the attachment's network namespace (the
// runtime's netns path, else the result's sandbox) no longer exists: the
// pod is gone though its DEL never ran. A path that cannot be checked (no
// path at all, a permission error, a directory the service's sandbox
// hides: see safepath.Missing) leaves the attachment live.
//
// Runtimes keep a pod's namespace as a file under /run/netns (containerd
// and CRI-O as /var/run/netns/cni-<uuid>, podman as /run/netns/netns-<uuid>,
// iproute2 and cnitool's users as /run/netns/<name>) or name it by a
// process (/proc/<pid>/ns/net); either goes when the pod does, and /run is
// empty after a reboot while libcni's cache, on disk, is not.
func (e *CacheEntry) CheckNetNS() { e.Gone = e.netnsGone() }

// netnsGone is what CheckNetNS sets Gone to.
func (e *CacheEntry) netnsGone() bool {
	path := cmp.Or(e.NetNS, e.Sandbox)
	return path != "" && netnsGone(path)
}

// netnsGone reports whether the namespace file at path is known to be
// gone; a variable for tests.
var netnsGone = func(path string) bool {
	var st unix.Stat_t
	err := unix.Lstat(path, &st) // not os.Lstat: no FileInfo to allocate, on every pod's event
	return errors.Is(err, fs.ErrNotExist) && safepath.Missing(path) == nil
}

// fileMode is the type bits of a stat(2) mode as fs.FileMode has them.
func fileMode(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFLNK:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}
