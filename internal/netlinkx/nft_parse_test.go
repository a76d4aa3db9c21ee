package netlinkx

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"testing"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func TestParseDrop(t *testing.T) {
	mac := net.HardwareAddr{2, 0x68, 0xe4, 0xf9, 0xd5, 0xec}
	full := dropExprs(mac)
	if got, _, ok := parseDrop(full); !ok || got != mac.String() {
		t.Errorf("parseDrop(dropExprs) = %q, %v", got, ok)
	}
	// Without nft's device type check, and without the counter.
	bare := []expr.Any{full[2], full[3], full[5]}
	if got, _, ok := parseDrop(bare); !ok || got != mac.String() {
		t.Errorf("parseDrop(bare) = %q, %v", got, ok)
	}
	for name, es := range map[string][]expr.Any{
		"accept":      {full[0], full[1], full[2], full[3], &expr.Verdict{Kind: expr.VerdictAccept}},
		"daddr":       {&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 0, Len: 6}, full[3], full[5]},
		"no verdict":  {full[2], full[3]},
		"other first": {&expr.Counter{}, full[2], full[3], full[5]},
		"empty":       nil,
	} {
		if _, _, ok := parseDrop(es); ok {
			t.Errorf("parseDrop(%s) took it for flatnet's rule", name)
		}
	}
}

func TestUdataComment(t *testing.T) {
	b := commentUdata(reconcile.FilterComment)
	// As nft(8) writes it: type 0, length, the value with its NUL.
	if b[0] != 0 || int(b[1]) != len(reconcile.FilterComment)+1 || b[len(b)-1] != 0 {
		t.Errorf("commentUdata = % x", b)
	}
	if got, ok := udataComment(b); !ok || got != reconcile.FilterComment {
		t.Errorf("udataComment(commentUdata) = %q, %v", got, ok)
	}
	// Another TLV first (type 1, as iptables-nft's), then the comment.
	if got, ok := udataComment(append([]byte{1, 2, 'x', 0}, b...)); !ok || got != reconcile.FilterComment {
		t.Errorf("after another TLV: %q, %v", got, ok)
	}
	for name, b := range map[string][]byte{
		"none":      nil,
		"one byte":  {0},
		"too short": {0, 9, 'a', 0},
		"no NUL":    {0, 2, 'a', 'b'},
		"empty":     {0, 0},
		"other":     {1, 2, 'a', 0},
	} {
		if got, ok := udataComment(b); ok {
			t.Errorf("udataComment(%s) = %q", name, got)
		}
	}
}

// Tables as the kernel gives them, for judge.
var (
	macA = net.HardwareAddr{2, 0x68, 0xe4, 0xf9, 0xd5, 0xec}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

func egress(name string, rules ...*nftables.Rule) nftChain {
	return nftChain{Chain: &nftables.Chain{
		Name: name, Table: filterTable(), Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookEgress, Priority: nftables.ChainPriorityFilter,
		Policy: func() *nftables.ChainPolicy { p := nftables.ChainPolicyAccept; return &p }(),
	}, rules: rules}
}

func drop(mac net.HardwareAddr, marked bool) *nftables.Rule {
	r := &nftables.Rule{Exprs: dropExprs(mac)}
	if marked {
		r.UserData = commentUdata(reconcile.FilterRuleComment)
	}
	return r
}

func marked(chains ...nftChain) *nftTable {
	return &nftTable{tableInfo: tableInfo{handle: 1, udata: commentUdata(reconcile.FilterComment)}, chains: chains}
}

func unmarked(chains ...nftChain) *nftTable {
	return &nftTable{tableInfo: tableInfo{handle: 1}, chains: chains}
}

func TestJudge(t *testing.T) {
	accept := &nftables.Rule{Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}}
	ingress := egress("eno3", drop(macA, true))
	ingress.Hooknum = nftables.ChainHookIngress
	dropPolicy := egress("eno4", drop(macA, true))
	p := nftables.ChainPolicyDrop
	dropPolicy.Policy = &p
	prio := egress("eno5", drop(macA, true))
	prio.Priority = nftables.ChainPriorityRef(-10)
	regular := nftChain{Chain: &nftables.Chain{Name: "fw", Table: filterTable()}}
	a, b := func(m string) reconcile.Drop { return reconcile.Drop{Master: m, MAC: macA.String()} }, func(m string) reconcile.Drop { return reconcile.Drop{Master: m, MAC: macB.String()} }
	tests := []struct {
		name string
		t    *nftTable
		want *reconcile.Filter
		ours []string
	}{
		{"none", nil, nil, nil},
		{"flatnet's, empty", marked(), &reconcile.Filter{}, nil},
		{"flatnet's", marked(egress("eno1", drop(macA, true), drop(macB, true)), egress("eno2", drop(macA, true))),
			&reconcile.Filter{Drops: []reconcile.Drop{a("eno1"), b("eno1"), a("eno2")}}, []string{"eno1", "eno2"}},
		{"flatnet's, with chains of others", marked(regular, egress("eno1", drop(macA, true)), egress("eno2", drop(macA, true), accept), ingress, dropPolicy, prio, egress("eno6", drop(macA, false))),
			&reconcile.Filter{Drops: []reconcile.Drop{a("eno1")}, Other: []string{"eno2", "eno3", "eno4", "eno5", "eno6", "fw"}}, []string{"eno1"}},
		{"flatnet's, an empty egress chain is flatnet's", marked(egress("eno1")), &reconcile.Filter{}, []string{"eno1"}},
		{"an older flatnet's", unmarked(egress("eno1", drop(macA, false)), egress("eno2", drop(macB, false))),
			&reconcile.Filter{Drops: []reconcile.Drop{a("eno1"), b("eno2")}, Legacy: true}, []string{"eno1", "eno2"}},
		{"empty, no mark", unmarked(), &reconcile.Filter{Foreign: true}, nil},
		{"no mark, an empty chain", unmarked(egress("eno1", drop(macA, false)), egress("eno2")), &reconcile.Filter{Foreign: true}, nil},
		{"no mark, another rule", unmarked(egress("eno1", drop(macA, false), accept)), &reconcile.Filter{Foreign: true}, nil},
		{"no mark, another chain", unmarked(egress("eno1", drop(macA, false)), regular), &reconcile.Filter{Foreign: true}, nil},
		{"no mark, other priority", unmarked(prio), &reconcile.Filter{Foreign: true}, nil},
		{"another party's comment", &nftTable{tableInfo: tableInfo{udata: commentUdata("my firewall")}, chains: []nftChain{egress("eno1", drop(macA, false))}}, &reconcile.Filter{Foreign: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ours := judge(tt.t)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("judge = %+v, want %+v", got, tt.want)
			}
			names := slices.Sorted(maps.Keys(ours))
			if !slices.Equal(names, tt.ours) {
				t.Errorf("flatnet's chains %v, want %v", names, tt.ours)
			}
		})
	}
}

// solicits is a shim's ingress chain as flatnet writes it, the counters
// at n each; with marks false, without the comments.
func solicits(shim string, n uint64, marks bool) nftChain {
	ch := nftChain{Chain: solicitChain(filterTable(), shim)}
	p := nftables.ChainPolicyAccept
	ch.Policy = &p
	for _, r := range solicitRules {
		es := slices.Clone(r.exprs)
		for i, e := range es {
			if _, ok := e.(*expr.Counter); ok {
				es[i] = &expr.Counter{Packets: n}
			}
		}
		rule := &nftables.Rule{Exprs: es}
		if marks {
			rule.UserData = commentUdata(r.comment)
		}
		ch.rules = append(ch.rules, rule)
	}
	return ch
}

// probes is a shim's probe chain in the arp table as flatnet writes it.
func probes(shim string, n uint64, mark bool) nftChain {
	es := probeExprs(shim)
	es[len(es)-1] = &expr.Counter{Packets: n}
	r := &nftables.Rule{Exprs: es}
	if mark {
		r.UserData = commentUdata(reconcile.ProbeComment)
	}
	return nftChain{Chain: probeChain(probeTable(), shim), rules: []*nftables.Rule{r}}
}

// TestJudgeShimGuard: the shim guard's ingress chains are flatnet's in its
// netdev table only as written (every rule, marked, on the ingress hook),
// its probe chains in the arp table likewise (the rule for the chain's
// own shim); anything else is another party's, and an arp table without
// the mark is foreign.
func TestJudgeShimGuard(t *testing.T) {
	short := solicits("eno1.host", 0, true)
	short.rules = short.rules[:2]
	egressHook := solicits("eno2.host", 0, true)
	egressHook.Hooknum = nftables.ChainHookEgress
	unmarkedRule := solicits("eno3.host", 0, false)
	swapped := solicits("eno4.host", 0, true)
	swapped.rules[0], swapped.rules[1] = swapped.rules[1], swapped.rules[0]
	got, ours := judge(marked(solicits("eno0.host", 2, true), short, egressHook, unmarkedRule, swapped, egress("eno1", drop(macA, true))))
	want := &reconcile.Filter{
		Drops:    []reconcile.Drop{{Master: "eno1", MAC: macA.String()}},
		Solicits: []reconcile.Shield{{Shim: "eno0.host", Packets: 6}},
		Other:    []string{"eno1.host", "eno2.host", "eno3.host", "eno4.host"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("judge = %+v, want %+v", got, want)
	}
	if names := slices.Sorted(maps.Keys(ours)); !slices.Equal(names, []string{"eno0.host", "eno1"}) {
		t.Errorf("flatnet's chains %v", names)
	}
	// Without the mark, an ingress chain makes the table foreign.
	if got, _ := judge(unmarked(solicits("eno0.host", 0, false))); !got.Foreign {
		t.Errorf("an unmarked table with an ingress chain: %+v", got)
	}

	otherShim := probes("eno1.host", 0, true)
	otherShim.Name = "eno2.host" // the rule names eno1.host
	twoRules := probes("eno3.host", 0, true)
	twoRules.rules = append(twoRules.rules, twoRules.rules[0])
	inputHook := probes("eno4.host", 0, true)
	inputHook.Hooknum = nftables.ChainHookRef(0)
	p, ours := judgeProbes(marked(probes("eno0.host", 5, true), otherShim, twoRules, inputHook, probes("eno5.host", 0, false)))
	wantP := &reconcile.ProbeTable{
		Shields: []reconcile.Shield{{Shim: "eno0.host", Packets: 5}},
		Other:   []string{"eno2.host", "eno3.host", "eno4.host", "eno5.host"},
	}
	if !reflect.DeepEqual(p, wantP) {
		t.Errorf("judgeProbes = %+v, want %+v", p, wantP)
	}
	if names := slices.Sorted(maps.Keys(ours)); !slices.Equal(names, []string{"eno0.host"}) {
		t.Errorf("flatnet's probe chains %v", names)
	}
	if p, _ := judgeProbes(unmarked(probes("eno0.host", 0, true))); !reflect.DeepEqual(p, &reconcile.ProbeTable{Foreign: true}) {
		t.Errorf("an arp table without the mark: %+v", p)
	}
	if p, _ := judgeProbes(nil); p != nil {
		t.Errorf("no arp table: %+v", p)
	}

	// `nft flush table` keeps the chains and empties them: flatnet's
	// still, with nothing in place, so that the plan writes them again.
	flushedProbe := probes("eno6.host", 0, true)
	flushedProbe.rules = nil
	p, ours = judgeProbes(marked(flushedProbe))
	if !reflect.DeepEqual(p, &reconcile.ProbeTable{}) || !ours["eno6.host"] {
		t.Errorf("an emptied probe chain: %+v, flatnet's %v", p, ours)
	}
	flushedSolicit := solicits("eno6.host", 0, true)
	flushedSolicit.rules = nil
	got, ours = judge(marked(flushedSolicit))
	if !reflect.DeepEqual(got, &reconcile.Filter{}) || !ours["eno6.host"] {
		t.Errorf("an emptied ingress chain: %+v, flatnet's %v", got, ours)
	}
}

// TestDeliberateOnly: a probe's batch passes when its one failure is the
// deliberate ENOENT, and fails with any other error, alone or beside it.
func TestDeliberateOnly(t *testing.T) {
	enoent := fmt.Errorf("conn.Receive: %w", errors.Join(fmt.Errorf("receive: %w", unix.ENOENT)))
	if !deliberateOnly(enoent) {
		t.Errorf("the deliberate failure alone: not recognised")
	}
	for name, err := range map[string]error{
		"two failures":  fmt.Errorf("conn.Receive: %w", errors.Join(unix.ENOENT, unix.ENOENT)),
		"not supported": fmt.Errorf("conn.Receive: %w", errors.Join(unix.EOPNOTSUPP, unix.ENOENT)),
		"another error": unix.EINVAL,
	} {
		if deliberateOnly(err) {
			t.Errorf("%s: taken for the deliberate failure", name)
		}
	}
}

// TestReleaseAtLeast: the kernel releases of the distributions flatnet
// packages for, against 5.10 (the table comment, flatnet's mark).
func TestReleaseAtLeast(t *testing.T) {
	for rel, want := range map[string]bool{
		"5.4.0-150-generic": false, "4.19.0-27-amd64": false, "4.18.0-553.el8_10.x86_64": false,
		"5.10.0-30-amd64": true, "5.14.0-427.el9.x86_64": true, "6.1.0-18-amd64": true, "6.18.44-fc-v1272": true,
		"10.0": true, "5.9": false, "garbage": true,
	} {
		if got := releaseAtLeast(rel, 5, 10); got != want {
			t.Errorf("releaseAtLeast(%q, 5, 10) = %v, want %v", rel, got, want)
		}
	}
}
