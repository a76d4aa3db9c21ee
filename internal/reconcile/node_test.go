package reconcile

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// snapOf is the snapshot that holds what node believes of the kernel: its
// links and addresses as given, its route index as routes.
func snapOf(node *Node, base *Snapshot) *Snapshot {
	s := *base
	s.Routes = nil
	for _, ipa := range slices.SortedFunc(maps.Keys(node.routes), netip.Addr.Compare) {
		hr := node.routes[ipa]
		for _, r := range []*Route{hr.ours, hr.foreign} {
			if r != nil {
				s.Routes = append(s.Routes, *r)
			}
		}
	}
	return &s
}

// TestNodeDeltaAgreesWithFull: for random nodes and random streams of
// allocations coming, going and changing owner, with some ops failing, the
// Node kept by delta (Update, then Done with what succeeded) holds at every
// step the status and findings a full pass over the same state finds, and
// the full pass finds nothing more to do than the failed ops left.
func TestNodeDeltaAgreesWithFull(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	other := Network{Name: "other", Master: "eno1", Shim: "eno1.host", StateDir: "/other",
		Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("192.168.1.0/28"))}}
	pool := []string{"192.168.1.2", "192.168.1.3", "192.168.1.4", "192.168.1.5", "192.168.0.5", "192.168.0.1", "10.9.9.9", "192.168.1.200", "192.168.1.20"}
	for round := range 200 {
		var routes []Route
		for _, s := range pool {
			switch r.IntN(6) {
			case 0:
				routes = append(routes, Route{Dst: hostPrefix(ip(s)), Dev: "eno1.host", Protocol: 4}) // foreign
			case 1:
				rt := ours(s)
				rt.Dev = "eth7" // ours, elsewhere
				routes = append(routes, rt)
			case 2:
				routes = append(routes, ours(s))
			}
		}
		states := map[string]DirState{seedNet.StateDir: allocs(), other.StateDir: allocs()}
		// A network whose addresses come from libcni's cached results
		// alone (static, whereabouts, dhcp), and results for the seed's
		// network too (host-local's pods have both).
		leased := Network{Name: "leased", Master: "eno1", Shim: "eno1.host", IPAM: "static"}
		results := map[string]map[netip.Addr]Lease{seedNet.Name: {}, leased.Name: {}}
		base := &Snapshot{Links: []Link{eno1, shim}, Addrs: []netip.Addr{ip("192.168.0.5")}, Routes: routes}
		in := Input{Networks: []Network{seedNet, other, leased}, States: states, Results: results, Snap: base}
		node := NewNode()
		k := &fakeKernel{fail: map[string]error{}}
		done, _ := Apply(k, node.full(in).Ops)
		node.done(done)
		for step := range 20 {
			// Some allocations change: the daemon updates the state dir
			// cache (the shared maps), then tells the node which addresses.
			var changed []netip.Addr
			reused := map[netip.Addr]bool{}
			for _, dir := range []string{seedNet.StateDir, other.StateDir} {
				for _, s := range pool {
					if r.IntN(4) != 0 {
						continue
					}
					a := ip(s)
					switch _, had := states[dir].Allocs[a]; {
					case had && r.IntN(3) == 0:
						states[dir].Allocs[a] = hostlocal.Owner{ContainerID: "new-" + s}
						reused[a] = true
					case had:
						delete(states[dir].Allocs, a)
					default:
						states[dir].Allocs[a] = hostlocal.Owner{ContainerID: "c-" + s}
					}
					changed = append(changed, a)
				}
			}
			for _, name := range []string{seedNet.Name, leased.Name} {
				for _, s := range pool {
					if r.IntN(5) != 0 {
						continue
					}
					a := ip(s)
					if _, had := results[name][a]; had {
						delete(results[name], a)
					} else {
						results[name][a] = Lease{Owner: hostlocal.Owner{ContainerID: "l-" + s, IfName: "net1"}, Subnet: netip.MustParsePrefix("192.168.0.0/16"), Gateway: ip("192.168.0.1")}
					}
					changed = append(changed, a)
				}
			}
			clear(k.fail)
			ops := node.update(changed, reused, nil)
			for _, op := range ops {
				if r.IntN(5) == 0 {
					k.fail[op.String()] = errFake
				}
			}
			done, _ := Apply(k, ops)
			node.done(done)

			full := Compute(Input{Networks: in.Networks, States: states, Results: results, Snap: snapOf(node, base)})
			got, want := node.Status(), full.Networks
			sum := node.Summary()
			for i := range want {
				if !sameStatus(got[i], want[i]) {
					t.Fatalf("round %d step %d: network %s by delta %+v, by a full pass %+v", round, step, want[i].Name, got[i], want[i])
				}
				if nr := len(want[i].Missing) + len(want[i].Conflicts); sum[i].NotRouted != nr || sum[i].Routed != want[i].Routed {
					t.Fatalf("round %d step %d: network %s summary by delta %+v; a full pass finds %d routed, %d not routed", round, step, want[i].Name, sum[i], want[i].Routed, nr)
				}
			}
			if g, w := findingNames(node.Findings()), findingNames(full.Findings); !slices.Equal(g, w) {
				t.Fatalf("round %d step %d: findings by delta %q, by a full pass %q", round, step, g, w)
			}
			// What failed is retried; then a full pass finds nothing to do.
			var failed []netip.Addr
			for _, op := range ops {
				if k.fail[op.String()] != nil {
					failed = append(failed, op.Dst.Addr())
				}
			}
			clear(k.fail)
			retry, _ := Apply(k, node.update(failed, nil, nil))
			node.done(retry)
			for _, op := range NewNode().full(Input{Networks: in.Networks, States: states, Results: results, Snap: snapOf(node, base)}).Ops {
				if op.Kind.IsRoute() {
					t.Fatalf("round %d step %d: after the retry a full pass still plans %q", round, step, op)
				}
			}
		}
	}
}

var errFake = errString("fake failure")

type errString string

func (e errString) Error() string { return string(e) }

func sameStatus(a, b NetStatus) bool {
	return a.Name == b.Name && a.Allocated == b.Allocated && a.Routed == b.Routed && a.Held == b.Held && a.ShimUp == b.ShimUp &&
		slices.Equal(a.Missing, b.Missing) && slices.Equal(a.Stale, b.Stale) && slices.Equal(a.Conflicts, b.Conflicts)
}

// TestNodeFresh: a finding is fresh (logged) once when it appears, not
// again while it holds, across updates and full passes, and again once it
// went and came back.
func TestNodeFresh(t *testing.T) {
	st := allocs("192.168.1.2")
	in := Input{Networks: []Network{seedNet}, States: map[string]DirState{seedNet.StateDir: st},
		Snap: &Snapshot{Links: []Link{eno1, shim}, Addrs: []netip.Addr{ip("192.168.0.5")}}}
	node := NewNode()
	node.full(in)
	if f := node.TakeFresh(); len(f) != 0 {
		t.Fatalf("fresh at start: %v", findingNames(f))
	}
	bad := ip("10.1.1.1")
	st.Allocs[bad] = hostlocal.Owner{ContainerID: "x"}
	node.update([]netip.Addr{bad}, nil, nil)
	if f := findingNames(node.TakeFresh()); !slices.Equal(f, []string{"reject:default:10.1.1.1"}) {
		t.Fatalf("after a bad allocation: fresh %q", f)
	}
	node.update([]netip.Addr{bad}, nil, nil)
	node.full(in)
	if f := node.TakeFresh(); len(f) != 0 {
		t.Errorf("the same finding fresh again: %v", findingNames(f))
	}
	delete(st.Allocs, bad)
	node.update([]netip.Addr{bad}, nil, nil)
	if f := node.Findings(); len(f) != 0 {
		t.Errorf("findings after the release: %v", findingNames(f))
	}
	st.Allocs[bad] = hostlocal.Owner{ContainerID: "y"}
	node.update([]netip.Addr{bad}, nil, nil)
	if f := findingNames(node.TakeFresh()); !slices.Equal(f, []string{"reject:default:10.1.1.1"}) {
		t.Errorf("back again: fresh %q", f)
	}
}

// TestNodeRejectsOverTheLimit: beyond MaxRejectsListed rejected addresses
// of a network, updates count them in one finding, which goes when the
// last of them goes.
func TestNodeRejectsOverTheLimit(t *testing.T) {
	st := allocs()
	in := Input{Networks: []Network{seedNet}, States: map[string]DirState{seedNet.StateDir: st}, Snap: &Snapshot{Links: []Link{eno1, shim}}}
	node := NewNode()
	node.full(in)
	var bad []netip.Addr
	for i := range MaxRejectsListed + 3 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		bad = append(bad, a)
		st.Allocs[a] = hostlocal.Owner{ContainerID: "x"}
	}
	node.update(bad, nil, nil)
	names := findingNames(node.TakeFresh())
	if len(names) != MaxRejectsListed+1 || !slices.Contains(names, "reject-more:default") {
		t.Fatalf("%d fresh findings, want %d and reject-more: %q", len(names), MaxRejectsListed+1, names[:3])
	}
	for _, a := range bad {
		delete(st.Allocs, a)
	}
	node.update(bad, nil, nil)
	if f := node.Findings(); len(f) != 0 {
		t.Errorf("findings left: %v", findingNames(f))
	}
}

// BenchmarkUpdate is one pod coming and going on a node with n routes: its
// cost must not grow with n.
func benchmarkUpdate(b *testing.B, n int) {
	in := benchInput(n)
	node := NewNode()
	node.full(in)
	st := in.States[in.Networks[0].StateDir]
	a := netip.MustParseAddr("10.200.0.1")
	only := []netip.Addr{a}
	b.ReportAllocs()
	for b.Loop() {
		st.Allocs[a] = hostlocal.Owner{ContainerID: "c", IfName: "eth0"}
		ops := node.update(only, nil, nil)
		node.done(ops)
		delete(st.Allocs, a)
		node.done(node.update(only, nil, nil))
	}
}

func BenchmarkUpdate1k(b *testing.B)  { benchmarkUpdate(b, 1000) }
func BenchmarkUpdate10k(b *testing.B) { benchmarkUpdate(b, 10000) }
func BenchmarkUpdate65k(b *testing.B) { benchmarkUpdate(b, 65000) }
