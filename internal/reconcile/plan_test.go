package reconcile

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// fakeKernel records ops as `ip` commands and fails those listed in fail.
type fakeKernel struct {
	cmds []string
	fail map[string]error
}

var _ Kernel = (*fakeKernel)(nil)

func (k *fakeKernel) Do(op Op) error {
	if err := k.fail[op.String()]; err != nil {
		return err
	}
	k.cmds = append(k.cmds, op.String())
	return nil
}

var (
	seedRange = hostlocal.Range{
		Subnet: netip.MustParsePrefix("192.168.0.0/16"),
		Start:  netip.MustParseAddr("192.168.1.2"), End: netip.MustParseAddr("192.168.1.254"),
		Gateway: netip.MustParseAddr("192.168.0.1"),
	}
	seedNet = Network{Name: "default", Master: "eno1", Shim: "eno1.host", StateDir: "/var/lib/cni/networks/default", Ranges: []hostlocal.Range{seedRange}}
	eno1    = Link{Index: 2, Name: "eno1", Kind: "device", Up: true, MTU: 1500}
	shim    = Link{Index: 7, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: true, MTU: 1500, Alias: ShimAlias, ARPFilter: true, ProxyNDP: true, MAC: ShimMAC("mid", "eno1.host")}
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func ours(s string) Route {
	return Route{Dst: hostPrefix(ip(s)), Dev: "eno1.host", Protocol: Protocol}
}

func allocs(ips ...string) DirState {
	m := map[netip.Addr]hostlocal.Owner{}
	for _, s := range ips {
		m[ip(s)] = hostlocal.Owner{ContainerID: "c-" + s, IfName: "eth0"}
	}
	return DirState{Allocs: m}
}

func TestCompute(t *testing.T) {
	node := []netip.Addr{ip("192.168.0.5")}
	tests := []struct {
		name     string
		links    []Link
		routes   []Route
		state    *DirState // nil: not read (held)
		reused   map[netip.Addr]bool
		want     []string
		wantFind []string // finding keys
	}{
		{
			name:  "fresh node: shim created, pods routed",
			links: []Link{eno1},
			state: ptr(allocs("192.168.1.2", "192.168.1.3")),
			want: []string{
				"ip link add eno1.host link eno1 address " + ShimMAC("mid", "eno1.host").String() + " mtu 1500 type macvlan mode bridge",
				"ip route add 192.168.1.2/32 dev eno1.host scope link proto 97",
				"ip route add 192.168.1.3/32 dev eno1.host scope link proto 97",
			},
		},
		{
			name:   "in sync: nothing to do",
			links:  []Link{eno1, shim},
			routes: []Route{ours("192.168.1.2")},
			state:  ptr(allocs("192.168.1.2")),
		},
		{
			name:   "released address loses route and neighbour entry",
			links:  []Link{eno1, shim},
			routes: []Route{ours("192.168.1.2"), ours("192.168.1.3")},
			state:  ptr(allocs("192.168.1.2")),
			want: []string{
				"ip route del 192.168.1.3/32 dev eno1.host proto 97",
				"ip neigh del 192.168.1.3 dev eno1.host",
			},
		},
		{
			name:   "adds come before deletes",
			links:  []Link{eno1, shim},
			routes: []Route{ours("192.168.1.9")},
			state:  ptr(allocs("192.168.1.2")),
			want: []string{
				"ip route add 192.168.1.2/32 dev eno1.host scope link proto 97",
				"ip route del 192.168.1.9/32 dev eno1.host proto 97",
				"ip neigh del 192.168.1.9 dev eno1.host",
			},
		},
		{
			name:     "foreign route is reported, not replaced",
			links:    []Link{eno1, shim},
			routes:   []Route{{Dst: hostPrefix(ip("192.168.1.2")), Dev: "eno1.host", Protocol: 3}},
			state:    ptr(allocs("192.168.1.2")),
			wantFind: []string{"foreign:192.168.1.2"},
		},
		{
			name:   "foreign routes are never deleted",
			links:  []Link{eno1, shim},
			routes: []Route{{Dst: hostPrefix(ip("192.168.1.7")), Dev: "eno1.host", Protocol: 4}},
			state:  ptr(allocs()),
		},
		{
			name:   "our route on another of our shims is replaced",
			links:  []Link{eno1, shim, {Index: 3, Name: "eno2"}, {Index: 9, Name: "eno2.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 3, Alias: ShimAlias, MAC: ShimMAC("mid", "eno2.host")}},
			routes: []Route{{Dst: hostPrefix(ip("192.168.1.2")), Dev: "eno2.host", Protocol: Protocol}},
			state:  ptr(allocs("192.168.1.2")),
			want:   []string{"ip route replace 192.168.1.2/32 dev eno1.host scope link proto 97", "ip link del eno2.host"},
		},
		{
			name:     "a protocol-97 route on a device flatnet does not manage is someone else's",
			links:    []Link{eno1, shim},
			routes:   []Route{{Dst: hostPrefix(ip("192.168.1.2")), Dev: "eth9", Protocol: Protocol}, {Dst: hostPrefix(ip("10.9.9.9")), Dev: "eno1", Protocol: Protocol}},
			state:    ptr(allocs("192.168.1.2")),
			wantFind: []string{"foreign:192.168.1.2"},
		},
		{
			name:     "unroutable addresses are findings",
			links:    []Link{eno1, shim},
			state:    ptr(allocs("192.168.0.1", "192.168.0.5", "10.0.0.1", "192.168.1.2")),
			want:     []string{"ip route add 192.168.1.2/32 dev eno1.host scope link proto 97"},
			wantFind: []string{"reject:default:10.0.0.1", "reject:default:192.168.0.1", "reject:default:192.168.0.5"},
		},
		{
			name:     "unreadable state dir holds routes",
			links:    []Link{eno1, shim},
			routes:   []Route{ours("192.168.1.2")},
			state:    &DirState{Err: errors.New("permission denied")},
			wantFind: []string{"held:default"},
		},
		{
			name:     "master missing: wait, touch nothing",
			links:    nil,
			state:    ptr(allocs("192.168.1.2")),
			wantFind: nil,
		},
		{
			name:     "foreign device with the shim's name is left alone",
			links:    []Link{eno1, {Index: 8, Name: "eno1.host", Kind: "veth", Up: true, MTU: 1500}},
			state:    ptr(allocs("192.168.1.2")),
			wantFind: []string{"taken:eno1.host"},
		},
		{
			name:  "hand-made shim is adopted and configured",
			links: []Link{eno1, {Index: 8, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: false, MTU: 1400}},
			state: ptr(allocs("192.168.1.2")),
			want: []string{
				"sysctl -w net.ipv4.conf.eno1.host.arp_filter=1 net.ipv4.conf.eno1.host.arp_ignore=0 net.ipv6.conf.eno1.host.proxy_ndp=1 net.ipv6.conf.eno1.host.forwarding=1 net.ipv6.conf.eno1.host.accept_dad=0",
				"ip link set eno1.host mtu 1500",
				"ip link set eno1.host up",
				"ip route add 192.168.1.2/32 dev eno1.host scope link proto 97",
			},
		},
		{
			name:  "our shim on a replaced master is rebuilt",
			links: []Link{{Index: 12, Name: "eno1", Up: true, MTU: 9000}, shim},
			state: ptr(allocs()),
			want: []string{
				"ip link del eno1.host",
				"ip link add eno1.host link eno1 address " + ShimMAC("mid", "eno1.host").String() + " mtu 9000 type macvlan mode bridge",
			},
		},
		{
			name:   "address reused by another container: neighbour flushed",
			links:  []Link{eno1, shim},
			routes: []Route{ours("192.168.1.2")},
			state:  ptr(allocs("192.168.1.2")),
			reused: map[netip.Addr]bool{ip("192.168.1.2"): true},
			want:   []string{"ip neigh del 192.168.1.2 dev eno1.host"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{
				Networks:  []Network{seedNet},
				States:    map[string]DirState{},
				Snap:      &Snapshot{Links: tt.links, Addrs: node, Routes: tt.routes},
				MachineID: "mid",
				Reused:    tt.reused,
			}
			if tt.state != nil {
				in.States[seedNet.StateDir] = *tt.state
			}
			p := Compute(in)
			k := &fakeKernel{}
			if _, err := Apply(k, p.Ops); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(k.cmds, tt.want) {
				t.Errorf("ops:\n got %s\nwant %s", strings.Join(k.cmds, "\n     "), strings.Join(tt.want, "\n     "))
			}
			keys := findingNames(p.Findings)
			if !slices.Equal(keys, tt.wantFind) {
				t.Errorf("findings: got %q, want %q", keys, tt.wantFind)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// findingNames names findings as the tables write them ("reject:default:
// 10.0.0.1", "held:default"), sorted.
func findingNames(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		var s string
		switch f.Kind {
		case FindReject:
			s = "reject:" + f.Network + ":" + f.IP.String()
		case FindRejectMore:
			s = "reject-more:" + f.Network
		case FindDuplicate:
			s = "dup:" + f.Network + ":" + f.IP.String()
		case FindForeign:
			s = "foreign:" + f.IP.String()
		case FindHeld:
			s = "held:" + f.Network
		case FindTaken:
			s = "taken:" + f.Shim
		case FindMode:
			s = "mode:" + f.Network
		case FindNoRanges:
			s = "noranges:" + f.Network
		case FindShimClash:
			s = "shimclash:" + f.Network
		case FindRefused:
			s = "refused:" + f.Network + ":" + f.IP.String()
		default:
			s = fmt.Sprintf("kind%d", f.Kind)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestComputeDualStack(t *testing.T) {
	v6 := hostlocal.Range{Subnet: netip.MustParsePrefix("fd00::/64"), Start: ip("fd00::1:2"), End: ip("fd00::1:ff"), Gateway: ip("fd00::1")}
	n := seedNet
	n.Ranges = []hostlocal.Range{seedRange, v6}
	st := allocs("192.168.1.2", "fd00::1:2")
	in := Input{
		Networks: []Network{n},
		States:   map[string]DirState{n.StateDir: st},
		Snap: &Snapshot{
			Links:   []Link{eno1, shim},
			Addrs:   []netip.Addr{ip("192.168.0.5"), ip("fd00::5"), ip("fe80::1"), ip("2001:db8::5")},
			Proxies: []Proxy{{Dev: "eno1.host", IP: ip("fd00::99")}},
		},
	}
	k := &fakeKernel{}
	if _, err := Apply(k, Compute(in).Ops); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ip -6 neigh del proxy fd00::99 dev eno1.host",
		"ip -6 neigh add proxy fd00::5 dev eno1.host",
		"ip route add 192.168.1.2/32 dev eno1.host scope link proto 97",
		"ip route add fd00::1:2/128 dev eno1.host scope link proto 97",
	}
	if !slices.Equal(k.cmds, want) {
		t.Errorf("ops:\n got %s\nwant %s", strings.Join(k.cmds, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestUnusedShimRemovedLast(t *testing.T) {
	other := Link{Index: 9, Name: "eno2.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 3, Up: true, MTU: 1500, Alias: ShimAlias, ARPFilter: true, ProxyNDP: true, MAC: ShimMAC("mid", "eno2.host")}
	handMade := Link{Index: 10, Name: "eno3.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 4, Up: true}
	// flatnet's alias, not flatnet's MAC, or not a macvlan: not flatnet's.
	aliased := Link{Index: 11, Name: "eno4.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 4, Alias: ShimAlias, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 4}}
	bridge := Link{Index: 12, Name: "br9", Kind: "bridge", Alias: ShimAlias, MAC: ShimMAC("mid", "br9")}
	in := Input{
		Networks: []Network{seedNet},
		States:   map[string]DirState{seedNet.StateDir: allocs()},
		Snap: &Snapshot{
			Links: []Link{eno1, shim, {Index: 3, Name: "eno2"}, other, {Index: 4, Name: "eno3"}, handMade, aliased, bridge},
			Routes: []Route{{Dst: hostPrefix(ip("10.1.0.2")), Dev: "eno2.host", Protocol: Protocol},
				{Dst: hostPrefix(ip("10.1.0.3")), Dev: "eno4.host", Protocol: Protocol}, {Dst: hostPrefix(ip("10.1.0.4")), Dev: "br9", Protocol: Protocol}},
		},
		MachineID: "mid",
	}
	k := &fakeKernel{}
	if _, err := Apply(k, Compute(in).Ops); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ip route del 10.1.0.2/32 dev eno2.host proto 97",
		"ip neigh del 10.1.0.2 dev eno2.host",
		"ip link del eno2.host",
	}
	if !slices.Equal(k.cmds, want) {
		t.Errorf("ops:\n got %s\nwant %s", strings.Join(k.cmds, "\n     "), strings.Join(want, "\n     "))
	}
}

// TestDoneSettles: once the ops that succeeded are recorded, what was
// missing and added counts as routed, what was stale and deleted is gone,
// and a failed op leaves its address missing.
func TestDoneSettles(t *testing.T) {
	in := Input{
		Networks: []Network{seedNet},
		States:   map[string]DirState{seedNet.StateDir: allocs("192.168.1.2", "192.168.1.3")},
		Snap:     &Snapshot{Links: []Link{eno1, shim}, Routes: []Route{ours("192.168.1.4")}},
	}
	node := NewNode()
	p := node.full(in)
	st := node.Status()[0]
	if st.Allocated != 2 || st.Routed != 0 || len(st.Missing) != 2 || len(st.Stale) != 1 || st.InSync() {
		t.Fatalf("before: %+v", st)
	}
	k := &fakeKernel{fail: map[string]error{"ip route add 192.168.1.3/32 dev eno1.host scope link proto 97": errors.New("boom")}}
	done, err := Apply(k, p.Ops)
	if err == nil || !strings.Contains(err.Error(), "192.168.1.3") {
		t.Fatalf("Apply error = %v, want one naming 192.168.1.3", err)
	}
	node.done(done)
	after := node.Status()[0]
	if after.Routed != 1 || len(after.Missing) != 1 || after.Missing[0] != ip("192.168.1.3") || len(after.Stale) != 0 {
		t.Fatalf("after: %+v", after)
	}
}

func TestApplySkipsRoutesOfFailedShim(t *testing.T) {
	p := Compute(Input{
		Networks: []Network{seedNet},
		States:   map[string]DirState{seedNet.StateDir: allocs("192.168.1.2")},
		Snap:     &Snapshot{Links: []Link{eno1}},
	})
	k := &fakeKernel{fail: map[string]error{p.Ops[0].String(): errors.New("no macvlan")}}
	done, err := Apply(k, p.Ops)
	if err == nil || len(done) != 0 || len(k.cmds) != 0 {
		t.Fatalf("done=%v cmds=%v err=%v; want nothing done and an error", done, k.cmds, err)
	}
}

func TestTeardownOnlyOurs(t *testing.T) {
	snap := &Snapshot{
		Links: []Link{eno1, shim, {Index: 9, Name: "eth1.host", Kind: "macvlan", MacvlanMode: "bridge"}},
		Routes: []Route{
			ours("192.168.1.2"),
			{Dst: hostPrefix(ip("192.168.1.3")), Dev: "eno1.host", Protocol: 3},
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eno1", Protocol: 4},
		},
	}
	k := &fakeKernel{}
	if _, err := Apply(k, Teardown(snap, "mid")); err != nil {
		t.Fatal(err)
	}
	want := []string{"ip route del 192.168.1.2/32 dev eno1.host proto 97", "ip link del eno1.host"}
	if !slices.Equal(k.cmds, want) {
		t.Fatalf("got %q, want %q", k.cmds, want)
	}
}

// TestShimNameAndMACGolden pins the shim's name and MAC derivation: the
// README promises the same MAC after every reboot and upgrade, which holds
// only if no version derives them differently. These values are those of
// the first release; a change here breaks every node's pods' ARP caches
// and switch port security on upgrade.
func TestShimNameAndMACGolden(t *testing.T) {
	for master, want := range map[string]string{
		"eno1":          "eno1.host",
		"enp129s0f1np1": "fn3034494e.host", // "<master>.host" would be 18 bytes
		"enp129s0f0np0": "fn5c0f630f.host",
	} {
		if got := ShimName(master); got != want {
			t.Errorf("ShimName(%q) = %q, want %q", master, got, want)
		}
	}
	perm, _ := net.ParseMAC("52:54:00:12:34:56")
	for _, c := range []struct{ seed, shim, want string }{
		{"0123456789abcdef0123456789abcdef", "eno1.host", "5e:98:bd:86:cc:89"},
		{"fedcba9876543210fedcba9876543210", "eno1.host", "1a:c6:46:11:f0:d8"},
		{"0123456789abcdef0123456789abcdef", "eno2.host", "4a:11:ea:28:ac:0f"},
		// No machine id: the master's permanent address seeds it.
		{ShimSeed("", Link{PermMAC: perm, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}), "eno1.host", "1a:34:48:91:2f:a5"},
	} {
		got := ShimMAC(c.seed, c.shim)
		if got.String() != c.want {
			t.Errorf("ShimMAC(%q, %q) = %s, want %s", c.seed, c.shim, got, c.want)
		}
		if got[0]&1 != 0 || got[0]&2 == 0 {
			t.Errorf("ShimMAC %s is not a locally administered unicast MAC", got)
		}
	}
	if ShimSeed("", Link{MAC: perm}) != ShimSeed("", Link{PermMAC: perm}) || ShimSeed("m", Link{PermMAC: perm}) != "m" {
		t.Errorf("ShimSeed: the machine id first, then the permanent address, else the current one")
	}
}

func TestDefaultRouteDev(t *testing.T) {
	s := &Snapshot{Routes: []Route{
		{Dst: netip.MustParsePrefix("::/0"), Dev: "v6only"},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "backup", Priority: 200},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eno1", Priority: 100},
		{Dst: netip.MustParsePrefix("192.168.0.0/16"), Dev: "eno2"},
	}}
	if got := s.DefaultRouteDev(); got != "eno1" {
		t.Fatalf("DefaultRouteDev = %q, want eno1", got)
	}
}

// TestRejectsListedUpToALimit: a state dir full of addresses that must
// never be routed gives one finding each for the lowest MaxRejectsListed
// and one that counts the others, the same on every pass.
func TestRejectsListedUpToALimit(t *testing.T) {
	var ips []string
	for i := range MaxRejectsListed + 50 {
		ips = append(ips, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String())
	}
	ips = append(ips, "192.168.1.2")
	snap := &Snapshot{Links: []Link{eno1, shim}, Routes: []Route{ours("192.168.1.2")}}
	in := Input{Networks: []Network{seedNet}, States: map[string]DirState{seedNet.StateDir: allocs(ips...)}, Snap: snap, MachineID: "mid"}
	p := Compute(in)
	if len(p.Ops) != 0 {
		t.Errorf("ops: %v", p.Ops)
	}
	keys := findingNames(p.Findings)
	if len(keys) != MaxRejectsListed+1 || !slices.Contains(keys, "reject-more:default") ||
		!slices.Contains(keys, "reject:default:10.0.0.0") || !slices.Contains(keys, "reject:default:10.0.0.99") || slices.Contains(keys, "reject:default:10.0.0.100") {
		t.Errorf("finding keys: %v", keys)
	}
	if again := Compute(in); !slices.EqualFunc(again.Findings, p.Findings, func(a, b Finding) bool { return a.Key() == b.Key() && a.Msg == b.Msg }) {
		t.Errorf("findings differ between passes")
	}
	if st := p.Networks[0]; st.Allocated != 1 || st.Routed != 1 {
		t.Errorf("status: %+v", st)
	}
}

// TestCarrierBackFlushesNeighbours: a shim whose master came back gets its
// neighbour entries flushed, after the routes; a shim that cannot be used
// does not.
func TestCarrierBackFlushesNeighbours(t *testing.T) {
	snap := &Snapshot{Links: []Link{eno1, shim}, Routes: []Route{ours("192.168.1.2")}}
	in := Input{Networks: []Network{seedNet}, States: map[string]DirState{seedNet.StateDir: allocs("192.168.1.2", "192.168.1.3")},
		Snap: snap, MachineID: "mid", CarrierBack: map[string]bool{"eno1.host": true}}
	var got []string
	for _, op := range Compute(in).Ops {
		got = append(got, op.String())
	}
	want := []string{"ip route add 192.168.1.3/32 dev eno1.host scope link proto 97", "ip neigh flush dev eno1.host"}
	if !slices.Equal(got, want) {
		t.Errorf("ops:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	in.Snap = &Snapshot{Links: []Link{shim}} // no master: the network waits
	for _, op := range Compute(in).Ops {
		if op.Kind == FlushNeighs {
			t.Errorf("flushed a shim that cannot be used: %v", op)
		}
	}
}

// batchKernel is a fakeKernel that also takes runs of route ops at once.
type batchKernel struct {
	fakeKernel
	batches []int
}

func (k *batchKernel) DoBatch(ops []Op) []error {
	k.batches = append(k.batches, len(ops))
	errs := make([]error, len(ops))
	for i, op := range ops {
		errs[i] = k.Do(op)
	}
	return errs
}

func TestApplyBatchesRouteRuns(t *testing.T) {
	p := Compute(Input{
		Networks:  []Network{seedNet},
		States:    map[string]DirState{seedNet.StateDir: allocs("192.168.1.2", "192.168.1.3", "192.168.1.4")},
		Snap:      &Snapshot{Links: []Link{eno1}, Routes: []Route{ours("192.168.1.9")}},
		MachineID: "mid",
	})
	k := &batchKernel{fakeKernel: fakeKernel{fail: map[string]error{"ip route add 192.168.1.3/32 dev eno1.host scope link proto 97": errors.New("boom")}}}
	done, err := Apply(k, p.Ops)
	if err == nil || !strings.Contains(err.Error(), "192.168.1.3") {
		t.Fatalf("err = %v, want the failed add named", err)
	}
	// The shim alone, then adds and the delete in one batch, then the flush alone.
	if !slices.Equal(k.batches, []int{4}) {
		t.Errorf("batches = %v, want [4]", k.batches)
	}
	if len(done) != len(p.Ops)-1 {
		t.Errorf("done %d of %d ops, want all but the failed one", len(done), len(p.Ops))
	}
}

// TestResultsRouted: addresses from libcni's cached results are routed
// like host-local's, whatever the IPAM: a network with no state directory
// and no ranges has its leases judged by the subnet and gateway of their
// result; an address in both sources gets one route; a state file of a
// container whose namespace is gone is stale.
func TestResultsRouted(t *testing.T) {
	static := Network{Name: "fixed", Master: "eno1", Shim: "eno1.host", IPAM: "static"}
	seed := seedNet
	seed.Gone = []string{"c-192.168.1.9"}
	lease := func(id string) Lease {
		return Lease{Owner: hostlocal.Owner{ContainerID: id, IfName: "net1"}, Subnet: netip.MustParsePrefix("192.168.0.0/16"), Gateway: ip("192.168.0.1")}
	}
	in := Input{
		Networks: []Network{seed, static},
		States:   map[string]DirState{seed.StateDir: allocs("192.168.1.2", "192.168.1.9")},
		Results: map[string]map[netip.Addr]Lease{
			seed.Name:   {ip("192.168.1.2"): lease("c-192.168.1.2")},
			static.Name: {ip("192.168.5.50"): lease("s1"), ip("192.168.0.1"): lease("s2"), ip("192.168.255.255"): lease("s3")},
		},
		Snap:      &Snapshot{Links: []Link{eno1, shim}, Addrs: []netip.Addr{ip("192.168.0.5")}},
		MachineID: "mid",
	}
	p := Compute(in)
	var got []string
	for _, op := range p.Ops {
		got = append(got, op.String())
	}
	want := []string{
		"ip route add 192.168.1.2/32 dev eno1.host scope link proto 97",
		"ip route add 192.168.5.50/32 dev eno1.host scope link proto 97",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ops:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	keys := findingNames(p.Findings)
	for _, k := range []string{"reject:fixed:192.168.0.1", "reject:fixed:192.168.255.255", "refused:default:192.168.1.9"} {
		if !slices.Contains(keys, k) {
			t.Errorf("findings %q lack %s", keys, k)
		}
	}
	if st := p.Networks[1]; st.Allocated != 1 || st.Held {
		t.Errorf("status of the static network: %+v", st)
	}
}
