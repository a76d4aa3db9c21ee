package reconcile

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// nodeTRange is a host-local range over prefix, for networks of the tests.
func nodeTRange(prefix string) hostlocal.Range {
	return hostlocal.RangeFromPrefix(netip.MustParsePrefix(prefix))
}

// nodeTRouteAdds are the route additions among ops: the device each
// address is routed through.
func nodeTRouteAdds(ops []Op) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, op := range ops {
		if op.Kind == AddRoute || op.Kind == ReplaceRoute {
			out[op.Dst.Addr()] = op.Dev
		}
	}
	return out
}

// nodeTMadeShim reports whether ops make shim dev.
func nodeTMadeShim(ops []Op, dev string) bool {
	return slices.ContainsFunc(ops, func(op Op) bool { return op.Kind == AddShim && op.Dev == dev })
}

// nodeTHasKind reports whether fs hold a finding of kind k for network.
func nodeTHasKind(fs []Finding, k FindingKind, network string) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Kind == k && f.Network == network })
}

// TestNodeShimMadeTooOftenIsHeld: a shim that something removes as soon
// as it is made is made maxShimMakes times within shimWindow, then held
// (not made, a finding says so, RetryAt says when the daemon should wake)
// until the first of those makes is shimWindow old. Without the hold the
// daemon would fight the other tool in a tight loop; with a wrong window
// or count, it would give up on a shim that merely flapped once.
func TestNodeShimMadeTooOftenIsHeld(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	in := Input{Networks: []Network{seedNet}, States: map[string]DirState{seedNet.StateDir: allocs()},
		Snap: &Snapshot{Links: []Link{eno1}}, MachineID: "mid"}
	node := NewNode()
	for _, step := range []struct {
		at    time.Duration // pass at t0+at
		made  bool          // the pass makes the shim
		retry time.Duration // RetryAt after the pass is t0+retry; 0: zero
	}{
		{0, true, 0},
		{time.Second, true, 0},
		{2 * time.Second, true, 0},
		{3 * time.Second, true, shimWindow}, // the fourth make: held from now on
		{4 * time.Second, false, shimWindow},
		{shimWindow - time.Second, false, shimWindow},
		{shimWindow, true, shimWindow + time.Second}, // the first make is a window old
	} {
		in.Now = t0.Add(step.at)
		done, err := node.Sync(in, &fakeKernel{})
		if err != nil {
			t.Fatalf("at +%v: %v", step.at, err)
		}
		if got := nodeTMadeShim(done, shim.Name); got != step.made {
			t.Errorf("at +%v: shim made %v, want %v (ops %v)", step.at, got, step.made, done)
		}
		if held := nodeTHasKind(node.Findings(), FindShimHeld, seedNet.Name); held == step.made {
			t.Errorf("at +%v: shim-held finding %v while the shim is made %v", step.at, held, step.made)
		}
		want := time.Time{}
		if step.retry != 0 {
			want = t0.Add(step.retry)
		}
		if got := node.RetryAt(); !got.Equal(want) {
			t.Errorf("at +%v: RetryAt %v, want %v", step.at, got, want)
		}
	}
}

// TestNodeNoClockNoShimHold: passes without a time (Input.Now zero, as a
// one-shot look has) keep no history, so they never hold a shim however
// often they make it.
func TestNodeNoClockNoShimHold(t *testing.T) {
	in := Input{Networks: []Network{seedNet}, States: map[string]DirState{seedNet.StateDir: allocs()},
		Snap: &Snapshot{Links: []Link{eno1}}, MachineID: "mid"}
	node := NewNode()
	for pass := range 2 * maxShimMakes {
		done, err := node.Sync(in, &fakeKernel{})
		if err != nil {
			t.Fatal(err)
		}
		if !nodeTMadeShim(done, shim.Name) || nodeTHasKind(node.Findings(), FindShimHeld, seedNet.Name) || !node.RetryAt().IsZero() {
			t.Fatalf("pass %d without a clock: ops %v, findings %q, RetryAt %v; want the shim made, never held",
				pass, done, findingNames(node.Findings()), node.RetryAt())
		}
	}
}

// TestNodeExpiredShimsDoNotHideAHold: shims whose makes have all expired
// are forgotten without hiding another shim that is held now, whichever
// order the node looks at them in. Fresh nodes are tried several times
// because that order is the map's, random.
func TestNodeExpiredShimsDoNotHideAHold(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var many []Network
	for i := range 16 {
		many = append(many, Network{Name: fmt.Sprintf("n%d", i), Master: "eno1", Shim: fmt.Sprintf("n%d.host", i)})
	}
	flapping := Network{Name: "h", Master: "eno1", Shim: "h.host"}
	snap := &Snapshot{Links: []Link{eno1}}
	for try := range 20 {
		node := NewNode()
		// Every shim of many made once, long ago.
		if _, err := node.Sync(Input{Networks: many, Snap: snap, MachineID: "mid", Now: t0}, &fakeKernel{}); err != nil {
			t.Fatal(err)
		}
		t1 := t0.Add(10 * shimWindow)
		in := Input{Networks: []Network{flapping}, Snap: snap, MachineID: "mid"}
		for i := range maxShimMakes {
			in.Now = t1.Add(time.Duration(i) * time.Second)
			if _, err := node.Sync(in, &fakeKernel{}); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := node.RetryAt(), t1.Add(shimWindow); !got.Equal(want) {
			t.Fatalf("try %d: RetryAt %v, want %v: h.host, made %d times, is held", try, got, want, maxShimMakes)
		}
	}
}

// TestNodeIndexesRoutesAfterSubnetRoutes: the node's host routes are
// found wherever they sit in the main table, after the master's subnet
// route too: a route of ours already in place is not planned again.
func TestNodeIndexesRoutesAfterSubnetRoutes(t *testing.T) {
	in := Input{Networks: []Network{seedNet}, States: map[string]DirState{seedNet.StateDir: allocs("192.168.1.2")},
		Snap: &Snapshot{Links: []Link{eno1, shim}, Routes: []Route{
			{Dst: netip.MustParsePrefix("192.168.0.0/16"), Dev: "eno1", Protocol: 2},
			ours("192.168.1.2"),
		}}}
	p := Compute(in)
	if adds := nodeTRouteAdds(p.Ops); len(adds) != 0 {
		t.Errorf("a route in place planned again: %v", adds)
	}
	if st := p.Networks[0]; st.Routed != 1 || len(st.Missing) != 0 {
		t.Errorf("status %+v, want 192.168.1.2 routed", st)
	}
}

// TestNodeNetworkAfterResultsOnlyNetwork: a network whose addresses come
// from libcni's results alone (no state dir) does not keep the networks
// after it from being set up: their allocations are still routed.
func TestNodeNetworkAfterResultsOnlyNetwork(t *testing.T) {
	leased := Network{Name: "leased", Master: "eno1", Shim: "eno1.host", IPAM: "static"}
	in := Input{Networks: []Network{leased, seedNet}, States: map[string]DirState{seedNet.StateDir: allocs("192.168.1.2")},
		Snap: &Snapshot{Links: []Link{eno1, shim}}}
	p := Compute(in)
	if adds := nodeTRouteAdds(p.Ops); adds[ip("192.168.1.2")] != shim.Name {
		t.Errorf("route additions %v, want 192.168.1.2 through %s", adds, shim.Name)
	}
	if st := p.Networks[1]; st.Allocated != 1 || st.Held {
		t.Errorf("network %s: %+v, want one allocation, not held", st.Name, st)
	}
}

// TestNodeHeldStateDirSaysWhy: a network whose state dir is not read yet,
// or cannot be read, is held, and its finding says which of the two, with
// the error: what an operator needs to fix it.
func TestNodeHeldStateDirSaysWhy(t *testing.T) {
	for _, tt := range []struct {
		name   string
		states map[string]DirState
		want   string
	}{
		{"not read yet", map[string]DirState{}, "not read yet"},
		{"unreadable", map[string]DirState{seedNet.StateDir: {Err: errors.New("open: permission denied")}}, "open: permission denied"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := Compute(Input{Networks: []Network{seedNet}, States: tt.states, Snap: &Snapshot{Links: []Link{eno1, shim}}})
			if !p.Networks[0].Held {
				t.Errorf("network not held: %+v", p.Networks[0])
			}
			i := slices.IndexFunc(p.Findings, func(f Finding) bool { return f.Kind == FindHeld })
			if i < 0 || !strings.HasSuffix(p.Findings[i].Msg, ": "+tt.want) {
				t.Errorf("findings %+v, want a held one ending in %q", p.Findings, tt.want)
			}
		})
	}
}

// TestNodeOursGoneForeignKept: when flatnet deletes its route to an
// address that a foreign route also goes to, the node still knows of the
// foreign one: once the address is allocated again, it is in conflict
// (reported, left alone), not routed over the foreign route.
func TestNodeOursGoneForeignKept(t *testing.T) {
	a := "192.168.1.9"
	foreign := Route{Dst: hostPrefix(ip(a)), Dev: "eno1.host", Protocol: 4, Priority: 10}
	st := allocs()
	in := Input{Networks: []Network{seedNet}, States: map[string]DirState{seedNet.StateDir: st},
		Snap: &Snapshot{Links: []Link{eno1, shim}, Routes: []Route{ours(a), foreign}}}
	node := NewNode()
	done, err := node.Sync(in, &fakeKernel{})
	if err != nil || !slices.ContainsFunc(done, func(op Op) bool { return op.Kind == DelRoute && op.Dst.Addr() == ip(a) }) {
		t.Fatalf("the stale route of ours not deleted: %v, %v", done, err)
	}
	st.Allocs[ip(a)] = hostlocal.Owner{ContainerID: "c", IfName: "eth0"}
	ops, err := node.SyncUpdate([]netip.Addr{ip(a)}, nil, nil, &fakeKernel{})
	if err != nil || len(ops) != 0 {
		t.Errorf("allocated behind a foreign route: ops %v, %v; want none", ops, err)
	}
	if s := node.Status()[0]; !slices.Equal(s.Conflicts, []netip.Addr{ip(a)}) {
		t.Errorf("status %+v, want %s in conflict", s, a)
	}
	if !nodeTHasKind(node.Findings(), FindForeign, seedNet.Name) {
		t.Errorf("findings %q, want the foreign route reported", findingNames(node.Findings()))
	}
}

// TestNodeClaimAcrossNetworks: an address is routed by the first network,
// in order, that allocates it and may route it; a network before it that
// may not (outside its ranges, a container it does not follow) does not
// stop the search, and every other network that allocates it says why it
// does not route it.
func TestNodeClaimAcrossNetworks(t *testing.T) {
	const a = "192.168.1.2"
	narrow := Network{Name: "narrow", Master: "eno1", Shim: "narrow.host", StateDir: "/narrow", Ranges: []hostlocal.Range{nodeTRange("10.0.0.0/24")}}
	wide := Network{Name: "wide", Master: "eno1", Shim: "wide.host", StateDir: "/wide", Ranges: []hostlocal.Range{nodeTRange("192.168.0.0/16")}}
	refusing := wide
	refusing.Name, refusing.StateDir, refusing.Refused = "refusing", "/refusing", []string{"c-" + a}
	for _, tt := range []struct {
		name  string
		nets  []Network
		dev   string   // the shim a is routed through
		finds []string // findingNames
	}{
		{"outside the first's ranges", []Network{narrow, seedNet}, shim.Name, []string{"reject:narrow:" + a}},
		{"not followed by the first", []Network{refusing, seedNet}, shim.Name, []string{"refused:refusing:" + a}},
		{"the first of two", []Network{wide, seedNet}, "wide.host", []string{"dup:default:" + a}},
		{"the first of three", []Network{wide, seedNet, narrow}, "wide.host", []string{"dup:default:" + a, "reject:narrow:" + a}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			states := map[string]DirState{}
			for _, nw := range tt.nets {
				states[nw.StateDir] = allocs(a)
			}
			p := Compute(Input{Networks: tt.nets, States: states, Snap: &Snapshot{Links: []Link{eno1, shim}}, MachineID: "mid"})
			if adds := nodeTRouteAdds(p.Ops); len(adds) != 1 || adds[ip(a)] != tt.dev {
				t.Errorf("route additions %v, want %s through %s", adds, a, tt.dev)
			}
			if got := findingNames(p.Findings); !slices.Equal(got, tt.finds) {
				t.Errorf("findings %q, want %q", got, tt.finds)
			}
		})
	}
}

// TestNodeRefusesWhatItMustNotFollow: an allocation of a container whose
// attachment flatnet does not follow, of one whose namespace is gone, or
// of an address the node's own routing reaches through another device is
// not routed, and says why; the same allocation otherwise is.
func TestNodeRefusesWhatItMustNotFollow(t *testing.T) {
	const a = "192.168.1.2"
	elsewhere := Route{Dst: netip.MustParsePrefix("192.168.1.0/24"), Dev: "eno2", Protocol: 4}
	for _, tt := range []struct {
		name   string
		edit   func(*Network)
		routes []Route
		want   Refusal // 0: routed
	}{
		{"followed", func(*Network) {}, nil, 0},
		{"attachment not followed", func(n *Network) { n.Refused = []string{"c-" + a} }, nil, RefuseAttachment},
		{"another container not followed", func(n *Network) { n.Refused = []string{"c-other"} }, nil, 0},
		{"namespace gone", func(n *Network) { n.Gone = []string{"c-" + a} }, nil, RefuseStale},
		{"routed elsewhere by the node", func(*Network) {}, []Route{elsewhere}, RefuseRouted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nw := seedNet
			tt.edit(&nw)
			p := Compute(Input{Networks: []Network{nw}, States: map[string]DirState{nw.StateDir: allocs(a)},
				Snap: &Snapshot{Links: []Link{eno1, shim, {Index: 3, Name: "eno2", Up: true}}, Routes: tt.routes}})
			_, routed := nodeTRouteAdds(p.Ops)[ip(a)]
			var got Refusal
			for _, f := range p.Findings {
				if f.Kind == FindRefused && f.IP == ip(a) {
					got = f.Refused
				}
			}
			if routed != (tt.want == 0) || got != tt.want {
				t.Errorf("routed %v, refusal %v; want refusal %v (findings %q)", routed, got, tt.want, findingNames(p.Findings))
			}
		})
	}
}

// nodeTBadAddrs are n addresses outside seedNet's ranges, from 10.x.0.0.
func nodeTBadAddrs(x byte, n int) []netip.Addr {
	var out []netip.Addr
	for i := range n {
		out = append(out, netip.AddrFrom4([4]byte{10, x, byte(i >> 8), byte(i)}))
	}
	return out
}

// TestNodeRejectsComeAndGo: as rejected addresses come and go by update,
// the node lists the same ones a full pass would (the lowest
// MaxRejectsListed, the others counted in one finding, which stays while
// any of them does), however many came and went before.
func TestNodeRejectsComeAndGo(t *testing.T) {
	st := allocs()
	in := Input{Networks: []Network{seedNet}, States: map[string]DirState{seedNet.StateDir: st}, Snap: &Snapshot{Links: []Link{eno1, shim}}}
	node := NewNode()
	node.full(in)
	set := func(add bool, ips []netip.Addr) {
		for _, a := range ips {
			if add {
				st.Allocs[a] = hostlocal.Owner{ContainerID: "x"}
			} else {
				delete(st.Allocs, a)
			}
		}
		node.update(ips, nil, nil)
	}
	check := func(when string, more bool) {
		t.Helper()
		got, want := findingNames(node.Findings()), findingNames(Compute(in).Findings)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %d findings by update, %d by a full pass", when, len(got), len(want))
		}
		if slices.Contains(got, "reject-more:default") != more {
			t.Fatalf("%s: reject-more finding %v, want %v", when, !more, more)
		}
	}
	// Rejects that come and go, again and again, below the limit: listed
	// each time.
	some := nodeTBadAddrs(1, MaxRejectsListed/2+1)
	for round := range 3 {
		set(true, some)
		check(fmt.Sprintf("round %d, %d rejects", round, len(some)), false)
		set(false, some)
		check(fmt.Sprintf("round %d, released", round), false)
	}
	// Beyond the limit: the count stays while one of the others does.
	over := nodeTBadAddrs(2, MaxRejectsListed+2)
	set(true, over)
	check("over the limit", true)
	set(false, over[len(over)-1:])
	check("one of those counted released", true)
	set(false, over[len(over)-2:len(over)-1])
	check("all those counted released", false)
}

// TestNodeUpdateOnceEach: an address named twice in one update (a
// host-local pod's state file and its cache entry read in one pass) is
// decided once: one route added, not a second that the kernel refuses
// as existing (NLM_F_EXCL), which failed the pass.
func TestNodeUpdateOnceEach(t *testing.T) {
	a := "192.168.1.9"
	st := allocs()
	in := Input{Networks: []Network{seedNet}, States: map[string]DirState{seedNet.StateDir: st},
		Snap: &Snapshot{Links: []Link{eno1, shim}}}
	node := NewNode()
	if _, err := node.Sync(in, &fakeKernel{}); err != nil {
		t.Fatal(err)
	}
	st.Allocs[ip(a)] = hostlocal.Owner{ContainerID: "c", IfName: "eth0"}
	ops, err := node.SyncUpdate([]netip.Addr{ip(a), ip(a)}, nil, nil, &fakeKernel{})
	adds := 0
	for _, op := range ops {
		if op.Kind == AddRoute {
			adds++
		}
	}
	if err != nil || adds != 1 {
		t.Errorf("an address named twice: ops %v, %v; want one route added", ops, err)
	}
}
