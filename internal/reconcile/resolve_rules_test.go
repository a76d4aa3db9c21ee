package reconcile

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
)

// rsTRange is the range start-end of subnet.
func rsTRange(subnet, start, end string) hostlocal.Range {
	return hostlocal.Range{Subnet: netip.MustParsePrefix(subnet), Start: ip(start), End: ip(end)}
}

// rsTNames are the names of nets, in order.
func rsTNames(nets []Network) []string {
	var out []string
	for _, n := range nets {
		out = append(out, n.Name)
	}
	return out
}

// TestResolveGoesOn: a later duplicate of a discovered network, or a
// discovered network a table overrides, does not end discovery: every
// network after it is still mirrored. And a table's ranges win over the
// discovered ones, which only fill in a table that has none.
func TestResolveGoesOn(t *testing.T) {
	v6 := cni.Network{Name: "v6", File: "10-v6.conflist", IPAM: "host-local", Master: "eno1",
		Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("fd00::/64"))}}
	seedCNI := cni.Network{Name: "default", File: "00-default.conflist", IPAM: "host-local", Master: "eno1", Ranges: []hostlocal.Range{seedRange}}
	dup := seedCNI
	dup.File = "05-default.conflist"
	narrow := netip.MustParsePrefix("192.168.0.0/23")
	for _, tt := range []struct {
		name   string
		tables []config.Network
		cni    []cni.Network
		want   []string
	}{
		{"a later duplicate", nil, []cni.Network{seedCNI, dup, v6}, []string{"default", "v6"}},
		{"a table overrides the first", []config.Network{{Name: "default", Ranges: []netip.Prefix{narrow}, Line: 2}}, []cni.Network{seedCNI, v6}, []string{"default", "v6"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Config{Discover: true, StateRoot: "/var/lib/cni/networks", Networks: tt.tables}
			nets, finds := Resolve(cfg, cni.Discovery{Networks: tt.cni}, &Snapshot{})
			if got := rsTNames(nets); !slices.Equal(got, tt.want) || len(finds) != 0 {
				t.Fatalf("networks %v, findings %v; want %v and none", got, finds, tt.want)
			}
			if nets[0].Source != seedCNI.File && len(tt.tables) == 0 {
				t.Errorf("the first definition is not the one kept: %s", nets[0].Source)
			}
			want := seedCNI.Ranges
			if len(tt.tables) > 0 {
				want = []hostlocal.Range{tableRange(narrow, seedCNI.Ranges, nil)}
			}
			if !slices.Equal(nets[0].Ranges, want) {
				t.Errorf("ranges %v, want %v", nets[0].Ranges, want)
			}
			if !slices.Equal(nets[1].Ranges, v6.Ranges) {
				t.Errorf("v6's ranges %v, want the discovered %v", nets[1].Ranges, v6.Ranges)
			}
		})
	}
}

// TestResolveConfinesTenants: a network only libcni's cache defines (a
// tenant's, through a NetworkAttachmentDefinition) is not mirrored when
// its state directory is state_root, lies in the CNI configuration
// directory, in a directory of a network of that directory (a claim), of
// a root network or of a tenant network kept before it; the others are
// kept, whatever came before them, each with the ranges of the other
// networks that overlap its own (all of them for one without ranges) as
// Reserved. A tenant taking another's state directory could make flatnet
// route, or stop routing, that network's addresses.
func TestResolveConfinesTenants(t *testing.T) {
	cfg := config.Config{Discover: true, StateRoot: "/var/lib/cni/networks", CNIConfDir: "/etc/cni/net.d"}
	tenant := func(name, dataDir, ipam string, ranges ...hostlocal.Range) cni.Network {
		if ipam == "host-local" && len(ranges) == 0 {
			ranges = []hostlocal.Range{rsTRange("10.9.0.0/24", "10.9.0.2", "10.9.0.254")}
		}
		return cni.Network{Name: name, File: "/var/lib/cni/results/" + name + "-c1-net1", IPAM: ipam, Master: "eno1", DataDir: dataDir, Ranges: ranges}
	}
	root := func(name string, r hostlocal.Range) cni.Network {
		return cni.Network{Name: name, File: "10-" + name + ".conflist", IPAM: "host-local", Master: "eno1", Ranges: []hostlocal.Range{r}}
	}
	d := cni.Discovery{
		Networks: []cni.Network{
			tenant("networks", "/var/lib/cni", "host-local"), // state_root itself
			root("lan", rsTRange("10.1.0.0/24", "10.1.0.20", "10.1.0.30")),
			root("far", rsTRange("10.1.0.0/24", "10.1.0.100", "10.1.0.200")),
			root("v6", hostlocal.RangeFromPrefix(netip.MustParsePrefix("fd00::/64"))),
			tenant("conf", "/etc/cni/net.d", "host-local"),
			tenant("claimed", "/var/lib/cni/networks/br", "host-local"),
			tenant("sub", "/var/lib/cni/networks/lan", "host-local"),
			// Its range touches lan's last address and br's first one, and
			// lies below far's.
			tenant("ok", "/srv", "host-local", rsTRange("10.1.0.0/24", "10.1.0.10", "10.1.0.20")),
			tenant("ok2", "/srv/ok", "host-local"),
			tenant("static", "", "static"),
		},
		Claims: []cni.Claim{{Name: "br", File: "20-br.conflist", Types: []string{"bridge"}, Ranges: []hostlocal.Range{rsTRange("10.1.0.0/24", "10.1.0.2", "10.1.0.10")}}},
	}
	nets, finds := Resolve(cfg, d, &Snapshot{})
	if got, want := rsTNames(nets), []string{"lan", "far", "v6", "ok", "static"}; !slices.Equal(got, want) {
		t.Fatalf("networks %v, want %v", got, want)
	}
	reserved := map[string][]string{}
	for _, n := range nets {
		for _, r := range n.Reserved {
			reserved[n.Name] = append(reserved[n.Name], r.Network)
		}
	}
	if want := map[string][]string{"ok": {"br", "lan"}, "static": {"br", "lan", "far", "v6"}}; !maps.EqualFunc(reserved, want, slices.Equal) {
		t.Errorf("reserved %v, want %v", reserved, want)
	}
	want := map[string]string{
		"networks": "which is state_root",
		"conf":     "which is the CNI configuration directory",
		"claimed":  "which is network br of 20-br.conflist",
		"sub":      "which is network lan of 10-lan.conflist",
		"ok2":      "which is network ok of /var/lib/cni/results/ok-c1-net1",
	}
	got := map[string]string{}
	for _, f := range finds {
		if f.Kind != FindTrust {
			t.Errorf("finding %+v", f)
			continue
		}
		got[f.Network] = f.Msg
	}
	for name, what := range want {
		if !strings.Contains(got[name], what) {
			t.Errorf("network %s: finding %q, want one saying %q", name, got[name], what)
		}
	}
	if len(got) != len(want) {
		t.Errorf("findings for %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// TestTableRangeEdges: a table's CIDR that is the subnet itself (host-local's,
// or the master's address's) is not a pool: its network and broadcast
// addresses stay out of the range. A CIDR inside nested subnets takes
// the first one holding it, in host-local's order or the master's; and
// only the gateway of a host-local range on the range's own subnet is
// kept out of it, whatever the other ranges' gateways.
func TestTableRangeEdges(t *testing.T) {
	p := netip.MustParsePrefix
	wide := rsTRange("192.168.0.0/16", "192.168.1.2", "192.168.1.254")
	wide.Gateway = ip("192.168.0.1")
	nested := rsTRange("192.168.0.0/20", "192.168.2.2", "192.168.2.254")
	v6 := hostlocal.RangeFromPrefix(p("fd00::/64"))
	v6.Gateway = ip("fd00::1")
	for _, tt := range []struct {
		name       string
		cidr       string
		hl         []hostlocal.Range
		lan        []netip.Prefix
		subnet     string
		in, out    []string
		gatewayWas netip.Addr
	}{
		{"host-local's subnet itself", "10.0.0.0/24", []hostlocal.Range{hostlocal.RangeFromPrefix(p("10.0.0.0/24"))}, nil,
			"10.0.0.0/24", []string{"10.0.0.1", "10.0.0.254"}, []string{"10.0.0.0", "10.0.0.255"}, netip.Addr{}},
		{"the master's subnet itself", "192.168.0.0/24", nil, []netip.Prefix{p("192.168.0.5/24")},
			"192.168.0.0/24", []string{"192.168.0.1", "192.168.0.254"}, []string{"192.168.0.0", "192.168.0.255"}, netip.Addr{}},
		{"host-local's first subnet holding it", "192.168.3.0/24", []hostlocal.Range{wide, nested}, nil,
			"192.168.0.0/16", []string{"192.168.3.0", "192.168.3.255"}, nil, wide.Gateway},
		{"the master's first subnet holding it", "172.16.9.0/24", nil, []netip.Prefix{p("172.16.0.5/12"), p("172.16.9.5/16")},
			"172.16.0.0/12", []string{"172.16.9.0", "172.16.9.255"}, nil, netip.Addr{}},
		{"dual stack: the IPv4 gateway", "192.168.1.0/24", []hostlocal.Range{wide, v6}, nil,
			"192.168.0.0/16", []string{"192.168.1.7"}, []string{"192.168.0.1"}, wide.Gateway},
	} {
		r := tableRange(p(tt.cidr), tt.hl, tt.lan)
		if r.Subnet != p(tt.subnet) || r.Gateway != tt.gatewayWas {
			t.Errorf("%s: subnet %s, gateway %s; want %s, %s", tt.name, r.Subnet, r.Gateway, tt.subnet, tt.gatewayWas)
		}
		for _, a := range tt.in {
			if !r.Contains(ip(a)) {
				t.Errorf("%s: %s not in %s", tt.name, a, r)
			}
		}
		for _, a := range tt.out {
			if r.Contains(ip(a)) {
				t.Errorf("%s: %s in %s", tt.name, a, r)
			}
		}
	}
}

// TestResultsLeases: Results keeps every address of a network's live
// attachments (an address already leased keeps its first lease, and the
// attachment's other addresses still count), none of a gone one, and no
// entry for a network whose attachments are all gone.
func TestResultsLeases(t *testing.T) {
	addr := func(p, gw string) cni.Addr {
		a := cni.Addr{Prefix: netip.MustParsePrefix(p)}
		if gw != "" {
			a.Gateway = ip(gw)
		}
		return a
	}
	d := cni.Discovery{Attachments: map[string][]cni.Attachment{
		"lan": {
			{ContainerID: "c1", IfName: "net1", Addrs: []cni.Addr{addr("10.1.0.5/24", "10.1.0.1"), addr("fd00::5/64", "")}},
			{ContainerID: "c2", IfName: "net1", Addrs: []cni.Addr{addr("10.1.0.5/24", ""), addr("10.1.0.6/24", "")}},
			{ContainerID: "c3", IfName: "net1", Gone: true, Addrs: []cni.Addr{addr("10.1.0.7/24", "")}},
		},
		"gone": {{ContainerID: "c4", IfName: "net1", Gone: true, Addrs: []cni.Addr{addr("10.2.0.5/24", "")}}},
	}}
	lease := func(id, subnet, gw string) Lease {
		l := Lease{Owner: hostlocal.Owner{ContainerID: id, IfName: "net1"}, Subnet: netip.MustParsePrefix(subnet)}
		if gw != "" {
			l.Gateway = ip(gw)
		}
		return l
	}
	want := map[string]map[netip.Addr]Lease{"lan": {
		ip("10.1.0.5"): lease("c1", "10.1.0.0/24", "10.1.0.1"),
		ip("fd00::5"):  lease("c1", "fd00::/64", ""),
		ip("10.1.0.6"): lease("c2", "10.1.0.0/24", ""),
	}}
	if got := Results(d); !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("Results:\n got %v\nwant %v", got, want)
	}
}

// TestRemoveLeases: an attachment's removal takes out only the addresses
// leased to it, that container's interface: never another container's
// lease of the same address, nor another interface's of the same
// container, which are still live pods' routes.
func TestRemoveLeases(t *testing.T) {
	owner := func(id, ifName string) Lease { return Lease{Owner: hostlocal.Owner{ContainerID: id, IfName: ifName}} }
	att := func(id, ifName string, ips ...string) cni.Attachment {
		a := cni.Attachment{ContainerID: id, IfName: ifName}
		for _, s := range ips {
			a.Addrs = append(a.Addrs, cni.Addr{Prefix: netip.PrefixFrom(ip(s), 24)})
		}
		return a
	}
	for _, tt := range []struct {
		name string
		a    cni.Attachment
		want []netip.Addr
	}{
		{"another container's address", att("c2", "net1", "10.1.0.5", "10.1.0.7"), []netip.Addr{ip("10.1.0.7")}},
		{"another interface's address", att("c1", "net1", "10.1.0.6", "10.1.0.5"), []netip.Addr{ip("10.1.0.5")}},
	} {
		m := map[netip.Addr]Lease{ip("10.1.0.5"): owner("c1", "net1"), ip("10.1.0.6"): owner("c1", "net2"), ip("10.1.0.7"): owner("c2", "net1")}
		got := RemoveLeases(m, tt.a)
		if !slices.Equal(got, tt.want) || len(m) != 3-len(tt.want) {
			t.Errorf("%s: removed %v, left %v; want %v removed", tt.name, got, m, tt.want)
		}
		for _, a := range tt.want {
			if _, ok := m[a]; ok {
				t.Errorf("%s: %s still leased", tt.name, a)
			}
		}
	}
}
