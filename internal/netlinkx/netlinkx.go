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
	// batchFD is the rtnetlink socket of DoBatch, opened on first use.
	batchFD int
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

// Snapshot reads every link, every address and the main routing table.
func (k *Kernel) Snapshot() (*reconcile.Snapshot, error) {
	s := &reconcile.Snapshot{}
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
		rl := reconcile.Link{
			Index: a.Index, Name: a.Name, Kind: l.Type(), ParentIndex: a.ParentIndex,
			Up: a.Flags&net.FlagUp != 0, LowerUp: a.RawFlags&unix.IFF_LOWER_UP != 0,
			MTU: a.MTU, MAC: a.HardwareAddr, Alias: a.Alias,
		}
		if m, ok := l.(*netlink.Macvlan); ok {
			rl.MacvlanMode = macvlanModes[m.Mode]
			rl.ARPFilter = k.sysctl("ipv4", a.Name, "arp_filter") == "1"
			ignore := k.sysctl("ipv4", a.Name, "arp_ignore")
			rl.ARPIgnore = ignore != "" && ignore != "0"
			rl.ProxyNDP = k.sysctl("ipv6", a.Name, "proxy_ndp") == "1" && k.sysctl("ipv6", a.Name, "forwarding") == "1"
			var proxies []netlink.Neigh
			if err := retry(func() (err error) { proxies, err = k.h.NeighProxyList(a.Index, netlink.FAMILY_V6); return err }); err != nil {
				return nil, fmt.Errorf("listing proxy neighbours of %s: %w", a.Name, err)
			}
			for _, n := range proxies {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					s.Proxies = append(s.Proxies, reconcile.Proxy{Dev: a.Name, IP: ip})
				}
			}
		} else {
			rl.ParentIndex = 0
		}
		s.Links = append(s.Links, rl)
	}
	var addrs []netlink.Addr
	if err := retry(func() (err error) { addrs, err = k.h.AddrList(nil, netlink.FAMILY_ALL); return err }); err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	byLink := map[int][]netip.Prefix{}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			s.Addrs = append(s.Addrs, ip.Unmap())
			if a.Scope == unix.RT_SCOPE_UNIVERSE && a.IPNet != nil {
				ones, _ := a.Mask.Size()
				byLink[a.LinkIndex] = append(byLink[a.LinkIndex], netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
	}
	for i := range s.Links {
		s.Links[i].Addrs = byLink[s.Links[i].Index]
	}
	err := retry(func() error {
		s.Routes = s.Routes[:0]
		return k.h.RouteListFilteredIter(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
			s.Routes = append(s.Routes, convertRoute(r, names))
			return true
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	return s, nil
}

// convertRoute keeps what the reconciler needs of a route.
func convertRoute(r netlink.Route, names map[int]string) reconcile.Route {
	out := reconcile.Route{Dev: names[r.LinkIndex], Protocol: int(r.Protocol), Priority: r.Priority}
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
	b, err := os.ReadFile(k.sysctlPath(family, dev, key))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Do carries out one op.
func (k *Kernel) Do(op reconcile.Op) error {
	switch op.Kind {
	case reconcile.AddShim:
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
		if err := k.configureShim(op.Dev); err != nil {
			return err
		}
		return k.h.LinkSetUp(mv)
	case reconcile.DelShim:
		l, err := k.h.LinkByName(op.Dev)
		if err != nil {
			return ignoreNotFound(err)
		}
		return ignoreNotFound(k.h.LinkDel(l))
	case reconcile.ConfigureShim:
		return k.configureShim(op.Dev)
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
		r, err := k.route(op)
		if err != nil || r == nil {
			return err
		}
		switch op.Kind {
		case reconcile.AddRoute:
			return k.h.RouteAdd(r)
		case reconcile.ReplaceRoute:
			return k.h.RouteReplace(r)
		default:
			return ignoreNotFound(k.h.RouteDel(r))
		}
	case reconcile.AddProxy, reconcile.DelProxy:
		idx, err := k.linkIndex(op.Dev)
		if err != nil {
			return err
		}
		n := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V6, Flags: netlink.NTF_PROXY, IP: op.Dst.Addr().AsSlice()}
		if op.Kind == reconcile.AddProxy {
			return k.h.NeighSet(n)
		}
		return ignoreNotFound(k.h.NeighDel(n))
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
func (k *Kernel) configureShim(dev string) error {
	for _, s := range []struct{ family, key, value string }{{"ipv4", "arp_filter", "1"}, {"ipv4", "arp_ignore", "0"}, {"ipv6", "proxy_ndp", "1"}, {"ipv6", "forwarding", "1"}} {
		if err := os.WriteFile(k.sysctlPath(s.family, dev, s.key), []byte(s.value), 0o644); err != nil {
			if s.family == "ipv6" && errors.Is(err, os.ErrNotExist) {
				continue // IPv6 disabled on this node
			}
			return fmt.Errorf("setting %s %s: %w", s.family, s.key, err)
		}
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
	return l.Attrs().Index, nil
}

// route builds the netlink route for a route op.
func (k *Kernel) route(op reconcile.Op) (*netlink.Route, error) {
	r := &netlink.Route{
		Dst:      &net.IPNet{IP: op.Dst.Addr().AsSlice(), Mask: net.CIDRMask(op.Dst.Bits(), op.Dst.Addr().BitLen())},
		Protocol: netlink.RouteProtocol(reconcile.Protocol),
		Table:    unix.RT_TABLE_MAIN,
	}
	if op.Dev != "" {
		idx, err := k.linkIndex(op.Dev)
		if err != nil {
			if op.Kind == reconcile.DelRoute && isNotFound(err) {
				return nil, nil // gone with its device
			}
			return nil, err
		}
		r.LinkIndex = idx
	}
	r.Scope = netlink.SCOPE_LINK
	if op.Src.IsValid() {
		r.Src = op.Src.AsSlice()
	}
	if op.Kind == reconcile.DelRoute {
		// The kernel matches a delete's scope unless it is RT_SCOPE_NOWHERE,
		// the wildcard `ip route del` sends too.
		r.Scope = netlink.SCOPE_NOWHERE
	}
	return r, nil
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
