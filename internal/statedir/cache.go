package statedir

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"

	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// MaxBadListed is how many unusable entries a Cache reports by name per
// directory; beyond it only their number is, so that a directory full of
// junk costs bounded memory and log.
const MaxBadListed = 100

// Cache is the daemon's copy of the state directories: the allocations of
// each, read whole once and then entry by entry as inotify names them. It
// remembers what it last saw of each address, so it can tell a release
// (for the log line, with the last owner) and an address given to another
// container (whose neighbour entry must go) from a plain new allocation.
//
// What to tell the operator comes back as Notes, once per new fact: an
// entry that cannot be used, a directory that cannot be read or can be
// read again.
type Cache struct {
	dirs map[string]*dirCache
	// reused and released are what the reads since TakeChanges found.
	reused   map[netip.Addr]bool
	released map[netip.Addr]hostlocal.Owner
}

type dirCache struct {
	allocs   map[netip.Addr]hostlocal.Owner
	err      error
	bad      map[string]string // unusable entries listed, with why
	badExtra int               // unusable entries beyond those in bad; only > 0 matters
}

// Note is something a read found that the operator should hear of, once.
type Note struct {
	Level slog.Level
	Msg   string
	Dir   string
	File  string // the entry, when the note is about one
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{dirs: map[string]*dirCache{}} }

// State is what the cache holds of dir, for reconcile.Input.States: the
// allocation map itself (changed in place by later reads) and the error
// of the last whole read. ok is false when dir was never read.
func (c *Cache) State(dir string) (st reconcile.DirState, ok bool) {
	d, ok := c.dirs[dir]
	if !ok {
		return reconcile.DirState{}, false
	}
	return reconcile.DirState{Allocs: d.allocs, Err: d.err}, true
}

// Known reports whether dir was read and could be.
func (c *Cache) Known(dir string) bool {
	d, ok := c.dirs[dir]
	return ok && d.err == nil
}

// Bad returns the unusable entries of dir found by the reads (at most
// MaxBadListed, by name), and how many more there are.
func (c *Cache) Bad(dir string) ([]Bad, int) {
	d, ok := c.dirs[dir]
	if !ok {
		return nil, 0
	}
	bad := make([]Bad, 0, len(d.bad))
	for _, name := range slices.Sorted(maps.Keys(d.bad)) {
		bad = append(bad, Bad{Name: name, Reason: d.bad[name]})
	}
	return bad, d.badExtra
}

// Keep forgets every directory not in dirs.
func (c *Cache) Keep(dirs map[string]bool) {
	for dir := range c.dirs {
		if !dirs[dir] {
			delete(c.dirs, dir)
		}
	}
}

// ReadAll reads the whole of dir. When it cannot be read, the allocations
// last seen stay (the network's routes are held, not lost) and the error
// is kept for State.
func (c *Cache) ReadAll(dir string) []Note {
	allocs, bad, more, err := ReadLimit(dir, MaxBadListed)
	old := c.dirs[dir]
	d := &dirCache{allocs: allocs, err: err, bad: map[string]string{}}
	var notes []Note
	if err != nil {
		if old == nil || old.err == nil {
			notes = append(notes, Note{Level: slog.LevelError, Dir: dir, Msg: fmt.Sprintf("cannot read state dir %s; holding its routes: %v", dir, err)})
		}
		if old != nil {
			d.allocs = old.allocs
		} else {
			d.allocs = map[netip.Addr]hostlocal.Owner{}
		}
		c.dirs[dir] = d
		return notes
	}
	if old != nil && old.err != nil {
		notes = append(notes, Note{Level: slog.LevelInfo, Dir: dir, Msg: fmt.Sprintf("state dir %s readable again", dir)})
	}
	if old != nil {
		for ip, o := range old.allocs {
			c.ownerChange(ip, o, allocs[ip])
		}
	}
	var seen map[string]string
	if old != nil {
		seen = old.bad
	}
	for _, b := range bad {
		notes = append(notes, c.noteBad(dir, d, seen, b.Name, b.Reason)...)
	}
	d.badExtra += more
	if d.badExtra > 0 && (old == nil || old.badExtra == 0) {
		notes = append(notes, moreBad(dir))
	}
	c.dirs[dir] = d
	return notes
}

// ReadNames reads the entries names of dir, already read whole, and
// returns the addresses whose allocation changed (came, went or changed
// owner), for reconcile.Node.SyncUpdate.
func (c *Cache) ReadNames(dir string, names map[string]bool) (changed []netip.Addr, notes []Note) {
	d := c.dirs[dir]
	for name := range names {
		ip, owner, reason := ReadOne(dir, name)
		named, nameErr := hostlocal.ParseName(name)
		if nameErr == nil {
			old, had := d.allocs[named]
			if had != ip.IsValid() || old != owner {
				changed = append(changed, named)
			}
		}
		switch {
		case reason != "":
			if d.bad[name] != reason {
				notes = append(notes, c.noteBad(dir, d, d.bad, name, reason)...)
			}
			if nameErr == nil {
				delete(d.allocs, named)
			}
		case ip.IsValid():
			delete(d.bad, name)
			c.ownerChange(ip, d.allocs[ip], owner)
			d.allocs[ip] = owner
		default:
			delete(d.bad, name)
			if nameErr == nil {
				c.ownerChange(named, d.allocs[named], hostlocal.Owner{})
				delete(d.allocs, named)
			}
		}
	}
	return changed, notes
}

// TakeChanges returns the addresses given to another container and those
// released (with their last owners) since it was last called.
func (c *Cache) TakeChanges() (reused map[netip.Addr]bool, released map[netip.Addr]hostlocal.Owner) {
	reused, released = c.reused, c.released
	c.reused, c.released = nil, nil
	return reused, released
}

// ownerChange notes what a change of an address's owner means: released,
// or given to another container.
func (c *Cache) ownerChange(ip netip.Addr, old, now hostlocal.Owner) {
	switch {
	case old.ContainerID == "" || old == now:
	case now.ContainerID == "":
		if c.released == nil {
			c.released = map[netip.Addr]hostlocal.Owner{}
		}
		c.released[ip] = old
	case now.ContainerID != old.ContainerID:
		if c.reused == nil {
			c.reused = map[netip.Addr]bool{}
		}
		c.reused[ip] = true
	}
}

// noteBad records an unusable entry, reported unless seen already had it,
// and only while fewer than MaxBadListed are listed.
func (c *Cache) noteBad(dir string, d *dirCache, seen map[string]string, name, reason string) []Note {
	if _, listed := d.bad[name]; !listed && len(d.bad) >= MaxBadListed {
		if d.badExtra++; d.badExtra == 1 {
			return []Note{moreBad(dir)}
		}
		return nil
	}
	prev, wasSeen := seen[name]
	d.bad[name] = reason
	if wasSeen && prev == reason {
		return nil
	}
	return []Note{{Level: slog.LevelWarn, Dir: dir, File: name, Msg: fmt.Sprintf("ignoring %s in %s: %s", name, dir, reason)}}
}

// moreBad says, once while it lasts, that a directory has more unusable
// entries than are reported by name.
func moreBad(dir string) Note {
	return Note{Level: slog.LevelWarn, Dir: dir, Msg: fmt.Sprintf("more than %d unusable entries in %s; the others are not logged (flatnet check shows them)", MaxBadListed, dir)}
}
