package check

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/text"
)

// pending reports the ops of the plan that no line above reported: what
// flatnet's next pass would still change though every other line is ok (a
// shim no network uses, a sysctl flatnet sets, a proxy entry, route or
// table entry it would remove). A plan holding an op means the node is not
// as flatnet keeps it. The neighbour flushes (FlushNeigh, FlushNeighs) are
// not reported: they follow an address reused or a carrier back, which a
// look at the node never plans, and change nothing that works.
func (c *checker) pending() {
	type group struct {
		kind reconcile.OpKind
		dev  string
		ops  []reconcile.Op
	}
	// The tables last: whether a line says why they change is known once
	// the others are out.
	for _, tables := range []bool{false, true} {
		var groups []*group
		for _, op := range c.f.Plan.Ops {
			isTable := op.Kind == reconcile.SetFilter || op.Kind == reconcile.SetProbe
			if isTable != tables || op.Kind == reconcile.FlushNeigh || op.Kind == reconcile.FlushNeighs || c.reported(op) {
				continue
			}
			var g *group
			for _, x := range groups {
				if x.kind == op.Kind && x.dev == op.Dev {
					g = x
				}
			}
			if g == nil {
				g = &group{kind: op.Kind, dev: op.Dev}
				groups = append(groups, g)
			}
			g.ops = append(g.ops, op)
		}
		for _, g := range groups {
			c.pendingLine(g.kind, g.dev, g.ops)
		}
	}
}

// reported reports whether a line above, not ok, already says what op
// would mend.
func (c *checker) reported(op reconcile.Op) bool {
	var names []string
	switch op.Kind {
	case reconcile.AddShim, reconcile.DelShim, reconcile.SetUp, reconcile.SetMTU:
		names = []string{"shim " + op.Dev}
	case reconcile.ConfigureShim:
		names = []string{"shim " + op.Dev, "arp_ignore " + op.Dev, "ndp " + op.Dev, "lan guard " + op.Dev}
	case reconcile.AddProxy, reconcile.DelProxy:
		names = []string{"ndp " + op.Dev, "lan guard " + op.Dev}
	case reconcile.AddSender, reconcile.DelSender:
		names = []string{"lan guard " + op.Dev}
	case reconcile.AddRoute, reconcile.ReplaceRoute, reconcile.DelRoute:
		if op.Network == "" {
			return false
		}
		names = []string{"routes " + op.Network}
	case reconcile.SetFilter, reconcile.SetProbe:
		// A table follows the shims: a line on a shim, its master, its
		// network, its CNI file or its guard says why it changes.
		for _, r := range c.out {
			if r.Status == OK {
				continue
			}
			for _, p := range []string{"lan guard ", "shim ", "master ", "network ", "cni ", "pending "} {
				if strings.HasPrefix(r.Name, p) {
					return true
				}
			}
		}
		return false
	}
	for _, r := range c.out {
		for _, n := range names {
			if r.Status != OK && r.Name == n {
				return true
			}
		}
	}
	return false
}

// pendingLine is the line of ops, all of kind k on dev, that no other
// line reported.
func (c *checker) pendingLine(k reconcile.OpKind, dev string, ops []reconcile.Op) {
	var addrs []netip.Addr
	for _, op := range ops {
		addrs = append(addrs, op.Dst.Addr())
	}
	name, cmd := "pending "+dev, ops[0].String()
	var detail string
	switch k {
	case reconcile.DelShim:
		detail = fmt.Sprintf("%s is a shim flatnet made, but no network uses it any more", dev)
	case reconcile.ConfigureShim:
		detail = fmt.Sprintf("%s's sysctls are not all those flatnet sets on a shim (arp_filter 1, arp_ignore 0, proxy_ndp and forwarding 1, and what the LAN guard needs)", dev)
		cmd = strings.ReplaceAll(cmd, "."+dev+".", "."+sysctlName(dev)+".") // sysctl(8) keys
	case reconcile.DelProxy:
		detail = fmt.Sprintf("%s has %s flatnet no longer keeps (not a node address in an IPv6 range of its networks, or no ingress chain guards it): %s answers neighbour solicitations for %s",
			dev, text.Plural(len(ops), "proxy neighbour entry", "proxy neighbour entries"), dev, text.Addrs(addrs, 5))
	case reconcile.DelSender:
		detail = fmt.Sprintf("%s holds %s, which only lan_guard \"address\" gives a shim", dev, reconcile.SenderAddr)
	case reconcile.DelRoute:
		detail = fmt.Sprintf("%s of flatnet's through %s %s to addresses no network flatnet mirrors allocates: %s", text.Plural(len(ops), "route", "routes"), dev, lead(len(ops)), text.Addrs(addrs, 5))
	case reconcile.SetFilter, reconcile.SetProbe:
		family := "netdev"
		if k == reconcile.SetProbe {
			family = "arp"
		}
		name = fmt.Sprintf("pending nftables %s %s", family, reconcile.FilterTable)
		detail = fmt.Sprintf("nftables table %s %s is not what flatnet writes for the shims now (a chain or rule of a shim gone or changed, or the table of another LAN guard)", family, reconcile.FilterTable)
		cmd = fmt.Sprintf("nft list table %s %s shows it", family, reconcile.FilterTable)
	default:
		detail = fmt.Sprintf("flatnet's next pass would do %s", text.Plural(len(ops), "change", "changes"))
	}
	if len(ops) > 1 {
		cmd += "; and likewise for the others"
	}
	c.add(Warn, name, detail, c.passFix(cmd))
}

// passFix is the fix for what flatnet's next pass mends: wait for it, or
// start flatnet; by hand, cmd.
func (c *checker) passFix(cmd string) string {
	if c.daemonRuns() && !c.configNotLoaded() {
		return fmt.Sprintf("flatnet does it on its next pass; if it stays, journalctl -u flatnet says why (by hand: %s)", cmd)
	}
	return fmt.Sprintf("%s (by hand: %s)", c.startFix(), cmd)
}
