package reconcile

import (
	"cmp"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
)

// Resolve turns the configuration and the discovered CNI networks into the
// networks to mirror, every default filled in:
//
//   - with [[network]] entries in flatnet.toml, exactly those, each taking
//     what it leaves out from the CNI network of the same name;
//   - without, every discovered macvlan + host-local network;
//   - master: the config's, else the CNI config's, else the NIC of the
//     default route (the macvlan plugin's own rule);
//   - shim: the config's, else [ShimName] of the master;
//   - state dir: the config's, else the CNI config's dataDir/<name>, else
//     state_root/<name>;
//   - ranges: the config's CIDRs (keeping host-local's gateways inside them),
//     else host-local's ranges.
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
	if len(cfg.Networks) > 0 {
		for _, c := range cfg.Networks {
			cn, found := byName[c.Name]
			n := Network{Name: c.Name, Master: c.Master, Shim: c.Shim, StateDir: c.StateDir,
				Source: fmt.Sprintf("%s:%d", cmp.Or(filepath.Base(cfg.Path), "flatnet.toml"), c.Line)}
			for _, p := range c.Ranges {
				n.Ranges = append(n.Ranges, withGateway(hostlocal.RangeFromPrefix(p), cn.Ranges))
			}
			add(n, cn, found)
		}
		return out, finds
	}
	for _, cn := range discovered {
		if byName[cn.Name].File != cn.File {
			continue // a later duplicate
		}
		add(Network{Name: cn.Name, Source: cn.File}, cn, true)
	}
	return out, finds
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
