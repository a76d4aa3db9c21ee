package cni

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/flatnet/flatnet/internal/text"
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
	// Refused are, by network name, the cached attachments that are not
	// followed: made with another configuration than the one followed, or
	// cached under a name the configuration directory gives another
	// network. Their pods' addresses are never routed.
	Refused map[string][]Attachment
	// Problems are the files that could not be used and the disagreements
	// between sources; every Err matches one of the package's Err* values.
	Problems []Problem
	// Names are the names of every network of the files and the cache,
	// whatever its plugins (see Names); DiscoverAll sets it.
	Names []string
	// Claims are the configuration directory's networks of every plugin
	// (see Claims), as Combine was given them.
	Claims []Claim
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
		e.CheckNetNS()
		if err != nil {
			if !Ignorable(err) {
				problems = append(problems, Problem{File: f.Path, Err: err})
			}
			if !errors.Is(err, ErrUnfollowable) {
				continue
			}
		}
		entries = append(entries, e)
	}
	claims := Claims(files)
	d := Combine(nets, claims, entries)
	d.Problems = append(problems, d.Problems...)
	d.Names = Names(files, entries)
	return d
}

// Combine merges the networks of the configuration directory (as Discover
// returns them, and claims, every network of the directory whatever its
// plugins, as Claims returns them) with parsed cache entries (those
// ParseCache returned, with or without an UnfollowableError). Per network
// name:
//
//   - a network of the configuration directory keeps its configuration
//     (master, mode, dataDir, ranges) whatever the cache says: it is what
//     the runtime uses for every new pod, the file the operator edits, and
//     it does not change as pods come and go. Cached attachments made with
//     the same configuration are listed under it; those made with another
//     are reported, one *ConflictError (ErrConflict) per other
//     configuration, naming them, and refused: their pods were created
//     before the file changed, or belong to an unrelated network of the
//     same name;
//   - a name the configuration directory gives a network of another plugin
//     (flannel's cbr0, podman's bridge) is that network's: cached macvlan
//     attachments under it are refused and reported (ErrNameTaken). The
//     directory is root's, the cache is filled from what tenants write;
//   - a network only in the cache is added with the configuration of its
//     oldest attachment (by the cache file's modification time, then
//     path): the first configuration seen holds until its last attachment
//     is gone, so a second NetworkAttachmentDefinition of the same name
//     cannot re-point the first one's pods. Attachments made with another
//     configuration are refused and reported the same way
//     (ErrCacheConflict); when the oldest attachment is not a macvlan one
//     that flatnet follows, the name is that attachment's network's, and
//     every macvlan attachment under it is refused.
//
// Two configurations are the same for flatnet when master, mode, dataDir
// and the ranges as written agree; ranges a runtime passed at run time
// (the ipRanges capability) do not count, nor does anything else in the
// configuration (other plugins, cniVersion, routes). A network has the
// ranges of all its attachments: those of its first, then any a runtime
// gave a later one (ipRanges, which host-local takes before the ranges as
// written).
//
// The same attachment (network, container id, interface) cached in two
// cache directories counts once, the newest file.
func Combine(conf []Network, claims []Claim, entries []CacheEntry) Discovery {
	d := Discovery{Attachments: map[string][]Attachment{}, Refused: map[string][]Attachment{}, Claims: claims}
	byName := map[string]Network{}
	for _, n := range conf {
		if _, dup := byName[n.Name]; !dup {
			byName[n.Name] = n
			d.Networks = append(d.Networks, n)
		}
	}
	claimed := map[string]Claim{}
	for _, c := range claims {
		if _, dup := claimed[c.Name]; !dup {
			claimed[c.Name] = c
		}
	}

	// One entry per attachment (the newest file of it), oldest attachment
	// first within each network (ties by path: the order never depends on
	// the input's).
	type attKey struct{ network, id, ifname string }
	newest := map[attKey]CacheEntry{}
	for _, e := range entries {
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
			return cmp.Or(a.ModTime.Compare(b.ModTime), strings.Compare(a.Path, b.Path))
		})
	}
	slices.Sort(names)

	var added []Network
	for _, name := range names {
		es := groups[name]
		g := d.group(name, es, byName, claimed)
		if g != nil {
			added = append(added, *g)
		}
	}
	d.Networks = append(d.Networks, added...)
	slices.SortStableFunc(d.Problems, func(a, b Problem) int { return strings.Compare(a.File, b.File) })
	return d
}

// followed reports whether e is a macvlan attachment flatnet can follow.
func (e CacheEntry) followed() bool { return e.Network != nil }

// macvlan reports whether e's configuration has a macvlan plugin, whether
// flatnet can follow it or not.
func (e CacheEntry) macvlan() bool { return slices.Contains(e.Types, "macvlan") }

// group sorts out the cached attachments es of network name, oldest
// first: it records which are followed and which refused, and returns the
// network the cache alone defines (nil when the configuration directory
// defines the name, or when nothing under it is followed).
func (d *Discovery) group(name string, es []CacheEntry, conf map[string]Network, claimed map[string]Claim) *Network {
	refuse := func(lost []CacheEntry, err error) {
		for _, e := range lost {
			d.Refused[name] = append(d.Refused[name], e.Attachment)
		}
		sortAttachments(d.Refused[name])
		d.Problems = append(d.Problems, Problem{File: lost[0].Path, Err: err})
	}
	if winner, inConf := conf[name]; inConf {
		d.split(name, es, keyOf(winner), winner.File, ErrConflict, refuse)
		return nil
	}
	if c, ok := claimed[name]; ok {
		var lost []CacheEntry
		for _, e := range es {
			if e.macvlan() {
				lost = append(lost, e)
			}
		}
		if len(lost) > 0 {
			refuse(lost, &NameTakenError{Network: name, Owner: c.File, Kind: c.Kind(), Attachments: attachmentsOf(lost)})
		}
		return nil
	}
	first := es[0]
	if !first.followed() {
		var lost []CacheEntry
		for _, e := range es {
			if e.followed() {
				lost = append(lost, e)
			}
		}
		if len(lost) > 0 {
			kind := "another plugin"
			if first.macvlan() {
				kind = "a macvlan configuration flatnet cannot follow"
			} else if len(first.Types) > 0 {
				kind = "plugin " + first.Types[0]
			}
			refuse(lost, &ConflictError{Network: name, Winner: first.Path, kind: ErrCacheConflict, Attachments: attachmentsOf(lost),
				Differs: "the first attachment of this name, which holds it, is of " + kind})
		}
		return nil
	}
	n := *first.Network
	agree := d.split(name, es, first.written, first.Path, ErrCacheConflict, refuse)
	if len(agree) > 1 {
		// Ranges given at run time: every attachment's count, whether or
		// not the configuration writes some too.
		n.Ranges = slices.Clone(n.Ranges) // not the first entry's array
		for _, e := range agree[1:] {
			for _, r := range e.Network.Ranges {
				if !slices.Contains(n.Ranges, r) {
					n.Ranges = append(n.Ranges, r)
				}
			}
		}
	}
	return &n
}

// split lists the attachments of es made with configuration key under
// name and refuses the others, one error per other configuration. It
// returns the entries that agree.
func (d *Discovery) split(name string, es []CacheEntry, key netKey, winner string, kind error, refuse func([]CacheEntry, error)) []CacheEntry {
	var agree []CacheEntry
	others := map[netKey][]CacheEntry{}
	var order []netKey
	for _, e := range es {
		if !e.followed() {
			continue // not macvlan, or reported on its own (ErrUnfollowable)
		}
		if e.written == key {
			agree = append(agree, e)
			continue
		}
		if _, seen := others[e.written]; !seen {
			order = append(order, e.written)
		}
		others[e.written] = append(others[e.written], e)
	}
	if len(agree) > 0 {
		d.Attachments[name] = attachmentsOf(agree)
		sortAttachments(d.Attachments[name])
	}
	for _, k := range order {
		lost := others[k]
		refuse(lost, &ConflictError{Network: name, Winner: winner, kind: kind, Differs: differs(k, key), Attachments: attachmentsOf(lost)})
	}
	return agree
}

func attachmentsOf(es []CacheEntry) []Attachment {
	out := make([]Attachment, len(es))
	for i, e := range es {
		out[i] = e.Attachment
	}
	sortAttachments(out)
	return out
}

func sortAttachments(as []Attachment) {
	slices.SortFunc(as, func(a, b Attachment) int { return strings.Compare(a.Path, b.Path) })
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
	what := "1 cached attachment was"
	if n != 1 {
		what = fmt.Sprintf("%d cached attachments were", n)
	}
	if e.kind == ErrCacheConflict {
		return fmt.Sprintf("network %q: %s made with another configuration than %s, which flatnet follows: the first configuration seen holds until its last attachment is gone (%s); not routed: %s",
			e.Network, what, e.Winner, e.Differs, listAttachments(e.Attachments))
	}
	pods := "its pod until it is"
	if n != 1 {
		pods = "their pods until they are"
	}
	return fmt.Sprintf("network %q: %s made with another configuration than %s, which flatnet follows (%s): not routed, the node may not reach %s recreated (%s)",
		e.Network, what, e.Winner, e.Differs, pods, listAttachments(e.Attachments))
}

// listAttachments names the first three of as, and counts the others.
func listAttachments(as []Attachment) string {
	which := make([]string, 0, 4)
	for i, a := range as {
		if i == 3 {
			which = append(which, fmt.Sprintf("%d more", len(as)-3))
			break
		}
		which = append(which, a.String())
	}
	return strings.Join(which, ", ")
}

// Is matches ErrConflict or ErrCacheConflict, as the winner is a file or a
// cache entry.
func (e *ConflictError) Is(target error) bool { return target == e.kind }

// NameTakenError is a network name cached by libcni that the
// configuration directory gives a network of another plugin: the
// attachments cached under it are refused. errors.Is matches
// ErrNameTaken.
type NameTakenError struct {
	Network     string
	Owner       string // the configuration file that defines the name
	Kind        string // what Owner defines: "a bridge network"
	Attachments []Attachment
}

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("network %q: %s of macvlan cached under a name that %s gives %s, which holds it: not followed, not routed (%s)",
		e.Network, text.Plural(len(e.Attachments), "attachment", "attachments"), e.Owner, e.Kind, listAttachments(e.Attachments))
}

// Is makes errors.Is(e, ErrNameTaken) true.
func (e *NameTakenError) Is(target error) bool { return target == ErrNameTaken }

// Keep returns the networks of prev that were found in the cache and are
// missing from d, and for which held reports true: their last cached
// attachment is gone, but their state directory still holds allocations
// (held is the caller's: it knows the state directories), unless the
// configuration directory now gives the name to a network (Claims).
// Appending them to
// d.Networks keeps such a network mirrored until its last allocation goes,
// so nothing allocated becomes unexplained because a cache entry went first.
func (d Discovery) Keep(prev []Network, held func(Network) bool) []Network {
	have := map[string]bool{}
	for _, n := range d.Networks {
		have[n.Name] = true
	}
	for _, c := range d.Claims {
		have[c.Name] = true // the configuration directory took the name
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
