package cni

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Discovery is every network discovery found: in the CNI configuration
// directory and in libcni's caches.
type Discovery struct {
	// Networks are the configuration directory's networks, in Discover's
	// order, then the networks known only from the cache, by name. A
	// network's File is the configuration file's base name, or for one
	// from the cache the path of the entry whose configuration it has
	// (see FromCache).
	Networks []Network
	// Attachments are, by network name, the cached attachments made with
	// that network's configuration, by path. A network from the cache has
	// at least one; it stays known while it has any.
	Attachments map[string][]Attachment
	// Problems are the files that could not be used and the disagreements
	// between sources; every Err matches one of the package's Err* values.
	Problems []Problem
	// Names are the names of every network of the files and the cache,
	// whatever its plugins (see Names); DiscoverAll sets it.
	Names []string
}

// FromCache reports whether n was found in libcni's cache rather than in a
// configuration file: its File is then a cache file's path, where a
// configuration file's is a base name.
func (n Network) FromCache() bool { return strings.ContainsRune(n.File, '/') }

// DiscoverAll finds the networks of a configuration directory's files and
// of cache files (from any number of cache directories): Discover, then
// ParseCache for each cache file, then Combine. Cache files that Ignorable
// says are nothing to report are left out silently; every other cache
// error becomes a Problem whose File is the cache file's path.
//
// It suits a one-shot reader (flatnet status, flatnet check). The daemon,
// which must keep what a half-written file said before, calls ParseCache
// per file and Combine itself.
func DiscoverAll(files []File, cache []CacheFile) Discovery {
	nets, problems := Discover(files)
	var entries []CacheEntry
	for _, f := range cache {
		e, err := ParseCache(f)
		if err != nil {
			if !Ignorable(err) {
				problems = append(problems, Problem{File: f.Path, Err: err})
			}
			continue
		}
		entries = append(entries, e)
	}
	d := Combine(nets, entries)
	d.Problems = append(problems, d.Problems...)
	d.Names = Names(files, entries)
	return d
}

// Combine merges the networks of the configuration directory (as Discover
// returns them) with parsed cache entries (those ParseCache returned without
// error; entries whose Network is nil are ignored). Per network name:
//
//   - a network of the configuration directory keeps its configuration
//     (master, mode, dataDir, ranges) whatever the cache says: it is what
//     the runtime uses for every new pod, the file the operator edits, and
//     it does not change as pods come and go. Cached attachments made with
//     the same configuration are listed under it; those made with another
//     are reported, one *ConflictError (ErrConflict) per other
//     configuration, naming them: their pods were created before the file
//     changed, or belong to an unrelated network of the same name, and
//     flatnet may not reach them (an address outside the file's ranges is
//     refused and reported; a pod on another master is not reached);
//   - a network only in the cache is added with the configuration of its
//     newest attachment (by the cache file's modification time, then
//     path): for a NetworkAttachmentDefinition that was edited, the one
//     new pods get. Attachments made with another configuration are
//     reported the same way (ErrCacheConflict).
//
// Two configurations are the same for flatnet when master, mode, dataDir
// and the ranges as written agree; ranges a runtime passed at run time
// (the ipRanges capability) do not count, nor does anything else in the
// configuration (other plugins, cniVersion, routes).
//
// The same attachment (network, container id, interface) cached in two
// cache directories counts once, the newest file.
func Combine(conf []Network, entries []CacheEntry) Discovery {
	d := Discovery{Attachments: map[string][]Attachment{}}
	byName := map[string]Network{}
	for _, n := range conf {
		if _, dup := byName[n.Name]; !dup {
			byName[n.Name] = n
			d.Networks = append(d.Networks, n)
		}
	}

	// One entry per attachment, newest first within each network.
	type attKey struct{ network, id, ifname string }
	newest := map[attKey]CacheEntry{}
	for _, e := range entries {
		if e.Network == nil {
			continue
		}
		k := attKey{e.NetworkName, e.ContainerID, e.IfName}
		if old, ok := newest[k]; !ok || newer(e, old) {
			newest[k] = e
		}
	}
	groups := map[string][]CacheEntry{}
	for _, e := range newest {
		groups[e.NetworkName] = append(groups[e.NetworkName], e)
	}
	names := make([]string, 0, len(groups))
	for name, es := range groups {
		names = append(names, name)
		slices.SortFunc(es, func(a, b CacheEntry) int {
			if newer(a, b) {
				return -1
			}
			if newer(b, a) {
				return 1
			}
			return 0
		})
	}
	slices.Sort(names)

	var added []Network
	for _, name := range names {
		es := groups[name]
		winner, inConf := byName[name]
		key, kind := keyOf(winner), ErrConflict
		if !inConf {
			winner, key, kind = *es[0].Network, es[0].written, ErrCacheConflict
			added = append(added, winner)
		}
		var agree []Attachment
		others := map[netKey][]CacheEntry{}
		var order []netKey
		for _, e := range es {
			if e.written == key {
				agree = append(agree, e.Attachment)
				continue
			}
			if _, seen := others[e.written]; !seen {
				order = append(order, e.written)
			}
			others[e.written] = append(others[e.written], e)
		}
		slices.SortFunc(agree, func(a, b Attachment) int { return strings.Compare(a.Path, b.Path) })
		if len(agree) > 0 {
			d.Attachments[name] = agree
		}
		for _, k := range order {
			lost := others[k]
			ce := &ConflictError{Network: name, Winner: winner.File, kind: kind, Differs: differs(k, key)}
			for _, e := range lost {
				ce.Attachments = append(ce.Attachments, e.Attachment)
			}
			slices.SortFunc(ce.Attachments, func(a, b Attachment) int { return strings.Compare(a.Path, b.Path) })
			d.Problems = append(d.Problems, Problem{File: lost[0].Path, Err: ce})
		}
	}
	d.Networks = append(d.Networks, added...)
	slices.SortStableFunc(d.Problems, func(a, b Problem) int { return strings.Compare(a.File, b.File) })
	return d
}

// newer reports whether a's file was written after b's; ties go to the
// smaller path, so the choice never depends on input order.
func newer(a, b CacheEntry) bool {
	if c := a.ModTime.Compare(b.ModTime); c != 0 {
		return c > 0
	}
	return a.Path < b.Path
}

// differs says how configuration k differs from the winning one, w.
func differs(k, w netKey) string {
	var d []string
	show := func(s, dflt string) string { return fmt.Sprintf("%q", cmp.Or(s, dflt)) }
	if k.master != w.master {
		d = append(d, fmt.Sprintf("master %s, not %s", show(k.master, "the default-route NIC"), show(w.master, "the default-route NIC")))
	}
	if k.mode != w.mode {
		d = append(d, fmt.Sprintf("mode %s, not %s", show(k.mode, "bridge"), show(w.mode, "bridge")))
	}
	if k.dataDir != w.dataDir {
		d = append(d, fmt.Sprintf("dataDir %s, not %s", show(k.dataDir, DefaultDataDir), show(w.dataDir, DefaultDataDir)))
	}
	if k.ranges != w.ranges {
		d = append(d, fmt.Sprintf("ranges %s, not %s", cmp.Or(k.ranges, "(none as written)"), cmp.Or(w.ranges, "(none as written)")))
	}
	return strings.Join(d, "; ")
}

// DefaultDataDir is host-local's data directory when the configuration sets
// no dataDir.
const DefaultDataDir = "/var/lib/cni/networks"

// ConflictError is a network whose cached attachments were made with
// another configuration than the one flatnet follows. errors.Is matches
// ErrConflict when the winner is a configuration file, ErrCacheConflict when
// it is another cache entry.
type ConflictError struct {
	Network     string       // the network name
	Winner      string       // the File of the configuration followed
	Differs     string       // how the attachments' configuration differs from it
	Attachments []Attachment // the attachments made with the other configuration
	kind        error
}

func (e *ConflictError) Error() string {
	n := len(e.Attachments)
	which := make([]string, 0, 4)
	for i, a := range e.Attachments {
		if i == 3 {
			which = append(which, fmt.Sprintf("%d more", n-3))
			break
		}
		which = append(which, a.String())
	}
	what, pods := "1 cached attachment was", "its pod until it is"
	if n != 1 {
		what, pods = fmt.Sprintf("%d cached attachments were", n), "their pods until they are"
	}
	return fmt.Sprintf("network %q: %s made with another configuration than %s, which flatnet follows (%s): the node may not reach %s recreated (%s)",
		e.Network, what, e.Winner, e.Differs, pods, strings.Join(which, ", "))
}

// Is matches ErrConflict or ErrCacheConflict, as the winner is a file or a
// cache entry.
func (e *ConflictError) Is(target error) bool { return target == e.kind }

// Keep returns the networks of prev that were found in the cache and are
// missing from d, and for which held reports true: their last cached
// attachment is gone, but their state directory still holds allocations
// (held is the caller's: it knows the state directories). Appending them to
// d.Networks keeps such a network mirrored until its last allocation goes,
// so nothing allocated becomes unexplained because a cache entry went first.
func (d Discovery) Keep(prev []Network, held func(Network) bool) []Network {
	have := map[string]bool{}
	for _, n := range d.Networks {
		have[n.Name] = true
	}
	var keep []Network
	for _, n := range prev {
		if n.FromCache() && !have[n.Name] && held(n) {
			have[n.Name] = true
			keep = append(keep, n)
		}
	}
	return keep
}
