package reconcile

import (
	"net/netip"
	"slices"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// Quick plans the route ops for just the addresses in only, exactly as
// Compute would plan them, for networks whose shim is up and right; it
// leaves everything else (shims, statuses, findings, addresses of held or
// waiting networks) to Compute. The daemon uses it to act on a pod that
// came or went before re-planning the whole node, which on a node with
// thousands of pods takes milliseconds.
func Quick(in Input, only []netip.Addr) []Op {
	snap := in.Snap
	idx := snap.hostRoutes()
	isNode := func(ip netip.Addr) bool { return slices.Contains(snap.Addrs, ip) }
	var adds, dels, flushes []Op
	for _, ip := range only {
		claimed := false
		for _, n := range in.Networks {
			ds, known := in.States[n.StateDir]
			if !known || ds.Err != nil {
				continue
			}
			owner, ok := ds.Allocs[ip]
			if !ok || hostlocal.Reject(ip, n.Ranges, isNode) != "" {
				continue
			}
			claimed = true
			master, ok := readyShim(n, snap)
			hr := idx[ip]
			if !ok || hr.foreign != nil {
				break // Compute's to decide and report
			}
			dst, src := hostPrefix(ip), routeSrc(master, ip)
			switch {
			case hr.ours != nil && hr.ours.Dev == n.Shim && hr.ours.Src == src:
				if in.Reused[ip] {
					flushes = append(flushes, Op{Kind: FlushNeigh, Dev: n.Shim, Dst: dst, Network: n.Name, Owner: owner})
				}
			case hr.ours != nil:
				adds = append(adds, Op{Kind: ReplaceRoute, Dev: n.Shim, Dst: dst, Src: src, Network: n.Name, Owner: owner})
			default:
				adds = append(adds, Op{Kind: AddRoute, Dev: n.Shim, Dst: dst, Src: src, Network: n.Name, Owner: owner})
			}
			break
		}
		hr := idx[ip]
		if claimed || hr.ours == nil || wanted(in, ip, hr.ours.Dev, isNode) {
			continue
		}
		op := Op{Kind: DelRoute, Dev: hr.ours.Dev, Dst: hr.ours.Dst, Owner: in.Released[ip]}
		if i := staleOwner(in.Networks, hr.ours.Dev, ip); i >= 0 {
			op.Network = in.Networks[i].Name
		}
		dels = append(dels, op)
		if op.Dev != "" {
			flushes = append(flushes, Op{Kind: FlushNeigh, Dev: op.Dev, Dst: op.Dst, Network: op.Network})
		}
	}
	for _, ops := range [][]Op{adds, dels, flushes} {
		slices.SortFunc(ops, func(a, b Op) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
	}
	return slices.Concat(adds, dels, flushes)
}

// readyShim reports whether n's shim is there, a bridge-mode macvlan on
// its master, up and configured: nothing for Compute to mend first. It
// returns the master.
func readyShim(n Network, snap *Snapshot) (Link, bool) {
	if n.Unusable != "" {
		return Link{}, false
	}
	master, ok := snap.Link(n.Master)
	if !ok {
		return Link{}, false
	}
	s, ok := snap.Link(n.Shim)
	return master, ok && s.Kind == "macvlan" && s.MacvlanMode == "bridge" && s.ParentIndex == master.Index && s.Up
}
