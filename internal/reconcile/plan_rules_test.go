package reconcile

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// rsTCmds applies ops to a fake kernel and returns the commands it ran.
func rsTCmds(t *testing.T, ops []Op) []string {
	t.Helper()
	k := &fakeKernel{}
	if _, err := Apply(k, ops); err != nil {
		t.Fatal(err)
	}
	return k.cmds
}

// rsTBatchKernel is a fakeKernel that takes runs of route ops at once
// and records each run it was given.
type rsTBatchKernel struct {
	fakeKernel
	batches [][]string
}

func (k *rsTBatchKernel) DoBatch(ops []Op) []error {
	var run []string
	errs := make([]error, len(ops))
	for i, op := range ops {
		run = append(run, op.String())
		errs[i] = k.Do(op)
	}
	k.batches = append(k.batches, run)
	return errs
}

// TestShimNameFits: a master of 10 bytes still gets "<master>.host", 15
// bytes, the longest name Linux takes; one more byte and the name is
// hashed. The shim's name is what the operator finds in `ip link`, and
// what the hand-made fix used.
func TestShimNameFits(t *testing.T) {
	if got := ShimName("enp1s0f0np"); got != "enp1s0f0np.host" {
		t.Errorf("ShimName(enp1s0f0np) = %q", got)
	}
	if got := ShimName("enp1s0f0np1"); !strings.HasPrefix(got, "fn") || len(got) > maxIfName {
		t.Errorf("ShimName(enp1s0f0np1) = %q", got)
	}
}

// TestShimAdoptionRules: a device with the shim's name is rebuilt only
// when it is flatnet's (its alias on a macvlan on the master, or on another
// master with flatnet's MAC); any other is left alone and reported, a veth
// carrying the alias or a macvlan with it and a stranger's MAC on another
// master among them: anyone can set an alias, and flatnet deletes only
// what it made.
func TestShimAdoptionRules(t *testing.T) {
	foreignMAC := net.HardwareAddr{0x5a, 0, 0, 0, 0, 1}
	eno2 := Link{Index: 3, Name: "eno2", Up: true, MTU: 1500}
	newShim := "ip link add eno1.host link eno1 address " + ShimMAC("mid", "eno1.host").String() + " mtu 1500 type macvlan mode bridge"
	for _, tt := range []struct {
		name     string
		dev      Link
		want     []string
		wantFind []string
	}{
		{"a veth with flatnet's alias", Link{Index: 8, Name: "eno1.host", Kind: "veth", Alias: ShimAlias, MAC: ShimMAC("mid", "eno1.host")},
			nil, []string{"taken:eno1.host"}},
		{"flatnet's alias, private mode on the master", Link{Index: 8, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "private", ParentIndex: 2, Alias: ShimAlias, MAC: foreignMAC},
			[]string{"ip link del eno1.host", newShim, "ip route add 192.168.1.2/32 dev eno1.host scope link proto 97"}, nil},
		{"flatnet's alias, another master, not flatnet's MAC", Link{Index: 8, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 3, Alias: ShimAlias, MAC: foreignMAC},
			nil, []string{"taken:eno1.host"}},
		{"flatnet's alias and MAC on another master", Link{Index: 8, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 3, Alias: ShimAlias, MAC: ShimMAC("mid", "eno1.host")},
			[]string{"ip link del eno1.host", newShim, "ip route add 192.168.1.2/32 dev eno1.host scope link proto 97"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := Compute(Input{
				Networks:  []Network{seedNet},
				States:    map[string]DirState{seedNet.StateDir: allocs("192.168.1.2")},
				Snap:      &Snapshot{Links: []Link{eno1, eno2, tt.dev}},
				MachineID: "mid",
			})
			if got := rsTCmds(t, p.Ops); !slices.Equal(got, tt.want) {
				t.Errorf("ops:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if got := findingNames(p.Findings); !slices.Equal(got, tt.wantFind) {
				t.Errorf("findings %q, want %q", got, tt.wantFind)
			}
		})
	}
}

// TestDescribeLink: what a device in the way is, as the finding about it
// says it to the operator.
func TestDescribeLink(t *testing.T) {
	snap := &Snapshot{Links: []Link{eno1}}
	for _, tt := range []struct {
		l    Link
		want string
	}{
		{Link{Kind: "veth"}, "a veth"},
		{Link{}, "a device"},
		{Link{Kind: "macvlan", MacvlanMode: "private", ParentIndex: 2}, "a macvlan mode private on eno1"},
		{Link{Kind: "macvlan", MacvlanMode: "vepa", ParentIndex: 9}, "a macvlan mode vepa"},
	} {
		if got := DescribeLink(tt.l, snap); got != tt.want {
			t.Errorf("DescribeLink(%+v) = %q, want %q", tt.l, got, tt.want)
		}
	}
}

// TestPlanShimsEveryNetwork: a shim made, rebuilt, or held from being
// rebuilt does not end the pass over the networks: each later network
// gets its own shim and verdict.
func TestPlanShimsEveryNetwork(t *testing.T) {
	snap := &Snapshot{Links: []Link{
		{Index: 2, Name: "eno1", MTU: 1500},
		{Index: 3, Name: "eno2", MTU: 1500},
		// flatnet's shims, on eno2 where the networks now want eno1.
		{Index: 4, Name: "b.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 3, Alias: ShimAlias, MAC: ShimMAC("m", "b.host")},
		{Index: 5, Name: "c.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 3, Alias: ShimAlias, MAC: ShimMAC("m", "c.host")},
	}}
	in := Input{Snap: snap, MachineID: "m", Networks: []Network{
		{Name: "a", Master: "eno1", Shim: "a.host"},
		{Name: "b", Master: "eno1", Shim: "b.host"},
		{Name: "c", Master: "eno1", Shim: "c.host"},
		{Name: "z", Master: "eno1", Shim: "z.host"},
	}}
	var p Plan
	ops, out := p.planShims(in, map[string]shimHold{"c.host": {until: time.Unix(1<<40, 0), made: maxShimMakes}})
	var got []string
	for _, op := range ops {
		got = append(got, op.Dev+" "+strings.Fields(op.String())[2])
	}
	if want := []string{"a.host add", "b.host del", "b.host add", "z.host add"}; !slices.Equal(got, want) {
		t.Errorf("ops %q, want %q", got, want)
	}
	for shim, usable := range map[string]bool{"a.host": true, "b.host": true, "c.host": false, "z.host": true} {
		if v, ok := out[shim]; !ok || v.usable != usable {
			t.Errorf("verdict of %s: %+v (%v), want usable %v", shim, v, ok, usable)
		}
	}
}

// TestProxyRules: a usable shim's network gets a proxy entry for each
// global unicast IPv6 address of the node in its ranges, whatever the
// networks before it; never for a link-local or an IPv4-mapped address,
// even in a range that holds it. An entry no one wants goes from a shim
// of flatnet's, whatever the entries before it, and one on a device that
// is not flatnet's stays.
func TestProxyRules(t *testing.T) {
	v6 := hostlocal.Range{Subnet: netip.MustParsePrefix("fd00::/64"), Start: ip("fd00::1:2"), End: ip("fd00::1:ff")}
	dual := seedNet
	dual.Ranges = []hostlocal.Range{seedRange, v6}
	waiting := Network{Name: "w", Master: "eno9", Shim: "eno9.host", StateDir: "/w", Ranges: []hostlocal.Range{v6}}
	odd := Network{Name: "odd", Master: "eno1", Shim: "eno1.host", StateDir: "/odd", Ranges: []hostlocal.Range{
		hostlocal.RangeFromPrefix(netip.MustParsePrefix("fe80::/64")),
		hostlocal.RangeFromPrefix(netip.MustParsePrefix("::ffff:192.168.0.0/120")),
	}}
	mv0 := Link{Index: 11, Name: "mv0", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2}
	in := Input{
		Networks: []Network{waiting, dual, odd},
		States:   map[string]DirState{dual.StateDir: allocs(), "/w": allocs(), "/odd": allocs()},
		Snap: &Snapshot{
			Links: []Link{eno1, shim, mv0},
			Addrs: []netip.Addr{ip("192.168.0.5"), ip("fd00::5"), ip("fd00::6"), ip("fe80::1"), ip("::ffff:192.168.0.5")},
			Proxies: []Proxy{
				{Dev: "eno1.host", IP: ip("fd00::5")},
				{Dev: "eno1.host", IP: ip("fd00::99")},
				{Dev: "mv0", IP: ip("fd00::7")},
			},
		},
		MachineID: "mid",
	}
	want := []string{"ip -6 neigh del proxy fd00::99 dev eno1.host", "ip -6 neigh add proxy fd00::6 dev eno1.host"}
	if got := rsTCmds(t, Compute(in).Ops); !slices.Equal(got, want) {
		t.Errorf("ops:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// TestRouteSourceSkipsIPv6: the master's IPv6 addresses before its IPv4
// one do not keep an IPv4 route from naming the IPv4 address as source.
func TestRouteSourceSkipsIPv6(t *testing.T) {
	master := eno1
	master.Addrs = []netip.Prefix{netip.MustParsePrefix("fd00::5/64"), netip.MustParsePrefix("192.168.0.5/16")}
	in := Input{
		Networks:  []Network{seedNet},
		States:    map[string]DirState{seedNet.StateDir: allocs("192.168.1.2")},
		Snap:      &Snapshot{Links: []Link{master, shim}},
		MachineID: "mid",
	}
	want := []string{"ip route add 192.168.1.2/32 dev eno1.host scope link proto 97 src 192.168.0.5"}
	if got := rsTCmds(t, Compute(in).Ops); !slices.Equal(got, want) {
		t.Errorf("ops %q, want %q", got, want)
	}
}

// TestStaleRouteOwner: a stale route of flatnet's counts against the
// network on its shim whose ranges hold it, else the first network on
// that shim, in the order of the configuration: that network's status
// says it is out of sync.
func TestStaleRouteOwner(t *testing.T) {
	v6 := Network{Name: "v6", Master: "eno1", Shim: "eno1.host", StateDir: "/v6",
		Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("fd00::/64"))}}
	other := Network{Name: "other", Master: "eno2", Shim: "eno2.host", StateDir: "/o",
		Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("10.2.0.0/24"))}}
	in := Input{
		Networks:  []Network{v6, other, seedNet},
		States:    map[string]DirState{seedNet.StateDir: allocs(), "/v6": allocs(), "/o": allocs()},
		Snap:      &Snapshot{Links: []Link{eno1, shim}, Routes: []Route{ours("192.168.1.9"), ours("10.9.9.9")}},
		MachineID: "mid",
	}
	stale := map[string][]netip.Addr{}
	for _, st := range Compute(in).Networks {
		stale[st.Name] = st.Stale
	}
	if !slices.Equal(stale["default"], []netip.Addr{ip("192.168.1.9")}) || !slices.Equal(stale["v6"], []netip.Addr{ip("10.9.9.9")}) || len(stale["other"]) != 0 {
		t.Errorf("stale routes by network: %v; want 192.168.1.9 under default (its range), 10.9.9.9 under v6 (first on the shim)", stale)
	}
}

// TestApplyGoesOnAfterBrokenShim: the ops through a shim that could not be
// made are skipped, and those through the other shims after them still
// run.
func TestApplyGoesOnAfterBrokenShim(t *testing.T) {
	ops := []Op{
		{Kind: AddShim, Dev: "eno1.host", Master: "eno1", MTU: 1500},
		{Kind: AddShim, Dev: "eno2.host", Master: "eno2", MTU: 1500},
		{Kind: AddRoute, Dev: "eno1.host", Dst: netip.MustParsePrefix("192.168.1.2/32")},
		{Kind: AddRoute, Dev: "eno2.host", Dst: netip.MustParsePrefix("10.2.0.2/32")},
	}
	k := &fakeKernel{fail: map[string]error{ops[0].String(): errors.New("no macvlan")}}
	done, err := Apply(k, ops)
	if err == nil || len(done) != 2 || !slices.Equal(k.cmds, []string{ops[1].String(), ops[3].String()}) {
		t.Errorf("done %v, ran %q, err %v; want eno2.host's shim and route done, an error", done, k.cmds, err)
	}
}

// TestApplyBatchesOnlyRuns: a Batcher gets only runs of two or more route
// ops in a row, each run whole and nothing else in it; a lone route op,
// and every other op, goes through Do.
func TestApplyBatchesOnlyRuns(t *testing.T) {
	route := func(kind OpKind, s string) Op { return Op{Kind: kind, Dev: "eno1.host", Dst: hostPrefix(ip(s))} }
	ops := []Op{
		route(AddRoute, "192.168.1.2"),
		{Kind: FlushNeigh, Dev: "eno1.host", Dst: hostPrefix(ip("192.168.1.2"))},
		route(AddRoute, "192.168.1.3"),
		route(DelRoute, "192.168.1.4"),
		{Kind: FlushNeigh, Dev: "eno1.host", Dst: hostPrefix(ip("192.168.1.4"))},
	}
	k := &rsTBatchKernel{}
	done, err := Apply(k, ops)
	if err != nil || len(done) != len(ops) {
		t.Fatalf("done %v, err %v", done, err)
	}
	want := [][]string{{ops[2].String(), ops[3].String()}}
	if !slices.EqualFunc(k.batches, want, slices.Equal) {
		t.Errorf("batches %q, want %q", k.batches, want)
	}
}

// TestGuardOncePerUsableShim: the egress filter has one drop per usable
// shim, once however many networks share it, and none for a network
// that waits, whatever its place among the networks.
func TestGuardOncePerUsableShim(t *testing.T) {
	guarded := shim
	guarded.MAC, guarded.ProxyDelay0 = net.HardwareAddr{2, 0x68, 0xe4, 0xf9, 0xd5, 0xec}, true
	waiting := Network{Name: "w", Master: "eno9", Shim: "eno9.host", StateDir: "/w", Ranges: []hostlocal.Range{seedRange}}
	v6 := Network{Name: "v6", Master: "eno1", Shim: "eno1.host", StateDir: "/v6",
		Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("fd00::/64"))}}
	in := Input{
		Networks:  []Network{waiting, seedNet, v6},
		States:    map[string]DirState{seedNet.StateDir: allocs(), "/w": allocs(), "/v6": allocs()},
		Snap:      &Snapshot{Links: []Link{eno1, guarded}},
		MachineID: "mid",
		Guard:     GuardFilter,
	}
	want := []string{FilterScript([]Drop{{Master: "eno1", MAC: guarded.MAC.String()}})}
	if got := rsTCmds(t, Compute(in).Ops); !slices.Equal(got, want) {
		t.Errorf("ops:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// TestProbeTableOwnership: without the shim guard, flatnet's empty arp
// table goes; one that holds only another party's chain is not written.
func TestProbeTableOwnership(t *testing.T) {
	addressed := shim
	addressed.Sender, addressed.ARPAnnounce = true, 2
	for _, tt := range []struct {
		name   string
		probes *ProbeTable
		want   []string
	}{
		{"flatnet's, empty", &ProbeTable{}, []string{ProbeScript(nil)}},
		{"another party's chain alone", &ProbeTable{Other: []string{"fw"}}, nil},
	} {
		in := Input{
			Networks:  []Network{seedNet},
			States:    map[string]DirState{seedNet.StateDir: allocs()},
			Snap:      &Snapshot{Links: []Link{eno1, addressed}, Probes: tt.probes},
			MachineID: "mid",
			Guard:     GuardAddress,
		}
		if got := rsTCmds(t, Compute(in).Ops); !slices.Equal(got, tt.want) {
			t.Errorf("%s: ops %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestShimSettingsEach: an adopted shim missing any one of the settings
// every shim gets (arp_filter, proxy_ndp) is configured again.
func TestShimSettingsEach(t *testing.T) {
	noFilter, noNDP := shim, shim
	noFilter.ARPFilter = false
	noNDP.ProxyNDP = false
	for name, l := range map[string]Link{"arp_filter 0": noFilter, "proxy_ndp 0": noNDP} {
		in := Input{
			Networks:  []Network{seedNet},
			States:    map[string]DirState{seedNet.StateDir: allocs()},
			Snap:      &Snapshot{Links: []Link{eno1, l}},
			MachineID: "mid",
		}
		want := []string{Op{Kind: ConfigureShim, Dev: "eno1.host"}.String()}
		if got := rsTCmds(t, Compute(in).Ops); !slices.Equal(got, want) {
			t.Errorf("%s: ops %q, want %q", name, got, want)
		}
	}
}

// TestGuardedShimRoutesAreOurs: a macvlan flatnet set up (its address on
// it) that no network uses any more is flatnet's: its routes with
// flatnet's protocol go.
func TestGuardedShimRoutesAreOurs(t *testing.T) {
	old := Link{Index: 9, Name: "eno2.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 3, Sender: true}
	in := Input{
		Networks:  []Network{seedNet},
		States:    map[string]DirState{seedNet.StateDir: allocs()},
		Snap:      &Snapshot{Links: []Link{eno1, shim, {Index: 3, Name: "eno2"}, old}, Routes: []Route{{Dst: hostPrefix(ip("10.1.0.2")), Dev: "eno2.host", Protocol: Protocol}}},
		MachineID: "mid",
	}
	want := []string{"ip route del 10.1.0.2/32 dev eno2.host proto 97", "ip neigh del 10.1.0.2 dev eno2.host"}
	if got := rsTCmds(t, Compute(in).Ops); !slices.Equal(got, want) {
		t.Errorf("ops %q, want %q", got, want)
	}
}

// TestRefusalMessages: an address the node's routing answers for is
// refused with a message that names the route as `ip route` shows it
// (its type, "default", every gateway, its device) and the table, when
// not main; the node's host routes and flatnet's own routes are not
// routing that answers for a pod: a foreign host route is a conflict,
// and the routes after flatnet's still count.
func TestRefusalMessages(t *testing.T) {
	def := Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eno1", Protocol: 3, Gateways: []netip.Addr{ip("192.168.1.8")}}
	multi := Route{Dst: netip.MustParsePrefix("10.2.0.0/16"), Protocol: 4, Gateways: []netip.Addr{ip("192.168.1.7"), ip("192.168.1.6")}}
	in := Input{
		Networks: []Network{seedNet},
		States:   map[string]DirState{seedNet.StateDir: allocs("192.168.1.2", "192.168.1.7", "192.168.1.8", "192.168.1.9", "192.168.1.70", "192.168.1.200", "192.168.1.30")},
		Snap: &Snapshot{
			Links: []Link{eno1, shim},
			Routes: []Route{
				ours("192.168.1.2"),
				{Dst: netip.MustParsePrefix("192.168.1.192/26"), Dev: "eno2", Protocol: 2},
				{Dst: netip.MustParsePrefix("192.168.1.64/26"), Protocol: 12, Type: "blackhole"},
				{Dst: hostPrefix(ip("192.168.1.30")), Dev: "eth9", Protocol: 3},
			},
			NextHops: []NextHop{
				{Addr: ip("192.168.1.9"), Table: 100, Route: Route{Dst: netip.MustParsePrefix("10.0.0.0/8"), Dev: "eno1", Protocol: 4, Gateways: []netip.Addr{ip("192.168.1.9")}}},
				{Addr: ip("192.168.1.8"), Table: tableMain, Route: def},
				{Addr: ip("192.168.1.7"), Route: multi},
			},
		},
		MachineID: "mid",
	}
	p := Compute(in)
	got := map[string]string{}
	var kinds []string
	for _, f := range p.Findings {
		kinds = append(kinds, findingNames([]Finding{f})...)
		if f.Kind == FindRefused {
			got[f.IP.String()] = strings.TrimPrefix(f.Msg, "not routing "+f.IP.String()+" of network default: ")
		}
	}
	want := map[string]string{
		"192.168.1.9":   "the next hop of the node's route 10.0.0.0/8 via 192.168.1.9 dev eno1 proto 4 in table 100",
		"192.168.1.8":   "the next hop of the node's route default via 192.168.1.8 dev eno1 proto 3",
		"192.168.1.7":   "the next hop of the node's route 10.2.0.0/16 via 192.168.1.7 via 192.168.1.6 proto 4",
		"192.168.1.70":  "the node reaches it through blackhole 192.168.1.64/26 proto 12",
		"192.168.1.200": "the node reaches it through 192.168.1.192/26 dev eno2 proto 2",
	}
	for a, msg := range want {
		if got[a] != msg {
			t.Errorf("%s refused: %q, want %q", a, got[a], msg)
		}
	}
	slices.Sort(kinds)
	if wantKinds := []string{"foreign:192.168.1.30", "refused:default:192.168.1.200", "refused:default:192.168.1.7", "refused:default:192.168.1.70", "refused:default:192.168.1.8", "refused:default:192.168.1.9"}; !slices.Equal(kinds, wantKinds) {
		t.Errorf("findings %q, want %q", kinds, wantKinds)
	}
}

// TestTenantReservedPool: a tenant's address is refused inside another
// network's range, but not in that range's subnet outside its pool,
// which root's configuration does not give the other network.
func TestTenantReservedPool(t *testing.T) {
	lan := rsTRange("192.168.0.0/16", "192.168.1.2", "192.168.1.254")
	tenant := Network{Name: "t", Master: "eno1", Shim: "eno1.host", StateDir: "/t", Tenant: true,
		Ranges:   []hostlocal.Range{rsTRange("192.168.0.0/16", "192.168.1.2", "192.168.2.254")},
		Reserved: []Reserved{{Range: lan, Network: "lan", Source: "10-lan.conflist"}}}
	in := Input{
		Networks:  []Network{tenant},
		States:    map[string]DirState{"/t": allocs("192.168.1.5", "192.168.2.5")},
		Snap:      &Snapshot{Links: []Link{eno1, shim}, Routes: []Route{{Dst: netip.MustParsePrefix("192.168.0.0/16"), Dev: "eno1", Protocol: 2}}},
		MachineID: "mid",
	}
	p := Compute(in)
	if got, want := findingNames(p.Findings), []string{"refused:t:192.168.1.5"}; !slices.Equal(got, want) {
		t.Errorf("findings %q, want %q", got, want)
	}
	if want := []string{"ip route add 192.168.2.5/32 dev eno1.host scope link proto 97"}; !slices.Equal(rsTCmds(t, p.Ops), want) {
		t.Errorf("ops %v, want %q", p.Ops, want)
	}
}
