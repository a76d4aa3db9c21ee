package reconcile

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// Node is flatnet's picture of the node, kept by delta: the networks with
// their shims and allocations (what should be), the host routes (what is),
// and, for every address, the one decision taken for it, with the status
// counts and findings that decision contributes. A pod coming or going
// costs one decision, whatever the number of pods: [Node.SyncUpdate]
// decides again just the addresses named, and then just those whose
// routes changed. [Node.Sync] decides every address again: the daemon
// runs it at start, on the resync timer and whenever the kernel must be
// read anew, as the safety net. Each is the whole cycle (decide, apply
// with the kernel given, record what was done), so no caller can skip or
// reorder a step. The full pass and the event path share [Node.decide].
//
// The allocation maps of Input.States are read, never written, and may
// change between calls: whoever changes an address's allocation calls
// SyncUpdate for it.
//
// A Node does no I/O and is not safe for concurrent use.
type Node struct {
	in       Input
	shims    map[string]shimCheck
	masters  []Link                           // by network
	held     []bool                           // by network: state dir unreadable, routes held
	allocs   []map[netip.Addr]hostlocal.Owner // by network: in.States[StateDir].Allocs, looked up once
	results  []map[netip.Addr]Lease           // by network: in.Results[Name], looked up once
	nodeAddr map[netip.Addr]bool
	routes   map[netip.Addr]hostRoute
	routing  *routing          // what the node's own routing answers for
	refused  []map[string]bool // by network: Network.Refused
	gone     []map[string]bool // by network: Network.Gone
	managed  map[string]bool   // the devices whose protocol-97 routes are flatnet's

	decided map[netip.Addr]decision
	counts  []netCounts // by network
	// finds holds the findings that hold now; fresh those that appeared
	// since TakeFresh was last called.
	finds map[FindingKey]Finding
	fresh []Finding
	// found are the keys of the findings of Input.Found (SetGlobal
	// replaces them); global those of the other findings not tied to one
	// address, which full recomputes.
	found, global []FindingKey
	// made has, by shim, when flatnet made it within the last shimWindow
	// (by Input.Now), so that nothing can make it make a shim again and
	// again (see shimHold).
	made map[string][]time.Time
}

// A shim is made at most maxShimMakes times in shimWindow: whatever keeps
// removing it (a master that comes and goes, another tool, a shim that
// the kernel moves to another master), flatnet then holds it, says why
// once, and tries again when the window has passed.
const (
	maxShimMakes = 4
	shimWindow   = time.Minute
)

// shimHold is a shim held: made that many times, held until then.
type shimHold struct {
	made  int
	until time.Time
}

// holds are the shims held at now (none when now is zero: a one-shot
// Compute has no history).
func (n *Node) holds(now time.Time) map[string]shimHold {
	var out map[string]shimHold
	for shim, times := range n.made {
		times = slices.DeleteFunc(times, func(t time.Time) bool { return !t.After(now.Add(-shimWindow)) })
		if len(times) == 0 {
			delete(n.made, shim)
			continue
		}
		n.made[shim] = times
		if len(times) >= maxShimMakes {
			if out == nil {
				out = map[string]shimHold{}
			}
			out[shim] = shimHold{made: len(times), until: times[0].Add(shimWindow)}
		}
	}
	return out
}

// RetryAt is when the first shim held now may be made again; zero when
// none is held. The daemon wakes then.
func (n *Node) RetryAt() time.Time {
	var at time.Time
	for _, h := range n.holds(n.in.Now) {
		if at.IsZero() || h.until.Before(at) {
			at = h.until
		}
	}
	return at
}

// hostRoute is what the main table holds for one address: flatnet's route
// and another one, either possibly nil.
type hostRoute struct {
	ours, foreign *Route
}

// class is what an address is to the network it counts under.
type class uint8

const (
	classNone     class = iota // counts nowhere: not allocated, no route of ours
	classRouted                // allocated and routed through its network's shim
	classMissing               // allocated, not (yet) routed
	classConflict              // allocated, a route flatnet does not own in the way
	classStale                 // a route of ours nobody wants
	classHeld                  // a route of ours through a held network's shim, kept
)

// decision is what was decided for one address: the network it counts
// under (-1: none), how, and the findings it contributes.
type decision struct {
	net   int32
	class class
	keys  []FindingKey
}

// netCounts are one network's status, kept by delta. The addresses behind
// missing, stale and conflicts are in decided; Status lists them.
type netCounts struct {
	allocated, routed          int
	missing, stale, conflicts  int
	rejectsListed, rejectsMore int
}

// NewNode returns an empty Node; Sync fills it.
func NewNode() *Node {
	return &Node{decided: map[netip.Addr]decision{}, finds: map[FindingKey]Finding{}, routes: map[netip.Addr]hostRoute{}}
}

// full takes in as the whole truth and decides everything: the shims, the
// egress filter, the proxy entries, every allocated address and every
// route of flatnet's. It returns the plan's ops, in the order Apply wants
// them; Status and Findings then say what holds before any op ran (the
// plan's Networks and Findings are left for Compute to fill).
func (n *Node) full(in Input) *Plan {
	n.in = in
	p := &Plan{}
	shimOps, shims := p.planShims(in, n.holds(in.Now))
	n.shims = shims
	proxies := proxyWants(in, shims)
	proxied := map[string]bool{}
	for x := range proxies {
		proxied[x.Dev] = true
	}
	solicited := p.planGuard(in, shims, proxied)
	p.Ops = append(p.Ops, shimOps...)
	p.planProxies(in, proxies, solicited)
	n.managed = managedDevs(in)
	n.index(in.Snap)
	n.routing = newRouting(in.Snap, n.managed)
	// Findings not tied to an address: shims taken (planShims), state dirs
	// that cannot be read.
	global := append(p.Findings, n.networks(in)...)
	p.Findings = nil

	old := n.finds
	n.finds = make(map[FindingKey]Finding, len(old))
	ops, rejects := n.decideAll(p.Ops)
	n.settleFindings(old, rejects, global, in.Found)

	p.Ops = ops.appendTo(nil)
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
	for _, nw := range in.Networks {
		used[nw.Shim] = true
	}
	for _, l := range in.Snap.Links {
		if !used[l.Name] && OwnShim(l, in.Snap, in.MachineID) {
			p.Ops = append(p.Ops, Op{Kind: DelShim, Dev: l.Name})
		}
	}
	n.in.Reused, n.in.Released, n.in.CarrierBack = nil, nil, nil
	return p
}

// index takes the node's addresses and host routes from snap.
func (n *Node) index(snap *Snapshot) {
	n.nodeAddr = make(map[netip.Addr]bool, len(snap.Addrs))
	for _, a := range snap.Addrs {
		n.nodeAddr[a.Unmap()] = true
	}
	n.routes = make(map[netip.Addr]hostRoute, len(snap.Routes))
	for i := range snap.Routes {
		r := &snap.Routes[i] // the node keeps the snapshot (n.in): no copy
		if !isHost(r.Dst) {
			continue
		}
		hr := n.routes[r.Dst.Addr()]
		if r.Protocol == Protocol && n.managed[r.Dev] {
			hr.ours = r
		} else {
			hr.foreign = r
		}
		n.routes[r.Dst.Addr()] = hr
	}
}

// networks sets up what the node keeps by network (master, allocations,
// counts) and returns a finding for each network whose state dir is not
// readable, whose routes are held.
func (n *Node) networks(in Input) []Finding {
	var held []Finding
	n.masters = make([]Link, len(in.Networks))
	n.held = make([]bool, len(in.Networks))
	n.refused = make([]map[string]bool, len(in.Networks))
	n.results = make([]map[netip.Addr]Lease, len(in.Networks))
	n.gone = make([]map[string]bool, len(in.Networks))
	n.allocs = make([]map[netip.Addr]hostlocal.Owner, len(in.Networks))
	n.counts = make([]netCounts, len(in.Networks))
	for i, nw := range in.Networks {
		n.masters[i], _ = in.Snap.Link(nw.Master)
		if len(nw.Refused) > 0 {
			n.refused[i] = make(map[string]bool, len(nw.Refused))
			for _, id := range nw.Refused {
				n.refused[i][id] = true
			}
		}
		n.results[i] = in.Results[nw.Name]
		if len(nw.Gone) > 0 {
			n.gone[i] = make(map[string]bool, len(nw.Gone))
			for _, id := range nw.Gone {
				n.gone[i][id] = true
			}
		}
		if nw.StateDir == "" {
			continue // no state on the node: results alone
		}
		ds, known := in.States[nw.StateDir]
		n.allocs[i] = ds.Allocs
		if !known || ds.Err != nil {
			n.held[i] = true
			why := "not read yet"
			if ds.Err != nil {
				why = ds.Err.Error()
			}
			held = append(held, Finding{Kind: FindHeld, Level: slog.LevelWarn, Network: nw.Name,
				Msg: fmt.Sprintf("state dir %s unreadable, keeping its routes as they are: %s", nw.StateDir, why)})
		}
	}
	return held
}

// decideAll decides every address anyone may have a say on, each once, in
// order: the ops come out sorted by address within each kind, as Apply
// wants them, without sorting the ops themselves (a start with 65,000
// pods plans 65,000). The route additions follow before (the shim,
// filter and proxy ops) in the same slice, made big enough at once for
// the additions a start plans: no copy of a big plan. It returns the ops
// and the rejected addresses' findings, which settleFindings lists.
func (n *Node) decideAll(before []Op) (opBuckets, []Finding) {
	var addrs []netip.Addr
	for ip, hr := range n.routes {
		if hr.ours != nil {
			addrs = append(addrs, ip)
		}
	}
	for i := range n.in.Networks {
		if !n.held[i] {
			for ip := range n.allocs[i] {
				addrs = append(addrs, ip)
			}
		}
		for ip := range n.results[i] {
			addrs = append(addrs, ip)
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	n.decided = make(map[netip.Addr]decision, len(addrs))
	ops := opBuckets{adds: before}
	if routed := len(n.routes); len(addrs) > routed {
		ops.adds = slices.Grow(ops.adds, len(addrs)-routed)
	}
	var rejects []Finding
	for _, ip := range addrs {
		d, finds := n.decide(ip, &ops)
		for _, f := range finds {
			if f.Kind.listed() {
				rejects = append(rejects, f) // listed by settleFindings, lowest first
			} else {
				n.finds[f.Key()] = f
			}
			d.keys = append(d.keys, f.Key())
		}
		n.count(d, 1)
		if d.net >= 0 || len(d.keys) > 0 {
			n.decided[ip] = d
		}
	}
	return ops, rejects
}

// settleFindings completes a full pass's findings: the rejected addresses
// (the lowest MaxRejectsListed of each network listed, the others counted:
// the same ones on every full pass, whatever the map order), those not tied
// to an address (global) and the caller's (found). What holds now and did
// not before the pass (old), or was fresh and not yet taken, is fresh.
func (n *Node) settleFindings(old map[FindingKey]Finding, rejects, global, found []Finding) {
	slices.SortFunc(rejects, compareFindings)
	pending := n.fresh
	for _, f := range rejects {
		n.addReject(f)
	}
	n.fresh = pending // fresh is worked out below, against old
	n.global, n.found = n.global[:0], n.found[:0]
	for _, f := range global {
		n.finds[f.Key()] = f
		n.global = append(n.global, f.Key())
	}
	for _, f := range found {
		n.finds[f.Key()] = f
		n.found = append(n.found, f.Key())
	}
	fresh := n.fresh
	n.fresh = nil
	for _, f := range fresh {
		if _, ok := n.finds[f.Key()]; ok {
			n.fresh = append(n.fresh, f)
		}
	}
	for k, f := range n.finds {
		if _, seen := old[k]; !seen {
			n.fresh = append(n.fresh, f)
		}
	}
}

// SetFound replaces the findings full took from Input.Found with found;
// those that are new become fresh. It is for what changes between full
// passes, such as a CNI cache entry that cannot be followed.
func (n *Node) SetFound(found []Finding) {
	now := map[FindingKey]bool{}
	for _, f := range found {
		now[f.Key()] = true
	}
	for _, k := range n.found {
		if !now[k] {
			delete(n.finds, k)
		}
	}
	n.found = n.found[:0]
	for _, f := range found {
		n.addFinding(f)
		n.found = append(n.found, f.Key())
	}
}

// Sync is a full pass's whole cycle: it takes in as the whole truth and
// decides everything (the shims, the LAN guard's tables, the proxy
// entries, every allocated address and every route of flatnet's), carries
// the ops out with k in the order Apply wants, and records those done.
// It returns them and the failures of the others, joined; Status and
// Findings then say what holds.
func (n *Node) Sync(in Input, k Kernel) ([]Op, error) {
	done, err := Apply(k, n.full(in).Ops)
	n.done(done)
	return done, err
}

// SyncUpdate is an update pass's whole cycle: the addresses in ips, whose
// allocations changed since the last pass, decided again (reused: given
// to another container, so the neighbour entry goes; released: the last
// owners of released addresses, for messages), their ops carried out with
// k and those done recorded, as Sync does.
func (n *Node) SyncUpdate(ips []netip.Addr, reused map[netip.Addr]bool, released map[netip.Addr]hostlocal.Owner, k Kernel) ([]Op, error) {
	done, err := Apply(k, n.update(ips, reused, released))
	n.done(done)
	return done, err
}

// update decides again the addresses in ips, whose allocations changed
// since the last call (reused: given to another container, so the
// neighbour entry goes; released: the last owners of released addresses,
// for messages), and returns the route and neighbour ops that follow.
func (n *Node) update(ips []netip.Addr, reused map[netip.Addr]bool, released map[netip.Addr]hostlocal.Owner) []Op {
	n.in.Reused, n.in.Released = reused, released
	defer func() { n.in.Reused, n.in.Released = nil, nil }()
	var ops opBuckets
	// Once each: a pass may name an address twice (a host-local pod's
	// state file and its cache entry in one pass), and deciding it twice
	// before any op is done would add its route twice.
	for _, ip := range slices.Compact(slices.SortedFunc(slices.Values(ips), netip.Addr.Compare)) {
		n.redecide(ip, &ops)
	}
	return ops.appendTo(nil)
}

// done records the ops that were carried out: routes in the index, shims
// up. The addresses whose routes changed are decided again, which moves
// them from missing to routed, or out of stale.
func (n *Node) done(done []Op) {
	// The routes added, in one allocation rather than one each.
	adds := 0
	for _, op := range done {
		if op.Kind == AddRoute || op.Kind == ReplaceRoute {
			adds++
		}
	}
	slab := make([]Route, 0, adds)
	for _, op := range done {
		if op.Kind == AddRoute || op.Kind == ReplaceRoute {
			slab = append(slab, Route{Dst: op.Dst, Dev: op.Dev, Protocol: Protocol, Src: op.Src})
		}
	}
	for _, op := range done {
		switch op.Kind {
		case AddRoute, ReplaceRoute, DelRoute:
			ip := op.Dst.Addr()
			hr := n.routes[ip]
			if op.Kind == DelRoute {
				hr.ours = nil
			} else {
				hr.ours, slab = &slab[0], slab[1:]
			}
			if hr.ours == nil && hr.foreign == nil {
				delete(n.routes, ip)
			} else {
				n.routes[ip] = hr
			}
			if d, ok := n.decided[ip]; ok && op.Kind != DelRoute && n.planned(d, op) {
				// The route decide asked for is in place: the same decision,
				// now routed (a start settles 65,000 of these).
				n.count(d, -1)
				d.class = classRouted
				n.count(d, 1)
				n.decided[ip] = d
				continue
			}
			n.redecide(ip, nil) // what it plans now was planned already
		case AddShim, SetUp:
			if op.Kind == AddShim && !n.in.Now.IsZero() {
				if n.made == nil {
					n.made = map[string][]time.Time{}
				}
				n.made[op.Dev] = append(n.made[op.Dev], n.in.Now)
			}
			if sc, ok := n.shims[op.Dev]; ok && sc.usable {
				sc.up = true
				n.shims[op.Dev] = sc
			}
		}
	}
}

// planned reports whether op is the route decide planned with d: an
// address missing its route, which op adds through the network's shim
// with the source decide chose. Once op is done, deciding again would
// find it routed with the same findings, since nothing else changed.
func (n *Node) planned(d decision, op Op) bool {
	if d.class != classMissing || d.net < 0 || int(d.net) >= len(n.in.Networks) {
		return false
	}
	nw := &n.in.Networks[d.net]
	return op.Dev == nw.Shim && op.Src == routeSrc(n.masters[d.net], op.Dst.Addr())
}

// redecide replaces the decision for ip, moving its counts and findings,
// and adds the ops that follow to ops (nil: none wanted).
func (n *Node) redecide(ip netip.Addr, ops *opBuckets) {
	old, ok := n.decided[ip]
	if !ok {
		old.net = -1
	}
	d, finds := n.decide(ip, ops)
	n.count(old, -1)
	n.count(d, 1)
	for _, f := range finds {
		d.keys = append(d.keys, f.Key())
	}
	for _, k := range old.keys {
		if !slices.Contains(d.keys, k) {
			n.dropFinding(k)
		}
	}
	for _, f := range finds {
		if !slices.Contains(old.keys, f.Key()) {
			n.addFinding(f)
		}
	}
	if d.net >= 0 || len(d.keys) > 0 {
		n.decided[ip] = d
	} else if ok {
		delete(n.decided, ip)
	}
}

// decide is the one decision for an address, the full pass's and the
// event path's: which network claims it (the first, in order, that
// allocates it and may route it), whether its route is right, what to do,
// and what to report. The ops go into ops, unless it is nil.
func (n *Node) decide(ip netip.Addr, ops *opBuckets) (decision, []Finding) {
	hr := n.routes[ip]
	claimant, owner, finds := n.claim(ip)
	if claimant >= 0 {
		return n.decideClaimed(ip, hr, claimant, owner, ops, finds)
	}
	if hr.ours == nil {
		return decision{net: -1}, finds
	}
	return n.decideUnclaimed(ip, *hr.ours, ops), finds
}

// claim finds the network that claims ip: the first, in order, that
// allocates it (host-local's file, else the cached result) and may route
// it; -1 when none does. The findings say why the others may not.
func (n *Node) claim(ip netip.Addr) (claimant int, owner hostlocal.Owner, finds []Finding) {
	claimant = -1
	for i := range n.in.Networks {
		nw := &n.in.Networks[i]
		// host-local's file, else the cached result: one decision, one
		// route, whichever told first.
		o, ok := n.allocs[i][ip]
		ranges := nw.Ranges
		if !ok || n.held[i] {
			l, inResult := n.results[i][ip]
			if !inResult {
				continue
			}
			o = l.Owner
			if len(ranges) == 0 {
				ranges = []hostlocal.Range{l.Range()}
			}
		}
		if why := hostlocal.Reject(ip, ranges, n.isNode); why != 0 {
			finds = append(finds, Finding{Kind: FindReject, Level: slog.LevelWarn, Network: nw.Name, IP: ip, Why: why,
				Msg: fmt.Sprintf("not routing %s of network %s: %s", ip, nw.Name, why.Explain(ip, ranges))})
			continue
		}
		if ref, what := n.refuse(i, ip, o); ref != 0 {
			finds = append(finds, Finding{Kind: FindRefused, Level: slog.LevelWarn, Network: nw.Name, IP: ip, Refused: ref,
				Msg: fmt.Sprintf("not routing %s of network %s: %s", ip, nw.Name, what)})
			continue
		}
		if claimant >= 0 {
			finds = append(finds, Finding{Kind: FindDuplicate, Level: slog.LevelWarn, Network: nw.Name, IP: ip,
				Msg: fmt.Sprintf("not routing %s of network %s: network %s already routes it", ip, nw.Name, n.in.Networks[claimant].Name)})
			continue
		}
		claimant, owner = i, o
	}
	return claimant, owner, finds
}

// decideClaimed decides ip, which network claimant claims for owner:
// routed through its shim already, or to route, unless a route flatnet
// does not own is in the way; that finding is appended to finds.
func (n *Node) decideClaimed(ip netip.Addr, hr hostRoute, claimant int, owner hostlocal.Owner, ops *opBuckets, finds []Finding) (decision, []Finding) {
	nw := &n.in.Networks[claimant]
	d := decision{net: int32(claimant)}
	if hr.foreign != nil {
		d.class = classConflict
		finds = append(finds, Finding{Kind: FindForeign, Level: slog.LevelWarn, Network: nw.Name, IP: ip,
			Msg: fmt.Sprintf("not routing %s of network %s: a route flatnet does not own is in the way (%s)", ip, nw.Name, describeRoute(*hr.foreign))})
		return d, finds
	}
	sc := n.shims[nw.Shim]
	if nw.Unusable != "" {
		sc = shimCheck{}
	}
	dst, src := hostPrefix(ip), routeSrc(n.masters[claimant], ip)
	switch {
	case !sc.usable:
		d.class = classMissing
	case hr.ours != nil && hr.ours.Dev == nw.Shim && hr.ours.Src == src:
		d.class = classRouted
		if n.in.Reused[ip] {
			// Released and allocated again between two looks: the route
			// is right but the neighbour entry is the old pod's.
			ops.flush(Op{Kind: FlushNeigh, Dev: nw.Shim, Dst: dst, Network: nw.Name, Owner: owner})
		}
	case hr.ours != nil:
		d.class = classMissing
		ops.add(Op{Kind: ReplaceRoute, Dev: nw.Shim, Dst: dst, Src: src, Network: nw.Name, Owner: owner})
	default:
		d.class = classMissing
		ops.add(Op{Kind: AddRoute, Dev: nw.Shim, Dst: dst, Src: src, Network: nw.Name, Owner: owner})
	}
	return d, finds
}

// decideUnclaimed decides ip, which no network claims, though r, a route
// of ours, goes to it: a network whose state dir cannot be read keeps the
// routes through its shim inside its ranges; any other goes, with its
// neighbour entry.
func (n *Node) decideUnclaimed(ip netip.Addr, r Route, ops *opBuckets) decision {
	d := decision{net: -1}
	for i, nw := range n.in.Networks {
		if n.held[i] && r.Dev == nw.Shim && inRanges(ip, nw.Ranges) {
			d.net, d.class = int32(i), classHeld
			return d
		}
	}
	del := Op{Kind: DelRoute, Dev: r.Dev, Dst: r.Dst, Owner: n.in.Released[ip]}
	if i := staleOwner(n.in.Networks, r.Dev, ip); i >= 0 {
		d.net, d.class = int32(i), classStale
		del.Network = n.in.Networks[i].Name
	}
	ops.del(del)
	if r.Dev != "" {
		ops.flush(Op{Kind: FlushNeigh, Dev: r.Dev, Dst: r.Dst, Network: del.Network})
	}
	return d
}

func (n *Node) isNode(ip netip.Addr) bool { return n.nodeAddr[ip] }

// refuse says why ip, allocated to owner in network i and inside its
// ranges, is still not routed (see Refusal); 0 when it may be.
func (n *Node) refuse(i int, ip netip.Addr, owner hostlocal.Owner) (Refusal, string) {
	if n.refused[i][owner.ContainerID] && owner.ContainerID != "" {
		return RefuseAttachment, fmt.Sprintf("allocated to container %s, whose attachment was made with another configuration of the network, or under a name that is another network's; flatnet does not follow it", owner.ContainerID)
	}
	if n.gone[i][owner.ContainerID] && owner.ContainerID != "" {
		return RefuseStale, fmt.Sprintf("allocated to container %s, whose network namespace is gone though libcni's cache still holds its attachment (its DEL never ran): stale", owner.ContainerID)
	}
	if n.routing == nil {
		return 0, ""
	}
	return n.routing.judge(ip, &n.in.Networks[i])
}

// count adds (sign 1) or takes away (-1) what decision d says of its
// address to its network's status.
func (n *Node) count(d decision, sign int) {
	if d.net < 0 || int(d.net) >= len(n.counts) {
		return
	}
	c := &n.counts[d.net]
	switch d.class {
	case classRouted, classHeld:
		c.allocated += sign
		c.routed += sign
	case classMissing:
		c.allocated += sign
		c.missing += sign
	case classConflict:
		c.allocated += sign
		c.conflicts += sign
	case classStale:
		c.stale += sign
	}
}

// addFinding records f, fresh unless it held already. Rejected addresses
// beyond the first MaxRejectsListed of their network are only counted.
func (n *Node) addFinding(f Finding) {
	if f.Kind.listed() {
		n.addReject(f)
		return
	}
	if _, ok := n.finds[f.Key()]; !ok {
		n.fresh = append(n.fresh, f)
	}
	n.finds[f.Key()] = f
}

func (n *Node) dropFinding(k FindingKey) {
	if k.Kind.listed() {
		i := n.netIndex(k.Network)
		if i < 0 {
			return
		}
		c := &n.counts[i]
		if _, listed := n.finds[k]; listed {
			delete(n.finds, k)
			c.rejectsListed--
			return
		}
		if c.rejectsMore--; c.rejectsMore == 0 {
			delete(n.finds, FindingKey{Kind: FindRejectMore, Network: k.Network})
		}
		return
	}
	delete(n.finds, k)
}

// addReject lists f, or counts it once MaxRejectsListed of its network are.
func (n *Node) addReject(f Finding) {
	i := n.netIndex(f.Network)
	if i < 0 {
		return
	}
	c := &n.counts[i]
	if _, listed := n.finds[f.Key()]; listed {
		return
	}
	if c.rejectsListed < MaxRejectsListed {
		c.rejectsListed++
		n.finds[f.Key()] = f
		n.fresh = append(n.fresh, f)
		return
	}
	if c.rejectsMore++; c.rejectsMore == 1 {
		more := Finding{Kind: FindRejectMore, Level: slog.LevelWarn, Network: f.Network,
			Msg: fmt.Sprintf("not routing more than %d addresses of network %s (outside its ranges, the gateway, node addresses, not unicast, or answered for by the node's routes); the others are not listed one by one",
				MaxRejectsListed, f.Network)}
		n.finds[more.Key()] = more
		n.fresh = append(n.fresh, more)
	}
}

// netIndex is the index of the network called name, -1 if none.
func (n *Node) netIndex(name string) int {
	for i, nw := range n.in.Networks {
		if nw.Name == name {
			return i
		}
	}
	return -1
}

// Status is every network's status now, with the addresses missing a
// route, stale or in conflict listed. Listing them costs a look at every
// address when there are any: it is for one-shot readers (Compute); the
// daemon reports Summary after each pass.
func (n *Node) Status() []NetStatus {
	out := make([]NetStatus, len(n.in.Networks))
	lists := false
	for i, nw := range n.in.Networks {
		st := NetStatus{Name: nw.Name, Master: nw.Master, Shim: nw.Shim, Source: nw.Source, Held: n.held[i]}
		st.ShimUp, st.Waiting = n.shimState(nw)
		c := n.counts[i]
		st.Allocated, st.Routed = c.allocated, c.routed
		lists = lists || c.missing+c.stale+c.conflicts > 0
		out[i] = st
	}
	if !lists {
		return out
	}
	for ip, d := range n.decided {
		if d.net < 0 || int(d.net) >= len(out) {
			continue
		}
		st := &out[d.net]
		switch d.class {
		case classMissing:
			st.Missing = append(st.Missing, ip)
		case classStale:
			st.Stale = append(st.Stale, ip)
		case classConflict:
			st.Conflicts = append(st.Conflicts, ip)
		}
	}
	for i := range out {
		for _, l := range [][]netip.Addr{out[i].Missing, out[i].Stale, out[i].Conflicts} {
			slices.SortFunc(l, netip.Addr.Compare)
		}
	}
	return out
}

// NetSummary is a network's status in numbers, what the daemon reports
// after every pass: it costs the same however many pods there are.
type NetSummary struct {
	Name, Master, Shim string
	Waiting            string // as NetStatus.Waiting
	Routed             int
	NotRouted          int // allocations missing their route or taken by a foreign one
	Held               bool
}

// Summary is every network's status in numbers.
func (n *Node) Summary() []NetSummary {
	out := make([]NetSummary, len(n.in.Networks))
	for i, nw := range n.in.Networks {
		c := n.counts[i]
		_, waiting := n.shimState(nw)
		out[i] = NetSummary{Name: nw.Name, Master: nw.Master, Shim: nw.Shim, Waiting: waiting,
			Routed: c.routed, NotRouted: c.missing + c.conflicts, Held: n.held[i]}
	}
	return out
}

// shimState is whether nw's shim is up, and why nw cannot be mirrored.
func (n *Node) shimState(nw Network) (up bool, waiting string) {
	if nw.Unusable != "" {
		return false, nw.Unusable
	}
	sc := n.shims[nw.Shim]
	return sc.up, sc.waiting
}

// Findings are the findings that hold now, in a fixed order.
func (n *Node) Findings() []Finding {
	out := slices.Collect(maps.Values(n.finds))
	slices.SortFunc(out, compareFindings)
	return out
}

// TakeFresh returns the findings that appeared since it was last called,
// in a fixed order: those to log.
func (n *Node) TakeFresh() []Finding {
	out := n.fresh
	n.fresh = nil
	// A finding that appeared and went again in between is not news.
	out = slices.DeleteFunc(out, func(f Finding) bool { _, ok := n.finds[f.Key()]; return !ok })
	slices.SortFunc(out, compareFindings)
	return out
}

// opBuckets gathers route ops in the order Apply wants them: additions,
// then deletions, then neighbour flushes, each in the order of the
// addresses decided (by address: map order is random, plans are not). A
// nil *opBuckets takes nothing.
type opBuckets struct{ adds, dels, flushes []Op }

func (b *opBuckets) add(op Op) {
	if b != nil {
		b.adds = append(b.adds, op)
	}
}

func (b *opBuckets) del(op Op) {
	if b != nil {
		b.dels = append(b.dels, op)
	}
}

func (b *opBuckets) flush(op Op) {
	if b != nil {
		b.flushes = append(b.flushes, op)
	}
}

// appendTo appends the ops, in order, to ops.
func (b *opBuckets) appendTo(ops []Op) []Op {
	if len(ops) == 0 && len(b.dels) == 0 && len(b.flushes) == 0 {
		return b.adds // the usual big plan, a start's: no copy
	}
	return slices.Concat(ops, b.adds, b.dels, b.flushes)
}
