//go:build integration

package netlinkx

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// TestFilterOnTheKernel: in a lab node, the probe finds the egress hook and
// leaves nothing behind; the table flatnet writes reads back as written,
// carries flatnet's comment (the mark) on the table and its rules, and
// replaces what was there in one go; WatchFilter reports its deletion and
// other processes' changes, never flatnet's own writes (those through
// google/nftables and the raw ones that make the table); a table an
// operator wrote with nft(8) (the recipe flatnet's README once gave) is
// an older flatnet's (Legacy), and with a rule of another shape in it,
// not flatnet's at all (Foreign).
func TestFilterOnTheKernel(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	if _, err := l.Exec(l.Node, "ip", "link", "add", "eno2", "type", "veth", "peer", "name", "eno2p"); err != nil {
		t.Fatal(err)
	}
	nftList := func() string {
		out, err := l.Exec(l.Node, "nft", "list", "ruleset")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	read := func() *reconcile.Filter {
		var f *reconcile.Filter
		if err := l.Do(l.Node, func() (err error) { f, err = readFilter(); return err }); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if err := l.Do(l.Node, ProbeFilter); err != nil {
		t.Fatalf("ProbeFilter on a kernel with netdev egress: %v", err)
	}
	if out := nftList(); strings.TrimSpace(out) != "" {
		t.Fatalf("the probe left something behind:\n%s", out)
	}
	if f := read(); f != nil {
		t.Fatalf("no table, read %+v", f)
	}

	drops := []reconcile.Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}, {Master: "eno1", MAC: "02:00:00:00:00:02"}, {Master: "eno2", MAC: "02:00:00:00:00:03"}}
	if err := l.Do(l.Node, func() error { return setFilter(drops, nil) }); err != nil {
		t.Fatal(err)
	}
	got := read()
	if got == nil || got.Foreign || got.Legacy || got.Other != nil || !slices.EqualFunc(got.Drops, drops, func(a, b reconcile.Drop) bool { return a.Master == b.Master && a.MAC == b.MAC }) {
		t.Fatalf("read back %+v, want %v\n%s", got, drops, nftList())
	}
	if out := nftList(); !strings.Contains(out, `ether saddr 02:68:e4:f9:d5:ec counter packets 0 bytes 0 drop comment "flatnet: shim"`) ||
		!strings.Contains(out, `comment "flatnet: LAN guard of its shims; flatnet teardown removes it"`) {
		t.Errorf("nft does not print flatnet's rule as `ether saddr … drop` with its comment, or the table's comment:\n%s", out)
	}
	// Written anew: only the new content.
	if err := l.Do(l.Node, func() error { return setFilter(drops[2:], nil) }); err != nil {
		t.Fatal(err)
	}
	if got := read(); got == nil || len(got.Drops) != 1 || got.Drops[0].Master != "eno2" {
		t.Errorf("after rewriting: %+v\n%s", got, nftList())
	}

	// The watch sees a flush.
	events := subscribeFilter(t, l, "netdev")
	for len(events) > 0 {
		<-events
	}
	// A change flatnet makes itself is not reported (it would cost a full
	// pass); the next one, by nft(8), is, and says who made it.
	if err := l.Do(l.Node, func() error { return setFilter(drops[2:], nil) }); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(l.Node, "nft", "flush", "ruleset"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Kind != FilterChanged || e.By != "nft" {
			t.Errorf("event %v by %q, want FilterChanged by nft: flatnet's own change was reported", e.Kind, e.By)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for nft flush ruleset")
	}
	if f := read(); f != nil {
		t.Errorf("after a flush, read %+v", f)
	}
	// flatnet's raw writes (the table made with its mark, and an older
	// flatnet's table made anew) are its own too: after each, the next
	// event is nft's.
	nft := func(c string) {
		t.Helper()
		if _, err := l.Exec(l.Node, append([]string{"nft"}, strings.Fields(c)...)...); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			if e.Kind != FilterChanged || e.By != "nft" {
				t.Errorf("before nft %s: event %v by %q, want FilterChanged by nft: flatnet's own change was reported", c, e.Kind, e.By)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for nft %s", c)
		}
	}
	if err := l.Do(l.Node, func() error { return setFilter(drops, nil) }); err != nil {
		t.Fatal(err)
	}
	nft("add chain netdev flatnet probe")
	nft("flush ruleset")

	// The README's old manual recipe, as an operator typed it: the table of
	// an older flatnet.
	recipe := []string{
		"add table netdev flatnet",
		"add chain netdev flatnet eno1 { type filter hook egress device eno1 priority 0; }",
		"add rule netdev flatnet eno1 ether saddr 02:68:e4:f9:d5:ec drop",
	}
	for _, c := range recipe {
		nft(c)
	}
	if got := read(); got == nil || !got.Legacy || got.Foreign || got.Other != nil || len(got.Drops) != 1 || got.Drops[0] != (reconcile.Drop{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}) {
		t.Errorf("the operator's table read as %+v", got)
	}
	if err := l.Do(l.Node, func() error { return setFilter(drops, nil) }); err != nil {
		t.Fatal(err)
	}
	if got := read(); got == nil || got.Legacy || got.Foreign || len(got.Drops) != len(drops) {
		t.Errorf("the older table made anew read as %+v\n%s", got, nftList())
	}
	nft("add chain netdev flatnet probe")
	nft("flush ruleset")

	// With a rule of another shape in it, it is not flatnet's at all.
	for _, c := range append(recipe, "add rule netdev flatnet eno1 ether type arp accept") {
		nft(c)
	}
	if got := read(); got == nil || !got.Foreign || got.Legacy || got.Drops != nil || got.Other != nil {
		t.Errorf("a rule flatnet would not write was not noticed: %+v", got)
	}
}

// TestFilterOwnerOnTheKernel: flatnet deletes nothing it did not make. A
// table named flatnet that someone else made (without the mark) is
// Foreign: setFilter refuses it and teardown plans nothing for it, and
// the ruleset stays as it was. In flatnet's own table, another party's
// chains (one of its own, and one of flatnet's that someone added a rule
// to) stay through setFilter and teardown, and the table with them. A
// table as main's flatnet wrote it is an older flatnet's: made anew with
// the mark, or removed by teardown.
func TestFilterOwnerOnTheKernel(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	if _, err := l.Exec(l.Node, "ip", "link", "add", "eno2", "type", "veth", "peer", "name", "eno2p"); err != nil {
		t.Fatal(err)
	}
	nft := func(args ...string) string {
		t.Helper()
		out, err := l.Exec(l.Node, append([]string{"nft"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The ruleset without counters' values, to compare.
	ruleset := func() string { return nft("-s", "-a", "list", "ruleset") }
	read := func() *reconcile.Filter {
		t.Helper()
		var f *reconcile.Filter
		if err := l.Do(l.Node, func() (err error) { f, err = readFilter(); return err }); err != nil {
			t.Fatal(err)
		}
		return f
	}
	do := func(fn func() error) error {
		return l.Do(l.Node, fn)
	}
	// teardown is what `flatnet teardown` does (daemon.Teardown).
	teardown := func() []reconcile.Op {
		t.Helper()
		var done []reconcile.Op
		if err := do(func() error {
			k, err := New()
			if err != nil {
				return err
			}
			defer k.Close()
			snap, err := k.Snapshot()
			if err != nil {
				return err
			}
			done, err = reconcile.Apply(k, reconcile.Teardown(snap, ""))
			return err
		}); err != nil {
			t.Fatalf("teardown: %v", err)
		}
		return done
	}
	drops := []reconcile.Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}, {Master: "eno2", MAC: "02:00:00:00:00:03"}}
	mac, _ := net.ParseMAC(drops[0].MAC)
	table := filterTable()

	t.Run("someone else's table", func(t *testing.T) {
		nft("flush", "ruleset")
		// Made with google/nftables, without the mark: an egress chain named
		// after the master flatnet filters, holding a drop like flatnet's
		// and an accept, and a regular chain.
		if err := do(func() error {
			c, err := nftables.New()
			if err != nil {
				return err
			}
			c.AddTable(table)
			ch := c.AddChain(&nftables.Chain{Name: "eno1", Table: table, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookEgress, Priority: nftables.ChainPriorityFilter, Device: "eno1"})
			c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: dropExprs(mac)})
			c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
			c.AddChain(&nftables.Chain{Name: "mine", Table: table})
			return c.Flush()
		}); err != nil {
			t.Fatal(err)
		}
		before := ruleset()
		if got := read(); got == nil || !got.Foreign || got.Legacy || got.Drops != nil || got.Other != nil {
			t.Fatalf("someone else's table read as %+v", got)
		}
		for _, d := range [][]reconcile.Drop{drops, nil} {
			if err := do(func() error { return setFilter(d, nil) }); err == nil {
				t.Errorf("setFilter(%v) on someone else's table: no error", d)
			}
			if after := ruleset(); after != before {
				t.Errorf("setFilter(%v) changed someone else's table:\n%s\nwas:\n%s", d, after, before)
			}
		}
		if done := teardown(); len(done) != 0 {
			t.Errorf("teardown did %v", done)
		}
		if after := ruleset(); after != before {
			t.Errorf("teardown changed someone else's table:\n%s\nwas:\n%s", after, before)
		}
		// An empty table without the mark is not flatnet's either.
		nft("flush", "ruleset")
		nft("add", "table", "netdev", "flatnet")
		before = ruleset()
		if got := read(); got == nil || !got.Foreign {
			t.Errorf("an empty table without the mark read as %+v", got)
		}
		if done := teardown(); len(done) != 0 {
			t.Errorf("teardown did %v", done)
		}
		if after := ruleset(); after != before {
			t.Errorf("teardown changed an empty table not flatnet's:\n%s\nwas:\n%s", after, before)
		}
	})

	t.Run("another party's chains in flatnet's table", func(t *testing.T) {
		nft("flush", "ruleset")
		if err := do(func() error { return setFilter(drops, nil) }); err != nil {
			t.Fatal(err)
		}
		if out := nft("list", "table", "netdev", "flatnet"); !strings.Contains(out, `comment "`+reconcile.FilterComment+`"`) {
			t.Errorf("nft list does not show flatnet's comment:\n%s", out)
		}
		nft("add", "chain", "netdev", "flatnet", "fw")
		nft("add", "rule", "netdev", "flatnet", "fw", "ether", "type", "arp", "accept")
		fw := nft("-s", "-a", "list", "chain", "netdev", "flatnet", "fw")
		got := read()
		if got == nil || got.Foreign || got.Legacy || !slices.Equal(got.Other, []string{"fw"}) || len(got.Drops) != 2 {
			t.Fatalf("flatnet's table with another chain read as %+v", got)
		}
		// flatnet writes its chains; fw stays as it was.
		if err := do(func() error { return setFilter(drops[1:], nil) }); err != nil {
			t.Fatal(err)
		}
		if got := read(); got == nil || !slices.Equal(got.Other, []string{"fw"}) || len(got.Drops) != 1 || got.Drops[0].Master != "eno2" {
			t.Errorf("after setFilter: %+v\n%s", got, ruleset())
		}
		if after := nft("-s", "-a", "list", "chain", "netdev", "flatnet", "fw"); after != fw {
			t.Errorf("setFilter changed chain fw:\n%s\nwas:\n%s", after, fw)
		}
		// A rule someone adds to flatnet's chain makes that chain theirs:
		// setFilter refuses to write it, and leaves it as it is.
		nft("add", "rule", "netdev", "flatnet", "eno2", "ether", "type", "arp", "accept")
		eno2 := nft("-s", "-a", "list", "chain", "netdev", "flatnet", "eno2")
		if got := read(); got == nil || !slices.Equal(got.Other, []string{"eno2", "fw"}) || got.Drops != nil {
			t.Errorf("with a rule added to flatnet's chain: %+v", got)
		}
		if err := do(func() error { return setFilter(drops, nil) }); err == nil {
			t.Error("setFilter wrote over a chain holding another party's rule")
		}
		if after := nft("-s", "-a", "list", "chain", "netdev", "flatnet", "eno2"); after != eno2 {
			t.Errorf("setFilter changed chain eno2:\n%s\nwas:\n%s", after, eno2)
		}
		// flatnet's own chain for eno1 beside them.
		if err := do(func() error { return setFilter(drops[:1], nil) }); err != nil {
			t.Fatal(err)
		}
		if got := read(); got == nil || len(got.Drops) != 1 || got.Drops[0].Master != "eno1" {
			t.Errorf("flatnet's chain beside others: %+v", got)
		}
		// Teardown takes flatnet's chain and leaves the rest, table included.
		if done := teardown(); len(done) != 1 || done[0].Kind != reconcile.SetFilter {
			t.Errorf("teardown did %v", done)
		}
		if got := read(); got == nil || got.Foreign || got.Drops != nil || !slices.Equal(got.Other, []string{"eno2", "fw"}) {
			t.Errorf("after teardown: %+v\n%s", got, ruleset())
		}
		if after := nft("-s", "-a", "list", "chain", "netdev", "flatnet", "fw"); after != fw {
			t.Errorf("teardown changed chain fw:\n%s\nwas:\n%s", after, fw)
		}
		if after := nft("-s", "-a", "list", "chain", "netdev", "flatnet", "eno2"); after != eno2 {
			t.Errorf("teardown changed chain eno2:\n%s\nwas:\n%s", after, eno2)
		}
		// Once they are gone, teardown removes the table.
		nft("delete", "chain", "netdev", "flatnet", "fw")
		nft("delete", "chain", "netdev", "flatnet", "eno2")
		teardown()
		if got := read(); got != nil {
			t.Errorf("flatnet's empty table left by teardown: %+v", got)
		}
	})

	// legacy writes the table as flatnet did before the mark.
	legacy := func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		c.AddTable(table)
		c.DelTable(table)
		c.AddTable(table)
		chains := map[string]*nftables.Chain{}
		for _, d := range drops {
			mac, _ := net.ParseMAC(d.MAC)
			if chains[d.Master] == nil {
				chains[d.Master] = c.AddChain(&nftables.Chain{Name: d.Master, Table: table, Type: nftables.ChainTypeFilter,
					Hooknum: nftables.ChainHookEgress, Priority: nftables.ChainPriorityFilter, Device: d.Master})
			}
			c.AddRule(&nftables.Rule{Table: table, Chain: chains[d.Master], Exprs: dropExprs(mac)})
		}
		return c.Flush()
	}
	t.Run("an older flatnet's table", func(t *testing.T) {
		nft("flush", "ruleset")
		if err := do(legacy); err != nil {
			t.Fatal(err)
		}
		got := read()
		if got == nil || !got.Legacy || got.Foreign || got.Other != nil || len(got.Drops) != 2 {
			t.Fatalf("an older flatnet's table read as %+v", got)
		}
		if err := do(func() error { return setFilter(drops, nil) }); err != nil {
			t.Fatal(err)
		}
		if got := read(); got == nil || got.Legacy || got.Foreign || len(got.Drops) != 2 {
			t.Errorf("made anew: %+v\n%s", got, ruleset())
		}
		if out := nft("list", "table", "netdev", "flatnet"); !strings.Contains(out, `comment "`+reconcile.FilterComment+`"`) || strings.Count(out, `drop comment "`+reconcile.FilterRuleComment+`"`) != 2 {
			t.Errorf("made anew without flatnet's comments:\n%s", out)
		}
		// Teardown removes an older flatnet's table.
		nft("flush", "ruleset")
		if err := do(legacy); err != nil {
			t.Fatal(err)
		}
		if done := teardown(); len(done) != 1 || done[0].Kind != reconcile.SetFilter {
			t.Errorf("teardown did %v", done)
		}
		if got := read(); got != nil {
			t.Errorf("an older flatnet's table left by teardown: %+v", got)
		}
	})
}

// TestShimGuardOnTheKernel: in a lab node, ProbeShim finds the arp and
// netdev families and fib and leaves nothing behind; the shim guard's
// chains, as flatnet writes them, read back as flatnet's (the kernel's
// own account of each rule matches what flatnet compares it with), nft
// prints them as the rules flatnet's scripts say; a shim's ARP request
// leaves with sender 0.0.0.0 and counts on the rule; WatchFilter reports a
// change of the arp table; with nothing wanted both tables go.
func TestShimGuardOnTheKernel(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	shim := l.Master + ".host"
	if _, err := l.Exec(l.Node, "ip", "link", "add", shim, "link", l.Master, "type", "macvlan", "mode", "bridge"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(l.Node, "ip", "link", "set", shim, "up"); err != nil {
		t.Fatal(err)
	}
	nftList := func() string {
		out, err := l.Exec(l.Node, "nft", "list", "ruleset")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if err := l.Do(l.Node, ProbeShim); err != nil {
		t.Fatalf("ProbeShim: %v", err)
	}
	if out := nftList(); strings.TrimSpace(out) != "" {
		t.Fatalf("the probe left something behind:\n%s", out)
	}
	read := func() (*reconcile.Filter, *reconcile.ProbeTable) {
		var f *reconcile.Filter
		var p *reconcile.ProbeTable
		if err := l.Do(l.Node, func() (err error) {
			if f, err = readFilter(); err != nil {
				return err
			}
			p, err = readProbes()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return f, p
	}
	// A chain for a shim that does not exist yet is fine in the arp table.
	if err := l.Do(l.Node, func() error { return setProbes([]string{shim, "eno9.host"}) }); err != nil {
		t.Fatal(err)
	}
	if err := l.Do(l.Node, func() error { return setFilter(nil, []string{shim}) }); err != nil {
		t.Fatal(err)
	}
	f, p := read()
	if p == nil || p.Foreign || p.Other != nil || len(p.Shields) != 2 || p.Shields[0].Shim != shim || p.Shields[1].Shim != "eno9.host" {
		t.Errorf("arp table read back as %+v\n%s", p, nftList())
	}
	if f == nil || f.Foreign || f.Other != nil || f.Drops != nil || len(f.Solicits) != 1 || f.Solicits[0].Shim != shim {
		t.Errorf("netdev table read back as %+v\n%s", f, nftList())
	}
	out := nftList()
	for _, want := range []string{
		`oifname "` + shim + `" arp operation request arp saddr ip set 0.0.0.0 counter packets 0 bytes 0 comment "` + reconcile.ProbeComment + `"`,
		`type filter hook ingress device "` + shim + `" priority filter; policy accept;`,
		`icmpv6 type nd-neighbor-solicit meta pkttype != host ip6 saddr fe80::/10 counter packets 0 bytes 0 drop comment "` + reconcile.SolicitLinkLocalComment + `"`,
		`icmpv6 type nd-neighbor-solicit ip6 saddr :: counter packets 0 bytes 0 drop`,
		`icmpv6 type nd-neighbor-solicit fib saddr . iif oif missing counter packets 0 bytes 0 drop`,
		`table arp flatnet {`, `comment "flatnet: LAN guard of its shims; flatnet teardown removes it"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nft does not print %q:\n%s", want, out)
		}
	}

	// The shim's ARP request for a neighbour leaves as a probe.
	if _, err := l.Exec(l.Node, "ip", "route", "add", "192.168.7.7/32", "dev", shim, "src", l.NodeIP.String()); err != nil {
		t.Fatal(err)
	}
	capture, err := l.StartCapture(l.LAN, l.Opts.LANPort)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = l.Exec(l.Node, "ping", "-c", "1", "-W", "1", "192.168.7.7")
	time.Sleep(200 * time.Millisecond)
	_ = capture.Close()
	requests := capture.Frames(func(fr lab.Frame) bool { return !fr.Out && fr.ARPTarget == netip.MustParseAddr("192.168.7.7") })
	if len(requests) == 0 {
		t.Fatalf("no ARP request for 192.168.7.7 from the shim on the LAN")
	}
	for _, fr := range requests {
		if fr.ARPSender != netip.IPv4Unspecified() {
			t.Errorf("the shim's ARP request names %v as its sender, want 0.0.0.0: %v", fr.ARPSender, fr)
		}
	}
	if _, p := read(); p == nil || len(p.Shields) == 0 || p.Shields[0].Packets == 0 {
		t.Errorf("the probe rule counted nothing: %+v", p)
	}

	// The watch sees a change of the arp table.
	subscribeFilter(t, l, "arp")
	if _, p := read(); p == nil || !slices.Equal(p.Other, []string{"probe"}) {
		t.Errorf("another party's chain in the arp table: %+v", p)
	}
	// Nothing wanted: flatnet's chains go, and the table stays for the
	// other party's chain; without it, the table goes too.
	if err := l.Do(l.Node, func() error { return setProbes(nil) }); err != nil {
		t.Fatal(err)
	}
	if _, p := read(); p == nil || p.Shields != nil || !slices.Equal(p.Other, []string{"probe"}) {
		t.Errorf("after setProbes(nil) with another party's chain: %+v", p)
	}
	if _, err := l.Exec(l.Node, "nft", "delete", "chain", "arp", "flatnet", "probe"); err != nil {
		t.Fatal(err)
	}
	if err := l.Do(l.Node, func() error {
		if err := setProbes(nil); err != nil {
			return err
		}
		return setFilter(nil, nil)
	}); err != nil {
		t.Fatal(err)
	}
	if out := nftList(); strings.TrimSpace(out) != "" {
		t.Errorf("flatnet's empty tables stayed:\n%s", out)
	}
}

// subscribeFilter runs WatchFilter in the lab's node until the test ends and
// returns its events once the subscription is in place: once a chain
// nft(8) adds to flatnet's table of family (a chain named probe, which
// the caller's table then holds) is reported.
func subscribeFilter(t *testing.T, l *lab.Lab, family string) <-chan Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events := make(chan Event, 16)
	go func() {
		_ = l.Do(l.Node, func() error {
			return WatchFilter(ctx, func(e Event) {
				select {
				case events <- e:
				default:
				}
			})
		})
	}()
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		if _, err := l.Exec(l.Node, "nft", "add", "chain", family, "flatnet", "probe"); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			seen = e.Kind == FilterChanged
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("WatchFilter reported no change of table %s flatnet", family)
		}
	}
	return events
}
