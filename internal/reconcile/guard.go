package reconcile

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
)

// Guard is how flatnet keeps the shim's own frames from costing the LAN.
//
// The shim is a macvlan in bridge mode: what it sends to a pod stays on the
// node, but what it broadcasts (its ARP requests for pods, its IPv6
// neighbour solicitations and proxy answers) also leaves through the
// master onto the LAN, from the shim's MAC. An ARP request "who-has <pod>
// tell <node address>" from the shim's MAC makes every Linux host on the
// LAN that knows the node move the node to the shim's MAC (an existing
// entry is updated by any request). Their packets then arrive on the shim,
// which has no IPv4 address, and with rp_filter 1 or 2 the kernel drops
// them: the node is cut off from those hosts until they re-resolve it,
// seconds later. docs/lan-guard.md shows it frame by frame.
type Guard int

// The guards. [ChooseGuard] prefers GuardShim, then GuardFilter, then
// GuardAddress.
const (
	// GuardOff adds nothing: the shim's ARP requests name the node's
	// address and reach the LAN.
	GuardOff Guard = iota
	// GuardFilter drops every frame from the shim's MAC on the master's
	// egress (an nftables netdev egress chain, kernel 5.16 and later). The
	// shim's frames to pods never take that path, so only what would leak
	// is dropped: nothing from the shim reaches the LAN, IPv4 or IPv6, and
	// the shim may answer pods' neighbour solicitations at once
	// (proxy_delay 0). Its cost: every frame the node sends through the
	// master passes the chain (docs/lan-guard.md has the figures).
	GuardFilter
	// GuardAddress gives the shim an IPv4 address of its own,
	// [SenderAddr], with arp_announce 2, so its ARP requests say "tell
	// 192.0.0.8": the LAN learns nothing of the node's addresses from them.
	// Any kernel has it. The cost: a pod answers such a request only when
	// its reverse-path check passes for 192.0.0.8 on its macvlan interface,
	// so pods with rp_filter 1 or 2 and no route to it through that
	// interface (a secondary network without a default route through it)
	// answer the node only once they have spoken to it first. IPv6 stays
	// as with GuardOff.
	GuardAddress
	// GuardShim makes the shim's own neighbour traffic harmless where it
	// starts, so that nothing sits on the master's path:
	//
	//   - Its ARP requests leave as probes: an nftables rule on the arp
	//     family's output hook (which sees ARP and nothing else) sets their
	//     sender address to 0.0.0.0 ([ProbeTable]). "who-has <pod> tell
	//     0.0.0.0" names no address of the node, so no LAN host learns
	//     anything from it (RFC 5227); the pod answers it without a
	//     reverse-path check (the kernel's special case for probes), with a
	//     reply to the shim's MAC, which the shim takes. Pods then ask for
	//     the node's MAC themselves, as they do for any peer.
	//   - Its IPv6 proxy answers only peers the node routes through it, as
	//     arp_filter does for IPv4: an ingress chain on the shim ([Filter]'s
	//     Solicits) drops the neighbour solicitations it receives from
	//     anyone else (the LAN's, which reach the shim since it joined the
	//     node addresses' solicited-node groups for its proxy entries), so
	//     the shim may answer pods at once (proxy_delay 0) without any
	//     answer reaching the LAN. Only shims with proxy entries get it.
	//
	// The node's own traffic through the master passes no hook; the
	// shim's ingress chain costs only what the shim receives, on shims
	// with IPv6 proxy entries. The shim's probes and its solicitations
	// for pods (from its link-local address) still reach the LAN, naming
	// no address of the node.
	GuardShim
)

// String is the guard's name in flatnet.toml's lan_guard.
func (g Guard) String() string {
	switch g {
	case GuardFilter:
		return "filter"
	case GuardAddress:
		return "address"
	case GuardShim:
		return "shim"
	}
	return "off"
}

// GuardKernel is what the kernel allows of the guards: Filter, why it
// cannot filter a master's egress (GuardFilter), and Shim, why it cannot
// keep the shim guard's rules (GuardShim); nil when it can.
type GuardKernel struct {
	Filter, Shim error
}

// ChooseGuard resolves lan_guard ("auto", "shim", "filter", "address" or
// "off") for kernel k: "auto" is the shim guard where the kernel has it,
// else the egress filter, else the address. An explicit "shim" or
// "filter" the kernel cannot do is GuardOff, with the reason.
func ChooseGuard(setting string, k GuardKernel) (Guard, string) {
	switch setting {
	case "shim":
		if k.Shim != nil {
			return GuardOff, fmt.Sprintf("lan_guard = \"shim\" but the kernel cannot keep its rules: %v", k.Shim)
		}
		return GuardShim, ""
	case "filter":
		if k.Filter != nil {
			return GuardOff, "lan_guard = \"filter\" but the kernel cannot filter a NIC's egress"
		}
		return GuardFilter, ""
	case "address":
		return GuardAddress, ""
	case "off":
		return GuardOff, ""
	}
	switch {
	case k.Shim == nil:
		return GuardShim, ""
	case k.Filter == nil:
		return GuardFilter, ""
	}
	return GuardAddress, ""
}

// GuardFor is the guard for one pass: chosen (ChooseGuard's) as the
// node's state allows. The shim guard makes the shims' ARP requests
// probes, so pods learn the node's MAC only by asking for it, and with
// all.arp_ignore set (snap.ARPIgnoreAll) no shim answers them: the node
// could reach no pod, as a pod answers it only once it resolved the node.
// Then "auto" takes the egress filter, under which the shims' requests
// name the node and teach pods its MAC, where the kernel has it (else the
// shim guard stays, and flatnet check fails the node's arp_ignore). why
// says so when the guard is not chosen.
func GuardFor(chosen Guard, setting string, k GuardKernel, snap *Snapshot) (Guard, string) {
	if chosen != GuardShim || setting != "auto" || snap == nil || !snap.ARPIgnoreAll || k.Filter != nil {
		return chosen, ""
	}
	return GuardFilter, "net.ipv4.conf.all.arp_ignore is set (kube-proxy's strictARP?): no shim answers pods' ARP for the node, so they learn its MAC only from the shims' own requests, which the shim guard makes probes; the egress filter guards the LAN instead until it is 0 again"
}

// SenderAddr is the IPv4 address [GuardAddress] gives a shim, with scope
// link. It is RFC 7600's IPv4 dummy address: IANA lists 192.0.0.8/32 as
// a valid source that is never a destination and never forwarded, so no
// host or service on any LAN uses it and holding it locally takes no one's
// traffic; with scope link the node never picks it as a source for
// anything but the shim's own ARP. Every node may use it at once: a LAN
// host creates no entry from a request that is not for itself.
// (169.254/16 is not free: clouds and CNIs use many of its addresses.)
var SenderAddr = netip.MustParsePrefix("192.0.0.8/32")

// FilterTable is the name of flatnet's nftables tables: `table netdev
// flatnet` holds the egress filter (GuardFilter: one chain per master
// named after it, hooked at the master's egress, one rule per shim on that
// master) or the shim guard's ingress chains (GuardShim: one per shim
// with IPv6 proxy entries, named after it); `table arp flatnet`
// ([ProbeTable]) holds the shim guard's ARP rules (one output chain per
// shim, named after it).
const FilterTable = "flatnet"

// Drop is one rule of the egress filter: frames from MAC leaving through
// Master are dropped.
type Drop struct {
	Master string
	MAC    string // canonical, lower case
	// Packets is how many frames the rule dropped so far, as read; it is
	// not part of what the rule is.
	Packets uint64
}

func (d Drop) key() string { return d.Master + " " + d.MAC }

// Shield is one chain of the shim guard ([GuardShim]), for one shim, as
// read: in table arp flatnet, the output chain that makes the shim's ARP
// requests probes; in table netdev flatnet, the shim's ingress chain that
// drops the neighbour solicitations its proxy must not answer.
type Shield struct {
	Shim string
	// Packets is how many packets the chain's rules rewrote or dropped so
	// far, as read; it is not part of what the chain is.
	Packets uint64
}

// flatnet's mark on its tables: FilterComment, the table's comment as
// nft(8) shows it (kept in the table's userdata, which the kernel stores
// from Linux 5.10, before the egress hook; netlinkx.ProbeShim refuses the
// shim guard on older kernels for it). A table named
// [FilterTable] whose comment does not start with FilterMark is not
// flatnet's (but see [Filter]'s Legacy). Each of flatnet's rules carries
// a comment that starts with FilterMark too: FilterRuleComment for the
// egress filter's drops, the Shield comments for the shim guard's rules.
const (
	FilterMark        = "flatnet:"
	FilterComment     = FilterMark + " LAN guard of its shims; flatnet teardown removes it"
	FilterRuleComment = FilterMark + " shim"
	// ProbeComment marks the rule that makes a shim's ARP requests probes.
	ProbeComment = FilterMark + " the shim's ARP requests name no address of the node"
	// The comments of a shim's ingress rules, one per kind of
	// solicitation its proxy must not answer.
	SolicitLinkLocalComment = FilterMark + " no proxy answer to the LAN's solicitations from link-local addresses"
	SolicitDADComment       = FilterMark + " no proxy answer to duplicate address detection"
	SolicitRouteComment     = FilterMark + " proxy answers only to peers routed through the shim"
)

// Filter is the nftables table netdev [FilterTable] as read from the
// kernel, as flatnet sees it: whose it is, flatnet's chains in it, and
// what else it holds.
//
// A chain flatnet made is either an egress filter chain (type filter, hook
// egress, priority filter, policy accept) named after its master, whose
// rules are all flatnet's drops (`ether saddr MAC counter drop`, marked
// with [FilterRuleComment]; unmarked in a Legacy table), or a shim's
// ingress chain (type filter, hook ingress, priority filter, policy
// accept) named after the shim, holding exactly the shim guard's three
// marked rules (see [SolicitScript]).
type Filter struct {
	// Drops are flatnet's rules, in flatnet's egress chains, by chain then
	// rule. Empty when Foreign.
	Drops []Drop
	// Solicits are flatnet's ingress chains, by shim. Empty when Foreign.
	Solicits []Shield
	// Foreign: the table is not flatnet's. It lacks flatnet's mark and is
	// not a Legacy table either. flatnet never writes or deletes it, and
	// cannot put its chains in place while it is there.
	Foreign bool
	// Legacy: the table an older flatnet wrote, before the mark: no mark
	// (no userdata at all), at least one chain, and every chain an egress
	// chain that flatnet made holding at least one drop (unmarked). Its
	// chains are flatnet's; the next write makes the table anew, with the
	// mark.
	Legacy bool
	// Other names the chains in flatnet's (marked) table that flatnet did
	// not make: a chain that is not a chain of flatnet's shape, or that
	// holds any rule that is not one of flatnet's marked rules. Sorted.
	// flatnet leaves them alone, keeps the table while they are there, and
	// makes no chain of that name (a master or shim so named gets none).
	Other []string
}

// ProbeTable is the nftables table arp [FilterTable] as read from the
// kernel: the shim guard's output chains, one per shim, each holding the
// one marked rule that makes the shim's ARP requests probes
// (`oifname SHIM arp operation request arp saddr ip set 0.0.0.0`). The arp
// family's hooks see ARP packets only, so the rule costs no IP packet
// anything.
type ProbeTable struct {
	// Shields are flatnet's chains, by shim. Empty when Foreign.
	Shields []Shield
	// Foreign: the table lacks flatnet's mark. flatnet never writes or
	// deletes it.
	Foreign bool
	// Other names the chains in flatnet's table that flatnet did not make,
	// sorted; as in [Filter].
	Other []string
}

// FilterFinding is what a table gives to report: the table itself
// (Chain "") or one chain in it. Each message names what to do.
type FilterFinding struct {
	Level slog.Level
	Chain string
	Msg   string
}

// FilterFindings returns what must be reported about the netdev table f
// read with guard g: a Foreign table is an error while flatnet wants its
// chains there (the egress filter, or the shim guard's ingress chains;
// with another guard it is in no one's way and says nothing); each chain
// flatnet did not make in its own table is a warning.
func FilterFindings(f *Filter, g Guard) []FilterFinding {
	if f == nil {
		return nil
	}
	return tableFindings("netdev", f.Foreign, f.Other, g)
}

// ProbeFindings is FilterFindings for the arp table.
func ProbeFindings(t *ProbeTable, g Guard) []FilterFinding {
	if t == nil {
		return nil
	}
	return tableFindings("arp", t.Foreign, t.Other, g)
}

func tableFindings(family string, foreign bool, other []string, g Guard) []FilterFinding {
	var out []FilterFinding
	switch {
	case foreign && g == GuardFilter && family == "netdev":
		out = append(out, FilterFinding{Level: slog.LevelError, Msg: fmt.Sprintf(
			"nftables table netdev %[1]s was not made by flatnet (it lacks flatnet's mark, a comment starting %[2]q): flatnet leaves it alone and cannot put its egress filter in place, so the shims' frames reach the LAN; "+
				"remove it (nft delete table netdev %[1]s) if nothing else uses it, or set lan_guard = \"address\" in flatnet.toml (then systemctl reload flatnet)",
			FilterTable, FilterMark)})
	case foreign && g == GuardShim && family == "netdev":
		out = append(out, FilterFinding{Level: slog.LevelError, Msg: fmt.Sprintf(
			"nftables table netdev %[1]s was not made by flatnet (it lacks flatnet's mark, a comment starting %[2]q): flatnet leaves it alone and cannot keep the shims' IPv6 proxies from answering the LAN, so it gives them no proxy entries and pods cannot reach the node over IPv6; "+
				"remove it (nft delete table netdev %[1]s) if nothing else uses it, or set lan_guard = \"address\" in flatnet.toml (then systemctl reload flatnet)",
			FilterTable, FilterMark)})
	case foreign && g == GuardShim && family == "arp":
		out = append(out, FilterFinding{Level: slog.LevelError, Msg: fmt.Sprintf(
			"nftables table arp %[1]s was not made by flatnet (it lacks flatnet's mark, a comment starting %[2]q): flatnet leaves it alone and cannot make the shims' ARP requests probes, so they name the node's address on the LAN; "+
				"remove it (nft delete table arp %[1]s) if nothing else uses it, or set lan_guard = \"address\" in flatnet.toml (then systemctl reload flatnet)",
			FilterTable, FilterMark)})
	}
	for _, ch := range other {
		out = append(out, FilterFinding{Level: slog.LevelWarn, Chain: ch, Msg: fmt.Sprintf(
			"nftables chain %[3]q in flatnet's table %[2]s %[1]s was not made by flatnet (not a chain of flatnet's shape, or it holds a rule flatnet did not write): flatnet leaves it alone and keeps the table while it is there, "+
				"and a device of that name gets no chain from flatnet; move what it does to a table of your own and delete it (nft delete chain %[2]s %[1]s %[3]s)",
			FilterTable, family, ch)})
	}
	return out
}

// SolicitScript is the nft(8) syntax of the ingress chain the shim guard
// gives shim: its proxy answers no solicitation from a link-local address
// that was multicast (the LAN's routers ask for the node from theirs;
// pods' unicast re-checks come from theirs and are answered), none from
// the unspecified address (duplicate address detection), and none from a
// peer the node does not route through the shim. nftables' fib lets
// solicitations for duplicate address detection pass (the kernel's
// exception for rpfilter), which is why that rule is its own.
func SolicitScript(shim string) string {
	return fmt.Sprintf(`chain %[1]s { type filter hook ingress device "%[1]s" priority filter;`+
		` icmpv6 type nd-neighbor-solicit meta pkttype != host ip6 saddr fe80::/10 counter drop comment %[2]q;`+
		` icmpv6 type nd-neighbor-solicit ip6 saddr :: counter drop comment %[3]q;`+
		` icmpv6 type nd-neighbor-solicit fib saddr . iif oif missing counter drop comment %[4]q; }`,
		shim, SolicitLinkLocalComment, SolicitDADComment, SolicitRouteComment)
}

// FilterScript prints drops and the ingress chains of the shims solicits
// as the nft(8) commands that do what the SetFilter op does: flatnet's
// netdev table (made with its comment when there is none) gets exactly
// these chains, each deleted and made anew in one transaction (no moment
// without them); chains of other parties in the table are left alone.
// What the commands cannot say, since it depends on what the table holds
// when the op runs, follows as a shell comment. With neither: flatnet's
// chains go, and the table with them when nothing else is left in it.
func FilterScript(drops []Drop, solicits ...string) string {
	if len(drops) == 0 && len(solicits) == 0 {
		return fmt.Sprintf("nft delete table netdev %[1]s # or, while it holds chains flatnet did not make, only flatnet's (nft delete chain netdev %[1]s NAME)", FilterTable)
	}
	var masters []string
	for i, d := range drops {
		if i == 0 || d.Master != drops[i-1].Master {
			masters = append(masters, d.Master)
		}
	}
	var b strings.Builder
	replaceChains(&b, "netdev", append(slices.Clone(masters), solicits...))
	for i, d := range drops {
		if i == 0 || d.Master != drops[i-1].Master {
			if i > 0 {
				b.WriteString(" };")
			}
			fmt.Fprintf(&b, ` chain %[1]s { type filter hook egress device "%[1]s" priority filter;`, d.Master)
		}
		fmt.Fprintf(&b, " ether saddr %s counter drop comment %q;", d.MAC, FilterRuleComment)
	}
	if len(drops) > 0 {
		b.WriteString(" };")
	}
	for _, shim := range solicits {
		b.WriteString(" " + SolicitScript(shim) + ";")
	}
	b.WriteString(" }' # flatnet's other chains go too")
	return b.String()
}

// replaceChains writes the start of a script that makes chains anew in
// flatnet's table of family in one transaction: the table with its
// comment and the chains (so that deleting them cannot fail), their
// deletion, and the table opened again for their new content.
func replaceChains(b *strings.Builder, family string, chains []string) {
	fmt.Fprintf(b, "nft 'table %s %s { comment %q;", family, FilterTable, FilterComment)
	for _, c := range chains {
		fmt.Fprintf(b, " chain %s {};", c)
	}
	b.WriteString(" };")
	for _, c := range chains {
		fmt.Fprintf(b, " delete chain %s %s %s;", family, FilterTable, c)
	}
	fmt.Fprintf(b, " table %s %s {", family, FilterTable)
}

// ProbeScript prints the nft(8) commands that do what the SetProbe op
// does: flatnet's arp table gets exactly one output chain per shim in
// shims, each with the rule that makes the shim's ARP requests probes.
// With none: flatnet's chains go, and the table with them when nothing
// else is left in it.
func ProbeScript(shims []string) string {
	if len(shims) == 0 {
		return fmt.Sprintf("nft delete table arp %[1]s # or, while it holds chains flatnet did not make, only flatnet's (nft delete chain arp %[1]s SHIM)", FilterTable)
	}
	var b strings.Builder
	replaceChains(&b, "arp", shims)
	for _, s := range shims {
		fmt.Fprintf(&b, ` chain %[1]s { type filter hook output priority filter; oifname "%[1]s" arp operation request arp saddr ip set 0.0.0.0 counter comment %[2]q; };`, s, ProbeComment)
	}
	b.WriteString(" }' # flatnet's other chains go too")
	return b.String()
}

// sortDrops orders drops by master, then MAC.
func sortDrops(drops []Drop) {
	slices.SortFunc(drops, func(a, b Drop) int { return cmp.Or(cmp.Compare(a.Master, b.Master), cmp.Compare(a.MAC, b.MAC)) })
}

// shieldNames are the shims of shields, sorted.
func shieldNames(shields []Shield) []string {
	out := make([]string, len(shields))
	for i, s := range shields {
		out[i] = s.Shim
	}
	slices.Sort(out)
	return out
}

// sameFilter reports whether the netdev table holds exactly the drops and
// the ingress chains of solicits (sorted), as far as flatnet's own chains
// go: other parties' chains never make flatnet write. A Legacy table is
// never the same (it is to be made anew with the mark), nor is a table of
// flatnet's holding nothing at all when nothing is wanted (it is to go).
func sameFilter(have *Filter, want []Drop, solicits []string) bool {
	if have == nil {
		return len(want) == 0 && len(solicits) == 0
	}
	if have.Legacy || len(have.Drops) != len(want) || !slices.Equal(shieldNames(have.Solicits), solicits) {
		return false
	}
	if len(want) == 0 && len(solicits) == 0 && !have.Foreign && len(have.Other) == 0 {
		return false
	}
	keys := make(map[string]bool, len(want))
	for _, d := range want {
		keys[d.key()] = true
	}
	for _, d := range have.Drops {
		if !keys[d.key()] {
			return false
		}
	}
	return true
}

// sameProbes is sameFilter for the arp table.
func sameProbes(have *ProbeTable, shims []string) bool {
	if have == nil {
		return len(shims) == 0
	}
	if len(shims) == 0 && !have.Foreign && len(have.Other) == 0 {
		return false
	}
	return slices.Equal(shieldNames(have.Shields), shims)
}

// guardOK reports whether shim l is configured as g wants: the settings
// every shim gets (see [ConfigureShim]) and the guard's own.
func guardOK(l Link, g Guard) bool {
	if !l.ARPFilter || !l.ProxyNDP || l.ARPIgnore {
		return false
	}
	switch g {
	case GuardFilter, GuardShim:
		return l.ProxyDelay0
	case GuardAddress:
		return l.ARPAnnounce == 2
	}
	return true
}

// planGuard plans flatnet's nftables tables for the shims the plan uses:
// with the egress filter, one drop per usable shim; with the shim guard,
// one arp output chain per usable shim, and an ingress chain per shim that
// exists (not made in this pass) and proxies IPv6 (proxied: the shims
// planProxies gives proxy entries); with any other guard, neither. The ops
// go before any shim op, so a new shim is guarded before it first speaks;
// a shim made in this pass gets its ingress chain, and then its proxy
// entries, in the next pass (the kernel binds a netdev chain to an
// existing device). It returns the shims whose ingress chain is in place
// or being written, the only ones the shim guard lets planProxies give
// proxy entries: without the chain, the proxy would answer the LAN.
//
// A Foreign table is never written (the findings report it), and a master
// or shim whose name a chain of another party holds in flatnet's table
// gets no chain (that chain is reported, and left alone).
func (p *Plan) planGuard(in Input, shims map[string]shimCheck, proxied map[string]bool) (solicited map[string]bool) {
	have, probes := in.Snap.Filter, in.Snap.Probes
	for _, f := range FilterFindings(have, in.Guard) {
		p.Findings = append(p.Findings, Finding{Kind: FindFilter, Level: f.Level, Dir: f.Chain, Msg: f.Msg})
	}
	for _, f := range ProbeFindings(probes, in.Guard) {
		p.Findings = append(p.Findings, Finding{Kind: FindFilter, Level: f.Level, Dir: "arp " + f.Chain, Msg: f.Msg})
	}
	var drops []Drop
	var probing, soliciting []string
	solicited = map[string]bool{}
	seen := map[string]bool{}
	for _, n := range in.Networks {
		sc := shims[n.Shim]
		if !sc.usable || seen[n.Shim] {
			continue
		}
		seen[n.Shim] = true
		switch in.Guard {
		case GuardFilter:
			if have == nil || !slices.Contains(have.Other, n.Master) {
				drops = append(drops, Drop{Master: n.Master, MAC: sc.mac.String()})
			}
		case GuardShim:
			if probes == nil || !slices.Contains(probes.Other, n.Shim) {
				probing = append(probing, n.Shim)
			}
			if sc.exists && proxied[n.Shim] && (have == nil || !have.Foreign && !slices.Contains(have.Other, n.Shim)) {
				soliciting = append(soliciting, n.Shim)
				solicited[n.Shim] = true
			}
		}
	}
	sortDrops(drops)
	slices.Sort(probing)
	slices.Sort(soliciting)
	var ops []Op
	if (have == nil || !have.Foreign) && !sameFilter(have, drops, soliciting) {
		ops = append(ops, Op{Kind: SetFilter, Drops: drops, Shims: soliciting})
	}
	if (probes == nil || !probes.Foreign) && !sameProbes(probes, probing) {
		op := Op{Kind: SetProbe, Shims: probing}
		if in.Guard == GuardShim {
			ops = append([]Op{op}, ops...) // the probes before the egress filter goes
		} else {
			ops = append(ops, op) // the egress filter before the probes go
		}
	}
	p.Ops = append(p.Ops, ops...)
	return solicited
}

// shimAddrOps plans the shim's own address: there with GuardAddress, gone
// otherwise (left by a node whose kernel has since gained the filter).
func shimAddrOps(l Link, g Guard, network string) []Op {
	switch {
	case g == GuardAddress && !l.Sender:
		return []Op{{Kind: AddSender, Dev: l.Name, Network: network}}
	case g != GuardAddress && l.Sender:
		return []Op{{Kind: DelSender, Dev: l.Name, Network: network}}
	}
	return nil
}

// Guarded reports whether flatnet has set l up as a shim it did not make:
// gave it its address, filters its MAC, or keeps a chain of the shim guard
// for it.
func Guarded(l Link, snap *Snapshot) bool {
	if l.Sender {
		return true
	}
	if l.Kind != "macvlan" {
		return false
	}
	if f := snap.Filter; f != nil {
		for _, d := range f.Drops {
			if d.MAC == l.MAC.String() {
				return true
			}
		}
		for _, s := range f.Solicits {
			if s.Shim == l.Name {
				return true
			}
		}
	}
	if t := snap.Probes; t != nil {
		for _, s := range t.Shields {
			if s.Shim == l.Name {
				return true
			}
		}
	}
	return false
}
