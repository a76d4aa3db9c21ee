package reconcile

import (
	"net/netip"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// benchInput is a node with n pods, every one routed: the steady state
// each pass of the daemon compares.
func benchInput(n int) Input {
	r := hostlocal.RangeFromPrefix(netip.MustParsePrefix("10.0.0.0/8"))
	nw := seedNet
	nw.Ranges = []hostlocal.Range{r}
	st := DirState{Allocs: map[netip.Addr]hostlocal.Owner{}}
	snap := &Snapshot{Links: []Link{eno1, shim}, Addrs: []netip.Addr{ip("192.168.0.5")}}
	a := netip.MustParseAddr("10.0.0.1")
	for range n {
		a = a.Next()
		st.Allocs[a] = hostlocal.Owner{ContainerID: "c", IfName: "eth0"}
		snap.Routes = append(snap.Routes, Route{Dst: hostPrefix(a), Dev: "eno1.host", Protocol: Protocol})
	}
	return Input{Networks: []Network{nw}, States: map[string]DirState{nw.StateDir: st}, Snap: snap, MachineID: "m"}
}

func benchmarkCompute(b *testing.B, n int) {
	in := benchInput(n)
	b.ReportAllocs()
	for b.Loop() {
		p := Compute(in)
		if len(p.Ops) != 0 {
			b.Fatalf("steady state planned %d ops", len(p.Ops))
		}
	}
}

func BenchmarkCompute1k(b *testing.B)  { benchmarkCompute(b, 1000) }
func BenchmarkCompute10k(b *testing.B) { benchmarkCompute(b, 10000) }

// BenchmarkColdStart is a start with n pods and none of their routes yet:
// one full pass planning n additions, then the record of them done.
func benchmarkColdStart(b *testing.B, n int) {
	in := benchInput(n)
	in.Snap.Routes = nil
	b.ReportAllocs()
	for b.Loop() {
		node := NewNode()
		p := node.full(in)
		if len(p.Ops) != n {
			b.Fatalf("cold start planned %d ops, want %d", len(p.Ops), n)
		}
		node.done(p.Ops)
		if st := node.Status()[0]; st.Routed != n {
			b.Fatalf("%d routed after the cold start, want %d", st.Routed, n)
		}
	}
}

func BenchmarkColdStart10k(b *testing.B) { benchmarkColdStart(b, 10000) }
func BenchmarkColdStart65k(b *testing.B) { benchmarkColdStart(b, 65000) }
