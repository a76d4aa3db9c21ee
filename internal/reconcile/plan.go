package reconcile

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// Input is everything a full pass decides from.
type Input struct {
	Networks []Network
	// States holds each network's state directory, by path. A network whose
	// directory is missing from the map is treated as unreadable (held).
	States map[string]DirState
	// Results are, by network name, the addresses libcni's cache gives the
	// pods of the network's followed, live attachments (whatever their
	// IPAM): a second source of allocations beside the state directories.
	// The maps are read, never written, and may change between calls:
	// whoever changes an address's lease calls Node.SyncUpdate for it.
	Results map[string]map[netip.Addr]Lease
	Snap    *Snapshot
	// MachineID seeds the shims' stable MAC addresses.
	MachineID string
	// Reused lists addresses released and allocated again to another
	// container since the previous pass.
	Reused map[netip.Addr]bool
	// Released has the last owners of addresses released since the
	// previous pass, for messages.
	Released map[netip.Addr]hostlocal.Owner
	// CarrierBack lists the shims whose carrier came back since the
	// previous pass (their master went down and up).
	CarrierBack map[string]bool
	// Guard is how the shims are kept from costing the LAN; see [Guard].
	Guard Guard
	// Found are findings made before, in resolving the networks: they are
	// reported with the others.
	Found []Finding
	// Now is the time of the pass, for what the node remembers over time
	// (how often it made a shim); zero for a one-shot look.
	Now time.Time
}

// NetStatus is one network as a reconcile found it.
type NetStatus struct {
	Name      string
	Master    string
	Shim      string
	Source    string
	ShimUp    bool   // the shim exists, is usable and up
	Waiting   string // why the network cannot be mirrored right now; "" when it can
	Allocated int    // allocations that should be routed
	Routed    int    // of those, routed through the shim
	Missing   []netip.Addr
	Stale     []netip.Addr
	Conflicts []netip.Addr // allocations with a route flatnet does not own
	Held      bool         // state dir unreadable: routes kept as they are
}

// InSync reports whether the shim is up and every allocation is routed
// through it: nothing missing, stale, or taken by a foreign route.
func (s NetStatus) InSync() bool {
	return s.Waiting == "" && s.ShimUp && len(s.Missing) == 0 && len(s.Stale) == 0 && len(s.Conflicts) == 0
}

// Plan is the outcome of a full pass: what to do, and what was found.
type Plan struct {
	Ops      []Op
	Networks []NetStatus
	Findings []Finding
}

func isHost(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

func hostPrefix(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, ip.BitLen()) }

// shimCheck is what the reconciler concluded about one shim name.
type shimCheck struct {
	usable  bool             // routes may go through it (now or once ops ran)
	exists  bool             // exists and is kept: not made, nor made anew, in this pass
	up      bool             // exists, usable and up right now
	waiting string           // why not usable
	mac     net.HardwareAddr // its MAC, now or once created
}

// Compute decides what to do, from scratch: a full pass of a new [Node].
// flatnet status and check use it to say what the daemon would do.
func Compute(in Input) *Plan {
	n := NewNode()
	p := n.full(in)
	p.Networks, p.Findings = n.Status(), n.Findings()
	return p
}

// routeSrc is the source address the node should use towards pod ip: for
// IPv4, the master's address whose subnet holds ip, else the master's first
// IPv4 address; invalid (the kernel chooses) when the master has none, and
// for IPv6, whose source selection already prefers the longest match.
//
// The shim has no address, so without it the kernel takes the first IPv4
// address of any device: on a node with networks on two NICs, the pods of
// the second one would get packets from the first one's address, which
// they often have no route back to.
func routeSrc(master Link, ip netip.Addr) netip.Addr {
	if !ip.Is4() {
		return netip.Addr{}
	}
	var first netip.Addr
	for _, p := range master.Addrs {
		if !p.Addr().Is4() {
			continue
		}
		if p.Contains(ip) {
			return p.Addr()
		}
		if !first.IsValid() {
			first = p.Addr()
		}
	}
	return first
}

// planShims checks every shim the networks need and plans what makes each
// usable. It returns those ops and the verdict per shim name.
func (p *Plan) planShims(in Input, held map[string]shimHold) ([]Op, map[string]shimCheck) {
	out := map[string]shimCheck{}
	var ops []Op
	snap := in.Snap
	// hold reports, and makes a finding of, a shim that is not to be made
	// again yet.
	hold := func(n Network) bool {
		h, ok := held[n.Shim]
		if !ok {
			return false
		}
		why := fmt.Sprintf("shim %s was made %d times in the last %s: flatnet holds it until %s instead of making it again (something removes or moves it as soon as it is made)",
			n.Shim, h.made, shimWindow, h.until.Format("15:04:05"))
		p.Findings = append(p.Findings, Finding{Kind: FindShimHeld, Level: slog.LevelWarn, Network: n.Name, Shim: n.Shim, Msg: why})
		out[n.Shim] = shimCheck{waiting: why}
		return true
	}
	for _, n := range in.Networks {
		if _, done := out[n.Shim]; done || n.Unusable != "" {
			continue
		}
		if n.Master == "" {
			out[n.Shim] = shimCheck{waiting: "waiting for a default route to pick the master NIC"}
			continue
		}
		master, ok := snap.Link(n.Master)
		if !ok {
			out[n.Shim] = shimCheck{waiting: fmt.Sprintf("waiting for %s to appear", n.Master)}
			continue
		}
		mac := ShimMAC(ShimSeed(in.MachineID, master), n.Shim)
		create := Op{Kind: AddShim, Dev: n.Shim, Master: n.Master, MAC: mac, MTU: master.MTU, Network: n.Name, Guard: in.Guard}
		shim, ok := snap.Link(n.Shim)
		if !ok {
			if hold(n) {
				continue
			}
			ops = append(ops, create)
			out[n.Shim] = shimCheck{usable: true, mac: mac}
			continue
		}
		// flatnet's own: its alias on a macvlan on this master, or with the
		// MAC flatnet gives it (made on another master, which changed).
		right := shim.Kind == "macvlan" && shim.ParentIndex == master.Index && shim.MacvlanMode == "bridge"
		mine := shim.Alias == ShimAlias && shim.Kind == "macvlan" && (shim.ParentIndex == master.Index || OwnShim(shim, snap, in.MachineID))
		if !right && !mine {
			why := fmt.Sprintf("%s exists but is not a bridge-mode macvlan on %s (%s); flatnet leaves it alone", n.Shim, n.Master, DescribeLink(shim, snap))
			p.Findings = append(p.Findings, Finding{Kind: FindTaken, Level: slog.LevelError, Network: n.Name, Shim: n.Shim, Msg: why})
			out[n.Shim] = shimCheck{waiting: why}
			continue
		}
		if !right {
			// Ours, but the master or mode changed under it: rebuild.
			if hold(n) {
				continue
			}
			ops = append(ops, Op{Kind: DelShim, Dev: n.Shim, Network: n.Name}, create)
			out[n.Shim] = shimCheck{usable: true, mac: mac}
			continue
		}
		if !guardOK(shim, in.Guard) {
			ops = append(ops, Op{Kind: ConfigureShim, Dev: n.Shim, Network: n.Name, Guard: in.Guard})
		}
		ops = append(ops, shimAddrOps(shim, in.Guard, n.Name)...)
		if shim.MTU != master.MTU {
			ops = append(ops, Op{Kind: SetMTU, Dev: n.Shim, MTU: master.MTU, Network: n.Name})
		}
		if !shim.Up {
			ops = append(ops, Op{Kind: SetUp, Dev: n.Shim, Network: n.Name})
		}
		out[n.Shim] = shimCheck{usable: true, exists: true, up: shim.Up, mac: shim.MAC}
	}
	return ops, out
}

// proxyWants are the IPv6 proxy neighbour entries the usable shims want,
// with the network each is for (for messages): on each, one for every node
// address inside the IPv6 subnets of the shim's networks.
//
// Pods on a macvlan reach the node only through the shim, and the kernel
// answers neighbour solicitations only for addresses on the receiving
// device; the shim has none. IPv6 has no arp_filter: the proxy answers
// every solicitation reaching the shim, the LAN's too. Without a guard
// that stops those ([GuardFilter], [GuardShim]) it does so late (after a
// random delay of up to proxy_delay, 0.8 s) and with the Override flag
// clear, so a LAN host has long learnt the NIC's own answer and keeps it
// (RFC 4861 7.2.5): the LAN's neighbour tables hold only the NIC's MAC.
func proxyWants(in Input, shims map[string]shimCheck) map[Proxy]string {
	want := map[Proxy]string{}
	for _, n := range in.Networks {
		if !shims[n.Shim].usable {
			continue
		}
		for _, a := range in.Snap.Addrs {
			if !a.Is6() || a.Is4In6() || !a.IsGlobalUnicast() {
				continue
			}
			for _, r := range n.Ranges {
				if r.Subnet.Addr().Is6() && r.Subnet.Contains(a) {
					want[Proxy{Dev: n.Shim, IP: a}] = n.Name
				}
			}
		}
	}
	return want
}

// planProxies keeps the proxy entries of want (proxyWants) on the shims,
// and deletes those no one wants from the shims flatnet made. With the
// shim guard, only the shims in allowed (whose ingress chain keeps the
// proxy from answering the LAN) get theirs: see planGuard.
func (p *Plan) planProxies(in Input, want map[Proxy]string, allowed map[string]bool) {
	if in.Guard == GuardShim {
		for x := range want {
			if !allowed[x.Dev] {
				delete(want, x)
			}
		}
	}
	have := map[Proxy]bool{}
	for _, x := range in.Snap.Proxies {
		have[x] = true
		if _, ok := want[x]; ok {
			continue
		}
		if l, ok := in.Snap.Link(x.Dev); ok && l.Alias == ShimAlias {
			p.Ops = append(p.Ops, Op{Kind: DelProxy, Dev: x.Dev, Dst: netip.PrefixFrom(x.IP, 128)})
		}
	}
	var adds []Op
	for x, nw := range want {
		if !have[x] {
			adds = append(adds, Op{Kind: AddProxy, Dev: x.Dev, Dst: netip.PrefixFrom(x.IP, 128), Network: nw})
		}
	}
	slices.SortFunc(adds, func(a, b Op) int { return cmp.Or(cmp.Compare(a.Dev, b.Dev), a.Dst.Addr().Compare(b.Dst.Addr())) })
	p.Ops = append(p.Ops, adds...)
}

// MaxRejectsListed is how many addresses of one network that must never be
// routed are findings of their own; the others are counted in one, so that
// a state directory full of leftovers costs bounded log and work.
const MaxRejectsListed = 100

// staleOwner picks the network a stale route is reported under: the one
// whose shim and ranges match, else the first one on that shim; -1 if none.
func staleOwner(nets []Network, dev string, ip netip.Addr) int {
	first := -1
	for i, n := range nets {
		if n.Shim != dev {
			continue
		}
		if inRanges(ip, n.Ranges) {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	return first
}

func inRanges(ip netip.Addr, rs []hostlocal.Range) bool {
	for _, r := range rs {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}

// DescribeLink says what kind of device l is, for messages: "a veth", "a
// macvlan mode private on eno1".
func DescribeLink(l Link, snap *Snapshot) string {
	kind := cmp.Or(l.Kind, "device")
	if l.Kind == "macvlan" {
		kind += " mode " + l.MacvlanMode
		if m, ok := snap.LinkByIndex(l.ParentIndex); ok {
			kind += " on " + m.Name
		}
	}
	return "a " + kind
}

// Apply carries out ops in order and returns those that succeeded. When a
// shim cannot be created or brought up, the ops that route through it are
// skipped (they could only fail). The error joins every failure. Runs of
// route ops go to a [Batcher] in one call when k is one.
func Apply(k Kernel, ops []Op) (done []Op, err error) {
	var errs []error
	broken := map[string]bool{}
	b, batching := k.(Batcher)
	for i := 0; i < len(ops); {
		op := ops[i]
		if broken[op.Dev] && op.Kind != DelRoute && op.Kind != FlushNeigh {
			i++
			continue
		}
		if j := routeRun(ops[i:], broken); batching && j > 1 {
			run := ops[i : i+j]
			for n, e := range b.DoBatch(run) {
				if e != nil {
					errs = append(errs, fmt.Errorf("%s: %w", run[n], e))
				} else {
					done = append(done, run[n])
				}
			}
			i += j
			continue
		}
		if e := k.Do(op); e != nil {
			errs = append(errs, fmt.Errorf("%s: %w", op, e))
			if op.Kind == AddShim || op.Kind == DelShim {
				broken[op.Dev] = true
			}
		} else {
			done = append(done, op)
		}
		i++
	}
	return done, errors.Join(errs...)
}

// Batcher is a Kernel that can carry out many route ops in one call,
// returning one error per op.
type Batcher interface {
	DoBatch(ops []Op) []error
}

// routeRun is the length of the run of route ops that ops starts with,
// none of them through a broken shim.
func routeRun(ops []Op, broken map[string]bool) int {
	n := 0
	for _, op := range ops {
		if !op.Kind.IsRoute() || broken[op.Dev] {
			break
		}
		n++
	}
	return n
}

// Teardown plans the removal of everything flatnet made, and only that
// (see [TeardownManaged] for which devices are flatnet's): every route with
// its protocol on those devices; on shims it set up but did not make, its
// address and the IPv6 proxy entries; every shim it made ([OwnShim]);
// last, its nftables tables, once the shims they guard are gone.
func Teardown(snap *Snapshot, machineID string, adopted ...string) []Op {
	var ops []Op
	managed := TeardownManaged(snap, machineID, adopted...)
	for _, r := range snap.Routes {
		if r.Protocol == Protocol && isHost(r.Dst) && managed[r.Dev] {
			ops = append(ops, Op{Kind: DelRoute, Dev: r.Dev, Dst: r.Dst})
		}
	}
	for _, l := range snap.Links {
		if !managed[l.Name] || OwnShim(l, snap, machineID) {
			continue
		}
		if l.Sender {
			ops = append(ops, Op{Kind: DelSender, Dev: l.Name})
		}
		for _, x := range snap.Proxies {
			if x.Dev == l.Name {
				ops = append(ops, Op{Kind: DelProxy, Dev: x.Dev, Dst: netip.PrefixFrom(x.IP, 128)})
			}
		}
	}
	for _, l := range snap.Links {
		if OwnShim(l, snap, machineID) {
			ops = append(ops, Op{Kind: DelShim, Dev: l.Name})
		}
	}
	if snap.Filter != nil && !snap.Filter.Foreign { // a table flatnet did not make is left alone
		ops = append(ops, Op{Kind: SetFilter})
	}
	if snap.Probes != nil && !snap.Probes.Foreign {
		ops = append(ops, Op{Kind: SetProbe})
	}
	return ops
}

// TeardownManaged are the devices flatnet set up, as teardown knows them
// without a configuration: the shims it made ([OwnShim]), and the macvlans
// it gave its address or filters (Guarded), or named in adopted (the
// configuration's shims, when it can be read).
func TeardownManaged(snap *Snapshot, machineID string, adopted ...string) map[string]bool {
	m := map[string]bool{}
	for _, l := range snap.Links {
		if OwnShim(l, snap, machineID) || l.Kind == "macvlan" && (Guarded(l, snap) || slices.Contains(adopted, l.Name)) {
			m[l.Name] = true
		}
	}
	return m
}
