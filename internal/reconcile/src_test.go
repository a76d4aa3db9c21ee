package reconcile

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// TestRouteSource: IPv4 routes name the master's address as their source,
// so that pods on a second NIC get packets from the node's address on
// their own subnet, not from the first NIC's.
func TestRouteSource(t *testing.T) {
	eno1 := eno1
	eno1.Addrs = []netip.Prefix{netip.MustParsePrefix("192.168.0.5/16"), netip.MustParsePrefix("fd00::5/64")}
	eno2 := Link{Index: 3, Name: "eno2", Kind: "device", Up: true, MTU: 1500,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.5/24"), netip.MustParsePrefix("10.0.0.5/24")}}
	bare := Link{Index: 4, Name: "eno3", Kind: "device", Up: true, MTU: 1500}
	shim2 := Link{Index: 9, Name: "eno2.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 3, Up: true, MTU: 1500, Alias: ShimAlias, ARPFilter: true, ProxyNDP: true}
	shim3 := Link{Index: 10, Name: "eno3.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 4, Up: true, MTU: 1500, Alias: ShimAlias, ARPFilter: true, ProxyNDP: true}
	v6 := hostlocal.Range{Subnet: netip.MustParsePrefix("fd00::/64"), Start: ip("fd00::1:2"), End: ip("fd00::1:ff")}
	def := seedNet
	def.Ranges = []hostlocal.Range{seedRange, v6}
	storage := Network{Name: "storage", Master: "eno2", Shim: "eno2.host", StateDir: "/s",
		Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("10.0.0.0/24")), hostlocal.RangeFromPrefix(netip.MustParsePrefix("10.7.0.0/24"))}}
	vlan := Network{Name: "vlan", Master: "eno3", Shim: "eno3.host", StateDir: "/v",
		Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("10.8.0.0/24"))}}
	withSrc := func(s, src string) Route { r := ours(s); r.Src = ip(src); return r }
	onShim := func(r Route, dev string) Route { r.Dev = dev; return r }
	in := Input{
		Networks: []Network{def, storage, vlan},
		States: map[string]DirState{
			def.StateDir: allocs("192.168.1.2", "192.168.1.3", "192.168.1.4", "fd00::1:2"),
			"/s":         allocs("10.0.0.100", "10.7.0.9"),
			"/v":         allocs("10.8.0.9"),
		},
		Snap: &Snapshot{
			Links: []Link{eno1, shim, eno2, shim2, bare, shim3},
			Addrs: []netip.Addr{ip("192.168.0.5"), ip("fd00::5"), ip("10.9.0.5"), ip("10.0.0.5")},
			Routes: []Route{
				ours("192.168.1.3"),                                  // from before routes had a source: replaced
				withSrc("192.168.1.4", "192.168.0.5"),                // right
				onShim(withSrc("10.8.0.9", "10.8.0.1"), "eno3.host"), // its master has no address any more
			},
			Proxies: []Proxy{{Dev: "eno1.host", IP: ip("fd00::5")}},
		},
	}
	k := &fakeKernel{}
	node := NewNode()
	done, err := Apply(k, node.full(in).Ops)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ip route add 10.0.0.100/32 dev eno2.host scope link proto 97 src 10.0.0.5",
		"ip route add 10.7.0.9/32 dev eno2.host scope link proto 97 src 10.9.0.5", // no subnet of eno2 holds it: its first address
		"ip route replace 10.8.0.9/32 dev eno3.host scope link proto 97",
		"ip route add 192.168.1.2/32 dev eno1.host scope link proto 97 src 192.168.0.5",
		"ip route replace 192.168.1.3/32 dev eno1.host scope link proto 97 src 192.168.0.5",
		"ip route add fd00::1:2/128 dev eno1.host scope link proto 97", // IPv6 chooses well by itself
	}
	if !slices.Equal(k.cmds, want) {
		t.Errorf("ops:\n got %s\nwant %s", strings.Join(k.cmds, "\n     "), strings.Join(want, "\n     "))
	}

	// Once done, the node is in sync: nothing missing, and nothing more to
	// do for any of the addresses.
	node.done(done)
	for _, st := range node.Status() {
		if !st.InSync() {
			t.Errorf("after the changes, %s: %+v", st.Name, st)
		}
	}
	if ops := node.update([]netip.Addr{ip("192.168.1.3"), ip("10.8.0.9"), ip("fd00::1:2")}, nil, nil); len(ops) != 0 {
		t.Errorf("after the changes, still: %v", ops)
	}
}
