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
	if got := statsOf(v); got != (stats{med: 2, lo: 1, hi: 3}) {
		t.Errorf("odd: %+v", got)
	}
	if v[0] != 3 {
		t.Errorf("statsOf sorted its argument: %v", v)
	}
	if got := statsOf([]float64{4, 1, 2, 3}); got != (stats{med: 2.5, lo: 1, hi: 4}) {
		t.Errorf("even: %+v", got)
	}
}

func TestPairedRatios(t *testing.T) {
	got := pairedRatios([]float64{90, 100, 50}, []float64{100, 0, 100, 7})
	if len(got) != 2 || got[0] != 0.9 || got[1] != 0.5 {
		t.Errorf("pairedRatios = %v: each round over off's of the same round, none over zero", got)
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
}

// TestGuardTable: rows per traffic with each mode's median and spread,
// the ratios paired by round, the target on the node's own traffic only,
// and a note with the cost per packet.
func TestGuardTable(t *testing.T) {
	g := &guardResults{rounds: 2, secs: 2, runs: map[string]map[string][]guardRun{}, sink: map[string][]float64{
		"off": {1000, 1010}, "filter": {1100, 1110}, "shim": {1000, 1012},
	}}
	for _, k := range guardTrafficKinds {
		g.runs[k] = map[string][]guardRun{
			"off":     {{rate: 100e3, nsPerPk: 5000}, {rate: 200e3, nsPerPk: 5000}},
			"address": {{rate: 100e3}, {rate: 200e3}},
			"filter":  {{rate: 90e3}, {rate: 180e3}},
			"shim":    {{rate: 99e3}, {rate: 200e3}},
		}
	}
	rows := g.guardRows()
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 6: %+v", len(rows), rows)
	}
	first := rows[0]
	if first.cells[0] != "150k (100k–200k)" || first.ratios[0] != "0.900 (0.90–0.90)" || first.ratios[1] != "0.995 (0.99–1.00)" || first.target != "shim ≥ 0.98: met" {
		t.Errorf("the UDP row: %+v", first)
	}
	if rows[3].target != "" {
		t.Errorf("pod → node carries the node's target: %+v", rows[3])
	}
	var b bytes.Buffer
	g.printGuard(&b)
	out := b.String()
	for _, want := range []string{"node → LAN host, TCP one stream: Gbit/s", "the egress filter adds 100 ns", "shim guard +1 ns", "shim ≥ 0.98: met"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
