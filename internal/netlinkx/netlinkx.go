// Package netlinkx is flatnet's adapter to the kernel: it reads snapshots
// and carries out [reconcile.Op]s over rtnetlink, and turns the kernel's
// link, address and route notifications into wake-ups. All of it works in
// the network namespace the process runs in.
//
// What we learned of netlink and vishvananda/netlink:
//
//   - A dump can be interrupted by a concurrent change (NLM_F_DUMP_INTR);
//     the library then returns ErrDumpInterrupted with partial results. We
//     retry the dump a few times, as containernetworking's netlinksafe does.
//   - Deleting a route with RTM_DELROUTE matches on the protocol only when
//     the request carries one, so every delete sets [reconcile.Protocol]:
//     a foreign route to the same address can never be removed by mistake.
//   - Setting a macvlan admin-down flushes every IPv4 route through it; a
//     deleted master takes its macvlans with it. Both show up as link and
//     route notifications, which wake the reconciler.
//   - A subscription's channel is closed when its socket fails (ENOBUFS
//     after a burst the reader did not keep up with): notifications were
//     lost, so the caller must subscribe again and do a full resync.
package netlinkx

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernel reads and changes the kernel's links and routes.
type Kernel struct {
	h *netlink.Handle
	// index caches link indexes by name from the last snapshot, so that
	// applying thousands of route ops does not cost a link lookup each.
	// A stale entry makes an op fail and the next pass mend it.
	index map[string]int
	// batchFD is the rtnetlink socket of DoBatch, opened on first use;
	// sbuf and rbuf its request and answer buffers, kept between calls
	// (a pod coming or going is one DoBatch: it should not cost 64 KiB of
	// garbage).
	batchFD    int
	sbuf, rbuf []byte
	// sysctlRoot is /proc/sys/net; a variable for tests.
	sysctlRoot string
}

// New opens a netlink handle in the current network namespace.
func New() (*Kernel, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	return &Kernel{h: h, sysctlRoot: "/proc/sys/net", index: map[string]int{}}, nil
}

// Close releases the netlink socket.
func (k *Kernel) Close() {
	k.h.Close()
	if k.batchFD != 0 {
		unix.Close(k.batchFD)
	}
}

// retry runs a dump until it is not interrupted by a concurrent change.
func retry(f func() error) error {
	var err error
	for range 5 {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

// linkOf is what a link dump says of l, before the sysctls and proxy
// entries Snapshot adds for a macvlan. The master's permanent address
// (PermMAC) is what the shim's MAC derives from on a node without a
// machine id (reconcile.ShimSeed).
func linkOf(l netlink.Link) reconcile.Link {
	a := l.Attrs()
	return reconcile.Link{
		Index: a.Index, Name: a.Name, Kind: l.Type(), ParentIndex: a.ParentIndex,
		Up: a.Flags&net.FlagUp != 0, LowerUp: a.RawFlags&unix.IFF_LOWER_UP != 0,
		MTU: a.MTU, MAC: a.HardwareAddr, PermMAC: a.PermHWAddr, Alias: a.Alias,
	}
}

// Snapshot reads every link, every address and the main routing table.
func (k *Kernel) Snapshot() (*reconcile.Snapshot, error) {
	s := &reconcile.Snapshot{}
	names, err := k.readLinks(s)
	if err != nil {
		return nil, err
	}
	if err := k.readAddrs(s); err != nil {
		return nil, err
	}
	if s.Filter, err = readFilter(); err != nil {
		return nil, err
	}
	if s.Probes, err = readProbes(); err != nil {
		return nil, err
	}
	if err := k.readRoutes(s, names); err != nil {
		return nil, err
	}
	s.ARPIgnoreAll = k.ARPIgnoreAll()
	return s, nil
}

// ARPIgnoreAll reads net.ipv4.conf.all.arp_ignore: whether it is set (not
// 0). A sysctl write makes no event, so the daemon also reads it on its
// watchdog's tick, a wake-up it has anyway.
func (k *Kernel) ARPIgnoreAll() bool {
	v := k.sysctl("ipv4", "all", "arp_ignore")
	return v != "" && v != "0"
}

// readLinks reads every link into s, a macvlan's sysctls and proxy
// entries with it, and caches their indexes by name. It returns the links'
// names by index, for the routes.
func (k *Kernel) readLinks(s *reconcile.Snapshot) (map[int]string, error) {
	var links []netlink.Link
	if err := retry(func() (err error) { links, err = k.h.LinkList(); return err }); err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	names := make(map[int]string, len(links))
	k.index = make(map[string]int, len(links))
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		k.index[a.Name] = a.Index
		rl := linkOf(l)
		if m, ok := l.(*netlink.Macvlan); ok {
			if err := k.readMacvlan(s, &rl, m); err != nil {
				return nil, err
			}
		} else {
			rl.ParentIndex = 0
		}
		s.Links = append(s.Links, rl)
	}
	return names, nil
}

// readMacvlan fills in rl, the macvlan m, with its mode and sysctls, and
// adds its IPv6 proxy entries to s.
func (k *Kernel) readMacvlan(s *reconcile.Snapshot, rl *reconcile.Link, m *netlink.Macvlan) error {
	a := m.Attrs()
	rl.MacvlanMode = macvlanModes[m.Mode]
	rl.ARPFilter = k.sysctl("ipv4", a.Name, "arp_filter") == "1"
	ignore := k.sysctl("ipv4", a.Name, "arp_ignore")
	rl.ARPIgnore = ignore != "" && ignore != "0"
	rl.ARPAnnounce, _ = strconv.Atoi(k.sysctl("ipv4", a.Name, "arp_announce"))
	// With IPv6 off on the node there is nothing to set.
	rl.ProxyNDP = k.sysctlOr("ipv6", a.Name, "proxy_ndp", "1") == "1" && k.sysctlOr("ipv6", a.Name, "forwarding", "1") == "1"
	rl.ProxyDelay0 = k.sysctlAt(filepath.Join(k.sysctlRoot, "ipv6", "neigh", a.Name, "proxy_delay"), "0") == "0"
	var proxies []netlink.Neigh
	if err := retry(func() (err error) { proxies, err = k.h.NeighProxyList(a.Index, netlink.FAMILY_V6); return err }); err != nil {
		return fmt.Errorf("listing proxy neighbours of %s: %w", a.Name, err)
	}
	for _, n := range proxies {
		if ip, ok := netip.AddrFromSlice(n.IP); ok {
			s.Proxies = append(s.Proxies, reconcile.Proxy{Dev: a.Name, IP: ip})
		}
	}
	return nil
}

// readAddrs reads every address into s: all of them into s.Addrs, and
// each link's of global scope, and whether it holds
// [reconcile.SenderAddr], into its Link.
func (k *Kernel) readAddrs(s *reconcile.Snapshot) error {
	var addrs []netlink.Addr
	if err := retry(func() (err error) { addrs, err = k.h.AddrList(nil, netlink.FAMILY_ALL); return err }); err != nil {
		return fmt.Errorf("listing addresses: %w", err)
	}
	byLink := map[int][]netip.Prefix{}
	sender := map[int]bool{}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && a.IPNet != nil {
			ones, _ := a.Mask.Size()
			p := netip.PrefixFrom(ip.Unmap(), ones)
			s.Addrs = append(s.Addrs, p.Addr())
			if a.Scope == unix.RT_SCOPE_UNIVERSE {
				byLink[a.LinkIndex] = append(byLink[a.LinkIndex], p)
			}
			if p == reconcile.SenderAddr {
				sender[a.LinkIndex] = true
			}
		}
	}
	for i := range s.Links {
		s.Links[i].Addrs = byLink[s.Links[i].Index]
		s.Links[i].Sender = sender[s.Links[i].Index]
	}
	return nil
}

// readRoutes reads the routes of every table but local into s: the main
// table's routes, and every table's next hops, which flatnet never routes
// to a shim (reconcile.Refusal). names are the links' names by index.
func (k *Kernel) readRoutes(s *reconcile.Snapshot, names map[int]string) error {
	err := retry(func() error {
		s.Routes, s.NextHops = s.Routes[:0], s.NextHops[:0]
		return k.h.RouteListFilteredIter(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
			if r.Table == unix.RT_TABLE_LOCAL {
				return true
			}
			rr := convertRoute(r, names)
			if r.Table == unix.RT_TABLE_MAIN {
				s.Routes = append(s.Routes, rr)
			}
			for _, g := range rr.Gateways {
				s.NextHops = append(s.NextHops, reconcile.NextHop{Addr: g, Route: rr, Table: r.Table})
			}
			return true
		})
	})
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	return nil
}

// convertRoute keeps what the reconciler needs of a route.
func convertRoute(r netlink.Route, names map[int]string) reconcile.Route {
	out := reconcile.Route{Dev: names[r.LinkIndex], Protocol: int(r.Protocol), Priority: r.Priority, Type: routeTypes[r.Type]}
	addGW := func(ip net.IP, via netlink.Destination) {
		if a, ok := netip.AddrFromSlice(ip); ok && !a.IsUnspecified() {
			out.Gateways = append(out.Gateways, a.Unmap())
		}
		if v, ok := via.(*netlink.Via); ok && v != nil {
			if a, ok := netip.AddrFromSlice(v.Addr); ok {
				out.Gateways = append(out.Gateways, a.Unmap())
			}
		}
	}
	addGW(r.Gw, r.Via)
	for _, nh := range r.MultiPath {
		addGW(nh.Gw, nh.Via)
	}
	if src, ok := netip.AddrFromSlice(r.Src); ok {
		out.Src = src.Unmap()
	}
	if r.Dst != nil {
		ip, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		out.Dst = netip.PrefixFrom(ip.Unmap(), ones)
	} else if r.Family == unix.AF_INET6 {
		out.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	} else {
		out.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return out
}

// routeTypes names the route types other than unicast, as ip(8) does.
var routeTypes = map[int]string{
	unix.RTN_LOCAL:       "local",
	unix.RTN_BROADCAST:   "broadcast",
	unix.RTN_ANYCAST:     "anycast",
	unix.RTN_MULTICAST:   "multicast",
	unix.RTN_BLACKHOLE:   "blackhole",
	unix.RTN_UNREACHABLE: "unreachable",
	unix.RTN_PROHIBIT:    "prohibit",
	unix.RTN_THROW:       "throw",
	unix.RTN_NAT:         "nat",
}

var macvlanModes = map[netlink.MacvlanMode]string{
	netlink.MACVLAN_MODE_DEFAULT:  "vepa", // the kernel's default
	netlink.MACVLAN_MODE_PRIVATE:  "private",
	netlink.MACVLAN_MODE_VEPA:     "vepa",
	netlink.MACVLAN_MODE_BRIDGE:   "bridge",
	netlink.MACVLAN_MODE_PASSTHRU: "passthru",
	netlink.MACVLAN_MODE_SOURCE:   "source",
}

func (k *Kernel) sysctlPath(family, dev, key string) string {
	return filepath.Join(k.sysctlRoot, family, "conf", dev, key)
}

func (k *Kernel) sysctl(family, dev, key string) string {
	return k.sysctlAt(k.sysctlPath(family, dev, key), "")
}

// sysctlOr is sysctl, or missing when the key does not exist (IPv6 off).
func (k *Kernel) sysctlOr(family, dev, key, missing string) string {
	return k.sysctlAt(k.sysctlPath(family, dev, key), missing)
}

// sysctlAt reads the sysctl file at path: missing when it does not exist,
// "" when it cannot be read.
func (k *Kernel) sysctlAt(path, missing string) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return missing
	}
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Do carries out one op.
func (k *Kernel) Do(op reconcile.Op) error {
	switch op.Kind {
	case reconcile.AddShim:
		return k.addShim(op)
	case reconcile.DelShim:
		l, err := k.h.LinkByName(op.Dev)
		if err != nil {
			return ignoreNotFound(err)
		}
		return ignoreNotFound(k.h.LinkDel(l))
	case reconcile.ConfigureShim:
		return k.configureShim(op.Dev, op.Guard)
	case reconcile.AddSender, reconcile.DelSender:
		return k.sender(op.Dev, op.Kind == reconcile.AddSender)
	case reconcile.SetFilter:
		return setFilter(op.Drops, op.Shims)
	case reconcile.SetProbe:
		return setProbes(op.Shims)
	case reconcile.SetUp:
		l, err := k.h.LinkByName(op.Dev)
		if err != nil {
			return err
		}
		return k.h.LinkSetUp(l)
	case reconcile.SetMTU:
		l, err := k.h.LinkByName(op.Dev)
		if err != nil {
			return err
		}
		return k.h.LinkSetMTU(l, op.MTU)
	case reconcile.AddRoute, reconcile.ReplaceRoute, reconcile.DelRoute:
		return k.DoBatch([]reconcile.Op{op})[0]
	case reconcile.AddProxy, reconcile.DelProxy:
		return k.proxy(op)
	case reconcile.FlushNeighs:
		return k.flushNeighs(op.Dev)
	case reconcile.FlushNeigh:
		idx, err := k.linkIndex(op.Dev)
		if err != nil {
			return ignoreNotFound(err)
		}
		n := &netlink.Neigh{LinkIndex: idx, IP: op.Dst.Addr().AsSlice()}
		return ignoreNotFound(k.h.NeighDel(n))
	}
	return fmt.Errorf("unknown op %d", op.Kind)
}

// addShim makes the shim op.Dev, a bridge-mode macvlan on op.Master with
// op's MTU and MAC, marks it as flatnet's, configures it for op's guard
// (its sysctls, and the sender address with GuardAddress), and only then
// sets it up.
func (k *Kernel) addShim(op reconcile.Op) error {
	master, err := k.h.LinkByName(op.Master)
	if err != nil {
		return fmt.Errorf("finding master: %w", err)
	}
	mv := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{
			Name: op.Dev, ParentIndex: master.Attrs().Index, MTU: op.MTU,
			HardwareAddr: op.MAC,
		},
		Mode: netlink.MACVLAN_MODE_BRIDGE,
	}
	if err := k.h.LinkAdd(mv); err != nil {
		return err
	}
	if l, err := k.h.LinkByName(op.Dev); err == nil {
		k.index[op.Dev] = l.Attrs().Index
	}
	// RTM_NEWLINK ignores IFLA_IFALIAS; only a change sets it.
	if err := k.h.LinkSetAlias(mv, reconcile.ShimAlias); err != nil {
		return fmt.Errorf("marking the shim as flatnet's: %w", err)
	}
	if err := k.configureShim(op.Dev, op.Guard); err != nil {
		return err
	}
	if op.Guard == reconcile.GuardAddress {
		if err := k.sender(op.Dev, true); err != nil {
			return err
		}
	}
	return k.h.LinkSetUp(mv)
}

// proxy adds (AddProxy) or deletes the IPv6 proxy neighbour entry for
// op.Dst on op.Dev.
func (k *Kernel) proxy(op reconcile.Op) error {
	idx, err := k.linkIndex(op.Dev)
	if err != nil {
		return err
	}
	n := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V6, Flags: netlink.NTF_PROXY, IP: op.Dst.Addr().AsSlice()}
	if op.Kind == reconcile.AddProxy {
		return k.h.NeighSet(n)
	}
	return ignoreNotFound(k.h.NeighDel(n))
}

// flushNeighs deletes the neighbour entries of dev that the kernel learnt
// or is still resolving; permanent and proxy entries stay.
func (k *Kernel) flushNeighs(dev string) error {
	l, err := k.h.LinkByName(dev)
	if err != nil {
		return ignoreNotFound(err)
	}
	var ns []netlink.Neigh
	if err := retry(func() (err error) { ns, err = k.h.NeighList(l.Attrs().Index, netlink.FAMILY_ALL); return err }); err != nil {
		return fmt.Errorf("listing neighbours of %s: %w", dev, err)
	}
	var errs []error
	for _, n := range ns {
		if n.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0 || n.Flags&netlink.NTF_PROXY != 0 {
			continue
		}
		if err := k.h.NeighDel(&n); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// configureShim sets the shim's sysctls. arp_filter: the shim answers ARP
// only from peers the node routes through it (the pods), so the LAN never
// learns the shim's MAC for the node's addresses, while pods still can.
// arp_ignore 0: a new device inherits default.arp_ignore, with which the
// address-less shim would answer no ARP at all.
// proxy_ndp and forwarding: the kernel answers pods' neighbour
// solicitations for the node's IPv6 addresses on the shim (see
// reconcile.planProxies); per-device forwarding changes nothing else than
// that the shim behaves as a router's interface (no autoconfiguration from
// router advertisements on it).
// accept_dad 0: the shim's link-local address is usable from the moment
// the shim is up. The node's solicitations for pods leave the shim from
// that address (the node has no other on the shim), and while it is
// tentative the kernel sends none at all: a packet to a pod made in the
// first one to two seconds of a new shim waited for the neighbour timer's
// retry, a second later. The address comes from the shim's MAC, which is
// the node's own (reconcile.ShimMAC), so its duplicate address detection
// guards against nothing the MAC would not already break; without it the
// shim also sends the LAN one frame fewer. It is set before the shim
// goes up (addShim); a shim adopted already up has passed it.
// Then what the guard adds: with the egress filter or the shim guard,
// proxy_delay 0, so the proxy answers pods at once (its answers to the LAN
// are dropped on the master's egress, or the LAN's solicitations on the
// shim's ingress); with the shim's own address, arp_announce 2, so its ARP
// requests name that address and never the node's.
func (k *Kernel) configureShim(dev string, g reconcile.Guard) error {
	type setting struct{ path, value string }
	conf := func(family, key, value string) setting { return setting{k.sysctlPath(family, dev, key), value} }
	set := []setting{conf("ipv4", "arp_filter", "1"), conf("ipv4", "arp_ignore", "0"), conf("ipv6", "proxy_ndp", "1"), conf("ipv6", "forwarding", "1"), conf("ipv6", "accept_dad", "0")}
	switch g {
	case reconcile.GuardFilter, reconcile.GuardShim:
		set = append(set, setting{filepath.Join(k.sysctlRoot, "ipv6", "neigh", dev, "proxy_delay"), "0"})
	case reconcile.GuardAddress:
		set = append(set, conf("ipv4", "arp_announce", "2"))
	}
	for _, s := range set {
		if err := os.WriteFile(s.path, []byte(s.value), 0o644); err != nil {
			if strings.Contains(s.path, "/ipv6/") && errors.Is(err, os.ErrNotExist) {
				continue // IPv6 disabled on this node
			}
			return fmt.Errorf("setting %s: %w", strings.TrimPrefix(s.path, k.sysctlRoot+"/"), err)
		}
	}
	return nil
}

// sender adds (or deletes) reconcile.SenderAddr on dev, scope link.
func (k *Kernel) sender(dev string, add bool) error {
	idx, err := k.linkIndex(dev)
	if err != nil {
		return err
	}
	p := reconcile.SenderAddr
	a := &netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)},
		Scope: int(netlink.SCOPE_LINK),
	}
	l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx, Name: dev}}
	if add {
		if err := k.h.AddrReplace(l, a); err != nil {
			return fmt.Errorf("adding %s to %s: %w", p, dev, err)
		}
		return nil
	}
	if err := k.h.AddrDel(l, a); err != nil && !isNotFound(err) && !errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("removing %s from %s: %w", p, dev, err)
	}
	return nil
}

// linkIndex is the index of the link called name.
func (k *Kernel) linkIndex(name string) (int, error) {
	if idx, ok := k.index[name]; ok {
		return idx, nil
	}
	l, err := k.h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("finding %s: %w", name, err)
	}
	k.index[name] = l.Attrs().Index
	return l.Attrs().Index, nil
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENODEV)
}

func ignoreNotFound(err error) error {
	if err != nil && isNotFound(err) {
		return nil
	}
	return err
}
