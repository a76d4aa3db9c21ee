package reconcile

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
)

// Resolve turns the configuration and the discovered CNI networks (from the
// configuration directory and libcni's cache) into the networks to mirror,
// every default filled in:
//
//   - every discovered macvlan + host-local network, unless discover =
//     false; a [[network]] table overrides the discovered network of its
//     name (what the table sets wins, what it leaves out comes from the
//     discovered one) or adds a network;
//   - master: the config's, else the CNI config's, else the NIC of the
//     default route (the macvlan plugin's own rule);
//   - shim: the config's, else [ShimName] of the master;
//   - state dir: the config's, else the CNI config's dataDir/<name>, else
//     state_root/<name>;
//   - ranges: the config's CIDRs, each in the subnet it is a pool of
//     (tableRange), else host-local's ranges.
//
// Networks that cannot be mirrored are left out with a finding.
func Resolve(cfg config.Config, discovered []cni.Network, snap *Snapshot) ([]Network, []Finding) {
	var out []Network
	var finds []Finding
	byName := map[string]cni.Network{}
	for _, n := range discovered {
		if _, dup := byName[n.Name]; !dup {
			byName[n.Name] = n
		}
	}
	defaultDev := snap.DefaultRouteDev()
	add := func(n Network, cn cni.Network, found bool) {
		if n.Master == "" && found {
			n.Master = cn.Master
		}
		n.Master = cmp.Or(n.Master, defaultDev)
		if n.Shim == "" && n.Master != "" {
			n.Shim = ShimName(n.Master)
		}
		if n.StateDir == "" {
			root := cfg.StateRoot
			if found && cn.DataDir != "" {
				root = cn.DataDir
			}
			n.StateDir = filepath.Join(root, n.Name)
		}
		if len(n.Ranges) == 0 && found {
			n.Ranges = cn.Ranges
		}
		if found && cn.Mode != "" && cn.Mode != "bridge" {
			// Only bridge mode passes traffic between macvlans of one
			// master; in any other the shim could never reach the pods.
			n.Unusable = fmt.Sprintf("macvlan mode %s in %s: the node cannot reach these pods through a shim; use \"mode\": \"bridge\"", cn.Mode, cn.File)
			finds = append(finds, Finding{Kind: FindMode, Level: slog.LevelError, Network: n.Name, Msg: fmt.Sprintf("network %s: %s", n.Name, n.Unusable)})
		}
		if len(n.Ranges) == 0 {
			finds = append(finds, Finding{Kind: FindNoRanges, Level: slog.LevelError, Network: n.Name,
				Msg: fmt.Sprintf("network %s (%s) has no address ranges: set ranges in flatnet.toml or define it in the CNI config", n.Name, n.Source)})
			return
		}
		if n.Shim == "" {
			// No master yet: keep the network so its status says why it waits.
			n.Shim = "(no master)"
		}
		for _, o := range out {
			if o.Shim == n.Shim && o.Master != n.Master {
				finds = append(finds, Finding{Kind: FindShimClash, Level: slog.LevelError, Network: n.Name,
					Msg: fmt.Sprintf("network %s wants shim %s on %s, but network %s uses that name on %s: give one a different shim", n.Name, n.Shim, n.Master, o.Name, o.Master)})
				return
			}
		}
		out = append(out, n)
	}
	// Each [[network]] table overrides the discovered network of its name,
	// or adds one; with discover = false the tables are all there is (the
	// discovered networks still fill in what they leave out).
	tables := map[string]config.Network{}
	for _, c := range cfg.Networks {
		tables[c.Name] = c
	}
	fromTable := func(c config.Network, cn cni.Network, found bool) Network {
		n := Network{Name: c.Name, Master: c.Master, Shim: c.Shim, StateDir: c.StateDir,
			Source: fmt.Sprintf("%s:%d", cmp.Or(filepath.Base(cfg.Path), "flatnet.toml"), c.Line)}
		master := cmp.Or(c.Master, cn.Master, defaultDev)
		lan, _ := snap.Link(master)
		for _, p := range c.Ranges {
			n.Ranges = append(n.Ranges, tableRange(p, cn.Ranges, lan.Addrs))
		}
		return n
	}
	if cfg.Discover {
		for _, cn := range discovered {
			if byName[cn.Name].File != cn.File {
				continue // a later duplicate
			}
			if c, ok := tables[cn.Name]; ok {
				add(fromTable(c, cn, true), cn, true)
				continue
			}
			add(Network{Name: cn.Name, Source: cn.File}, cn, true)
		}
	}
	for _, c := range cfg.Networks {
		cn, found := byName[c.Name]
		if found && cfg.Discover {
			continue // overrode it above, in discovery's order
		}
		add(fromTable(c, cn, found), cn, found)
	}
	return out, finds
}

// tableRange is a [[network]] table's CIDR p as a range: only addresses
// inside p are routed, but its subnet is the one p lies in, when p is a
// pool inside a larger subnet (the LAN's: a network's host-local range, or
// else an address of the master's), so that it is judged like a
// discovered range (its node, its gateway, which of the node's IPv6
// addresses pods reach on-link); host-local's gateway is kept out of it.
func tableRange(p netip.Prefix, hl []hostlocal.Range, lan []netip.Prefix) hostlocal.Range {
	r := hostlocal.RangeFromPrefix(p)
	wider := netip.Prefix{}
	for _, h := range hl {
		if h.Subnet.Bits() < p.Bits() && h.Subnet.Contains(p.Addr()) {
			wider = h.Subnet
			break
		}
	}
	if !wider.IsValid() {
		for _, a := range lan {
			if a.Masked().Bits() < p.Bits() && a.Masked().Contains(p.Addr()) {
				wider = a.Masked()
				break
			}
		}
	}
	if wider.IsValid() {
		// Every address of the pool, the subnet's first and last excepted
		// (hostlocal.Reject knows them).
		r = hostlocal.Range{Subnet: wider, Start: p.Masked().Addr(), End: hostlocal.RangeFromPrefix(p).End}
		if p.Addr().Is4() {
			r.End = r.End.Next() // the pool's last address is not the subnet's broadcast
		}
	}
	return withGateway(r, hl)
}

// withGateway gives r the gateway of the host-local range it overlaps, so
// that narrowing the ranges in flatnet.toml never makes the gateway
// routable.
func withGateway(r hostlocal.Range, hl []hostlocal.Range) hostlocal.Range {
	for _, h := range hl {
		if h.Gateway.IsValid() && r.Subnet.Contains(h.Gateway) {
			r.Gateway = h.Gateway
		}
	}
	return r
}
