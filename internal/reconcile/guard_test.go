package reconcile

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

func TestChooseGuard(t *testing.T) {
	no := errors.New("no")
	all, noShim, none := GuardKernel{}, GuardKernel{Shim: no}, GuardKernel{Filter: no, Shim: no}
	tests := []struct {
		setting string
		k       GuardKernel
		want    Guard
		why     bool
	}{
		{"auto", all, GuardShim, false},
		{"auto", noShim, GuardFilter, false},
		{"auto", GuardKernel{Filter: no}, GuardShim, false},
		{"auto", none, GuardAddress, false},
		{"shim", all, GuardShim, false},
		{"shim", noShim, GuardOff, true},
		{"filter", all, GuardFilter, false},
		{"filter", GuardKernel{Filter: no}, GuardOff, true},
		{"address", all, GuardAddress, false},
		{"off", all, GuardOff, false},
	}
	for _, tt := range tests {
		g, why := ChooseGuard(tt.setting, tt.k)
		if g != tt.want || (why != "") != tt.why {
			t.Errorf("ChooseGuard(%q, %+v) = %v, %q; want %v, a reason %v", tt.setting, tt.k, g, why, tt.want, tt.why)
		}
	}
	if g, why := ChooseGuard("shim", noShim); !strings.Contains(why, "no") || g.String() != "off" {
		t.Errorf("shim on a kernel without it: %v, %q", g, why)
	}
	for g, name := range map[Guard]string{GuardOff: "off", GuardFilter: "filter", GuardAddress: "address", GuardShim: "shim"} {
		if g.String() != name {
			t.Errorf("%d.String() = %q, want %q", g, g.String(), name)
		}
	}
}

// TestGuardFor: all.arp_ignore turns "auto"'s shim guard into the egress
// filter where the kernel has it, and nothing else.
func TestGuardFor(t *testing.T) {
	no := errors.New("no")
	set, unset := &Snapshot{ARPIgnoreAll: true}, &Snapshot{}
	for _, tt := range []struct {
		chosen  Guard
		setting string
		k       GuardKernel
		snap    *Snapshot
		want    Guard
	}{
		{GuardShim, "auto", GuardKernel{}, set, GuardFilter},
		{GuardShim, "auto", GuardKernel{}, unset, GuardShim},
		{GuardShim, "auto", GuardKernel{}, nil, GuardShim},
		{GuardShim, "auto", GuardKernel{Filter: no}, set, GuardShim},
		{GuardShim, "shim", GuardKernel{}, set, GuardShim},
		{GuardFilter, "auto", GuardKernel{Shim: no}, set, GuardFilter},
		{GuardAddress, "auto", GuardKernel{Shim: no, Filter: no}, set, GuardAddress},
		{GuardOff, "off", GuardKernel{}, set, GuardOff},
	} {
		g, why := GuardFor(tt.chosen, tt.setting, tt.k, tt.snap)
		if g != tt.want || (why != "") != (g != tt.chosen) {
			t.Errorf("GuardFor(%v, %q, %+v, %+v) = %v, %q; want %v", tt.chosen, tt.setting, tt.k, tt.snap, g, why, tt.want)
		}
	}
}

func TestFilterScript(t *testing.T) {
	got := FilterScript([]Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}, {Master: "eno1", MAC: "02:00:00:00:00:02"}, {Master: "eno2.100", MAC: "02:00:00:00:00:03"}})
	want := `nft 'table netdev flatnet { comment "flatnet: LAN guard of its shims; flatnet teardown removes it"; chain eno1 {}; chain eno2.100 {}; };` +
		` delete chain netdev flatnet eno1; delete chain netdev flatnet eno2.100; table netdev flatnet {` +
		` chain eno1 { type filter hook egress device "eno1" priority filter; ether saddr 02:68:e4:f9:d5:ec counter drop comment "flatnet: shim"; ether saddr 02:00:00:00:00:02 counter drop comment "flatnet: shim"; };` +
		` chain eno2.100 { type filter hook egress device "eno2.100" priority filter; ether saddr 02:00:00:00:00:03 counter drop comment "flatnet: shim"; }; }'` +
		` # flatnet's other chains go too`
	if got != want {
		t.Errorf("FilterScript:\n got %s\nwant %s", got, want)
	}
	if got, want := FilterScript(nil), "nft delete table netdev flatnet # or, while it holds chains flatnet did not make, only flatnet's (nft delete chain netdev flatnet NAME)"; got != want {
		t.Errorf("FilterScript(nil) = %q, want %q", got, want)
	}
	got = FilterScript(nil, "eno1.host")
	want = `nft 'table netdev flatnet { comment "flatnet: LAN guard of its shims; flatnet teardown removes it"; chain eno1.host {}; };` +
		` delete chain netdev flatnet eno1.host; table netdev flatnet {` +
		` chain eno1.host { type filter hook ingress device "eno1.host" priority filter;` +
		` icmpv6 type nd-neighbor-solicit meta pkttype != host ip6 saddr fe80::/10 counter drop comment "flatnet: no proxy answer to the LAN's solicitations from link-local addresses";` +
		` icmpv6 type nd-neighbor-solicit ip6 saddr :: counter drop comment "flatnet: no proxy answer to duplicate address detection";` +
		` icmpv6 type nd-neighbor-solicit fib saddr . iif oif missing counter drop comment "flatnet: proxy answers only to peers routed through the shim"; }; }'` +
		` # flatnet's other chains go too`
	if got != want {
		t.Errorf("FilterScript(ingress):\n got %s\nwant %s", got, want)
	}
}

func TestProbeScript(t *testing.T) {
	got := ProbeScript([]string{"eno1.host", "eno2.host"})
	want := `nft 'table arp flatnet { comment "flatnet: LAN guard of its shims; flatnet teardown removes it"; chain eno1.host {}; chain eno2.host {}; };` +
		` delete chain arp flatnet eno1.host; delete chain arp flatnet eno2.host; table arp flatnet {` +
		` chain eno1.host { type filter hook output priority filter; oifname "eno1.host" arp operation request arp saddr ip set 0.0.0.0 counter comment "flatnet: the shim's ARP requests name no address of the node"; };` +
		` chain eno2.host { type filter hook output priority filter; oifname "eno2.host" arp operation request arp saddr ip set 0.0.0.0 counter comment "flatnet: the shim's ARP requests name no address of the node"; }; }'` +
		` # flatnet's other chains go too`
	if got != want {
		t.Errorf("ProbeScript:\n got %s\nwant %s", got, want)
	}
	if got, want := ProbeScript(nil), "nft delete table arp flatnet # or, while it holds chains flatnet did not make, only flatnet's (nft delete chain arp flatnet SHIM)"; got != want {
		t.Errorf("ProbeScript(nil) = %q, want %q", got, want)
	}
}

// TestFilterFindings: a foreign table is an error while the guard is the
// filter, each chain of another party in flatnet's table a warning; each
// message says what to do.
func TestFilterFindings(t *testing.T) {
	if got := FilterFindings(nil, GuardFilter); got != nil {
		t.Errorf("no table: %v", got)
	}
	if got := FilterFindings(filterOf("eno1", "02:68:e4:f9:d5:ec"), GuardFilter); got != nil {
		t.Errorf("flatnet's table alone: %v", got)
	}
	got := FilterFindings(&Filter{Foreign: true}, GuardFilter)
	if len(got) != 1 || got[0].Level != slog.LevelError || got[0].Chain != "" ||
		!strings.Contains(got[0].Msg, "not made by flatnet") || !strings.Contains(got[0].Msg, "nft delete table netdev flatnet") || !strings.Contains(got[0].Msg, `lan_guard = "address"`) {
		t.Errorf("foreign table: %+v", got)
	}
	if got := FilterFindings(&Filter{Foreign: true}, GuardAddress); got != nil {
		t.Errorf("foreign table, flatnet not using it: %v", got)
	}
	got = FilterFindings(&Filter{Drops: []Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}}, Other: []string{"eno2", "fw"}}, GuardFilter)
	if len(got) != 2 {
		t.Fatalf("two other chains: %+v", got)
	}
	for i, ch := range []string{"eno2", "fw"} {
		if got[i].Level != slog.LevelWarn || got[i].Chain != ch || !strings.Contains(got[i].Msg, "nft delete chain netdev flatnet "+ch) {
			t.Errorf("other chain %s: %+v", ch, got[i])
		}
	}
	got = FilterFindings(&Filter{Foreign: true}, GuardShim)
	if len(got) != 1 || got[0].Level != slog.LevelError || !strings.Contains(got[0].Msg, "no proxy entries") || !strings.Contains(got[0].Msg, "nft delete table netdev flatnet") {
		t.Errorf("foreign netdev table under the shim guard: %+v", got)
	}
	got = ProbeFindings(&ProbeTable{Foreign: true}, GuardShim)
	if len(got) != 1 || got[0].Level != slog.LevelError || !strings.Contains(got[0].Msg, "nft delete table arp flatnet") {
		t.Errorf("foreign arp table under the shim guard: %+v", got)
	}
	if got := ProbeFindings(&ProbeTable{Foreign: true}, GuardFilter); got != nil {
		t.Errorf("foreign arp table, flatnet not using it: %v", got)
	}
	got = ProbeFindings(&ProbeTable{Other: []string{"fw"}}, GuardShim)
	if len(got) != 1 || got[0].Level != slog.LevelWarn || !strings.Contains(got[0].Msg, "nft delete chain arp flatnet fw") {
		t.Errorf("other chain in the arp table: %+v", got)
	}
}

// filterOf is the table holding one drop per (master, MAC) pair.
func filterOf(pairs ...string) *Filter {
	f := &Filter{}
	for i := 0; i+1 < len(pairs); i += 2 {
		f.Drops = append(f.Drops, Drop{Master: pairs[i], MAC: pairs[i+1]})
	}
	return f
}

func TestComputeGuard(t *testing.T) {
	newMAC := ShimMAC("mid", "eno1.host").String()
	handMAC := net.HardwareAddr{0x5a, 0x11, 0x22, 0x33, 0x44, 0x55}
	guarded := shim
	guarded.MAC, guarded.ProxyDelay0 = net.HardwareAddr{2, 0x68, 0xe4, 0xf9, 0xd5, 0xec}, true
	addressed := shim
	addressed.Sender, addressed.ARPAnnounce = true, 2
	tests := []struct {
		name   string
		guard  Guard
		links  []Link
		filter *Filter
		want   []string
	}{
		{
			name:  "filter: a new shim is filtered before it exists",
			guard: GuardFilter,
			links: []Link{eno1},
			want: []string{
				FilterScript([]Drop{{Master: "eno1", MAC: newMAC}}),
				"ip link add eno1.host link eno1 address " + newMAC + " mtu 1500 type macvlan mode bridge",
			},
		},
		{
			name:   "filter: in place, nothing to do",
			guard:  GuardFilter,
			links:  []Link{eno1, guarded},
			filter: filterOf("eno1", "02:68:e4:f9:d5:ec"),
		},
		{
			name:   "filter: the counter does not matter",
			guard:  GuardFilter,
			links:  []Link{eno1, guarded},
			filter: &Filter{Drops: []Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec", Packets: 42}}},
		},
		{
			name:   "filter: flushed by someone, put back",
			guard:  GuardFilter,
			links:  []Link{eno1, guarded},
			filter: nil,
			want:   []string{FilterScript([]Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}})},
		},
		{
			name:   "filter: another party's chain in flatnet's table makes no write",
			guard:  GuardFilter,
			links:  []Link{eno1, guarded},
			filter: &Filter{Drops: []Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}}, Other: []string{"fw"}},
		},
		{
			name:   "filter: flatnet's chain gone, another party's there: flatnet's is written",
			guard:  GuardFilter,
			links:  []Link{eno1, guarded},
			filter: &Filter{Other: []string{"fw"}},
			want:   []string{FilterScript([]Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}})},
		},
		{
			name:   "filter: a chain of another party named after the master: no filter there",
			guard:  GuardFilter,
			links:  []Link{eno1, guarded},
			filter: &Filter{Other: []string{"eno1"}},
		},
		{
			name:   "filter: an older flatnet's table is written anew, with the mark",
			guard:  GuardFilter,
			links:  []Link{eno1, guarded},
			filter: &Filter{Drops: []Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}}, Legacy: true},
			want:   []string{FilterScript([]Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}})},
		},
		{
			name:   "filter: a table flatnet did not make is never written",
			guard:  GuardFilter,
			links:  []Link{eno1, guarded},
			filter: &Filter{Foreign: true},
		},
		{
			name:  "filter: a hand-made shim is guarded by its own MAC, proxy_delay 0",
			guard: GuardFilter,
			links: []Link{eno1, {Index: 8, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: true, MTU: 1500, MAC: handMAC}},
			want: []string{
				FilterScript([]Drop{{Master: "eno1", MAC: handMAC.String()}}),
				"sysctl -w net.ipv4.conf.eno1.host.arp_filter=1 net.ipv4.conf.eno1.host.arp_ignore=0 net.ipv6.conf.eno1.host.proxy_ndp=1 net.ipv6.conf.eno1.host.forwarding=1 net.ipv6.conf.eno1.host.accept_dad=0 net.ipv6.neigh.eno1.host.proxy_delay=0",
			},
		},
		{
			name:   "filter: the address left by a kernel without the filter goes",
			guard:  GuardFilter,
			links:  []Link{eno1, func() Link { l := guarded; l.Sender = true; return l }()},
			filter: filterOf("eno1", "02:68:e4:f9:d5:ec"),
			want:   []string{"ip addr del 192.0.0.8/32 dev eno1.host"},
		},
		{
			name:   "filter: a master no network uses any more loses its chain",
			guard:  GuardFilter,
			links:  []Link{eno1, guarded},
			filter: filterOf("eno1", "02:68:e4:f9:d5:ec", "eno2", "02:00:00:00:00:09"),
			want:   []string{FilterScript([]Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}})},
		},
		{
			name:  "address: a new shim gets its address",
			guard: GuardAddress,
			links: []Link{eno1},
			want:  []string{"ip link add eno1.host link eno1 address " + newMAC + " mtu 1500 type macvlan mode bridge; ip addr add 192.0.0.8/32 dev eno1.host scope link"},
		},
		{
			name:  "address: an adopted shim gets address and arp_announce",
			guard: GuardAddress,
			links: []Link{eno1, shim},
			want: []string{
				"sysctl -w net.ipv4.conf.eno1.host.arp_filter=1 net.ipv4.conf.eno1.host.arp_ignore=0 net.ipv6.conf.eno1.host.proxy_ndp=1 net.ipv6.conf.eno1.host.forwarding=1 net.ipv6.conf.eno1.host.accept_dad=0 net.ipv4.conf.eno1.host.arp_announce=2",
				"ip addr add 192.0.0.8/32 dev eno1.host scope link",
			},
		},
		{
			name:  "address: in place, nothing to do",
			guard: GuardAddress,
			links: []Link{eno1, addressed},
		},
		{
			name:   "address: a filter left by a newer kernel goes",
			guard:  GuardAddress,
			links:  []Link{eno1, addressed},
			filter: filterOf("eno1", "02:68:e4:f9:d5:ec"),
			want:   []string{FilterScript(nil)},
		},
		{
			name:   "address: flatnet's empty table goes",
			guard:  GuardAddress,
			links:  []Link{eno1, addressed},
			filter: &Filter{},
			want:   []string{"nft delete table netdev flatnet # or, while it holds chains flatnet did not make, only flatnet's (nft delete chain netdev flatnet NAME)"},
		},
		{
			name:   "address: flatnet's table holding only another party's chain stays",
			guard:  GuardAddress,
			links:  []Link{eno1, addressed},
			filter: &Filter{Other: []string{"fw"}},
		},
		{
			name:   "address: an older flatnet's table goes",
			guard:  GuardAddress,
			links:  []Link{eno1, addressed},
			filter: &Filter{Drops: []Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}}, Legacy: true},
			want:   []string{FilterScript(nil)},
		},
		{
			name:   "address: a table flatnet did not make stays",
			guard:  GuardAddress,
			links:  []Link{eno1, addressed},
			filter: &Filter{Foreign: true},
		},
		{
			name:  "off: the address goes, nothing is filtered",
			guard: GuardOff,
			links: []Link{eno1, addressed},
			want:  []string{"ip addr del 192.0.0.8/32 dev eno1.host"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{
				Networks:  []Network{seedNet},
				States:    map[string]DirState{seedNet.StateDir: allocs()},
				Snap:      &Snapshot{Links: tt.links, Filter: tt.filter},
				MachineID: "mid",
				Guard:     tt.guard,
			}
			k := &fakeKernel{}
			if _, err := Apply(k, Compute(in).Ops); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(k.cmds, tt.want) {
				t.Errorf("ops:\n got %s\nwant %s", strings.Join(k.cmds, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

// TestComputeShimGuard: with the shim guard, every usable shim's ARP
// requests are probes (its chain in the arp table, before the shim
// exists); a shim that proxies IPv6 gets its ingress chain once it exists,
// and its proxy entries only with it; the egress filter of another guard
// goes once the probes are in place; tables and chains flatnet did not
// make are never written, and without its ingress chain a shim gets no
// proxy entries.
func TestComputeShimGuard(t *testing.T) {
	newMAC := ShimMAC("mid", "eno1.host").String()
	v6 := hostlocal.Range{Subnet: netip.MustParsePrefix("fd00::/64"), Start: ip("fd00::1:2"), End: ip("fd00::1:ff"), Gateway: ip("fd00::1")}
	dual := seedNet
	dual.Ranges = []hostlocal.Range{seedRange, v6}
	ready := shim
	ready.ProxyDelay0 = true
	probing := &ProbeTable{Shields: []Shield{{Shim: "eno1.host", Packets: 9}}}
	soliciting := &Filter{Solicits: []Shield{{Shim: "eno1.host", Packets: 3}}}
	proxy := "ip -6 neigh add proxy fd00::5 dev eno1.host"
	tests := []struct {
		name     string
		net      Network
		links    []Link
		filter   *Filter
		probes   *ProbeTable
		proxies  []Proxy
		want     []string
		wantFind []string
	}{
		{
			name:  "a new shim's ARP requests are probes before it exists",
			net:   seedNet,
			links: []Link{eno1},
			want: []string{
				ProbeScript([]string{"eno1.host"}),
				"ip link add eno1.host link eno1 address " + newMAC + " mtu 1500 type macvlan mode bridge",
			},
		},
		{
			name:   "in place, nothing to do",
			net:    seedNet,
			links:  []Link{eno1, ready},
			probes: probing,
		},
		{
			name:  "an adopted shim: probes, proxy_delay 0",
			net:   seedNet,
			links: []Link{eno1, shim},
			want: []string{
				ProbeScript([]string{"eno1.host"}),
				"sysctl -w net.ipv4.conf.eno1.host.arp_filter=1 net.ipv4.conf.eno1.host.arp_ignore=0 net.ipv6.conf.eno1.host.proxy_ndp=1 net.ipv6.conf.eno1.host.forwarding=1 net.ipv6.conf.eno1.host.accept_dad=0 net.ipv6.neigh.eno1.host.proxy_delay=0",
			},
		},
		{
			name:   "from the egress filter: the probes first, then the filter goes",
			net:    seedNet,
			links:  []Link{eno1, ready},
			filter: filterOf("eno1", ready.MAC.String()),
			want:   []string{ProbeScript([]string{"eno1.host"}), FilterScript(nil)},
		},
		{
			name:    "dual stack: the ingress chain, then the proxy entry",
			net:     dual,
			links:   []Link{eno1, ready},
			probes:  probing,
			want:    []string{FilterScript(nil, "eno1.host"), proxy},
			proxies: nil,
		},
		{
			name:    "dual stack: in place, nothing to do",
			net:     dual,
			links:   []Link{eno1, ready},
			probes:  probing,
			filter:  soliciting,
			proxies: []Proxy{{Dev: "eno1.host", IP: ip("fd00::5")}},
		},
		{
			name:  "dual stack, a new shim: no ingress chain and no proxy entry before it exists",
			net:   dual,
			links: []Link{eno1},
			want: []string{
				ProbeScript([]string{"eno1.host"}),
				"ip link add eno1.host link eno1 address " + newMAC + " mtu 1500 type macvlan mode bridge",
			},
		},
		{
			name:     "dual stack, a netdev table flatnet did not make: no proxy entry, the one there goes",
			net:      dual,
			links:    []Link{eno1, ready},
			probes:   probing,
			filter:   &Filter{Foreign: true},
			proxies:  []Proxy{{Dev: "eno1.host", IP: ip("fd00::5")}},
			want:     []string{"ip -6 neigh del proxy fd00::5 dev eno1.host"},
			wantFind: []string{"filter error"},
		},
		{
			name:     "dual stack, another party's chain named after the shim: no chain, no proxy entry",
			net:      dual,
			links:    []Link{eno1, ready},
			probes:   probing,
			filter:   &Filter{Other: []string{"eno1.host"}},
			wantFind: []string{"filter eno1.host"},
		},
		{
			name:     "an arp table flatnet did not make is never written",
			net:      seedNet,
			links:    []Link{eno1, ready},
			probes:   &ProbeTable{Foreign: true},
			wantFind: []string{"filter error"},
		},
		{
			name:   "the probes of a shim no network uses any more go",
			net:    seedNet,
			links:  []Link{eno1, ready},
			probes: &ProbeTable{Shields: []Shield{{Shim: "eno1.host"}, {Shim: "eno9.host"}}},
			want:   []string{ProbeScript([]string{"eno1.host"})},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{
				Networks: []Network{tt.net},
				States:   map[string]DirState{tt.net.StateDir: allocs()},
				Snap: &Snapshot{Links: tt.links, Filter: tt.filter, Probes: tt.probes, Proxies: tt.proxies,
					Addrs: []netip.Addr{ip("192.168.0.5"), ip("fd00::5")}},
				MachineID: "mid",
				Guard:     GuardShim,
			}
			p := Compute(in)
			k := &fakeKernel{}
			if _, err := Apply(k, p.Ops); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(k.cmds, tt.want) {
				t.Errorf("ops:\n got %s\nwant %s", strings.Join(k.cmds, "\n     "), strings.Join(tt.want, "\n     "))
			}
			var finds []string
			for _, f := range p.Findings {
				if f.Kind == FindFilter {
					what := f.Dir
					if f.Level == slog.LevelError {
						what = "error"
					}
					finds = append(finds, "filter "+what)
				}
			}
			if !slices.Equal(finds, tt.wantFind) {
				t.Errorf("findings %v, want %v", finds, tt.wantFind)
			}
		})
	}
}

// TestComputeGuardSwitch: from the shim guard to the egress filter, the
// filter is in place before the probes go.
func TestComputeGuardSwitch(t *testing.T) {
	ready := shim
	ready.ProxyDelay0 = true
	in := Input{
		Networks:  []Network{seedNet},
		States:    map[string]DirState{seedNet.StateDir: allocs()},
		Snap:      &Snapshot{Links: []Link{eno1, ready}, Probes: &ProbeTable{Shields: []Shield{{Shim: "eno1.host"}}}},
		MachineID: "mid",
		Guard:     GuardFilter,
	}
	k := &fakeKernel{}
	if _, err := Apply(k, Compute(in).Ops); err != nil {
		t.Fatal(err)
	}
	want := []string{FilterScript([]Drop{{Master: "eno1", MAC: ready.MAC.String()}}), ProbeScript(nil)}
	if !slices.Equal(k.cmds, want) {
		t.Errorf("ops:\n got %s\nwant %s", strings.Join(k.cmds, "\n     "), strings.Join(want, "\n     "))
	}
}

// TestGuarded: a macvlan is flatnet's to tear down when flatnet gave it
// its address, filters its MAC, or keeps a chain of the shim guard for it.
func TestGuarded(t *testing.T) {
	l := Link{Name: "eno2.host", Kind: "macvlan", MAC: net.HardwareAddr{0x5a, 0, 0, 0, 0, 1}}
	for _, tt := range []struct {
		name string
		snap *Snapshot
		want bool
	}{
		{"nothing", &Snapshot{}, false},
		{"its MAC filtered", &Snapshot{Filter: filterOf("eno2", l.MAC.String())}, true},
		{"its ingress chain", &Snapshot{Filter: &Filter{Solicits: []Shield{{Shim: "eno2.host"}}}}, true},
		{"its probe chain", &Snapshot{Probes: &ProbeTable{Shields: []Shield{{Shim: "eno2.host"}}}}, true},
		{"another shim's chains", &Snapshot{Probes: &ProbeTable{Shields: []Shield{{Shim: "eno1.host"}}}, Filter: &Filter{Solicits: []Shield{{Shim: "eno1.host"}}}}, false},
	} {
		if got := Guarded(l, tt.snap); got != tt.want {
			t.Errorf("%s: Guarded = %v, want %v", tt.name, got, tt.want)
		}
	}
	if Guarded(Link{Name: "eno2.host", Kind: "veth"}, &Snapshot{Probes: &ProbeTable{Shields: []Shield{{Shim: "eno2.host"}}}}) {
		t.Errorf("a veth is never a guarded shim")
	}
}

// TestTeardownGuard: teardown removes what flatnet added to shims it did
// not make (the address, proxies) whether it knows them from the marks or
// from the configuration, leaves foreign devices and their proxies alone,
// deletes its own shims, and its table last.
func TestTeardownGuard(t *testing.T) {
	hand := Link{Index: 8, Name: "eno2.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 3, MAC: net.HardwareAddr{0x5a, 0, 0, 0, 0, 1}}
	marked := Link{Index: 9, Name: "eno3.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 4, Sender: true}
	named := Link{Index: 10, Name: "eno4.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 5}
	foreign := Link{Index: 11, Name: "mv0", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 5}
	snap := &Snapshot{
		Links:  []Link{eno1, shim, hand, marked, named, foreign},
		Routes: []Route{ours("192.168.1.2")},
		Proxies: []Proxy{
			{Dev: "eno1.host", IP: ip("fd00::5")}, {Dev: "eno2.host", IP: ip("fd00::5")},
			{Dev: "eno4.host", IP: ip("fd00::6")}, {Dev: "mv0", IP: ip("fd00::7")},
		},
		Filter: filterOf("eno2", hand.MAC.String()),
		Probes: &ProbeTable{Shields: []Shield{{Shim: "eno1.host"}}},
	}
	k := &fakeKernel{}
	if _, err := Apply(k, Teardown(snap, "mid", "eno4.host")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ip route del 192.168.1.2/32 dev eno1.host proto 97",
		"ip -6 neigh del proxy fd00::5 dev eno2.host",
		"ip addr del 192.0.0.8/32 dev eno3.host",
		"ip -6 neigh del proxy fd00::6 dev eno4.host",
		"ip link del eno1.host",
		FilterScript(nil),
		ProbeScript(nil),
	}
	if !slices.Equal(k.cmds, want) {
		t.Errorf("ops:\n got %s\nwant %s", strings.Join(k.cmds, "\n     "), strings.Join(want, "\n     "))
	}
}

// TestTeardownFilterOwner: teardown removes flatnet's table (netlinkx
// keeps it while another party's chain is in it) and never plans the
// removal of a table flatnet did not make.
func TestTeardownFilterOwner(t *testing.T) {
	for _, tt := range []struct {
		name   string
		filter *Filter
		want   []string
	}{
		{"flatnet's, with another party's chain", &Filter{Drops: []Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}}, Other: []string{"fw"}}, []string{FilterScript(nil)}},
		{"an older flatnet's", &Filter{Drops: []Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}}, Legacy: true}, []string{FilterScript(nil)}},
		{"not flatnet's", &Filter{Foreign: true}, nil},
		{"none", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{}
			if _, err := Apply(k, Teardown(&Snapshot{Links: []Link{eno1}, Filter: tt.filter}, "mid")); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(k.cmds, tt.want) {
				t.Errorf("ops:\n got %s\nwant %s", strings.Join(k.cmds, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}
