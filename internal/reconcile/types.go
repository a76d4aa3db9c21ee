// Package reconcile is flatnet's pure core: it decides, from what should be
// (host-local's allocations) and what is (a snapshot of the kernel), which
// shims and routes to add, change or remove. It does no I/O and does not log;
// the kernel is reached only through the narrow [Kernel] interface, so the
// whole decision can be tested with a fake that prints `ip` commands.
//
// The hard cases, each of which has a test:
//
//   - Ownership. Only routes carrying [Protocol] are ever replaced or
//     deleted, and only shims carrying [ShimAlias] are ever deleted. A
//     foreign route to a pod address is a conflict: reported, left alone.
//   - Adoption. A macvlan in bridge mode on the right master with the shim's
//     name is used as it is, whoever made it; any other device of that name
//     makes the network wait, it is never touched.
//   - Unknown is not empty. When a state directory cannot be read, the
//     routes of its network are held, not deleted: bad input never costs a
//     working route.
//   - Addresses that must never be routed (outside the ranges, the gateway,
//     a node address, non-unicast) are findings, reported once.
//   - Address reuse. An address released and allocated again to another
//     container keeps its route but loses its neighbour entry, so the node
//     does not send to the old pod's MAC until the entry times out.
//   - Order. Shims first, then route additions, then deletions, so a plan
//     that fails half-way never leaves fewer routes than it found.
package reconcile

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// Protocol is the rtnetlink protocol number on every route flatnet makes
// (`ip route` prints it as "proto flatnet" with the shipped rt_protos.d
// entry). It is how flatnet recognises its own routes after a restart.
const Protocol = 97

// ShimAlias is the interface alias (IFLA_IFALIAS) flatnet gives the shims it
// creates, so that teardown removes those and never a device somebody else
// made.
const ShimAlias = "flatnet shim"

// Link is the part of a network device the reconciler looks at.
type Link struct {
	Index       int
	Name        string
	Kind        string // "macvlan", "veth", "bridge", "" for plain devices, ...
	MacvlanMode string // "bridge", "private", "vepa", "passthru", "source"; macvlan only
	ParentIndex int    // the master of a macvlan, 0 otherwise
	Up          bool   // administratively up (IFF_UP)
	LowerUp     bool   // has carrier (IFF_LOWER_UP); a macvlan has it while its master does
	MTU         int
	MAC         net.HardwareAddr
	// PermMAC is the device's permanent (burnt-in) address, when the
	// driver has one (IFLA_PERM_ADDRESS): it survives reboots and MAC
	// changes.
	PermMAC net.HardwareAddr
	Alias   string
	// ARPFilter is net.ipv4.conf.<name>.arp_filter, read for macvlans only.
	// On the shim it must be 1: the shim then answers ARP only for peers
	// routed through it (the pods), never the LAN, so the LAN keeps seeing
	// one MAC (the NIC's) for the node's addresses.
	ARPFilter bool
	// ProxyNDP is net.ipv6.conf.<name>.proxy_ndp and .forwarding both 1,
	// read for macvlans only: the kernel answers neighbour solicitations
	// for proxied addresses only with both.
	ProxyNDP bool
	// ARPIgnore is net.ipv4.conf.<name>.arp_ignore not 0, read for macvlans
	// only. The shim has no address, so with arp_ignore 1, 2 or 8 it never
	// answers pods' ARP for the node's addresses. A new shim inherits
	// default.arp_ignore; flatnet sets its own to 0. (The kernel takes the
	// larger of all.arp_ignore and the device's: with all.arp_ignore set,
	// only the operator can help, and flatnet check says how.)
	ARPIgnore bool
	// ARPAnnounce is net.ipv4.conf.<name>.arp_announce, read for macvlans
	// only: 2 with [GuardAddress].
	ARPAnnounce int
	// ProxyDelay0 is net.ipv6.neigh.<name>.proxy_delay being 0 (or IPv6
	// being off), read for macvlans only: with [GuardFilter] the shim
	// answers pods' neighbour solicitations at once.
	ProxyDelay0 bool
	// Sender is set when the link holds [SenderAddr].
	Sender bool
	// Addrs are the link's addresses of global scope, in the kernel's
	// order (an IPv4 subnet's primary address before its secondaries).
	Addrs []netip.Prefix
}

// Proxy is an IPv6 proxy neighbour entry (`ip -6 neigh add proxy IP dev
// DEV`): the kernel answers solicitations for IP received on DEV.
type Proxy struct {
	Dev string
	IP  netip.Addr
}

// Route is a route in the main routing table.
type Route struct {
	Dst      netip.Prefix
	Dev      string // outgoing device; "" when it has none (blackhole, multipath)
	Protocol int
	Priority int
	Src      netip.Addr // preferred source address (`src`); invalid when none
	// Gateways are its next hops (`via`, each of a multipath route's).
	Gateways []netip.Addr
	// Type is its kind when it is not a unicast route: "blackhole",
	// "unreachable", "prohibit", "throw", ...; "" for unicast.
	Type string
}

// NextHop is the next hop of a route in any table but the local one: an
// address the node already reaches through that route, which flatnet
// never routes to a shim.
type NextHop struct {
	Addr  netip.Addr
	Route Route
	Table int
}

// Snapshot is what the kernel holds right now.
type Snapshot struct {
	Links  []Link
	Addrs  []netip.Addr // every address on the node, any device
	Routes []Route      // main table
	// Proxies are the IPv6 proxy neighbour entries on macvlan devices.
	Proxies []Proxy
	// Filter is flatnet's nftables table netdev flatnet; nil when there is
	// none.
	Filter *Filter
	// Probes is flatnet's nftables table arp flatnet; nil when there is
	// none.
	Probes *ProbeTable
	// NextHops are the next hops of the routes of every table but local
	// (the main table's among them).
	NextHops []NextHop
	// ARPIgnoreAll is net.ipv4.conf.all.arp_ignore not 0 (kube-proxy's
	// strictARP, LVS direct routing): no shim answers pods' ARP for the
	// node then, whatever its own arp_ignore (GuardFor).
	ARPIgnoreAll bool
}

// Link returns the link called name.
func (s *Snapshot) Link(name string) (Link, bool) {
	for _, l := range s.Links {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

// LinkByIndex returns the link with index i.
func (s *Snapshot) LinkByIndex(i int) (Link, bool) {
	for _, l := range s.Links {
		if l.Index == i {
			return l, true
		}
	}
	return Link{}, false
}

// DefaultRouteDev is the device of the main table's IPv4 default route with
// the lowest metric (IPv6 when there is no IPv4 one), the NIC the macvlan
// plugin takes when a config names no master.
func (s *Snapshot) DefaultRouteDev() string {
	best, bestPrio, bestV4 := "", 0, false
	for _, r := range s.Routes {
		if r.Dst.Bits() != 0 || r.Dev == "" {
			continue
		}
		v4 := r.Dst.Addr().Is4()
		if best == "" || (v4 && !bestV4) || (v4 == bestV4 && r.Priority < bestPrio) {
			best, bestPrio, bestV4 = r.Dev, r.Priority, v4
		}
	}
	return best
}

// Network is one network to mirror, fully resolved.
type Network struct {
	Name   string
	Master string
	Shim   string
	// IPAM is the network's IPAM plugin type ("host-local" for a
	// [[network]] table's own network). Only host-local keeps a state
	// directory; every network's pods are also known from libcni's cached
	// results (Input.Results).
	IPAM string
	// StateDir is host-local's directory of the network's allocations;
	// "" when its IPAM keeps none on the node.
	StateDir string
	// Ranges are the network's ranges: host-local's, or a table's; none
	// for another IPAM, whose addresses are judged by the subnet and
	// gateway their cached result gives (Lease).
	Ranges []hostlocal.Range
	// Source says where the network was defined ("flatnet.toml:7" or the
	// CNI config file), for messages.
	Source string
	// Unusable, when set, says why the network's pods cannot be reached
	// through a shim at all (a macvlan mode other than bridge); nothing is
	// made for it.
	Unusable string
	// Tenant is set for a network only libcni's cache defines (no CNI
	// configuration file, no [[network]] table): tenants write it, through
	// a Multus NetworkAttachmentDefinition. Its addresses are routed only
	// on a subnet its master is connected to, and never inside a range
	// that root's configuration gives another network (Reserved). See
	// docs/security.md.
	Tenant bool
	// Reserved are the ranges root's configuration gives other networks
	// (CNI configuration files of any plugin, [[network]] tables): a
	// Tenant network's address inside one is refused.
	Reserved []Reserved
	// Refused are the containers whose allocations are not followed,
	// sorted: their attachments were made with another configuration than
	// the one followed, or cached under a name the configuration directory
	// gives another network (cni.Discovery.Refused).
	Refused []string
	// Gone are the containers, sorted, whose attachments libcni's cache
	// still holds though their network namespace is gone (their DEL never
	// ran): a state file of theirs is stale, not routed.
	Gone []string
}

// Reserved is a range root's configuration gives a network.
type Reserved struct {
	Range   hostlocal.Range
	Network string // the network it is given to
	Source  string // where: the CNI configuration file or flatnet.toml
}

// Alloc is one allocation read from a state directory.
type Alloc struct {
	IP    netip.Addr
	Owner hostlocal.Owner
}

// Lease is an address libcni's cached result gives a pod: a source of
// allocations beside host-local's files, for any IPAM.
type Lease struct {
	Owner   hostlocal.Owner // the container and its interface
	Subnet  netip.Prefix    // the address's subnet as the result gives it
	Gateway netip.Addr      // the result's gateway for it; invalid when none
}

// Range is what l's network allows of its subnet, for a network that has
// no ranges of its own (an IPAM other than host-local): every host
// address of the subnet but the gateway (for IPv4, neither the network nor
// the broadcast address).
func (l Lease) Range() hostlocal.Range {
	r := hostlocal.RangeFromPrefix(l.Subnet)
	r.Gateway = l.Gateway
	return r
}

// DirState is what a state directory holds.
type DirState struct {
	// Allocs are the allocations, by address.
	Allocs map[netip.Addr]hostlocal.Owner
	// Err is set when the directory could not be read (other than not
	// existing, which simply means no allocations): the network's routes are
	// then held as they are.
	Err error
}

// OpKind names what an [Op] does.
type OpKind int

// The operations a plan is made of.
const (
	AddShim OpKind = iota + 1
	DelShim
	ConfigureShim
	SetUp
	SetMTU
	AddRoute
	ReplaceRoute
	DelRoute
	FlushNeigh
	AddProxy
	DelProxy
	FlushNeighs
	SetFilter // make flatnet's netdev table hold exactly Drops, and the ingress chains of Shims
	AddSender // give the shim SenderAddr
	DelSender // take SenderAddr off the shim
	SetProbe  // make flatnet's arp table hold exactly the probe chains of Shims

	opEnd // one past the last kind: a new kind goes before it
)

// OpKinds are all the kinds of ops, in order: flatnet check's tests hold
// each that a plan may leave pending to a line that reports it.
func OpKinds() []OpKind {
	out := make([]OpKind, 0, opEnd-1)
	for k := AddShim; k < opEnd; k++ {
		out = append(out, k)
	}
	return out
}

// IsRoute reports whether k adds, replaces or deletes a route.
func (k OpKind) IsRoute() bool { return k == AddRoute || k == ReplaceRoute || k == DelRoute }

// ChangesLinks reports whether k changes a device or its settings, after
// which a snapshot no longer tells the kernel's state.
func (k OpKind) ChangesLinks() bool {
	return !k.IsRoute() && k != FlushNeigh && k != FlushNeighs && k != SetFilter && k != SetProbe
}

// Op is one change to the kernel.
type Op struct {
	Kind    OpKind
	Dev     string           // the shim
	Master  string           // AddShim
	MAC     net.HardwareAddr // AddShim
	MTU     int              // AddShim, SetMTU
	Dst     netip.Prefix     // routes; FlushNeigh, AddProxy, DelProxy use Dst.Addr()
	Src     netip.Addr       // AddRoute, ReplaceRoute: the preferred source address, if valid
	Network string           // for messages
	Owner   hostlocal.Owner  // AddRoute, DelRoute: for messages
	Guard   Guard            // AddShim, ConfigureShim: the settings the guard adds
	Drops   []Drop           // SetFilter
	Shims   []string         // SetFilter, SetProbe: the shims with a chain of the shim guard, sorted
}

// String prints op as the `ip` command that would do the same, which is
// also how the fake kernel in tests records it.
func (o Op) String() string {
	switch o.Kind {
	case AddShim:
		s := fmt.Sprintf("ip link add %s link %s address %s mtu %d type macvlan mode bridge", o.Dev, o.Master, o.MAC, o.MTU)
		if o.Guard == GuardAddress {
			s += fmt.Sprintf("; ip addr add %s dev %s scope link", SenderAddr, o.Dev)
		}
		return s
	case DelShim:
		return fmt.Sprintf("ip link del %s", o.Dev)
	case ConfigureShim:
		s := fmt.Sprintf("sysctl -w net.ipv4.conf.%[1]s.arp_filter=1 net.ipv4.conf.%[1]s.arp_ignore=0 net.ipv6.conf.%[1]s.proxy_ndp=1 net.ipv6.conf.%[1]s.forwarding=1 net.ipv6.conf.%[1]s.accept_dad=0", o.Dev)
		switch o.Guard {
		case GuardFilter, GuardShim:
			s += fmt.Sprintf(" net.ipv6.neigh.%s.proxy_delay=0", o.Dev)
		case GuardAddress:
			s += fmt.Sprintf(" net.ipv4.conf.%s.arp_announce=2", o.Dev)
		}
		return s
	case SetFilter:
		return FilterScript(o.Drops, o.Shims...)
	case SetProbe:
		return ProbeScript(o.Shims)
	case AddSender:
		return fmt.Sprintf("ip addr add %s dev %s scope link", SenderAddr, o.Dev)
	case DelSender:
		return fmt.Sprintf("ip addr del %s dev %s", SenderAddr, o.Dev)
	case SetUp:
		return fmt.Sprintf("ip link set %s up", o.Dev)
	case SetMTU:
		return fmt.Sprintf("ip link set %s mtu %d", o.Dev, o.MTU)
	case AddRoute:
		return fmt.Sprintf("ip route add %s dev %s scope link proto %d%s", o.Dst, o.Dev, Protocol, o.srcArg())
	case ReplaceRoute:
		return fmt.Sprintf("ip route replace %s dev %s scope link proto %d%s", o.Dst, o.Dev, Protocol, o.srcArg())
	case DelRoute:
		return fmt.Sprintf("ip route del %s dev %s proto %d", o.Dst, o.Dev, Protocol)
	case FlushNeigh:
		return fmt.Sprintf("ip neigh del %s dev %s", o.Dst.Addr(), o.Dev)
	case AddProxy:
		return fmt.Sprintf("ip -6 neigh add proxy %s dev %s", o.Dst.Addr(), o.Dev)
	case DelProxy:
		return fmt.Sprintf("ip -6 neigh del proxy %s dev %s", o.Dst.Addr(), o.Dev)
	case FlushNeighs:
		return fmt.Sprintf("ip neigh flush dev %s", o.Dev)
	}
	return fmt.Sprintf("op(%d)", o.Kind)
}

// srcArg is " src <Src>", or "" without one.
func (o Op) srcArg() string {
	if !o.Src.IsValid() {
		return ""
	}
	return " src " + o.Src.String()
}

// Kernel carries out ops. The real one (package netlinkx) speaks netlink;
// tests use a fake that records [Op.String].
type Kernel interface {
	Do(Op) error
}
