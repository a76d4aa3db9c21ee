package cni

import (
	"slices"
	"strings"
)

// Index keeps what Combine decided of each cached attachment, so that the
// daemon can take one cache entry's change in O(1), whatever the number of
// attachments: a pod coming or going (its entry written or removed) only
// adds or takes its addresses, unless it changes what some network is
// (Redefines), which is rare and left to a whole Combine.
//
// It is built from the same inputs as Combine and must agree with it:
// TestIndexAgreesWithCombine plays random sequences of entries through
// both.
type Index struct {
	conf   map[string]Network // the configuration directory's macvlan networks
	claims map[string]bool    // the names it gives networks of any plugin
	groups map[string]*group  // cached attachments by network name
}

// group is what the cache holds of one network name.
type group struct {
	members map[attKey]member // the newest file of each attachment
	holder  attKey            // the oldest, whose configuration a cache-only name takes
}

// member is what Index keeps of one attachment's entry: the entry itself,
// shared with the CacheSet that read it (which never changes an entry it
// handed out).
type member struct {
	entry *CacheEntry
	state state
}

// state is what Combine made of an attachment.
type state uint8

const (
	ignored  state = iota // not a macvlan attachment flatnet follows, nor one it refuses
	accepted              // followed: its addresses are routed
	refused               // made with another configuration, or under a taken name
)

type attKey struct{ network, id, ifname string }

func keyOfEntry(e *CacheEntry) attKey { return attKey{e.NetworkName, e.ContainerID, e.IfName} }

// NewIndex indexes entries as Combine(conf, claims, entries) does.
func NewIndex(conf []Network, claims []Claim, entries []CacheEntry) *Index {
	x := &Index{conf: map[string]Network{}, claims: map[string]bool{}, groups: map[string]*group{}}
	for _, n := range conf {
		if _, dup := x.conf[n.Name]; !dup {
			x.conf[n.Name] = n
		}
	}
	for _, c := range claims {
		x.claims[c.Name] = true
	}
	for i := range entries {
		e := &entries[i]
		g := x.groups[e.NetworkName]
		if g == nil {
			g = &group{members: map[attKey]member{}}
			x.groups[e.NetworkName] = g
		}
		k := keyOfEntry(e)
		if old, ok := g.members[k]; !ok || newer(*e, *old.entry) {
			g.members[k] = member{entry: e}
		}
	}
	for name, g := range x.groups {
		x.settle(name, g)
	}
	return x
}

// settle works out a group's holder and every member's state, as Combine.
func (x *Index) settle(name string, g *group) {
	first := true
	for k, m := range g.members {
		if first || olderEntry(m.entry, g.members[g.holder].entry) {
			g.holder, first = k, false
		}
	}
	for k, m := range g.members {
		m.state = x.stateOf(name, g, m.entry, k == g.holder)
		g.members[k] = m
	}
}

// stateOf is what Combine makes of e, an attachment of network name
// (isHolder: e is the group's oldest).
func (x *Index) stateOf(name string, g *group, e *CacheEntry, isHolder bool) state {
	if n, ok := x.conf[name]; ok {
		switch {
		case !e.followed():
			return ignored
		case e.written == keyOf(n):
			return accepted
		}
		return refused
	}
	if x.claims[name] {
		if e.macvlan() {
			return refused
		}
		return ignored
	}
	h := g.members[g.holder].entry
	switch {
	case !e.followed():
		return ignored
	case isHolder:
		return accepted
	case !h.followed() || e.written != h.written:
		return refused
	}
	return accepted
}

// olderEntry reports whether a was cached before b (ties by path), the
// order Combine takes a name's attachments in.
func olderEntry(a, b *CacheEntry) bool {
	if c := a.ModTime.Compare(b.ModTime); c != 0 {
		return c < 0
	}
	return strings.Compare(a.Path, b.Path) < 0
}

// EntryChange is one cache file's change: what the file held before (Old)
// and holds now (New); nil for none. They are the CacheSet's own entries,
// shared: read, never changed.
type EntryChange struct {
	Old, New *CacheEntry
}

// AttachmentChange is a followed attachment that came or went: its
// addresses are to be routed, or no longer.
type AttachmentChange struct {
	Network  string
	Old, New *Attachment // nil for none; the entries' own, shared: read, never changed
}

// Apply takes c, the change of one cache file, and returns the followed
// attachments that came or went, or redefine when the change alters what
// a network is (a network appears or goes, the configuration a name holds,
// the attachments refused, run-time ranges): the caller then combines the
// whole cache anew (Combine, NewIndex).
func (x *Index) Apply(c EntryChange) (changes []AttachmentChange, redefine bool) {
	e := c.New
	if e == nil {
		e = c.Old
	}
	if e == nil {
		return nil, false
	}
	name := e.NetworkName
	if c.Old != nil && c.New != nil && (c.Old.NetworkName != c.New.NetworkName || keyOfEntry(c.Old) != keyOfEntry(c.New)) {
		return nil, true
	}
	k := keyOfEntry(e)
	g := x.groups[name]
	if g == nil {
		if c.New == nil {
			return nil, false
		}
		return nil, true // a network name the cache did not hold
	}
	old, had := g.members[k]
	if had && (c.Old == nil || old.entry.Path != c.Old.Path) {
		return nil, true // the same attachment cached in two directories
	}
	if !had && c.Old != nil {
		return nil, false // Old was not indexed: nothing to take back
	}
	_, cacheOnly := x.conf[name]
	cacheOnly = !cacheOnly && !x.claims[name]
	// The same entry written again, the only one of its name: nothing
	// changes but the file's time.
	alone := had && len(g.members) == 1 && c.New != nil && c.New.written == old.entry.written && c.New.followed() == old.entry.followed() &&
		(!c.New.followed() || slices.Equal(c.New.Network.Ranges, old.entry.Network.Ranges))
	if cacheOnly && !alone && (had && k == g.holder || c.New != nil && olderEntry(c.New, g.members[g.holder].entry)) {
		return nil, true // the configuration the name holds may change
	}
	var next member
	if c.New != nil {
		next = member{entry: c.New, state: x.stateOf(name, g, c.New, k == g.holder)}
	}
	if had && old.state == refused || next.state == refused {
		return nil, true // the attachments refused change
	}
	if cacheOnly && (had && old.state == accepted && !g.inHolder(old.entry) || next.state == accepted && !g.inHolder(next.entry)) {
		// The network's ranges are all its attachments': one whose
		// ranges the oldest has too (the same configuration, no ipRanges
		// of its own; or none at all: static, whereabouts, dhcp) comes
		// and goes without changing them.
		return nil, true
	}
	if c.New == nil {
		delete(g.members, k)
		if len(g.members) == 0 {
			return nil, true
		}
	} else {
		g.members[k] = next
	}
	var ch AttachmentChange
	if had && old.state == accepted {
		ch.Old = &old.entry.Attachment
	}
	if next.state == accepted {
		ch.New = &next.entry.Attachment
	}
	if ch.Old == nil && ch.New == nil {
		return nil, false
	}
	ch.Network = name
	return []AttachmentChange{ch}, false
}

// inHolder reports whether every range of e is one of the oldest
// attachment's, which the network has whatever else comes or goes.
func (g *group) inHolder(e *CacheEntry) bool {
	h := g.members[g.holder].entry
	if !h.followed() {
		return false
	}
	for _, r := range e.Network.Ranges {
		if !slices.Contains(h.Network.Ranges, r) {
			return false
		}
	}
	return true
}
