package reconcile

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// Input is everything one reconcile decides from.
type Input struct {
	Networks []Network
	// States holds each network's state directory, by path. A network whose
	// directory is missing from the map is treated as unreadable (held).
	States map[string]DirState
	Snap   *Snapshot
	// MachineID seeds the shims' stable MAC addresses.
	MachineID string
	// Reused lists addresses released and allocated again to another
	// container since the previous reconcile.
	Reused map[netip.Addr]bool
	// Released has the last owners of addresses released since the
	// previous reconcile, for messages.
	Released map[netip.Addr]hostlocal.Owner
	// CarrierBack lists the shims whose carrier came back since the
	// previous reconcile (their master went down and up).
	CarrierBack map[string]bool
	// Guard is how the shims are kept from costing the LAN; see [Guard].
	Guard Guard
}

// Finding is something wrong that is not an error of flatnet's own: an
// address that must not be routed, a foreign route, a shim name taken. The
// daemon logs each Key once for as long as it persists.
type Finding struct {
	Key     string
	Level   slog.Level
	Msg     string
	Network string
	IP      netip.Addr
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

// Plan is the outcome of a reconcile: what to do, and what was found.
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
	up      bool             // exists, usable and up right now
	waiting string           // why not usable
	mac     net.HardwareAddr // its MAC, now or once created
}

// Compute decides what to do. It is a pure function of its input, and
// costs one map lookup per allocation and per route of ours: it runs on
// every pass, including the one for a single new pod on a node with
// thousands.
func Compute(in Input) *Plan {
	p := &Plan{}
	snap := in.Snap
	shimOps, shims := p.planShims(in)
	p.planFilter(in, shims)
	p.Ops = append(p.Ops, shimOps...)
	p.planProxies(in, shims)
	idx := snap.hostRoutes()

	nodeAddr := make(map[netip.Addr]bool, len(snap.Addrs))
	for _, a := range snap.Addrs {
		nodeAddr[a.Unmap()] = true
	}
	isNode := func(ip netip.Addr) bool { return nodeAddr[ip] }

	// With several networks, an address two of them allocate is routed for
	// the first only.
	var claimed map[netip.Addr]string
	if len(in.Networks) > 1 {
		claimed = map[netip.Addr]string{}
	}
	var adds, dels, flushes []Op
	for _, n := range in.Networks {
		st := NetStatus{Name: n.Name, Master: n.Master, Shim: n.Shim, Source: n.Source}
		sc := shims[n.Shim]
		if n.Unusable != "" {
			sc = shimCheck{waiting: n.Unusable}
		}
		master, _ := snap.Link(n.Master)
		st.ShimUp, st.Waiting = sc.up, sc.waiting
		ds, known := in.States[n.StateDir]
		if !known || ds.Err != nil {
			// Hold: keep our routes through this shim inside its ranges.
			st.Held = true
			why := "not read yet"
			if ds.Err != nil {
				why = ds.Err.Error()
			}
			p.find(slog.LevelWarn, "held:"+n.Name, n.Name, netip.Addr{},
				fmt.Sprintf("state dir %s unreadable, keeping its routes as they are: %s", n.StateDir, why))
			for _, hr := range idx {
				if hr.ours != nil && hr.ours.Dev == n.Shim && inRanges(hr.ours.Dst.Addr(), n.Ranges) {
					st.Allocated++
					st.Routed++
				}
			}
			p.Networks = append(p.Networks, st)
			continue
		}
		var rejected []rejection
		for ip, owner := range ds.Allocs {
			if why := hostlocal.Reject(ip, n.Ranges, isNode); why != "" {
				rejected = append(rejected, rejection{ip, why})
				continue
			}
			if claimed != nil {
				if other, dup := claimed[ip]; dup {
					p.find(slog.LevelWarn, "dup:"+n.Name+":"+ip.String(), n.Name, ip,
						fmt.Sprintf("not routing %s of network %s: network %s already routes it", ip, n.Name, other))
					continue
				}
				claimed[ip] = n.Name
			}
			st.Allocated++
			hr := idx[ip]
			if hr.foreign != nil {
				st.Conflicts = append(st.Conflicts, ip)
				p.find(slog.LevelWarn, "foreign:"+ip.String(), n.Name, ip,
					fmt.Sprintf("not routing %s of network %s: a route flatnet does not own is in the way (%s)", ip, n.Name, describeRoute(*hr.foreign)))
				continue
			}
			dst := hostPrefix(ip)
			src := routeSrc(master, ip)
			switch {
			case !sc.usable:
				st.Missing = append(st.Missing, ip)
			case hr.ours != nil && hr.ours.Dev == n.Shim && hr.ours.Src == src:
				st.Routed++
				if in.Reused[ip] {
					// Released and allocated again between two looks: the
					// route is right but the neighbour entry is the old pod's.
					flushes = append(flushes, Op{Kind: FlushNeigh, Dev: n.Shim, Dst: dst, Network: n.Name, Owner: owner})
				}
			case hr.ours != nil:
				st.Missing = append(st.Missing, ip)
				adds = append(adds, Op{Kind: ReplaceRoute, Dev: n.Shim, Dst: dst, Src: src, Network: n.Name, Owner: owner})
			default:
				st.Missing = append(st.Missing, ip)
				adds = append(adds, Op{Kind: AddRoute, Dev: n.Shim, Dst: dst, Src: src, Network: n.Name, Owner: owner})
			}
		}
		p.findRejected(n.Name, rejected)
		p.Networks = append(p.Networks, st)
	}

	// Our routes nobody wants any more go, with their neighbour entries.
	for ip, hr := range idx {
		if hr.ours == nil || wanted(in, ip, hr.ours.Dev, isNode) {
			continue
		}
		r := hr.ours
		op := Op{Kind: DelRoute, Dev: r.Dev, Dst: r.Dst, Owner: in.Released[ip]}
		if i := staleOwner(in.Networks, r.Dev, ip); i >= 0 {
			op.Network = in.Networks[i].Name
			p.Networks[i].Stale = append(p.Networks[i].Stale, ip)
		}
		dels = append(dels, op)
		if r.Dev != "" {
			flushes = append(flushes, Op{Kind: FlushNeigh, Dev: r.Dev, Dst: r.Dst, Network: op.Network})
		}
	}

	// Map order is random; plans and reports are not.
	for _, ops := range [][]Op{adds, dels, flushes} {
		slices.SortFunc(ops, func(a, b Op) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
	}
	for i := range p.Networks {
		st := &p.Networks[i]
		for _, l := range [][]netip.Addr{st.Missing, st.Stale, st.Conflicts} {
			slices.SortFunc(l, netip.Addr.Compare)
		}
	}
	slices.SortFunc(p.Findings, func(a, b Finding) int { return cmp.Compare(a.Key, b.Key) })
	p.Ops = append(p.Ops, adds...)
	p.Ops = append(p.Ops, dels...)
	p.Ops = append(p.Ops, flushes...)

	// A shim whose master came back: the kernel dropped the shim's
	// neighbour entries with the carrier, and packets sent meanwhile left
	// entries that wait for the next ARP or NDP retry, up to a second
	// away. Flushed, the next packet resolves at once.
	for _, name := range slices.Sorted(maps.Keys(in.CarrierBack)) {
		if shims[name].up {
			p.Ops = append(p.Ops, Op{Kind: FlushNeighs, Dev: name})
		}
	}

	// Last, the shims flatnet made that no network uses any more.
	used := map[string]bool{}
	for _, n := range in.Networks {
		used[n.Shim] = true
	}
	for _, l := range snap.Links {
		if l.Alias == ShimAlias && !used[l.Name] {
			p.Ops = append(p.Ops, Op{Kind: DelShim, Dev: l.Name})
		}
	}
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

// wanted reports whether our route to ip through dev is still wanted: some
// network allocates ip and may route it, or holds its routes as they are.
func wanted(in Input, ip netip.Addr, dev string, isNode func(netip.Addr) bool) bool {
	for _, n := range in.Networks {
		ds, known := in.States[n.StateDir]
		if !known || ds.Err != nil {
			if dev == n.Shim && inRanges(ip, n.Ranges) {
				return true
			}
			continue
		}
		if _, ok := ds.Allocs[ip]; ok && hostlocal.Reject(ip, n.Ranges, isNode) == "" {
			return true
		}
	}
	return false
}

// planShims checks every shim the networks need and plans what makes each
// usable. It returns those ops and the verdict per shim name.
func (p *Plan) planShims(in Input) ([]Op, map[string]shimCheck) {
	out := map[string]shimCheck{}
	var ops []Op
	snap := in.Snap
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
		mac := ShimMAC(in.MachineID, n.Shim)
		create := Op{Kind: AddShim, Dev: n.Shim, Master: n.Master, MAC: mac, MTU: master.MTU, Network: n.Name, Guard: in.Guard}
		shim, ok := snap.Link(n.Shim)
		if !ok {
			ops = append(ops, create)
			out[n.Shim] = shimCheck{usable: true, mac: mac}
			continue
		}
		mine := shim.Alias == ShimAlias
		right := shim.Kind == "macvlan" && shim.ParentIndex == master.Index && shim.MacvlanMode == "bridge"
		if !right && !mine {
			why := fmt.Sprintf("%s exists but is not a bridge-mode macvlan on %s (%s); flatnet leaves it alone", n.Shim, n.Master, describeLink(shim, snap))
			p.find(slog.LevelError, "taken:"+n.Shim, n.Name, netip.Addr{}, why)
			out[n.Shim] = shimCheck{waiting: why}
			continue
		}
		if !right {
			// Ours, but the master or mode changed under it: rebuild.
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
		out[n.Shim] = shimCheck{usable: true, up: shim.Up, mac: shim.MAC}
	}
	return ops, out
}

// planProxies keeps, on each usable shim, an IPv6 proxy neighbour entry
// for every node address inside the IPv6 subnets of the shim's networks.
//
// Pods on a macvlan reach the node only through the shim, and the kernel
// answers neighbour solicitations only for addresses on the receiving
// device; the shim has none. IPv6 has no arp_filter: the proxy answers
// every solicitation reaching the shim, the LAN's too. It does so late
// (after a random delay of up to proxy_delay, 0.8 s) and with the Override
// flag clear, so a LAN host has long learnt the NIC's own answer and keeps
// it (RFC 4861 7.2.5): the LAN's neighbour tables hold only the NIC's MAC.
func (p *Plan) planProxies(in Input, shims map[string]shimCheck) {
	want := map[Proxy]string{} // proxy -> network, for messages
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

// rejection is an allocated address that must never be routed, and why.
type rejection struct {
	ip  netip.Addr
	why string
}

// findRejected reports the rejected addresses of network: the lowest
// MaxRejectsListed each on its own, the others by their number.
func (p *Plan) findRejected(network string, rejected []rejection) {
	if len(rejected) > MaxRejectsListed {
		slices.SortFunc(rejected, func(a, b rejection) int { return a.ip.Compare(b.ip) })
		p.find(slog.LevelWarn, "reject-more:"+network, network, netip.Addr{},
			fmt.Sprintf("not routing more than %d addresses of network %s (outside its ranges, the gateway, node addresses or not unicast); the others are not listed one by one",
				MaxRejectsListed, network))
		rejected = rejected[:MaxRejectsListed]
	}
	for _, r := range rejected {
		p.find(slog.LevelWarn, "reject:"+network+":"+r.ip.String(), network, r.ip,
			fmt.Sprintf("not routing %s of network %s: %s", r.ip, network, r.why))
	}
}

func (p *Plan) find(level slog.Level, key, network string, ip netip.Addr, msg string) {
	p.Findings = append(p.Findings, Finding{Key: key, Level: level, Msg: msg, Network: network, IP: ip})
}

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

func describeRoute(r Route) string {
	s := r.Dst.String()
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s + fmt.Sprintf(" proto %d", r.Protocol)
}

func describeLink(l Link, snap *Snapshot) string {
	kind := cmp.Or(l.Kind, "device")
	if l.Kind == "macvlan" {
		kind += " mode " + l.MacvlanMode
		if m, ok := snap.LinkByIndex(l.ParentIndex); ok {
			kind += " on " + m.Name
		}
	}
	return "a " + kind
}

// Settle returns the networks' status once the ops in done have been
// carried out: what was missing and added counts as routed, what was stale
// and deleted is gone.
func (p *Plan) Settle(done []Op) []NetStatus {
	added := map[netip.Addr]bool{}
	deleted := map[netip.Addr]bool{}
	upShim := map[string]bool{}
	for _, op := range done {
		switch op.Kind {
		case AddRoute, ReplaceRoute:
			added[op.Dst.Addr()] = true
		case DelRoute:
			deleted[op.Dst.Addr()] = true
		case AddShim, SetUp:
			upShim[op.Dev] = true
		}
	}
	out := make([]NetStatus, len(p.Networks))
	for i, st := range p.Networks {
		if upShim[st.Shim] && st.Waiting == "" {
			st.ShimUp = true
		}
		var missing []netip.Addr
		for _, ip := range st.Missing {
			if added[ip] {
				st.Routed++
			} else {
				missing = append(missing, ip)
			}
		}
		st.Missing = missing
		st.Stale = slices.DeleteFunc(slices.Clone(st.Stale), func(ip netip.Addr) bool { return deleted[ip] })
		out[i] = st
	}
	return out
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

// Teardown plans the removal of everything flatnet made, and only that:
// every route with its protocol; on shims it set up but did not make (those
// holding [SenderAddr] or filtered by its table, and the names in adopted,
// the configuration's shims when known), its address and the IPv6 proxy
// entries; every shim with its alias; last, its nftables table, once the
// shims it guards are gone.
func Teardown(snap *Snapshot, adopted ...string) []Op {
	var ops []Op
	for _, r := range snap.Routes {
		if r.Protocol == Protocol && isHost(r.Dst) {
			ops = append(ops, Op{Kind: DelRoute, Dev: r.Dev, Dst: r.Dst})
		}
	}
	for _, l := range snap.Links {
		if l.Alias == ShimAlias || l.Kind != "macvlan" || !(Guarded(l, snap.Filter) || slices.Contains(adopted, l.Name)) {
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
		if l.Alias == ShimAlias {
			ops = append(ops, Op{Kind: DelShim, Dev: l.Name})
		}
	}
	if snap.Filter != nil {
		ops = append(ops, Op{Kind: SetFilter})
	}
	return ops
}
