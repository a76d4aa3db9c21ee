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

// The guards, in the order [ChooseGuard] prefers them.
const (
	// GuardOff adds nothing: the shim's ARP requests name the node's
	// address and reach the LAN.
	GuardOff Guard = iota
	// GuardFilter drops every frame from the shim's MAC on the master's
	// egress (an nftables netdev egress chain, kernel 5.16 and later). The
	// shim's frames to pods never take that path, so only what would leak
	// is dropped: nothing from the shim reaches the LAN, IPv4 or IPv6, and
	// the shim may answer pods' neighbour solicitations at once
	// (proxy_delay 0).
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
)

// String is the guard's name in flatnet.toml's lan_guard.
func (g Guard) String() string {
	switch g {
	case GuardFilter:
		return "filter"
	case GuardAddress:
		return "address"
	}
	return "off"
}

// ChooseGuard resolves lan_guard ("auto", "filter", "address" or "off")
// for a kernel that can (filterOK) or cannot filter a master's egress:
// "auto" is the filter where the kernel has it, else the address. An
// explicit "filter" on a kernel without it is GuardOff, with the reason.
func ChooseGuard(setting string, filterOK bool) (Guard, string) {
	switch setting {
	case "filter":
		if !filterOK {
			return GuardOff, "lan_guard = \"filter\" but the kernel cannot filter a NIC's egress"
		}
		return GuardFilter, ""
	case "address":
		return GuardAddress, ""
	case "off":
		return GuardOff, ""
	}
	if filterOK {
		return GuardFilter, ""
	}
	return GuardAddress, ""
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

// FilterTable is the nftables table flatnet keeps its egress filter in:
// `table netdev flatnet`, one chain per master named after it, hooked at
// the master's egress, and one rule per shim on that master.
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

// flatnet's mark on its table: FilterComment, the table's comment as
// nft(8) shows it (kept in the table's userdata, which the kernel stores
// from Linux 5.10, long before the egress hook). A table named
// [FilterTable] whose comment does not start with FilterMark is not
// flatnet's (but see [Filter]'s Legacy). Each of flatnet's rules carries
// FilterRuleComment, which starts with FilterMark too.
const (
	FilterMark        = "flatnet:"
	FilterComment     = FilterMark + " LAN guard of its shims; flatnet teardown removes it"
	FilterRuleComment = FilterMark + " shim"
)

// Filter is the nftables table named [FilterTable] as read from the
// kernel, as flatnet sees it: whose it is, flatnet's rules in it, and
// what else it holds.
//
// A chain flatnet made is an egress filter chain (type filter, hook
// egress, priority filter, policy accept) named after its master, whose
// rules are all flatnet's drops (`ether saddr MAC counter drop`, marked
// with [FilterRuleComment]; unmarked in a Legacy table).
type Filter struct {
	// Drops are flatnet's rules, in flatnet's chains, by chain then rule.
	// Empty when Foreign.
	Drops []Drop
	// Foreign: the table is not flatnet's. It lacks flatnet's mark and is
	// not a Legacy table either. flatnet never writes or deletes it, and
	// cannot put its egress filter in place while it is there.
	Foreign bool
	// Legacy: the table an older flatnet wrote, before the mark: no mark
	// (no userdata at all), at least one chain, and every chain one that
	// flatnet made holding at least one drop (unmarked). Its chains are
	// flatnet's; the next write makes the table anew, with the mark.
	Legacy bool
	// Other names the chains in flatnet's (marked) table that flatnet did
	// not make: a chain that is not an egress chain of flatnet's shape, or
	// that holds any rule that is not one of flatnet's marked drops.
	// Sorted. flatnet leaves them alone, keeps the table while they are
	// there, and does not filter a master whose name one of them holds.
	Other []string
}

// FilterFinding is what the table gives to report: the table itself
// (Chain "") or one chain in it. Each message names what to do.
type FilterFinding struct {
	Level slog.Level
	Chain string
	Msg   string
}

// FilterFindings returns what must be reported about the table f read
// with guard g: a Foreign table is an error while flatnet wants its
// filter there (with another guard it is in no one's way and says
// nothing); each chain flatnet did not make in its own table is a warning.
func FilterFindings(f *Filter, g Guard) []FilterFinding {
	if f == nil {
		return nil
	}
	var out []FilterFinding
	if f.Foreign && g == GuardFilter {
		out = append(out, FilterFinding{Level: slog.LevelError, Msg: fmt.Sprintf(
			"nftables table netdev %[1]s was not made by flatnet (it lacks flatnet's mark, a comment starting %[2]q): flatnet leaves it alone and cannot put its egress filter in place, so the shims' frames reach the LAN; "+
				"remove it (nft delete table netdev %[1]s) if nothing else uses it, or set lan_guard = \"address\" in flatnet.toml (then systemctl reload flatnet)",
			FilterTable, FilterMark)})
	}
	for _, ch := range f.Other {
		out = append(out, FilterFinding{Level: slog.LevelWarn, Chain: ch, Msg: fmt.Sprintf(
			"nftables chain %[2]q in flatnet's table netdev %[1]s was not made by flatnet (not an egress chain of flatnet's, or it holds a rule flatnet did not write): flatnet leaves it alone and keeps the table while it is there, "+
				"and a NIC of that name gets no egress filter from flatnet; move what it does to a table of your own and delete it (nft delete chain netdev %[1]s %[2]s)",
			FilterTable, ch)})
	}
	return out
}

// FilterScript prints drops as the nft(8) commands that do what the
// SetFilter op does: flatnet's table (made with its comment when there is
// none) gets exactly these chains, each deleted and made anew in one
// transaction (no moment without the filter); chains of other parties in
// the table are left alone. What the commands cannot say, since it
// depends on what the table holds when the op runs, follows as a shell
// comment. With no drops: flatnet's chains go, and the table with them
// when nothing else is left in it.
func FilterScript(drops []Drop) string {
	if len(drops) == 0 {
		return fmt.Sprintf("nft delete table netdev %[1]s # or, while it holds chains flatnet did not make, only flatnet's (nft delete chain netdev %[1]s MASTER)", FilterTable)
	}
	var masters []string
	for i, d := range drops {
		if i == 0 || d.Master != drops[i-1].Master {
			masters = append(masters, d.Master)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "nft 'table netdev %s { comment %q;", FilterTable, FilterComment)
	for _, m := range masters {
		fmt.Fprintf(&b, " chain %s {};", m)
	}
	b.WriteString(" };")
	for _, m := range masters {
		fmt.Fprintf(&b, " delete chain netdev %s %s;", FilterTable, m)
	}
	fmt.Fprintf(&b, " table netdev %s {", FilterTable)
	for i, d := range drops {
		if i == 0 || d.Master != drops[i-1].Master {
			if i > 0 {
				b.WriteString(" };")
			}
			fmt.Fprintf(&b, ` chain %[1]s { type filter hook egress device "%[1]s" priority filter;`, d.Master)
		}
		fmt.Fprintf(&b, " ether saddr %s counter drop comment %q;", d.MAC, FilterRuleComment)
	}
	b.WriteString(" }; }' # flatnet's chains of other masters go too")
	return b.String()
}

// sortDrops orders drops by master, then MAC.
func sortDrops(drops []Drop) {
	slices.SortFunc(drops, func(a, b Drop) int { return cmp.Or(cmp.Compare(a.Master, b.Master), cmp.Compare(a.MAC, b.MAC)) })
}

// sameDrops reports whether the filter holds exactly want, as far as
// flatnet's own rules go: other parties' chains never make flatnet write.
// A Legacy table is never the same (it is to be made anew with the mark),
// nor is a table of flatnet's holding nothing at all when nothing is
// wanted (it is to go).
func sameDrops(have *Filter, want []Drop) bool {
	if have == nil {
		return len(want) == 0
	}
	if have.Legacy || len(have.Drops) != len(want) {
		return false
	}
	if len(want) == 0 && !have.Foreign && len(have.Other) == 0 {
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

// guardOK reports whether shim l is configured as g wants: the settings
// every shim gets (see [ConfigureShim]) and the guard's own.
func guardOK(l Link, g Guard) bool {
	if !l.ARPFilter || !l.ProxyNDP || l.ARPIgnore {
		return false
	}
	switch g {
	case GuardFilter:
		return l.ProxyDelay0
	case GuardAddress:
		return l.ARPAnnounce == 2
	}
	return true
}

// planFilter plans the egress filter for the shims the plan uses: one drop
// per usable shim when the guard is the filter, none otherwise. It goes
// before any shim op, so a new shim is filtered before it first speaks.
//
// A Foreign table is never written (FilterFindings reports it), and a
// master whose name a chain of another party holds in flatnet's table gets
// no chain (that chain is reported, and left alone).
func (p *Plan) planFilter(in Input, shims map[string]shimCheck) {
	have := in.Snap.Filter
	for _, f := range FilterFindings(have, in.Guard) {
		p.Findings = append(p.Findings, Finding{Kind: FindFilter, Level: f.Level, Dir: f.Chain, Msg: f.Msg})
	}
	if have != nil && have.Foreign {
		return
	}
	var want []Drop
	if in.Guard == GuardFilter {
		seen := map[string]bool{}
		for _, n := range in.Networks {
			sc := shims[n.Shim]
			if !sc.usable || seen[n.Shim] || (have != nil && slices.Contains(have.Other, n.Master)) {
				continue
			}
			seen[n.Shim] = true
			want = append(want, Drop{Master: n.Master, MAC: sc.mac.String()})
		}
		sortDrops(want)
	}
	if sameDrops(have, want) {
		return
	}
	p.Ops = append(p.Ops, Op{Kind: SetFilter, Drops: want})
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
// gave it its address, or filters its MAC.
func Guarded(l Link, f *Filter) bool {
	if l.Sender {
		return true
	}
	if f != nil && l.Kind == "macvlan" {
		for _, d := range f.Drops {
			if d.MAC == l.MAC.String() {
				return true
			}
		}
	}
	return false
}
