package reconcile

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// TestQuickAgreesWithCompute: for random nodes, Quick's ops for a random
// set of addresses are Compute's route and neighbour ops for those
// addresses, neither more nor less.
func TestQuickAgreesWithCompute(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	other := Network{Name: "other", Master: "eno1", Shim: "eno1.host", StateDir: "/other",
		Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("192.168.1.0/28"))}}
	for round := range 500 {
		pool := []string{"192.168.1.2", "192.168.1.3", "192.168.1.4", "192.168.1.5", "192.168.0.5", "192.168.0.1", "10.9.9.9", "192.168.1.200"}
		pick := func() []string {
			var out []string
			for _, s := range pool {
				if r.IntN(2) == 0 {
					out = append(out, s)
				}
			}
			return out
		}
		var routes []Route
		for _, s := range pick() {
			rt := ours(s)
			switch r.IntN(4) {
			case 0:
				rt.Protocol = 4 // foreign
			case 1:
				rt.Dev = "eth7" // ours, elsewhere
			}
			routes = append(routes, rt)
		}
		reused := map[netip.Addr]bool{}
		for _, s := range pick() {
			reused[ip(s)] = true
		}
		in := Input{
			Networks: []Network{seedNet, other},
			States:   map[string]DirState{seedNet.StateDir: allocs(pick()...), other.StateDir: allocs(pick()...)},
			Snap:     &Snapshot{Links: []Link{eno1, shim}, Addrs: []netip.Addr{ip("192.168.0.5")}, Routes: routes},
			Reused:   reused,
		}
		var only []netip.Addr
		want := map[netip.Addr]bool{}
		for _, s := range pick() {
			only = append(only, ip(s))
			want[ip(s)] = true
		}
		var full []string
		for _, op := range Compute(in).Ops {
			if (op.Kind == AddRoute || op.Kind == ReplaceRoute || op.Kind == DelRoute || op.Kind == FlushNeigh) && want[op.Dst.Addr()] {
				full = append(full, op.String())
			}
		}
		var quick []string
		for _, op := range Quick(in, only) {
			quick = append(quick, op.String())
		}
		slices.Sort(full)
		slices.Sort(quick)
		if !slices.Equal(full, quick) {
			t.Fatalf("round %d, only %v:\nCompute %q\nQuick   %q", round, only, full, quick)
		}
	}
}
