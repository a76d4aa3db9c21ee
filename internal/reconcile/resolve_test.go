package reconcile

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
)

func TestResolve(t *testing.T) {
	snap := &Snapshot{Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth9"}}}
	seedCNI := cni.Network{Name: "default", File: "00-default.conflist", IPAM: "host-local", Master: "eno1", Ranges: []hostlocal.Range{seedRange}}
	tests := []struct {
		name     string
		cfg      config.Config
		cni      []cni.Network
		want     string // "name master shim statedir" per network, joined by "; "
		wantFind string // substring of a finding
	}{
		{
			name: "discovery alone, the seed",
			cni:  []cni.Network{seedCNI},
			want: "default eno1 eno1.host /var/lib/cni/networks/default",
		},
		{
			name: "no master: the default route's NIC; dataDir honoured",
			cni:  []cni.Network{{Name: "n", File: "n.conf", IPAM: "host-local", DataDir: "/data", Ranges: []hostlocal.Range{seedRange}}},
			want: "n eth9 eth9.host /data/n",
		},
		{
			name: "long master names get a short stable shim",
			cni:  []cni.Network{{Name: "n", File: "n.conf", IPAM: "host-local", Master: "enp129s0f1np1", Ranges: []hostlocal.Range{seedRange}}},
			want: "n enp129s0f1np1 " + ShimName("enp129s0f1np1") + " /var/lib/cni/networks/n",
		},
		{
			name: "config narrows and overrides",
			cfg: config.Config{Discover: true, StateRoot: "/var/lib/cni/networks", Networks: []config.Network{{
				Name: "default", Shim: "lan0", StateDir: "/srv/state", Ranges: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/23")}, Line: 3,
			}}},
			cni:  []cni.Network{seedCNI},
			want: "default eno1 lan0 /srv/state",
		},
		{
			name:     "config network without ranges anywhere is left out",
			cfg:      config.Config{StateRoot: "/r", Networks: []config.Network{{Name: "ghost", Line: 1}}},
			want:     "",
			wantFind: "has no address ranges",
		},
		{
			name:     "a mode other than bridge is unusable",
			cni:      []cni.Network{{Name: "p", File: "p.conf", IPAM: "host-local", Master: "eno1", Mode: "private", Ranges: []hostlocal.Range{seedRange}}},
			want:     "p eno1 eno1.host /var/lib/cni/networks/p",
			wantFind: "macvlan mode private",
		},
		{
			name: "a table overrides the discovered network of its name, others stay discovered",
			cfg: config.Config{Discover: true, Networks: []config.Network{{Name: "v6", Master: "eno2", Line: 4},
				{Name: "extra", Master: "eno3", Ranges: []netip.Prefix{netip.MustParsePrefix("10.3.0.0/24")}, Line: 9}}},
			cni: []cni.Network{seedCNI, {Name: "v6", File: "10-v6.conflist", IPAM: "host-local", Master: "eno1",
				Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("fd00::/64"))}}},
			want: "default eno1 eno1.host /var/lib/cni/networks/default; v6 eno2 eno2.host /var/lib/cni/networks/v6; extra eno3 eno3.host /var/lib/cni/networks/extra",
		},
		{
			name: "discover = false: the tables alone, the CNI config filling them in",
			cfg:  config.Config{Discover: false, Networks: []config.Network{{Name: "v6", Line: 4}}},
			cni: []cni.Network{seedCNI, {Name: "v6", File: "10-v6.conflist", IPAM: "host-local", Master: "eno1",
				Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("fd00::/64"))}}},
			want: "v6 eno1 eno1.host /var/lib/cni/networks/v6",
		},
		{
			name: "two networks on one master share a shim",
			cni: []cni.Network{seedCNI, {Name: "v6", File: "10-v6.conflist", IPAM: "host-local", Master: "eno1",
				Ranges: []hostlocal.Range{hostlocal.RangeFromPrefix(netip.MustParsePrefix("fd00::/64"))}}},
			want: "default eno1 eno1.host /var/lib/cni/networks/default; v6 eno1 eno1.host /var/lib/cni/networks/v6",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.StateRoot == "" {
				cfg.StateRoot = "/var/lib/cni/networks"
			}
			if cfg.Networks == nil {
				cfg.Discover = true // the default
			}
			nets, finds := Resolve(cfg, cni.Discovery{Networks: tt.cni}, snap)
			var got []string
			for _, n := range nets {
				got = append(got, strings.Join([]string{n.Name, n.Master, n.Shim, n.StateDir}, " "))
			}
			if g := strings.Join(got, "; "); g != tt.want {
				t.Errorf("networks = %q, want %q", g, tt.want)
			}
			var msgs []string
			for _, f := range finds {
				msgs = append(msgs, f.Msg)
			}
			if all := strings.Join(msgs, "\n"); tt.wantFind != "" && !strings.Contains(all, tt.wantFind) || tt.wantFind == "" && all != "" {
				t.Errorf("findings = %q, want one with %q", all, tt.wantFind)
			}
		})
	}
}

func TestConfigRangesKeepGateway(t *testing.T) {
	cfg := config.Config{StateRoot: "/r", Networks: []config.Network{{Name: "default", Ranges: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}}}}
	nets, _ := Resolve(cfg, cni.Discovery{Networks: []cni.Network{{Name: "default", File: "f", IPAM: "host-local", Master: "eno1", Ranges: []hostlocal.Range{seedRange}}}}, &Snapshot{})
	if len(nets) != 1 || nets[0].Ranges[0].Gateway != seedRange.Gateway {
		t.Fatalf("ranges = %+v; want host-local's gateway kept", nets)
	}
	if why := hostlocal.Reject(seedRange.Gateway, nets[0].Ranges, nil); why == 0 {
		t.Fatal("the gateway became routable")
	}
}

func TestUnusableNetworkGetsNothing(t *testing.T) {
	n := seedNet
	n.Unusable = "macvlan mode private"
	p := Compute(Input{Networks: []Network{n}, States: map[string]DirState{n.StateDir: allocs("192.168.1.2")}, Snap: &Snapshot{Links: []Link{eno1}}})
	if len(p.Ops) != 0 || p.Networks[0].Waiting == "" || p.Networks[0].InSync() {
		t.Fatalf("ops %v, status %+v; want nothing done and a waiting network", p.Ops, p.Networks[0])
	}
}

// TestTableRangeIsAPool: a table's CIDR inside the LAN's subnet (the seed's
// 192.168.1.0/24 in 192.168.0.0/16) is a pool of that subnet, as a
// host-local range with rangeStart/rangeEnd is: every pool address may be
// routed (.0 and .255 of the /24 are hosts of the /16), the subnet's first
// and last, the gateway and the node's addresses not. Without a host-local
// range the master's address tells the subnet.
func TestTableRangeIsAPool(t *testing.T) {
	pool := netip.MustParsePrefix("192.168.1.0/24")
	lan := []netip.Prefix{netip.MustParsePrefix("192.168.0.5/16")}
	for name, r := range map[string]hostlocal.Range{
		"from host-local": tableRange(pool, []hostlocal.Range{seedRange}, nil),
		"from the master": tableRange(pool, nil, lan),
	} {
		if r.Subnet != netip.MustParsePrefix("192.168.0.0/16") {
			t.Errorf("%s: subnet %v", name, r.Subnet)
		}
		for ip, want := range map[string]bool{"192.168.1.0": true, "192.168.1.255": true, "192.168.1.7": true, "192.168.2.1": false, "192.168.0.5": false} {
			if got := r.Contains(netip.MustParseAddr(ip)); got != want {
				t.Errorf("%s: %s in the pool: %v, want %v", name, ip, got, want)
			}
		}
	}
	if r := tableRange(netip.MustParsePrefix("10.9.0.0/24"), nil, lan); r.Subnet != netip.MustParsePrefix("10.9.0.0/24") || r.Contains(netip.MustParseAddr("10.9.0.0")) {
		t.Errorf("a subnet of its own: %+v", r)
	}
}
