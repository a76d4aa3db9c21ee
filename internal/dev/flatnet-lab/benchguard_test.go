package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/reconcile"
)

func TestStatsOf(t *testing.T) {
	if got := statsOf(nil); got != (stats{}) {
		t.Errorf("statsOf(nil) = %+v", got)
	}
	v := []float64{3, 1, 2}
	if got := statsOf(v); got != (stats{med: 2, q1: 1.5, q3: 2.5, lo: 1, hi: 3}) {
		t.Errorf("odd: %+v", got)
	}
	if v[0] != 3 {
		t.Errorf("statsOf sorted its argument: %v", v)
	}
	if got := statsOf([]float64{4, 1, 2, 3, 5}); got != (stats{med: 3, q1: 2, q3: 4, lo: 1, hi: 5}) {
		t.Errorf("five: %+v", got)
	}
	if got := statsOf([]float64{4, 1, 2, 3}); got.med != 2.5 {
		t.Errorf("even: %+v", got)
	}
}

func TestPaired(t *testing.T) {
	got := pairedRatios([]float64{90, 100, 50}, []float64{100, 0, 100, 7})
	if len(got) != 2 || got[0] != 0.9 || got[1] != 0.5 {
		t.Errorf("pairedRatios = %v: each round over off's of the same round, none over zero", got)
	}
	if d := pairedDiffs([]float64{110, 205}, []float64{100, 200, 300}); len(d) != 2 || d[0] != 10 || d[1] != 5 {
		t.Errorf("pairedDiffs = %v", d)
	}
}

// TestNftText: reconcile's scripts, cut to what nft takes as one argument,
// the shell comment after them gone, whatever quote it holds.
func TestNftText(t *testing.T) {
	for _, s := range []string{
		reconcile.FilterScript([]reconcile.Drop{{Master: "sink0", MAC: "02:00:00:00:00:01"}}),
		reconcile.FilterScript(nil, "sink0.host"),
		reconcile.ProbeScript([]string{"sink0.host"}),
	} {
		got := nftText(s)
		if !strings.HasPrefix(got, "table ") || !strings.HasSuffix(got, "}; }") || strings.Contains(got, "#") {
			t.Errorf("nftText(%q) = %q", s, got)
		}
	}
	rs := ruleSets("eno1", "eno1.host", "02:00:00:00:00:01")
	if !strings.Contains(rs["shim"], "table arp flatnet") || !strings.Contains(rs["shim"], `hook ingress device "eno1.host"`) ||
		!strings.Contains(rs["filter"], `hook egress device "eno1"`) || !strings.Contains(rs["empty"], `hook egress device "eno1"`) || rs["off"] != "flush ruleset" {
		t.Errorf("rule sets: %v", rs)
	}
}

// TestGuardTables: rates with each guard's median and spread, CPU with
// each rule set's median and minimum, the ratios paired by round or turn,
// the targets on the node's own traffic only, and a note with the cost
// per packet.
func TestGuardTables(t *testing.T) {
	g := &guardResults{rounds: 2, secs: 2, turns: 2, rates: map[string]map[string][]float64{
		"lan-udp": {"off": {100e3, 200e3}, "address": {100e3, 200e3}, "filter": {90e3, 180e3}, "shim": {99e3, 200e3}},
		"lan-tcp": {"off": {10e9, 10e9}, "address": {10e9, 10e9}, "filter": {9e9, 10e9}, "shim": {10e9, 10e9}},
	}, cpu: map[string]map[string][]float64{}}
	for _, k := range cpuKinds {
		g.cpu[k] = map[string][]float64{"off": {1000, 1010}, "filter": {1100, 1110}, "empty": {1030, 1040}, "shim": {1000, 1012}}
	}
	rates := g.rateRows()
	if len(rates) != 2 || rates[0].cells[0] != "150k (100k–200k)" || rates[0].ratios[1] != "0.90 (0.90–0.90)" || rates[0].ratios[2] != "0.99 (0.99–1.00)" ||
		rates[0].target != "shim ≥ 0.98: met" || rates[1].cells[2] != "9.5 (9.0–10.0)" {
		t.Errorf("rates: %+v", rates)
	}
	cpu := g.cpuRows()
	if len(cpu) != 4 || cpu[0].cells[1] != "1105 (1100)" || cpu[0].ratios[2] != "1.001 (1.000–1.001)" || cpu[0].target != "shim ≤ 1.02: met" || cpu[1].target != "" {
		t.Errorf("CPU: %+v", cpu)
	}
	var b bytes.Buffer
	g.printGuard(&b)
	out := b.String()
	for _, want := range []string{"node → LAN host, TCP one stream: Gbit/s", "pod → node (through the shim), UDP 64 B: CPU ns/packet",
		"the egress filter adds 100 ns, an empty egress chain 30 ns, the shim guard +1 ns", "shim ≤ 1.02: met"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
