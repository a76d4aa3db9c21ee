package check

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/safepath"
	"github.com/flatnet/flatnet/internal/text"
)

// macvlan checks that the kernel can make macvlan links.
func (c *checker) macvlan() {
	f := c.f
	for _, l := range f.Snap.Links {
		if l.Kind == "macvlan" {
			c.add(OK, "macvlan", fmt.Sprintf("the kernel supports macvlan (%s is one)", l.Name), "")
			return
		}
	}
	switch f.Macvlan.State {
	case "loaded", "builtin", "in use":
		c.add(OK, "macvlan", fmt.Sprintf("the kernel supports macvlan (%s, %s)", f.Macvlan.State, f.Macvlan.From), "")
	case "module":
		c.add(OK, "macvlan", fmt.Sprintf("macvlan is a module the kernel loads on first use (%s)", f.Macvlan.From), "")
	case "absent":
		c.add(Fail, "macvlan", fmt.Sprintf("the kernel has no macvlan support (%s): neither pods nor the shim can be made", f.Macvlan.From),
			"install the distribution's extra kernel modules (Ubuntu: apt install linux-modules-extra-$(uname -r)), then modprobe macvlan")
	default:
		c.add(Warn, "macvlan", "cannot tell whether the kernel supports macvlan: no macvlan link, no /proc/modules, kernel config or modules.dep to read",
			"modprobe macvlan, or look for CONFIG_MACVLAN in the kernel's config")
	}
}

// masters checks that each network's master exists and is up.
func (c *checker) masters() {
	f := c.f
	seen := map[string]bool{}
	for _, n := range f.Networks {
		if n.Master == "" {
			c.add(Fail, "master "+n.Name, fmt.Sprintf("network %s has no master: its CNI config names none and the node has no default route to take it from", n.Name),
				fmt.Sprintf(`set "master" in the CNI config of %s, or master = "<NIC>" in its [[network]] of flatnet.toml`, n.Name))
			continue
		}
		if seen[n.Master] {
			continue
		}
		seen[n.Master] = true
		name := "master " + n.Master
		l, ok := f.Snap.Link(n.Master)
		if !ok {
			c.add(Fail, name, fmt.Sprintf("%s does not exist: network %s waits for it, its pods cannot start and the node cannot reach them", n.Master, n.Name),
				fmt.Sprintf(`check the NIC's name with ip -br link and set "master" to it in the CNI config of network %s (or in its [[network]] of flatnet.toml)`, n.Name))
			continue
		}
		if !l.Up {
			c.add(Fail, name, fmt.Sprintf("%s is down: its pods and the shim are off the LAN", n.Master),
				fmt.Sprintf("ip link set %s up, and find out what set it down", n.Master))
			continue
		}
		if !l.LowerUp {
			c.add(Warn, name, fmt.Sprintf("%s is up but has no carrier: the node and its pods are off the LAN", n.Master),
				fmt.Sprintf("check the cable and the switch port of %s (ip link show %s says NO-CARRIER)", n.Master, n.Master))
			continue
		}
		addrs := "no IPv4 address"
		if lan := c.lanPrefixes(n.Master); len(lan) > 0 {
			addrs = joinPrefixes(lan)
		}
		c.add(OK, name, fmt.Sprintf("%s is up (%s, MTU %d)", n.Master, addrs, l.MTU), "")
	}
}

// shims checks that each shim exists, is a bridge-mode macvlan on its
// master, is up and is protected against ARP flux.
func (c *checker) shims() {
	f := c.f
	seen := map[string]bool{}
	for _, n := range f.Networks {
		if n.Master == "" || n.Unusable != "" || seen[n.Shim] {
			continue // no shim is wanted: the master or the CNI lint line says why
		}
		seen[n.Shim] = true
		name := "shim " + n.Shim
		if fd, ok := c.finding(reconcile.FindingKey{Kind: reconcile.FindTaken, Network: n.Name, Shim: n.Shim}); ok {
			c.add(Fail, name, fd.Msg+"; network "+n.Name+" is not mirrored",
				fmt.Sprintf(`if nothing needs that device, ip link del %s; otherwise set shim = "<another name>" for network %s in flatnet.toml`, n.Shim, n.Name))
			continue
		}
		if fd, ok := c.finding(reconcile.FindingKey{Kind: reconcile.FindShimHeld, Network: n.Name, Shim: n.Shim}); ok {
			c.add(Fail, name, fd.Msg+"; until then the node cannot reach the pods of "+n.Name,
				fmt.Sprintf("find what deletes or moves %s (ip monitor link shows it go: a network manager, a CNI plugin's cleanup?) and make it leave the shim alone; flatnet makes it again once the hold ends", n.Shim))
			continue
		}
		master, ok := f.Snap.Link(n.Master)
		if !ok {
			continue // the master line says it all
		}
		l, ok := f.Snap.Link(n.Shim)
		if !ok {
			c.add(Fail, name, fmt.Sprintf("%s does not exist: the node cannot reach the pods of %s", n.Shim, n.Name), c.startFix())
			continue
		}
		if l.Kind != "macvlan" || l.MacvlanMode != "bridge" || l.ParentIndex != master.Index {
			c.add(Fail, name, fmt.Sprintf("%s is flatnet's but no longer a bridge-mode macvlan on %s (%s): the node cannot reach the pods through it", n.Shim, n.Master, "now "+reconcile.DescribeLink(l, f.Snap)),
				"systemctl restart flatnet: it rebuilds the shims it made")
			continue
		}
		if !l.Up {
			c.add(Fail, name, fmt.Sprintf("%s is down: no route through it works", n.Shim),
				fmt.Sprintf("ip link set %s up, or systemctl restart flatnet, which does it", n.Shim))
			continue
		}
		arpFilter := c.sysctl("all", "arp_filter") == 1 || c.sysctl(n.Shim, "arp_filter") == 1
		rp := max(c.sysctl("all", "rp_filter"), c.sysctl(n.Shim, "rp_filter"))
		if !arpFilter && rp == 0 && c.known("all", "arp_filter") && c.known(n.Shim, "arp_filter") {
			c.add(Warn, name, fmt.Sprintf("%s has arp_filter 0 and rp_filter 0: it answers the LAN's ARP requests for the node's addresses with its own MAC (ARP flux)", n.Shim),
				fmt.Sprintf("sysctl -w net.ipv4.conf.%s.arp_filter=1 (flatnet sets it on start: systemctl restart flatnet)", sysctlName(n.Shim)))
			continue
		}
		if l.MTU != master.MTU {
			c.add(Warn, name, fmt.Sprintf("%s has MTU %d, %s has %d: large packets between the node and its pods are dropped or fragmented", n.Shim, l.MTU, n.Master, master.MTU),
				fmt.Sprintf("ip link set %s mtu %d (flatnet does it when it runs)", n.Shim, master.MTU))
			continue
		}
		if addrs := globalV4(c.linkAddrs(n.Shim)); len(addrs) > 0 {
			c.add(Warn, name, fmt.Sprintf("%s has the address %s: something configures the shim (NetworkManager, networkd, DHCP?), and the LAN may learn its MAC", n.Shim, joinPrefixes(addrs)),
				fmt.Sprintf("ip addr flush dev %s scope global, and make whatever set it leave the shim alone (see the networkd and NetworkManager lines)", n.Shim))
			continue
		}
		who := "made by flatnet"
		if l.Alias != reconcile.ShimAlias {
			who = "made by hand, adopted"
		}
		flux := "arp_filter 1"
		if !arpFilter {
			flux = fmt.Sprintf("rp_filter %d", rp)
		}
		c.add(OK, name, fmt.Sprintf("%s: macvlan bridge on %s, up, MAC %s, %s against ARP flux, %s", n.Shim, n.Master, l.MAC, flux, who), "")
	}
}

// lanGuard says, per shim, what keeps it from costing the LAN anything
// (see reconcile.Guard), whether that is in place, and what is lost when
// the kernel allows less than the best.
func (c *checker) lanGuard() {
	f := c.f
	seen := map[string]bool{}
	for _, n := range f.Networks {
		if n.Master == "" || n.Unusable != "" || seen[n.Shim] {
			continue
		}
		seen[n.Shim] = true
		l, ok := f.Snap.Link(n.Shim)
		if !ok || l.Kind != "macvlan" {
			continue // the shim line says it all
		}
		name := "lan guard " + n.Shim
		restart := "systemctl reload flatnet (flatnet puts it in place on every pass)"
		switch f.Guard {
		case reconcile.GuardShim:
			c.shimGuard(name, n, l, restart)
		case reconcile.GuardFilter:
			var drop *reconcile.Drop
			if f.Snap.Filter != nil {
				for i, d := range f.Snap.Filter.Drops {
					if d.Master == n.Master && d.MAC == l.MAC.String() {
						drop = &f.Snap.Filter.Drops[i]
					}
				}
			}
			switch {
			case drop == nil && f.Snap.Filter != nil && f.Snap.Filter.Foreign:
				c.tableReported("")
				c.add(Fail, name, fmt.Sprintf("no egress filter drops %s's frames on %s: nftables table netdev %s was not made by flatnet (no flatnet mark), and flatnet leaves it alone", n.Shim, n.Master, reconcile.FilterTable),
					fmt.Sprintf(`nft delete table netdev %s if nothing else uses it, or lan_guard = "address" in %s; then systemctl reload flatnet`, reconcile.FilterTable, cmp.Or(f.Config.Path, config.DefaultPath)))
			case drop == nil && f.Snap.Filter != nil && slices.Contains(f.Snap.Filter.Other, n.Master):
				c.tableReported(n.Master)
				c.add(Fail, name, fmt.Sprintf("no egress filter drops %s's frames on %s: chain %s in nftables table netdev %s holds what flatnet did not write, and flatnet leaves it alone", n.Shim, n.Master, n.Master, reconcile.FilterTable),
					fmt.Sprintf("move what it does to a table of your own and delete it (nft delete chain netdev %s %s), then systemctl reload flatnet", reconcile.FilterTable, n.Master))
			case drop == nil:
				c.add(Fail, name, fmt.Sprintf("no egress filter drops %s's frames on %s: when the node first reaches a pod, the shim's ARP request tells the LAN its MAC for the node, and with rp_filter 1 or 2 the node drops what the LAN then sends it, for seconds", n.Shim, n.Master), restart)
			case !l.ProxyDelay0:
				c.add(Warn, name, fmt.Sprintf("%s's frames are filtered on %s, but its proxy_delay is not 0: pods wait up to 0.8 s for the node's IPv6 neighbour answers", n.Shim, n.Master),
					fmt.Sprintf("sysctl -w net.ipv6.neigh.%s.proxy_delay=0, or %s", sysctlName(n.Shim), restart))
			case f.GuardWhy != "":
				c.add(OK, name, fmt.Sprintf("egress filter on %s drops every frame from %s (%s, %d so far; nft list table netdev %s), not the shim guard: %s; its cost: every frame the node sends through %s passes this chain",
					n.Master, n.Shim, l.MAC, drop.Packets, reconcile.FilterTable, f.GuardWhy, n.Master), "")
			default:
				c.add(OK, name, fmt.Sprintf("egress filter on %s drops every frame from %s (%s, %d so far; nft list table netdev %s): the LAN never hears the shim, and pods get the node's IPv6 neighbour answers at once; its cost: every frame the node sends through %s passes this chain (lan_guard = \"shim\" costs that traffic nothing)",
					n.Master, n.Shim, l.MAC, drop.Packets, reconcile.FilterTable, n.Master), "")
			}
		case reconcile.GuardAddress:
			switch {
			case !l.Sender || l.ARPAnnounce != 2:
				c.add(Fail, name, fmt.Sprintf("%s lacks %s or arp_announce 2: its ARP requests tell the LAN its MAC for the node, and with rp_filter 1 or 2 the node drops what the LAN then sends it", n.Shim, reconcile.SenderAddr), restart)
			case f.FilterErr != nil && f.ShimErr != nil && f.Config.LANGuard == "auto":
				c.add(Warn, name, fmt.Sprintf("%s sends ARP from %s (arp_announce 2), so the LAN keeps the NIC's MAC for the node; no shim guard: %v; no egress filter: %v. Lost without them: pods' first IPv6 packets to the node wait up to 0.8 s for the shim's answer, its IPv6 neighbour messages reach the LAN, and pods with rp_filter 1 or 2 and no route to %s through their macvlan answer the node only after they spoke to it",
					n.Shim, reconcile.SenderAddr.Addr(), f.ShimErr, f.FilterErr, reconcile.SenderAddr.Addr()),
					"a kernel with nf_tables' arp and netdev families and fib (CONFIG_NFT_FIB_NETDEV; Debian, Ubuntu, RHEL and Fedora kernels have them); flatnet uses them by itself")
			default:
				c.add(OK, name, fmt.Sprintf("%s sends ARP from %s (arp_announce 2, lan_guard = %q): the LAN keeps the NIC's MAC for the node", n.Shim, reconcile.SenderAddr.Addr(), f.Config.LANGuard), "")
			}
		default:
			why := "lan_guard = \"off\""
			status := Warn
			if f.GuardWhy != "" {
				why, status = f.GuardWhy, Fail
			}
			c.add(status, name, fmt.Sprintf("%s: when the node first reaches a pod, %s's ARP request tells the LAN its MAC for the node, and with rp_filter 1 or 2 the node drops what the LAN then sends it, for seconds", why, n.Shim),
				fmt.Sprintf(`lan_guard = "auto" in %s, then systemctl reload flatnet`, cmp.Or(f.Config.Path, config.DefaultPath)))
		}
	}
}

// shimGuard is the lan guard line of shim l (network n's) under the shim
// guard: its ARP rule, its ingress chain where it proxies IPv6, its
// proxy_delay, and what they cost.
func (c *checker) shimGuard(name string, n reconcile.Network, l reconcile.Link, restart string) {
	f := c.f
	cfgPath := cmp.Or(f.Config.Path, config.DefaultPath)
	var probe, solicit *reconcile.Shield
	if t := f.Snap.Probes; t != nil {
		for i, s := range t.Shields {
			if s.Shim == n.Shim {
				probe = &t.Shields[i]
			}
		}
	}
	if t := f.Snap.Filter; t != nil {
		for i, s := range t.Solicits {
			if s.Shim == n.Shim {
				solicit = &t.Solicits[i]
			}
		}
	}
	proxied := c.proxied(n.Shim)
	const leak = "when the node first reaches a pod, its ARP request tells the LAN the shim's MAC for the node, and with rp_filter 1 or 2 the node drops what the LAN then sends it, for seconds"
	const noV6 = "flatnet gives the shim no IPv6 proxy entries without it (the proxy would answer the LAN too), so pods cannot reach the node over IPv6"
	switch {
	case probe == nil && f.Snap.Probes != nil && f.Snap.Probes.Foreign:
		c.tableReported("arp ")
		c.add(Fail, name, fmt.Sprintf("%s's ARP requests are not made probes: nftables table arp %s was not made by flatnet (no flatnet mark), and flatnet leaves it alone; %s", n.Shim, reconcile.FilterTable, leak),
			fmt.Sprintf(`nft delete table arp %s if nothing else uses it, or lan_guard = "address" in %s; then systemctl reload flatnet`, reconcile.FilterTable, cfgPath))
	case probe == nil && f.Snap.Probes != nil && slices.Contains(f.Snap.Probes.Other, n.Shim):
		c.tableReported("arp " + n.Shim)
		c.add(Fail, name, fmt.Sprintf("%s's ARP requests are not made probes: chain %s in nftables table arp %s holds what flatnet did not write, and flatnet leaves it alone; %s", n.Shim, n.Shim, reconcile.FilterTable, leak),
			fmt.Sprintf("move what it does to a table of your own and delete it (nft delete chain arp %s %s), then systemctl reload flatnet", reconcile.FilterTable, n.Shim))
	case probe == nil:
		c.add(Fail, name, fmt.Sprintf("%s's ARP requests are not made probes (no chain %s in nftables table arp %s): %s", n.Shim, n.Shim, reconcile.FilterTable, leak), restart)
	case proxied && solicit == nil && f.Snap.Filter != nil && f.Snap.Filter.Foreign:
		c.tableReported("")
		c.add(Fail, name, fmt.Sprintf("no ingress chain on %s: nftables table netdev %s was not made by flatnet (no flatnet mark), and flatnet leaves it alone; %s", n.Shim, reconcile.FilterTable, noV6),
			fmt.Sprintf(`nft delete table netdev %s if nothing else uses it, or lan_guard = "address" in %s; then systemctl reload flatnet`, reconcile.FilterTable, cfgPath))
	case proxied && solicit == nil && f.Snap.Filter != nil && slices.Contains(f.Snap.Filter.Other, n.Shim):
		c.tableReported(n.Shim)
		c.add(Fail, name, fmt.Sprintf("no ingress chain on %s: chain %s in nftables table netdev %s holds what flatnet did not write, and flatnet leaves it alone; %s", n.Shim, n.Shim, reconcile.FilterTable, noV6),
			fmt.Sprintf("move what it does to a table of your own and delete it (nft delete chain netdev %s %s), then systemctl reload flatnet", reconcile.FilterTable, n.Shim))
	case proxied && solicit == nil:
		c.add(Fail, name, fmt.Sprintf("no ingress chain on %s (nft list table netdev %s): %s", n.Shim, reconcile.FilterTable, noV6), restart)
	case proxied && !l.ProxyDelay0:
		c.add(Warn, name, fmt.Sprintf("%s's IPv6 proxy answers only pods, but its proxy_delay is not 0: pods wait up to 0.8 s for the node's IPv6 neighbour answers", n.Shim),
			fmt.Sprintf("sysctl -w net.ipv6.neigh.%s.proxy_delay=0, or %s", sysctlName(n.Shim), restart))
	case proxied:
		c.add(OK, name, fmt.Sprintf("%[1]s's ARP requests leave as probes naming no address of the node (%[3]d so far; nft list table arp %[4]s), and its IPv6 proxy answers only pods routed through it, at once (ingress chain, %[5]d solicitations dropped so far; nft list chain netdev %[4]s %[1]s): the LAN never learns the shim's MAC for the node; its cost: none on %[2]s's own traffic (no hook there), one ingress chain on what %[1]s receives",
			n.Shim, n.Master, probe.Packets, reconcile.FilterTable, solicit.Packets), "")
	default:
		c.add(OK, name, fmt.Sprintf("%[1]s's ARP requests leave as probes naming no address of the node (%[3]d so far; nft list table arp %[4]s): the LAN never learns the shim's MAC for the node; no IPv6 proxy on it, so no ingress chain; its cost: none on %[2]s's own traffic or %[1]s's (the rule sees ARP packets only)",
			n.Shim, n.Master, probe.Packets, reconcile.FilterTable), "")
	}
}

// tableReported notes that a lan guard line reported the FindFilter
// finding whose Dir is dir: the table ("" for netdev, "arp " for arp) or
// one of its chains ("eno1", "arp eno1.host").
func (c *checker) tableReported(dir string) {
	if c.tables == nil {
		c.tables = map[string]bool{}
	}
	c.tables[dir] = true
}

// filterTables reports what the plan found in flatnet's nftables tables
// (FindFilter) that no lan guard line did: a table flatnet did not make
// that no shim's line names, a chain of another party's named after no
// master or shim.
func (c *checker) filterTables() {
	cfgPath := cmp.Or(c.f.Config.Path, config.DefaultPath)
	for _, fd := range c.f.Plan.Findings {
		if fd.Kind != reconcile.FindFilter || c.tables[fd.Dir] {
			continue
		}
		family, chain := "netdev", fd.Dir
		if rest, ok := strings.CutPrefix(fd.Dir, "arp "); ok {
			family, chain = "arp", rest
		}
		name := fmt.Sprintf("nftables %s %s", family, reconcile.FilterTable)
		if chain == "" {
			lost := "flatnet cannot put its egress filter there, so the shims' frames reach the LAN"
			switch {
			case c.f.Guard == reconcile.GuardShim && family == "arp":
				lost = "flatnet cannot make the shims' ARP requests probes, so they name the node's address on the LAN"
			case c.f.Guard == reconcile.GuardShim:
				lost = "flatnet cannot give a shim the ingress chain its IPv6 proxy needs, so it gives none proxy entries (no shim of this node proxies IPv6 now)"
			}
			c.add(Fail, name, fmt.Sprintf("nftables table %s %s was not made by flatnet (no flatnet mark), and flatnet leaves it alone: %s", family, reconcile.FilterTable, lost),
				fmt.Sprintf(`nft delete table %s %s if nothing else uses it, or lan_guard = "address" in %s; then systemctl reload flatnet`, family, reconcile.FilterTable, cfgPath))
			continue
		}
		c.add(Warn, name+" "+chain, fmt.Sprintf("chain %s in nftables table %s %s holds what flatnet did not write: flatnet leaves it alone, keeps the table while it is there, and gives no device named %s a chain", chain, family, reconcile.FilterTable, chain),
			fmt.Sprintf("move what it does to a table of your own and delete it (nft delete chain %s %s %s)", family, reconcile.FilterTable, chain))
	}
}

// proxied reports whether shim proxies IPv6: one of its networks has an
// IPv6 range holding a global address of the node (reconcile's proxy
// entries).
func (c *checker) proxied(shim string) bool {
	for _, n := range c.f.Networks {
		if n.Shim != shim {
			continue
		}
		for _, a := range c.f.Snap.Addrs {
			if !a.Is6() || a.Is4In6() || !a.IsGlobalUnicast() {
				continue
			}
			for _, r := range n.Ranges {
				if r.Subnet.Addr().Is6() && r.Subnet.Contains(a) {
					return true
				}
			}
		}
	}
	return false
}

// ndp checks, for shims of networks with IPv6 ranges, that the shim
// answers pods' neighbour solicitations for the node's addresses: flatnet
// keeps proxy_ndp and forwarding on and a proxy entry per node address.
func (c *checker) ndp() {
	f := c.f
	seen := map[string]bool{}
	for _, n := range f.Networks {
		if n.Master == "" || seen[n.Shim] || !hasV6(n.Ranges) {
			continue
		}
		seen[n.Shim] = true
		l, ok := f.Snap.Link(n.Shim)
		if !ok || l.Kind != "macvlan" {
			continue // the shim line says it all
		}
		name := "ndp " + n.Shim
		var missing []netip.Addr
		for _, op := range f.Plan.Ops {
			if op.Kind == reconcile.AddProxy && op.Dev == n.Shim {
				missing = append(missing, op.Dst.Addr())
			}
		}
		switch {
		case !l.ProxyNDP:
			c.add(Fail, name, fmt.Sprintf("%s has proxy_ndp or forwarding off for IPv6: it does not answer pods' neighbour solicitations for the node's addresses, so pods cannot reach the node over IPv6", n.Shim),
				fmt.Sprintf("sysctl -w net.ipv6.conf.%[1]s.proxy_ndp=1 net.ipv6.conf.%[1]s.forwarding=1 (flatnet sets them when it runs: systemctl restart flatnet)", sysctlName(n.Shim)))
		case len(missing) > 0:
			c.add(Fail, name, fmt.Sprintf("%s has no proxy neighbour entry for the node's %s: pods cannot reach the node there over IPv6", n.Shim, text.Addrs(missing, 5)),
				fmt.Sprintf("ip -6 neigh add proxy %s dev %s (flatnet adds them when it runs: systemctl restart flatnet)", missing[0], n.Shim))
		default:
			c.add(OK, name, fmt.Sprintf("%s answers pods' IPv6 neighbour solicitations for the node's addresses (proxy_ndp, %s)", n.Shim, text.Plural(proxies(f.Snap, n.Shim), "proxy entry", "proxy entries")), "")
		}
	}
}

func hasV6(rs []hostlocal.Range) bool {
	for _, r := range rs {
		if r.Subnet.Addr().Is6() {
			return true
		}
	}
	return false
}

func proxies(s *reconcile.Snapshot, dev string) int {
	n := 0
	for _, p := range s.Proxies {
		if p.Dev == dev {
			n++
		}
	}
	return n
}

// arpIgnore checks that each shim answers pods' ARP requests for the
// node's addresses.
func (c *checker) arpIgnore() {
	f := c.f
	seen := map[string]bool{}
	for _, n := range f.Networks {
		if n.Master == "" || seen[n.Shim] || !c.known("all", "arp_ignore") {
			continue
		}
		seen[n.Shim] = true
		name := "arp_ignore " + n.Shim
		_, exists := f.Snap.Link(n.Shim)
		all, def := c.sysctl("all", "arp_ignore"), c.sysctl("default", "arp_ignore")
		dev, devName := def, "default"
		if exists {
			dev, devName = c.sysctl(n.Shim, "arp_ignore"), n.Shim
		}
		eff := max(all, dev)
		values := fmt.Sprintf("all %d, %s %d", all, devName, dev)
		if breaksARP(eff) {
			var set []string
			if breaksARP(all) {
				set = append(set, "net.ipv4.conf.all.arp_ignore=0", fmt.Sprintf("net.ipv4.conf.%s.arp_ignore=%d", sysctlName(n.Master), all))
			}
			if breaksARP(def) {
				set = append(set, "net.ipv4.conf.default.arp_ignore=0")
			}
			if exists && breaksARP(dev) {
				set = append(set, fmt.Sprintf("net.ipv4.conf.%s.arp_ignore=0", sysctlName(n.Shim)))
			}
			fix := "sysctl -w " + strings.Join(set, " ") + " (arp_ignore on the master does not matter, so it can stay there), and the same in /etc/sysctl.d/"
			if breaksARP(all) && f.Guard == reconcile.GuardFilter && f.GuardWhy != "" {
				// reconcile.GuardFor: the daemon sees all.arp_ignore again
				// on its next full pass or watchdog tick.
				fix += "; then systemctl reload flatnet, which puts the shim guard back in place of the egress filter at once (else it does at its next watchdog tick)"
			}
			what := "the shim"
			if !exists {
				what = "a shim made now"
			}
			c.add(Fail, name, fmt.Sprintf("arp_ignore %d on %s (%s; the kernel takes the larger): %s has no address, so it never answers pods' ARP for the node's addresses and pods cannot open connections to the node",
				eff, n.Shim, values, what), fix)
			continue
		}
		if exists && breaksARP(def) {
			if v, ok := c.f.SysctlD[n.Shim+"/arp_ignore"]; !ok || breaksARP(v) {
				c.add(Warn, name, fmt.Sprintf("%s answers pods' ARP now (%s), but default.arp_ignore is %d: a shim made anew (after a reboot, or when %s is replaced) inherits it and stops answering",
					n.Shim, values, def, n.Master),
					fmt.Sprintf("sysctl -w net.ipv4.conf.default.arp_ignore=0 and set arp_ignore only on the NICs that need it, or add net.ipv4.conf.%s.arp_ignore = 0 to /etc/sysctl.d/ (applied to the shim whenever it appears)", sysctlName(n.Shim)))
				continue
			}
		}
		if !exists {
			c.add(OK, name, fmt.Sprintf("a shim made now gets arp_ignore %d (%s): it will answer pods' ARP for the node's addresses", eff, values), "")
			continue
		}
		c.add(OK, name, fmt.Sprintf("arp_ignore %d on %s (%s): it answers pods' ARP for the node's addresses", eff, n.Shim, values), "")
	}
}

// breaksARP reports whether an arp_ignore value stops a device without
// addresses from answering ARP for the node's addresses.
func breaksARP(v int) bool { return v == 1 || v == 2 || v == 8 }

// rpFilter checks that reverse-path filtering does not drop what pods send
// to the node.
func (c *checker) rpFilter() {
	f := c.f
	for _, n := range f.Networks {
		if n.Master == "" || !c.known("all", "rp_filter") {
			continue
		}
		if _, ok := f.Snap.Link(n.Master); !ok {
			continue
		}
		name := "rp_filter " + n.Name
		lan := c.lanPrefixes(n.Master)
		if len(lan) == 0 {
			c.add(OK, name, fmt.Sprintf("%s has no IPv4 address: pods do not reach the node through it", n.Master), "")
			continue
		}
		onLink := false
		var subnets []string
		for _, r := range n.Ranges {
			if !r.Subnet.Addr().Is4() {
				continue
			}
			subnets = append(subnets, r.Subnet.String())
			for _, l := range lan {
				onLink = onLink || r.Subnet.Contains(l.Addr())
			}
		}
		if len(subnets) == 0 {
			continue
		}
		shimRP := max(c.sysctl("all", "rp_filter"), c.sysctl(n.Shim, "rp_filter"))
		if onLink {
			c.add(OK, name, fmt.Sprintf("pods of %s are on-link with the node (%s): they reach it through the shim, whose /32 route to each pod is the reverse path, so rp_filter %d there drops nothing",
				n.Name, joinPrefixes(lan), shimRP), "")
			continue
		}
		all, m := c.sysctl("all", "rp_filter"), c.sysctl(n.Master, "rp_filter")
		eff := max(all, m)
		if eff == 1 {
			c.add(Fail, name, fmt.Sprintf("pods of %s (%s) reach the node's %s through their gateway, so their packets arrive on %s while the route back to them is the shim: strict rp_filter there (all %d, %s %d; the kernel takes the larger) drops them",
				n.Name, strings.Join(subnets, ", "), joinAddrsOf(lan), n.Master, all, n.Master, m),
				fmt.Sprintf("sysctl -w net.ipv4.conf.%s.rp_filter=2 (loose), and the same in /etc/sysctl.d/; or give the pods the LAN's subnet (see the cni lines)", sysctlName(n.Master)))
			continue
		}
		c.add(OK, name, fmt.Sprintf("pods of %s reach the node through their gateway, arriving on %s; rp_filter %d there lets them in", n.Name, n.Master, eff), "")
	}
}

// routes checks that every allocation has its route and no route is stale.
func (c *checker) routes() {
	f := c.f
	for _, st := range f.Plan.Networks {
		name := "routes " + st.Name
		switch {
		case st.Waiting != "":
			if !slices.ContainsFunc(c.f.Resolve, func(r reconcile.Finding) bool { return r.Kind == reconcile.FindMode && r.Network == st.Name }) { // the CNI lint line's
				c.add(Fail, name, fmt.Sprintf("network %s is not mirrored: %s", st.Name, st.Waiting), "fix the master or shim first (above)")
			}
			continue
		case st.Held:
			dir := c.stateDir(st.Name)
			why, fix := "", fmt.Sprintf("make %s readable by root (ls -ld %s)", dir, dir)
			if fd, ok := c.finding(reconcile.FindingKey{Kind: reconcile.FindHeld, Network: st.Name}); ok {
				why = ": " + strings.TrimPrefix(fd.Msg, fmt.Sprintf("state dir %s unreadable, keeping its routes as they are: ", dir))
			}
			var unsafe *safepath.UnsafeError
			if err := c.f.StateErrs[dir]; errors.As(err, &unsafe) {
				fix = fmt.Sprintf("host-local's directories are root's alone: if %s is yours, chown root:root %s and chmod go-w %s; otherwise remove it (and what it holds), as someone else made it", unsafe.Path, unsafe.Path, unsafe.Path)
			}
			c.add(Fail, name, fmt.Sprintf("state dir %s cannot be read%s: flatnet holds the routes it has and adds none", dir, why), fix)
			continue
		}
		if len(st.Missing) > 0 {
			c.add(Fail, name, fmt.Sprintf("%d of %s have no route through %s, so the node cannot reach those pods: %s",
				len(st.Missing), text.Plural(st.Allocated, "allocation", "allocations"), st.Shim, text.Addrs(st.Missing, 5)), c.startFix())
		}
		if len(st.Stale) > 0 {
			fix := c.startFix()
			if c.daemonRuns() {
				fix = fmt.Sprintf("flatnet removes them on its next pass; if they stay, journalctl -u flatnet says why (by hand: ip route del %s/32 dev %s proto %d)", st.Stale[0], st.Shim, reconcile.Protocol)
			}
			c.add(Warn, name, fmt.Sprintf("%d of flatnet's routes through %s %s to addresses no longer allocated: %s",
				len(st.Stale), st.Shim, lead(len(st.Stale)), text.Addrs(st.Stale, 5)), fix)
		}
		if len(st.Missing) == 0 && len(st.Stale) == 0 {
			c.add(OK, name, fmt.Sprintf("%d of %s routed through %s", st.Routed, text.Plural(st.Allocated, "allocation", "allocations"), st.Shim), "")
		}
	}
}

// foreign reports routes flatnet does not own to pod addresses.
func (c *checker) foreign() {
	f := c.f
	for _, st := range f.Plan.Networks {
		name := "foreign routes " + st.Name
		if len(st.Conflicts) == 0 {
			if st.Waiting == "" {
				c.add(OK, name, "no route flatnet does not own points at a pod of "+st.Name, "")
			}
			continue
		}
		var viaShim, elsewhere []netip.Addr
		var cmds []string
		for _, ip := range st.Conflicts {
			r, ok := hostRoute(f.Snap, ip)
			if !ok {
				continue
			}
			if r.Dev == st.Shim {
				viaShim = append(viaShim, ip)
			} else {
				elsewhere = append(elsewhere, ip)
			}
			if len(cmds) < 3 {
				cmds = append(cmds, delRoute(r))
			}
		}
		fix := strings.Join(cmds, "; ")
		if len(st.Conflicts) > len(cmds) {
			fix += "; and likewise for the others"
		}
		fix += " — flatnet then adds its own within moments (ip route show proto " + strconv.Itoa(reconcile.Protocol) + " lists flatnet's)"
		if len(elsewhere) > 0 {
			c.add(Fail, name, fmt.Sprintf("%s a route flatnet does not own that bypasses %s (%s); flatnet leaves such routes alone, so the node does not reach %s",
				text.Plural(len(elsewhere), "pod address of "+st.Name+" has", "pod addresses of "+st.Name+" have"), st.Shim, describeRoutes(f.Snap, elsewhere), pronoun(len(elsewhere))), fix)
		}
		if len(viaShim) > 0 {
			c.add(Warn, name, fmt.Sprintf("%s through %s that flatnet does not own (made by hand?): it works, but stays when the pod goes: %s",
				text.Plural(len(viaShim), "pod address has a route", "pod addresses have routes"), st.Shim, text.Addrs(viaShim, 5)), fix)
		}
	}
}

// allocations reports allocations older than the boot (leaked), those
// flatnet refuses to route and unusable state-dir entries.
func (c *checker) allocations() {
	f := c.f
	for _, n := range f.Networks {
		name := "allocations " + n.Name
		before := len(c.out)
		if !f.BootTime.IsZero() {
			var leaked []netip.Addr
			for _, sf := range f.StateFiles[n.StateDir] {
				if sf.ModTime.Before(f.BootTime) {
					leaked = append(leaked, sf.IP)
				}
			}
			if len(leaked) > 0 {
				c.add(Warn, name, fmt.Sprintf("%s in %s %s older than the last boot (%s): pods do not survive a reboot and host-local frees an address only when the runtime calls CNI DEL, so these are most likely leaked: %s",
					text.Plural(len(leaked), "allocation", "allocations"), n.StateDir, isAre(len(leaked)), f.BootTime.Format("2006-01-02 15:04"), text.Addrs(leaked, 5)),
					fmt.Sprintf("compare with the pods on this node (crictl pods, or kubectl get pods -A -o wide --field-selector spec.nodeName=$(hostname)) and delete only the files of addresses no pod holds (rm %s/<ip>); flatnet then drops their routes. flatnet never deletes them itself", n.StateDir))
			}
		}
		var rejected []string
		var reasons []reconcile.Finding
		for _, fd := range f.Plan.Findings {
			if fd.Network != n.Name || (fd.Kind != reconcile.FindReject && fd.Kind != reconcile.FindDuplicate && fd.Kind != reconcile.FindRefused) {
				continue
			}
			why := fd.Why.Explain(fd.IP, n.Ranges)
			switch fd.Kind {
			case reconcile.FindDuplicate:
				why = "another network routes it"
			case reconcile.FindRefused:
				why = strings.TrimPrefix(fd.Msg, fmt.Sprintf("not routing %s of network %s: ", fd.IP, n.Name))
			}
			rejected = append(rejected, fmt.Sprintf("%s (%s)", fd.IP, why))
			reasons = append(reasons, fd)
		}
		if len(rejected) > 0 {
			count := text.Plural(len(rejected), "allocation is", "allocations are")
			if _, more := c.finding(reconcile.FindingKey{Kind: reconcile.FindRejectMore, Network: n.Name}); more {
				count = fmt.Sprintf("more than %d allocations are", len(rejected)) // the others are counted, not listed
			}
			c.add(Warn, name, fmt.Sprintf("%s not routed, by design: %s", count, strings.Join(text.Head(rejected, 5), ", ")),
				rejectFix(reasons, n.StateDir))
		}
		if bad := f.Bad[n.StateDir]; len(bad) > 0 {
			var s []string
			for _, b := range text.Head(bad, 5) {
				s = append(s, fmt.Sprintf("%s (%s)", b.Name, b.Reason))
			}
			c.add(Warn, name, fmt.Sprintf("%s in %s ignored, not being host-local allocations: %s", text.Plural(len(bad), "entry", "entries"), n.StateDir, strings.Join(s, ", ")),
				fmt.Sprintf("remove them from %s if nothing else needs them: host-local writes only regular files named by address", n.StateDir))
		}
		switch {
		case len(c.out) > before:
		case n.StateDir == "":
			c.add(OK, name, fmt.Sprintf("%s from libcni's cached results (IPAM %s keeps no state on the node)",
				text.Plural(len(f.Results[n.Name]), "address", "addresses"), cmp.Or(n.IPAM, "none")), "")
		case len(f.StateFiles[n.StateDir]) == 0:
			c.add(OK, name, fmt.Sprintf("no allocation in %s yet", n.StateDir), "")
		default:
			boot := ""
			if !f.BootTime.IsZero() {
				boot = ", none older than the last boot"
			}
			c.add(OK, name, fmt.Sprintf("%s in %s%s", text.Plural(len(f.StateFiles[n.StateDir]), "allocation file", "allocation files"), n.StateDir, boot), "")
		}
	}
}

// attachments reports the cached attachments of each network that flatnet
// does not route: those whose network namespace is gone (their DEL never
// ran) and those without an address (macvlan without IPAM: a VM that
// takes its address itself).
func (c *checker) attachments() {
	f := c.f
	for _, n := range f.Networks {
		atts := f.Disco.Attachments[n.Name]
		if len(atts) == 0 {
			continue
		}
		name := "attachments " + n.Name
		var gone, bare []string
		for _, a := range atts {
			switch {
			case a.Gone:
				gone = append(gone, fmt.Sprintf("%s (netns %s)", a.String(), cmp.Or(a.NetNS, a.Sandbox)))
			case len(a.Addrs) == 0:
				bare = append(bare, a.String())
			}
		}
		if len(gone) > 0 {
			c.add(Warn, name, fmt.Sprintf("%s of %s %s stale: %s network namespace is gone, but libcni's cache still holds %s (a pod whose CNI DEL never ran: a crash, a power loss); not routed: %s",
				text.Plural(len(gone), "cached attachment", "cached attachments"), n.Name, isAre(len(gone)), theirIts(len(gone)), theirThem(len(gone)), strings.Join(text.Head(gone, 5), ", ")),
				"the runtime removes them when it cleans up those sandboxes (crictl rmp, or restart containerd / CRI-O); if none is left to clean up, remove the cache files (ls /var/lib/cni/results, /var/lib/cni/multus/results)")
		}
		if len(bare) > 0 {
			c.add(Warn, name, fmt.Sprintf("%s of %s not routable: no address known (its IPAM is %s: the pod, a VM that runs DHCP itself say, takes its address where flatnet cannot see it): %s",
				text.Plural(len(bare), "attachment", "attachments"), n.Name, cmp.Or(n.IPAM, "none"), strings.Join(text.Head(bare, 5), ", ")),
				"give the network an IPAM (host-local, static, whereabouts, dhcp) so that libcni's cache holds the address, or route those pods by hand (ip route add <address> dev "+n.Shim+")")
		}
		if len(gone) == 0 && len(bare) == 0 {
			c.add(OK, name, fmt.Sprintf("%s in libcni's cache, every one live and with an address", text.Plural(len(atts), "attachment", "attachments")), "")
		}
	}
}

func theirIts(n int) string {
	if n == 1 {
		return "its"
	}
	return "their"
}

func theirThem(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// rejectFix says what to do about allocations flatnet refuses to route.
func rejectFix(finds []reconcile.Finding, dir string) string {
	var fixes []string
	add := func(s string) {
		if !slices.Contains(fixes, s) {
			fixes = append(fixes, s)
		}
	}
	for _, f := range finds {
		switch {
		case f.Kind == reconcile.FindDuplicate:
			add("two networks allocate the same address: give them pools that do not overlap")
		case f.Why == hostlocal.NodeAddress:
			add("a pod holds the node's own address: narrow the pool so it leaves the node's addresses out (see the cni lines) and recreate that pod")
		case f.Why == hostlocal.OutsideRanges:
			add("the address is outside the network's ranges: if flatnet.toml sets ranges for it, widen them to host-local's pool; otherwise the file was not written by host-local and can be removed from " + dir)
		case f.Kind == reconcile.FindRefused:
			add(refusalFix(f.Refused))
		case f.Why == hostlocal.Gateway, f.Why == hostlocal.NetworkOrBroadcast, f.Why == hostlocal.NotUnicast:
			add("host-local never hands out such an address: the file was not written by host-local; remove it from " + dir)
		}
	}
	if len(fixes) == 0 {
		return "see the reason given"
	}
	return strings.Join(fixes, "; ")
}

// refusalFix says what to do about an address flatnet refuses to route
// because the node's routing or root's configuration answers for it
// (docs/security.md).
func refusalFix(r reconcile.Refusal) string {
	switch r {
	case reconcile.RefuseNextHop:
		return "a pod holds an address the node routes through (a gateway): the pod's network must not hand it out; narrow its range, then recreate the pod"
	case reconcile.RefuseRouted:
		return "the node already reaches that address another way (ip route get <address> shows it): give the pods a range no other route covers, or remove that route if it is stale"
	case reconcile.RefuseOffLink:
		return "the network comes from libcni's cache (a NetworkAttachmentDefinition), whose addresses flatnet routes only on a subnet the master is connected to: give the master an address on that subnet, or, if this node should reach those pods anyway, define the network in flatnet.toml ([[network]] with name, master and ranges), which only root writes"
	case reconcile.RefuseReserved:
		return "the network comes from libcni's cache and its pod took an address of a range the node's own configuration gives another network: change the NetworkAttachmentDefinition's range"
	case reconcile.RefuseAttachment:
		return "the pod was attached with another configuration of its network, or under a network name that is another network's (see the cni cache lines): recreate it with the configuration flatnet follows"
	case reconcile.RefuseStale:
		return "the pod is gone but its runtime never called CNI DEL: once the runtime cleans up the sandbox (crictl rmp, a restart of containerd), host-local releases the address"
	}
	return "see the reason given"
}

// startFix is the fix for routes or a shim that a running daemon would
// have made.
func (c *checker) startFix() string {
	if c.daemonRuns() && c.configNotLoaded() {
		return "flatnet.toml changed since flatnet loaded it: systemctl reload flatnet applies it"
	}
	if c.daemonRuns() {
		return "flatnet runs but has not done it: journalctl -u flatnet says why; then systemctl restart flatnet"
	}
	if c.f.Daemon.Systemd {
		return "start flatnet: systemctl enable --now flatnet"
	}
	return "start flatnet: flatnet run under your service manager (the package's flatnet.service under systemd)"
}

// daemonRuns reports whether a flatnet daemon serves this network
// namespace.
func (c *checker) daemonRuns() bool {
	d := c.f.Daemon
	if len(d.PIDs) > 0 {
		return true
	}
	return d.Unit != nil && d.Unit.ActiveState == "active" && d.Unit.MainPIDHere
}

// finding returns the plan's finding with key.
func (c *checker) finding(key reconcile.FindingKey) (reconcile.Finding, bool) {
	for _, f := range c.f.Plan.Findings {
		if f.Key() == key {
			return f, true
		}
	}
	return reconcile.Finding{}, false
}

// stateDir is the state directory of the network called name.
func (c *checker) stateDir(name string) string {
	for _, n := range c.f.Networks {
		if n.Name == name {
			return n.StateDir
		}
	}
	return ""
}

// sysctl returns an IPv4 per-device sysctl as a number; 0 when unknown.
func (c *checker) sysctl(dev, key string) int {
	v, _ := strconv.Atoi(c.f.Sysctls[dev+"/"+key])
	return v
}

// known reports whether a sysctl was read.
func (c *checker) known(dev, key string) bool {
	_, ok := c.f.Sysctls[dev+"/"+key]
	return ok
}

// sysctlName writes an interface name as sysctl(8) keys need it: dots
// become slashes ("eno1.host" is net.ipv4.conf.eno1/host.arp_filter).
func sysctlName(dev string) string { return strings.ReplaceAll(dev, ".", "/") }

// hostRoute finds the main table's foreign host route to ip.
func hostRoute(s *reconcile.Snapshot, ip netip.Addr) (reconcile.Route, bool) {
	for _, r := range s.Routes {
		if r.Dst.Addr() == ip && r.Dst.Bits() == ip.BitLen() && r.Protocol != reconcile.Protocol {
			return r, true
		}
	}
	return reconcile.Route{}, false
}

// describeRoutes says where foreign routes to ips go ("via eno1, proto boot").
func describeRoutes(s *reconcile.Snapshot, ips []netip.Addr) string {
	var out []string
	for _, ip := range ips {
		r, ok := hostRoute(s, ip)
		if !ok {
			continue
		}
		d := r.Dst.String() + " dev " + cmp.Or(r.Dev, "(none)") + " proto " + protoName(r.Protocol)
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return strings.Join(out, "; ")
}

// delRoute is the command that deletes exactly r.
func delRoute(r reconcile.Route) string {
	s := "ip route del " + r.Dst.String()
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s + " proto " + protoName(r.Protocol)
}

// protoName names an rtnetlink protocol as ip-route(8) does.
func protoName(p int) string {
	switch p {
	case 0:
		return "unspec"
	case 1:
		return "redirect"
	case 2:
		return "kernel"
	case 3:
		return "boot"
	case 4:
		return "static"
	case 16:
		return "dhcp"
	}
	return strconv.Itoa(p)
}

// linkAddrs are the addresses of the link called name as the daemon sees
// them (the snapshot's, of global scope); none when it does not exist
// or the kernel could not be read.
func (c *checker) linkAddrs(name string) []netip.Prefix {
	if c.f.Snap == nil {
		return nil // the kernel unread
	}
	if l, ok := c.f.Snap.Link(name); ok {
		return l.Addrs
	}
	return nil
}

func globalV4(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() && !p.Addr().IsLinkLocalUnicast() && p != reconcile.SenderAddr {
			out = append(out, p)
		}
	}
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func joinAddrsOf(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Addr().String()
	}
	return strings.Join(s, ", ")
}

// pronoun is "that pod" or "those pods".
func pronoun(n int) string {
	if n == 1 {
		return "that pod"
	}
	return "those pods"
}

// lead is "leads" or "lead".
func lead(n int) string {
	if n == 1 {
		return "leads"
	}
	return "lead"
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
