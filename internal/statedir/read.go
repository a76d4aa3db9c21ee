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
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/safepath"
	"golang.org/x/sys/unix"
)

// Bad is a directory entry that is not a usable allocation.
type Bad struct {
	Name   string
	Reason string
}

// Read reads every allocation in dir. A directory that does not exist holds
// no allocations; any other failure to list it is returned as the error.
// It returns every unusable entry; see [ReadLimit].
func Read(dir string) (map[netip.Addr]hostlocal.Owner, []Bad, error) {
	allocs, bad, _, err := ReadLimit(dir, -1)
	return allocs, bad, err
}

// batch is how many directory entries ReadLimit holds at a time: a
// directory of a hundred thousand junk files costs the memory of one batch.
// A variable for tests.
var batch = 4096

// ReadLimit is [Read] returning at most maxBad unusable entries (all of them
// when maxBad < 0), those with the lowest names, so the same ones whatever
// order the directory lists them in, and the number of the others. The
// directory is listed and read a batch at a time, so its size does not
// decide the memory used.
// Files are read by as many goroutines as there are CPUs: at start-up with
// tens of thousands of allocations, reading is most of the work.
//
// A directory that others than root can write (or one above it: see
// safepath.Check) is not read: the error says so, and the network's routes
// are held as for any unreadable directory. host-local's directories are
// root's; one that others can write holds their input, not the pods'.
func ReadLimit(dir string, maxBad int) (allocs map[netip.Addr]hostlocal.Owner, bad []Bad, more int, err error) {
	if err := safepath.Check(dir); err != nil {
		return nil, nil, 0, err
	}
	allocs = map[netip.Addr]hostlocal.Owner{}
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := safepath.Missing(dir); err != nil {
			return nil, nil, 0, err // hidden, not empty: routes held
		}
		return allocs, nil, 0, nil
	}
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	type result struct {
		ip     netip.Addr
		owner  hostlocal.Owner
		reason string
	}
	results := make([]result, batch)
	for {
		ents, rerr := f.ReadDir(batch)
		if rerr != nil && rerr != io.EOF {
			return nil, nil, 0, fmt.Errorf("reading %s: %w", dir, rerr)
		}
		workers := min(runtime.GOMAXPROCS(0), 1+len(ents)/256)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(ents); i += workers {
					r := &results[i]
					r.ip, r.owner, r.reason = readEntry(int(f.Fd()), ents[i].Name(), ents[i].Type())
				}
			}()
		}
		wg.Wait()
		for i, r := range results[:len(ents)] {
			switch {
			case r.reason != "":
				bad, more = keepLowest(bad, Bad{ents[i].Name(), r.reason}, maxBad, more)
			case r.ip.IsValid():
				allocs[r.ip] = r.owner
			}
			results[i] = result{}
		}
		if rerr == io.EOF || len(ents) == 0 {
			return allocs, bad, more, nil
		}
	}
}

// keepLowest adds b to bad, kept sorted by name and at most max long (any
// length when max < 0), counting what it leaves out in more.
func keepLowest(bad []Bad, b Bad, max, more int) ([]Bad, int) {
	if max < 0 {
		return append(bad, b), more
	}
	i, _ := slices.BinarySearchFunc(bad, b.Name, func(x Bad, name string) int { return strings.Compare(x.Name, name) })
	if i == max {
		return bad, more + 1
	}
	if len(bad) == max {
		bad = bad[:max-1]
		more++
	}
	return slices.Insert(bad, i, b), more
}

// ReadOne reads the single entry name in dir. It returns an invalid address
// when name is not (or no longer) an allocation, and a reason when it is
// not usable.
func ReadOne(dir, name string) (netip.Addr, hostlocal.Owner, string) {
	fi, err := os.Lstat(filepath.Join(dir, name))
	if err != nil {
		return netip.Addr{}, hostlocal.Owner{}, "" // gone: released
	}
	return readEntry(unix.AT_FDCWD, filepath.Join(dir, name), fi.Mode().Type())
}

// readEntry checks the entry name (relative to dirfd) of type typ and
// reads it, with plain system calls: this runs once per allocation.
func readEntry(dirfd int, name string, typ fs.FileMode) (netip.Addr, hostlocal.Owner, string) {
	none := func(reason string) (netip.Addr, hostlocal.Owner, string) {
		return netip.Addr{}, hostlocal.Owner{}, reason
	}
	ip, err := hostlocal.ParseName(filepath.Base(name))
	if errors.Is(err, hostlocal.ErrNotAllocation) {
		return none("")
	}
	if err != nil {
		return none(err.Error())
	}
	if !typ.IsRegular() {
		return none("not a regular file")
	}
	// O_NOFOLLOW and O_NONBLOCK: the entry may have been swapped for a
	// symlink or a FIFO since it was listed. No fstat(2) to check again: it
	// would cost a system call per pod at start, and all it could add is a
	// device node swapped in by root, which the size limit and the parser
	// still keep out.
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return none("")
	}
	if err != nil {
		return none(fmt.Sprintf("cannot be read: %v", err))
	}
	defer unix.Close(fd)
	var buf [hostlocal.MaxFileSize + 1]byte
	n := 0
	for n < len(buf) {
		want := len(buf) - n
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return none(fmt.Sprintf("cannot be read: %v", err))
		}
		if m == 0 {
			break
		}
		n += m
		// A short read of a regular file is its end: no second read(2)
		// just to be told so. A write still under way brings its own
		// inotify event and another look.
		if m < want {
			break
		}
	}
	if n > hostlocal.MaxFileSize {
		return none(fmt.Sprintf("larger than %d bytes, not host-local's", hostlocal.MaxFileSize))
	}
	owner := hostlocal.ParseContent(buf[:n])
	if owner.ContainerID == "" {
		// Created but not yet written: host-local is still reserving it,
		// and the Write event will bring us back. Routing only once the
		// owner is known means every route is logged with its container.
		return none("")
	}
	return ip, owner, ""
}

// Unmatched is a state directory that holds allocations no known network
// explains: the node cannot reach those pods, and flatnet says so.
type Unmatched struct {
	Dir       string
	Allocated int // entries named by an address
}

// FindUnmatched lists the directories of root (host-local's default
// dataDir) that hold at least one entry named by an address and are not in
// known (cleaned paths): a network defined somewhere flatnet does not look,
// or removed from the configuration while its pods live. It counts names
// only: cheap, and enough to say something is there.
func FindUnmatched(root string, known map[string]bool) ([]Unmatched, error) {
	dirs, err := Unexplained(root, known)
	var out []Unmatched
	for _, dir := range dirs {
		if n := Allocated(dir); n > 0 {
			out = append(out, Unmatched{Dir: dir, Allocated: n})
		}
	}
	return out, err
}

// Unexplained lists the directories of root that are not in known (cleaned
// paths), in name order; a root that does not exist has none. The daemon
// watches them before it counts what they hold (Allocated), so that an
// allocation written after the directory appeared is not missed:
// host-local makes the directory first and writes the file after.
func Unexplained(root string, known map[string]bool) ([]string, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if dir := filepath.Join(root, e.Name()); e.IsDir() && !known[dir] {
			out = append(out, dir)
		}
	}
	return out, nil
}

// IsDir reports whether path is a directory (not a link to one).
func IsDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}

// Allocated counts the regular files of dir named by an address; 0 when
// dir cannot be read.
func Allocated(dir string) int {
	names, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, f := range names {
		if _, err := hostlocal.ParseName(f.Name()); err == nil && f.Type().IsRegular() {
			n++
		}
	}
	return n
}
