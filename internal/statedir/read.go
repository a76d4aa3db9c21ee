// Package statedir is flatnet's adapter to the filesystem: it reads
// host-local's state directories and watches them, and the CNI config
// directory, with fsnotify. Deciding what a file means is left to package
// hostlocal; deciding what to do about it, to package reconcile.
//
// What we learned of inotify/fsnotify and host-local:
//
//   - host-local creates an allocation file with O_EXCL, then writes it, so
//     a Create event can be read as an empty file; the Write event follows.
//     An empty file is an allocation in progress and is not routed yet.
//   - A watch on a directory that does not exist cannot be set. We watch
//     the nearest ancestor that exists and move the watch down as the path
//     appears, then rescan the directory, since files may have been created
//     before the watch was in place.
//   - When a watched directory is removed or renamed the watch dies with
//     it (IN_IGNORED); the event for the directory itself is the last one.
//   - The kernel's event queue can overflow (fsnotify.ErrEventOverflow);
//     events were lost, so every directory is rescanned.
package statedir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// Bad is a directory entry that is not a usable allocation.
type Bad struct {
	Name   string
	Reason string
}

// Read reads every allocation in dir. A directory that does not exist holds
// no allocations; any other failure to list it is returned as the error.
func Read(dir string) (map[netip.Addr]hostlocal.Owner, []Bad, error) {
	allocs := map[netip.Addr]hostlocal.Owner{}
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return allocs, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var bad []Bad
	for {
		ents, err := f.ReadDir(1024)
		for _, e := range ents {
			ip, owner, reason := readEntry(dir, e.Name(), e.Type())
			switch {
			case reason != "":
				bad = append(bad, Bad{e.Name(), reason})
			case ip.IsValid():
				allocs[ip] = owner
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", dir, err)
		}
	}
	return allocs, bad, nil
}

// ReadOne reads the single entry name in dir. It returns an invalid address
// when name is not (or no longer) an allocation, and a reason when it is
// not usable.
func ReadOne(dir, name string) (netip.Addr, hostlocal.Owner, string) {
	fi, err := os.Lstat(filepath.Join(dir, name))
	if err != nil {
		return netip.Addr{}, hostlocal.Owner{}, "" // gone: released
	}
	return readEntry(dir, name, fi.Mode().Type())
}

// readEntry checks the entry name of type typ and reads it.
func readEntry(dir, name string, typ fs.FileMode) (netip.Addr, hostlocal.Owner, string) {
	ip, err := hostlocal.ParseName(name)
	if errors.Is(err, hostlocal.ErrNotAllocation) {
		return netip.Addr{}, hostlocal.Owner{}, ""
	}
	if err != nil {
		return netip.Addr{}, hostlocal.Owner{}, err.Error()
	}
	if !typ.IsRegular() {
		return netip.Addr{}, hostlocal.Owner{}, "not a regular file"
	}
	// O_NOFOLLOW and O_NONBLOCK: the entry may have been swapped for a
	// symlink or a FIFO since it was listed.
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return netip.Addr{}, hostlocal.Owner{}, ""
	}
	if err != nil {
		return netip.Addr{}, hostlocal.Owner{}, fmt.Sprintf("cannot be read: %v", err)
	}
	defer f.Close()
	var buf [hostlocal.MaxFileSize + 1]byte
	n, err := io.ReadFull(f, buf[:])
	switch {
	case n > hostlocal.MaxFileSize:
		return netip.Addr{}, hostlocal.Owner{}, fmt.Sprintf("larger than %d bytes, not host-local's", hostlocal.MaxFileSize)
	case err != nil && err != io.EOF && err != io.ErrUnexpectedEOF:
		return netip.Addr{}, hostlocal.Owner{}, fmt.Sprintf("cannot be read: %v", err)
	}
	owner := hostlocal.ParseContent(buf[:n])
	if owner.ContainerID == "" {
		// Created but not yet written: host-local is still reserving it,
		// and the Write event will bring us back. Routing only once the
		// owner is known means every route is logged with its container.
		return netip.Addr{}, hostlocal.Owner{}, ""
	}
	return ip, owner, ""
}
