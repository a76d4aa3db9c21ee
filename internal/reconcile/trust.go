package reconcile

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Refusal says why an allocated address that a network's ranges allow is
// still not routed: the node's own routing or root's configuration already
// answers for it, or it belongs to an attachment flatnet does not follow.
// flatnet runs as root and writes the main routing table; a route to a
// shim for such an address would take the node's traffic from where it
// goes now. docs/security.md has the model these rules come from.
type Refusal int

// The refusals, each checked for every address of every network when it is
// decided (the full pass and the event path alike).
const (
	// RefuseNextHop: the address is the next hop of one of the node's
	// routes, in any table (the default gateway, every via).
	RefuseNextHop Refusal = iota + 1
	// RefuseRouted: the node reaches the address through a route other
	// than the master's connected subnet: one more specific, one through
	// another device, a gateway, a blackhole.
	RefuseRouted
	// RefuseOffLink: a Tenant network's address on no subnet connected to
	// its master: the node reaches it through its default route, and a
	// network from libcni's cache may not move that.
	RefuseOffLink
	// RefuseReserved: a Tenant network's address inside a range root's
	// configuration gives another network.
	RefuseReserved
	// RefuseAttachment: the address was allocated to an attachment flatnet
	// does not follow (Network.Refused).
	RefuseAttachment
	// RefuseStale: the state file's container has an attachment in
	// libcni's cache whose network namespace is gone (Network.Gone).
	RefuseStale
)

// String says it as a log line does.
func (r Refusal) String() string {
	switch r {
	case RefuseNextHop:
		return "a next hop of the node's routes"
	case RefuseRouted:
		return "reached through another of the node's routes"
	case RefuseOffLink:
		return "not on a subnet the master is connected to"
	case RefuseReserved:
		return "inside another network's ranges"
	case RefuseAttachment:
		return "allocated to an attachment flatnet does not follow"
	case RefuseStale:
		return "its pod's network namespace is gone"
	}
	return ""
}

// routing is what the node's own routing answers for, read from a
// snapshot: the next hops of every route, and the main table's routes
// other than host routes, by prefix, for longest-match look-ups. Host
// routes are left out: one to a pod's address is a conflict of its own
// (FindForeign), and flatnet's are what it decides.
type routing struct {
	nextHops map[netip.Addr]NextHop
	nets     map[netip.Prefix][]*Route
	lens4    []int // the prefix lengths present, longest first
	lens6    []int
}

// newRouting indexes snap's routes; those through the shims named in
// shims (routes an operator made by hand, as the seed did) count as
// flatnet's own.
func newRouting(snap *Snapshot, shims map[string]bool) *routing {
	r := &routing{nextHops: make(map[netip.Addr]NextHop, len(snap.NextHops)), nets: map[netip.Prefix][]*Route{}}
	for _, h := range snap.NextHops {
		if _, ok := r.nextHops[h.Addr]; !ok {
			r.nextHops[h.Addr] = h
		}
	}
	for i := range snap.Routes {
		rt := &snap.Routes[i]
		if rt.Protocol == Protocol || isHost(rt.Dst) || !rt.Dst.IsValid() || shims[rt.Dev] {
			continue
		}
		p := rt.Dst.Masked()
		if _, ok := r.nets[p]; !ok {
			if p.Addr().Is4() {
				r.lens4 = append(r.lens4, p.Bits())
			} else {
				r.lens6 = append(r.lens6, p.Bits())
			}
		}
		r.nets[p] = append(r.nets[p], rt)
	}
	for _, l := range []*[]int{&r.lens4, &r.lens6} {
		slices.Sort(*l)
		slices.Reverse(*l)
		*l = slices.Compact(*l)
	}
	return r
}

// longest returns the routes of the longest prefix of the main table that
// holds ip, other than host routes, and whether there is one.
func (r *routing) longest(ip netip.Addr) ([]*Route, bool) {
	lens := r.lens6
	if ip.Is4() {
		lens = r.lens4
	}
	for _, l := range lens {
		p, _ := ip.Prefix(l)
		if rs, ok := r.nets[p]; ok {
			return rs, true
		}
	}
	return nil, false
}

// judge says whether the node's routing, or root's configuration, already
// answers for ip, an address nw allocates; 0 when flatnet may route it,
// else why not and what answers for it.
func (r *routing) judge(ip netip.Addr, nw *Network) (Refusal, string) {
	if h, ok := r.nextHops[ip]; ok {
		where := ""
		if h.Table != 0 && h.Table != tableMain {
			where = fmt.Sprintf(" in table %d", h.Table)
		}
		return RefuseNextHop, "the next hop of the node's route " + describeRoute(h.Route) + where
	}
	rs, ok := r.longest(ip)
	onLink := false
	if ok && rs[0].Dst.Bits() > 0 {
		for _, rt := range rs {
			if rt.Dev != nw.Master || len(rt.Gateways) > 0 || rt.Type != "" {
				return RefuseRouted, "the node reaches it through " + describeRoute(*rt)
			}
			onLink = true
		}
	}
	if nw.Tenant {
		if !onLink {
			how := "no route"
			if ok {
				how = "its default route " + describeRoute(*rs[0])
			}
			return RefuseOffLink, fmt.Sprintf("on no subnet connected to %s: the node reaches it through %s", nw.Master, how)
		}
		for _, res := range nw.Reserved {
			if res.Range.Subnet.Contains(ip) && res.Range.Contains(ip) {
				return RefuseReserved, fmt.Sprintf("inside the range %s that %s gives network %s", res.Range, res.Source, res.Network)
			}
		}
	}
	return 0, ""
}

// tableMain is RT_TABLE_MAIN.
const tableMain = 254

// describeRoute says what a route is, as `ip route` would: "192.168.0.0/16
// dev eno1 proto 2", "default via 192.168.0.1 dev eno1 proto 3",
// "blackhole 10.244.1.0/26 proto 12".
func describeRoute(r Route) string {
	var b strings.Builder
	if r.Type != "" {
		b.WriteString(r.Type + " ")
	}
	if r.Dst.Bits() == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	for _, g := range r.Gateways {
		b.WriteString(" via " + g.String())
	}
	if r.Dev != "" {
		b.WriteString(" dev " + r.Dev)
	}
	fmt.Fprintf(&b, " proto %d", r.Protocol)
	return b.String()
}
