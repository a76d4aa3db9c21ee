package netlinkx

import (
	"maps"
	"net"
	"reflect"
	"slices"
	"testing"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
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
