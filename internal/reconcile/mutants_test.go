package reconcile

import (
	"net/netip"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// TestWithin: a path lies under a directory, not beside or above it.
func TestWithin(t *testing.T) {
	for _, tt := range []struct {
		path, dir string
		want      bool
	}{
		{"/a/b", "/a", true},
		{"/a/b/c", "/a", true},
		{"/a", "/a", false},
		{"/", "/a", false},
		{"/ab", "/a", false},
		{"/b", "/a", false},
		{"/a/..b", "/a", true},
		{"a/b", "/a", false}, // not comparable: filepath.Rel fails
	} {
		if got := within(tt.path, tt.dir); got != tt.want {
			t.Errorf("within(%q, %q) = %v", tt.path, tt.dir, got)
		}
	}
}

// TestOwnedBy: a directory is owned when it is the owner's, holds it,
// or (for an owner of a whole tree) lies in it.
func TestOwnedBy(t *testing.T) {
	owners := []owner{{dir: "/s/a"}, {dir: "/t/b", tree: true}}
	for dir, want := range map[string]bool{
		"/s/a": true, "/s/a/x": false, "/s": true, "/s/ab": false,
		"/t/b": true, "/t": true, "/t/b/y": true, "/u": false,
	} {
		if _, got := ownedBy(owners, dir); got != want {
			t.Errorf("ownedBy(%q) = %v", dir, got)
		}
	}
}

// TestTableRangeSubnet: a table's CIDR inside a wider host-local subnet
// or LAN address takes that subnet; one as wide or not inside keeps its own.
func TestTableRangeSubnet(t *testing.T) {
	hl := []hostlocal.Range{{Subnet: netip.MustParsePrefix("10.0.0.0/24")}, {Subnet: netip.MustParsePrefix("192.168.0.0/16")}}
	lan := []netip.Prefix{netip.MustParsePrefix("172.16.0.5/12")}
	for p, want := range map[string]string{
		"192.168.5.0/24": "192.168.0.0/16",
		"192.168.0.0/16": "192.168.0.0/16",
		"10.0.0.0/24":    "10.0.0.0/24",
		"172.16.9.0/24":  "172.16.0.0/12",
		"172.16.0.0/12":  "172.16.0.0/12",
		"10.9.0.0/24":    "10.9.0.0/24",
	} {
		if got := tableRange(netip.MustParsePrefix(p), hl, lan).Subnet.String(); got != want {
			t.Errorf("tableRange(%s).Subnet = %s, want %s", p, got, want)
		}
	}
}

// TestLowerMaster: a master that is a macvlan or a macvtap stands for its
// own master; any other device is the master itself.
func TestLowerMaster(t *testing.T) {
	snap := &Snapshot{Links: []Link{
		{Index: 2, Name: "eno1"},
		{Index: 3, Name: "mv0", Kind: "macvlan", ParentIndex: 2},
		{Index: 4, Name: "mt0", Kind: "macvtap", ParentIndex: 2},
		{Index: 5, Name: "vl0", Kind: "vlan", ParentIndex: 2},
		{Index: 6, Name: "orphan", Kind: "macvlan", ParentIndex: 99},
	}}
	for master, want := range map[string]string{"eno1": "eno1", "mv0": "eno1", "mt0": "eno1", "vl0": "vl0", "missing": "missing"} {
		n := Network{Name: "n", Master: master}
		if _, ok := lowerMaster(&n, snap); !ok || n.Master != want {
			t.Errorf("lowerMaster(%s) = %s, %v; want %s", master, n.Master, ok, want)
		}
	}
	n := Network{Name: "n", Master: "orphan"}
	if f, ok := lowerMaster(&n, snap); ok || f.Kind != FindTrust {
		t.Errorf("a macvlan master whose own master is gone: %v, %+v", ok, f)
	}
}

// TestJudgeRoutes: an address the node reaches through another device, a
// gateway or a typed route is refused; one on the master's own subnet is
// not; a tenant's address off every subnet of the master is refused.
func TestJudgeRoutes(t *testing.T) {
	gw := netip.MustParseAddr("192.168.0.1")
	snap := &Snapshot{Routes: []Route{
		{Dst: netip.MustParsePrefix("192.168.0.0/16"), Dev: "eno1", Protocol: 2},
		{Dst: netip.MustParsePrefix("10.1.0.0/16"), Dev: "eno2", Protocol: 2},
		{Dst: netip.MustParsePrefix("10.2.0.0/16"), Dev: "eno1", Protocol: 4, Gateways: []netip.Addr{gw}},
		{Dst: netip.MustParsePrefix("10.3.0.0/16"), Protocol: 4, Type: "blackhole"},
		{Dst: netip.MustParsePrefix("10.4.0.0/16"), Dev: "eno1", Protocol: 4, Type: "unreachable"},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eno1", Protocol: 4, Gateways: []netip.Addr{gw}},
	}}
	r := newRouting(snap, nil)
	nw := &Network{Name: "n", Master: "eno1"}
	for ip, refused := range map[string]bool{
		"192.168.1.2": false, "10.1.0.2": true, "10.2.0.2": true, "10.3.0.2": true, "10.4.0.2": true, "10.9.0.2": false,
	} {
		if got, why := r.judge(netip.MustParseAddr(ip), nw); (got != 0) != refused {
			t.Errorf("judge(%s) = %v %q, want refused %v", ip, got, why, refused)
		}
	}
	tenant := &Network{Name: "t", Master: "eno1", Tenant: true}
	if got, _ := r.judge(netip.MustParseAddr("10.9.0.2"), tenant); got != RefuseOffLink {
		t.Errorf("a tenant's address reached only by the default route: %v", got)
	}
	if got, _ := r.judge(netip.MustParseAddr("192.168.1.2"), tenant); got != 0 {
		t.Errorf("a tenant's address on the master's subnet: %v", got)
	}
}

// TestDefaultRouteDevOrder: IPv4's default route first, then the lowest
// metric; IPv6's only without an IPv4 one.
func TestDefaultRouteDevOrder(t *testing.T) {
	def4, def6 := netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")
	for _, tt := range []struct {
		routes []Route
		want   string
	}{
		{[]Route{{Dst: def6, Dev: "v6"}, {Dst: def4, Dev: "v4", Priority: 100}}, "v4"},
		{[]Route{{Dst: def4, Dev: "a", Priority: 100}, {Dst: def4, Dev: "b", Priority: 50}}, "b"},
		{[]Route{{Dst: def4, Dev: "a", Priority: 50}, {Dst: def4, Dev: "b", Priority: 50}}, "a"},
		{[]Route{{Dst: def4, Dev: "a", Priority: 50}, {Dst: def6, Dev: "c", Priority: 1}}, "a"},
		{[]Route{{Dst: def6, Dev: "c", Priority: 9}, {Dst: def6, Dev: "d", Priority: 1}}, "d"},
		{[]Route{{Dst: def4, Priority: 1}, {Dst: netip.MustParsePrefix("10.0.0.0/8"), Dev: "x"}}, ""},
	} {
		if got := (&Snapshot{Routes: tt.routes}).DefaultRouteDev(); got != tt.want {
			t.Errorf("DefaultRouteDev(%v) = %q, want %q", tt.routes, got, tt.want)
		}
	}
}

// TestKinds: which ops are routes' and which findings are listed per
// address; a link by index.
func TestKinds(t *testing.T) {
	for _, k := range []OpKind{AddRoute, ReplaceRoute, DelRoute} {
		if !k.IsRoute() {
			t.Errorf("%v is not a route op", k)
		}
	}
	for _, k := range []OpKind{AddShim, DelShim, FlushNeigh, AddProxy} {
		if k.IsRoute() {
			t.Errorf("%v is a route op", k)
		}
	}
	if !FindReject.listed() || !FindRefused.listed() || FindForeign.listed() || FindCNI.listed() {
		t.Error("listed")
	}
	s := &Snapshot{Links: []Link{{Index: 2, Name: "a"}, {Index: 3, Name: "b"}}}
	if l, ok := s.LinkByIndex(3); !ok || l.Name != "b" {
		t.Errorf("LinkByIndex(3) = %v %v", l, ok)
	}
	if _, ok := s.LinkByIndex(4); ok {
		t.Error("LinkByIndex(4) found one")
	}
}

// TestInSync: a network is in sync only with its shim up, nothing
// waiting, missing, stale or in conflict.
func TestInSync(t *testing.T) {
	ok := NetStatus{ShimUp: true}
	if !ok.InSync() {
		t.Fatal("a plain status is not in sync")
	}
	for name, s := range map[string]NetStatus{
		"waiting":   {ShimUp: true, Waiting: "waiting for eno1"},
		"shim down": {},
		"missing":   {ShimUp: true, Missing: []netip.Addr{netip.MustParseAddr("10.0.0.2")}},
		"stale":     {ShimUp: true, Stale: []netip.Addr{netip.MustParseAddr("10.0.0.2")}},
		"conflict":  {ShimUp: true, Conflicts: []netip.Addr{netip.MustParseAddr("10.0.0.2")}},
	} {
		if s.InSync() {
			t.Errorf("%s: in sync", name)
		}
	}
}

// TestPlanShimsGoesOn: whatever the networks before it (unusable, one
// waiting for its master, one whose shim's name is taken, one without a
// master yet, one whose shim is held), the last network's shim is made.
func TestPlanShimsGoesOn(t *testing.T) {
	snap := &Snapshot{Links: []Link{
		{Index: 2, Name: "eno1", MTU: 1500},
		{Index: 3, Name: "eno1.taken", Kind: "vlan", ParentIndex: 2},
	}}
	in := Input{Snap: snap, MachineID: "m", Networks: []Network{
		{Name: "a", Master: "eno1", Shim: "a.host", Unusable: "no"},
		{Name: "b", Master: "eno9", Shim: "b.host"},
		{Name: "c", Master: "eno1", Shim: "eno1.taken"},
		{Name: "d", Shim: "d.host"},
		{Name: "e", Master: "eno1", Shim: "e.host"},
		{Name: "f", Master: "eno1", Shim: "f.host"},
	}}
	var p Plan
	held := map[string]shimHold{"e.host": {until: time.Unix(1<<40, 0), made: maxShimMakes}}
	ops, out := p.planShims(in, held)
	made := false
	for _, op := range ops {
		if op.Kind == AddShim && op.Dev == "f.host" {
			made = true
		}
		if op.Dev == "a.host" || op.Dev == "e.host" {
			t.Errorf("an op for a shim that must not be made: %v", op)
		}
	}
	if !made || !out["f.host"].usable {
		t.Errorf("the last network's shim is not made: ops %v, verdicts %+v", ops, out)
	}
	if out["b.host"].waiting == "" || out["d.host"].waiting == "" || out["eno1.taken"].waiting == "" || out["e.host"].waiting == "" {
		t.Errorf("verdicts %+v", out)
	}
}
