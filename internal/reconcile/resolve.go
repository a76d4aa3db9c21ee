package reconcile

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
)

// Resolve turns the configuration and the discovered CNI networks (from the
// configuration directory and libcni's cache, cni.Discovery) into the
// networks to mirror, every default filled in:
//
//   - every discovered macvlan network, unless discover = false; a
//     [[network]] table overrides the discovered network of its name (what
//     the table sets wins, what it leaves out comes from the discovered
//     one) or adds a network;
//   - master: the config's, else the CNI config's, else the NIC of the
//     default route (the macvlan plugin's own rule); a master that is
//     itself a macvlan stands for its own master, where the kernel puts
//     the pods' macvlans too;
//   - shim: the config's, else [ShimName] of the master;
//   - state dir: the config's, else the CNI config's dataDir/<name>, else
//     state_root/<name>;
//   - ranges: the config's CIDRs, each in the subnet it is a pool of
//     (tableRange), else host-local's ranges.
//
// A network only libcni's cache defines is a Tenant's (docs/security.md):
// it is not mirrored when its state directory is another network's or
// one of flatnet's inputs (state_root itself, the CNI configuration
// directory, a cache directory), and it gets the ranges root's
// configuration gives other networks as Reserved. Networks that cannot be
// mirrored are left out with a finding.
func Resolve(cfg config.Config, d cni.Discovery, snap *Snapshot) ([]Network, []Finding) {
	r := resolver{cfg: cfg, d: d, snap: snap, byName: map[string]cni.Network{}}
	for _, n := range d.Networks {
		if _, dup := r.byName[n.Name]; !dup {
			r.byName[n.Name] = n
		}
	}
	r.defaultDev = snap.DefaultRouteDev()
	// Each [[network]] table overrides the discovered network of its name,
	// or adds one; with discover = false the tables are all there is (the
	// discovered networks still fill in what they leave out).
	tables := map[string]config.Network{}
	for _, c := range cfg.Networks {
		tables[c.Name] = c
	}
	if cfg.Discover {
		for _, cn := range d.Networks {
			if r.byName[cn.Name].File != cn.File {
				continue // a later duplicate
			}
			if c, ok := tables[cn.Name]; ok {
				r.add(r.fromTable(c, cn), cn, true)
				continue
			}
			r.add(Network{Name: cn.Name, Source: cn.File, Tenant: cn.FromCache()}, cn, true)
		}
	}
	for _, c := range cfg.Networks {
		cn, found := r.byName[c.Name]
		if found && cfg.Discover {
			continue // overrode it above, in discovery's order
		}
		r.add(r.fromTable(c, cn), cn, found)
	}
	return confine(cfg, d.Claims, r.out, r.finds)
}

// resolver is Resolve's work: its inputs, and the networks and findings
// so far.
type resolver struct {
	cfg  config.Config
	d    cni.Discovery
	snap *Snapshot
	// byName holds the first discovered network of each name.
	byName     map[string]cni.Network
	defaultDev string
	out        []Network
	finds      []Finding
}

// fromTable is the network a [[network]] table defines; cn is the
// discovered network of its name, if any, whose ranges its CIDRs are
// pools of.
func (r *resolver) fromTable(c config.Network, cn cni.Network) Network {
	n := Network{Name: c.Name, Master: c.Master, Shim: c.Shim, StateDir: c.StateDir,
		Source: fmt.Sprintf("%s:%d", cmp.Or(filepath.Base(r.cfg.Path), "flatnet.toml"), c.Line)}
	master := cmp.Or(c.Master, cn.Master, r.defaultDev)
	lan, _ := r.snap.Link(master)
	for _, p := range c.Ranges {
		n.Ranges = append(n.Ranges, tableRange(p, cn.Ranges, lan.Addrs))
	}
	return n
}

// add fills in n's defaults from cn, the discovered network of its name
// when found, and adds it to the networks, or only a finding when it
// cannot be mirrored.
func (r *resolver) add(n Network, cn cni.Network, found bool) {
	if n.Master == "" && found {
		n.Master = cn.Master
	}
	n.Master = cmp.Or(n.Master, r.defaultDev)
	if f, ok := lowerMaster(&n, r.snap); !ok {
		r.finds = append(r.finds, f)
		return
	} else if f.Kind != 0 {
		r.finds = append(r.finds, f)
	}
	r.fill(&n, cn, found)
	if found && cn.Mode != "" && cn.Mode != "bridge" {
		// Only bridge mode passes traffic between macvlans of one
		// master; in any other the shim could never reach the pods.
		n.Unusable = fmt.Sprintf("macvlan mode %s in %s: the node cannot reach these pods through a shim; use \"mode\": \"bridge\"", cn.Mode, cn.File)
		r.finds = append(r.finds, Finding{Kind: FindMode, Level: slog.LevelError, Network: n.Name, Msg: fmt.Sprintf("network %s: %s", n.Name, n.Unusable)})
	}
	if len(n.Ranges) == 0 && n.IPAM == "host-local" {
		r.finds = append(r.finds, Finding{Kind: FindNoRanges, Level: slog.LevelError, Network: n.Name,
			Msg: fmt.Sprintf("network %s (%s) has no address ranges: set ranges in flatnet.toml or define it in the CNI config", n.Name, n.Source)})
		return
	}
	if n.Shim == "" {
		// No master yet: keep the network so its status says why it waits.
		n.Shim = "(no master)"
	}
	for _, o := range r.out {
		if o.Shim == n.Shim && o.Master != n.Master {
			r.finds = append(r.finds, Finding{Kind: FindShimClash, Level: slog.LevelError, Network: n.Name,
				Msg: fmt.Sprintf("network %s wants shim %s on %s, but network %s uses that name on %s: give one a different shim", n.Name, n.Shim, n.Master, o.Name, o.Master)})
			return
		}
	}
	n.Refused = refusedIDs(r.d.Refused[n.Name])
	n.Gone = goneIDs(r.d.Attachments[n.Name])
	r.out = append(r.out, n)
}

// fill sets what n leaves out of its shim, IPAM, state directory and
// ranges: from cn, the discovered network of its name when found, or the
// defaults.
func (r *resolver) fill(n *Network, cn cni.Network, found bool) {
	if n.Shim == "" && n.Master != "" {
		n.Shim = ShimName(n.Master)
	}
	n.IPAM = "host-local" // a [[network]] table's own network: host-local's files, in its ranges
	if found {
		n.IPAM = cn.IPAM
	}
	if n.StateDir == "" && n.IPAM == "host-local" {
		root := r.cfg.StateRoot
		if found && cn.DataDir != "" {
			root = cn.DataDir
		}
		n.StateDir = filepath.Join(root, n.Name)
	}
	if len(n.Ranges) == 0 && found {
		n.Ranges = cn.Ranges
	}
}

// lowerMaster makes a master that is a macvlan (a shim of flatnet's among
// them) stand for its own master: the kernel puts a macvlan made on a
// macvlan on the lower device, so that is where the pods sit, and a shim
// made on a shim would be moved there at once and made again at every
// pass. It returns a finding to report (Kind 0: none), and false when the
// network cannot be mirrored.
func lowerMaster(n *Network, snap *Snapshot) (Finding, bool) {
	l, ok := snap.Link(n.Master)
	if !ok || l.Kind != "macvlan" && l.Kind != "macvtap" {
		return Finding{}, true
	}
	lower, ok := snap.LinkByIndex(l.ParentIndex)
	if !ok {
		return Finding{Kind: FindTrust, Level: slog.LevelWarn, Network: n.Name, Dir: n.Source,
			Msg: fmt.Sprintf("network %s (%s): its master %s is a %s whose own master is not on the node; not mirrored", n.Name, n.Source, n.Master, l.Kind)}, false
	}
	f := Finding{Kind: FindMaster, Level: slog.LevelInfo, Network: n.Name,
		Msg: fmt.Sprintf("network %s (%s): its master %s is a %s on %s; the kernel puts the pods' macvlans on %s, so the shim goes there too", n.Name, n.Source, n.Master, l.Kind, lower.Name, lower.Name)}
	n.Master = lower.Name
	return f, true
}

// refusedIDs are the container ids of as, sorted, once each.
func refusedIDs(as []cni.Attachment) []string {
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ContainerID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// goneIDs are the containers of the attachments of as whose network
// namespace is gone, sorted, once each.
func goneIDs(as []cni.Attachment) []string {
	var ids []string
	for _, a := range as {
		if a.Gone {
			ids = append(ids, a.ContainerID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// owner is a directory that is already someone's, for confine.
type owner struct {
	dir  string
	what string
	// tree: the whole tree under dir is taken, not just dir itself and
	// its ancestors.
	tree bool
}

// confine applies the rules for networks only libcni's cache defines: a
// state directory has one owner, and root's configuration owns first
// (claims, every network of the CNI configuration directory, whatever its
// plugins; root's networks; flatnet's own inputs); a Tenant network whose
// directory is, holds or lies in one already owned is left out, with a
// finding. Every Tenant network that stays gets the ranges root gives
// other networks as Reserved.
func confine(cfg config.Config, claims []cni.Claim, nets []Network, finds []Finding) ([]Network, []Finding) {
	var owners []owner
	var reserved []Reserved
	if cfg.StateRoot != "" {
		// A network's own directory lies in state_root: only the root
		// itself, or a directory holding it, is taken.
		owners = append(owners, owner{dir: filepath.Clean(cfg.StateRoot), what: "state_root, where host-local keeps every network's directory"})
	}
	if cfg.CNIConfDir != "" {
		owners = append(owners, owner{dir: filepath.Clean(cfg.CNIConfDir), what: "the CNI configuration directory", tree: true})
	}
	for _, c := range cfg.CNICacheDirs {
		owners = append(owners, owner{dir: filepath.Join(filepath.Clean(c), cni.CacheResultsDir), what: "libcni's cache " + c, tree: true})
	}
	for _, c := range claims {
		dirs := c.StateDirs
		if cfg.StateRoot != "" {
			dirs = append(slices.Clone(dirs), filepath.Join(cfg.StateRoot, c.Name))
		}
		for _, d := range dirs {
			owners = append(owners, owner{dir: filepath.Clean(d), what: fmt.Sprintf("network %s of %s (%s)", c.Name, c.File, strings.TrimPrefix(c.Kind(), "a ")), tree: true})
		}
		for _, r := range c.Ranges {
			reserved = append(reserved, Reserved{Range: r, Network: c.Name, Source: c.File})
		}
	}
	for _, n := range nets {
		if n.Tenant {
			continue
		}
		if n.StateDir != "" {
			owners = append(owners, owner{dir: filepath.Clean(n.StateDir), what: fmt.Sprintf("network %s of %s", n.Name, n.Source), tree: true})
		}
		for _, r := range n.Ranges {
			reserved = append(reserved, Reserved{Range: r, Network: n.Name, Source: n.Source})
		}
	}
	kept := nets[:0]
	for _, n := range nets {
		if !n.Tenant {
			kept = append(kept, n)
			continue
		}
		dir := filepath.Clean(n.StateDir)
		if o, taken := ownedBy(owners, dir); taken && n.StateDir != "" {
			finds = append(finds, Finding{Kind: FindTrust, Level: slog.LevelWarn, Network: n.Name, Dir: dir,
				Msg: fmt.Sprintf("network %s, defined only in libcni's cache (%s), keeps its allocations in %s, which is %s: not mirrored; a network from the cache cannot take another's state directory", n.Name, n.Source, dir, o.what)})
			continue
		}
		if n.StateDir != "" {
			owners = append(owners, owner{dir: dir, what: fmt.Sprintf("network %s of %s", n.Name, n.Source), tree: true})
		}
		for _, r := range reserved {
			if r.Network != n.Name && (len(n.Ranges) == 0 || slices.ContainsFunc(n.Ranges, func(x hostlocal.Range) bool { return overlap(x, r.Range) })) {
				n.Reserved = append(n.Reserved, r)
			}
		}
		kept = append(kept, n)
	}
	return kept, finds
}

// ownedBy returns the owner of dir, or of a directory dir holds or lies
// in.
func ownedBy(owners []owner, dir string) (owner, bool) {
	for _, o := range owners {
		if dir == o.dir || within(o.dir, dir) || o.tree && within(dir, o.dir) {
			return o, true
		}
	}
	return owner{}, false
}

// within reports whether path lies under dir.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// overlap reports whether two ranges share an address.
func overlap(a, b hostlocal.Range) bool {
	if a.Start.Is4() != b.Start.Is4() {
		return false
	}
	return a.Start.Compare(b.End) <= 0 && b.Start.Compare(a.End) <= 0
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

// Results are the leases of d's followed attachments, by network name
// (Input.Results): the addresses their cached results give the pods'
// interfaces, except those of attachments whose network namespace is gone.
func Results(d cni.Discovery) map[string]map[netip.Addr]Lease {
	out := make(map[string]map[netip.Addr]Lease, len(d.Attachments))
	for name, atts := range d.Attachments {
		m := map[netip.Addr]Lease{}
		for _, a := range atts {
			AddLeases(m, a)
		}
		if len(m) > 0 {
			out[name] = m
		}
	}
	return out
}

// AddLeases adds the addresses of attachment a to m, unless a is gone. An
// address already leased to another attachment keeps its lease.
func AddLeases(m map[netip.Addr]Lease, a cni.Attachment) (added []netip.Addr) {
	if a.Gone {
		return nil
	}
	for _, x := range a.Addrs {
		ip := x.Prefix.Addr()
		if _, taken := m[ip]; taken {
			continue
		}
		m[ip] = Lease{Owner: hostlocal.Owner{ContainerID: a.ContainerID, IfName: a.IfName}, Subnet: x.Prefix.Masked(), Gateway: x.Gateway}
		added = append(added, ip)
	}
	return added
}

// RemoveLeases takes the addresses of attachment a out of m, those leased
// to it.
func RemoveLeases(m map[netip.Addr]Lease, a cni.Attachment) (removed []netip.Addr) {
	for _, x := range a.Addrs {
		ip := x.Prefix.Addr()
		if l, ok := m[ip]; ok && l.Owner.ContainerID == a.ContainerID && l.Owner.IfName == a.IfName {
			delete(m, ip)
			removed = append(removed, ip)
		}
	}
	return removed
}
