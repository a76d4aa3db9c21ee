package check_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/check"
	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/inspect"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/statedir"
	"github.com/flatnet/flatnet/internal/sysconf"
)

// seedConfList is the seed's working conflist, with the subnet, range and
// gateway as parameters.
func confList(master, mode, ranges string) string {
	m := ""
	if master != "" {
		m = fmt.Sprintf(`"master": %q,`, master)
	}
	if mode != "" {
		m += fmt.Sprintf(`"mode": %q,`, mode)
	}
	return fmt.Sprintf(`{
  "cniVersion": "0.3.1",
  "name": "default",
  "plugins": [{
    "type": "macvlan", %s
    "ipam": {"type": "host-local", "ranges": [[%s]], "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}`, m, ranges)
}

const seedRange = `{"subnet": "192.168.0.0/16", "rangeStart": "192.168.1.2", "rangeEnd": "192.168.1.254", "gateway": "192.168.0.1"}`

var (
	boot    = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	stateAt = boot.Add(2 * time.Hour)
)

// scenario is a node described by its primary facts; facts() works out
// the rest (CNI discovery, networks, the plan) as flatnet would.
type scenario struct {
	f      check.Facts
	allocs map[string]time.Time // allocated addresses and their files' times
}

// setAddrs gives the link called name the addresses ps, as the snapshot
// holds them (those of global scope).
func (s *scenario) setAddrs(name string, ps ...netip.Prefix) {
	for i := range s.f.Snap.Links {
		if s.f.Snap.Links[i].Name == name {
			s.f.Snap.Links[i].Addrs = ps
		}
	}
}

// healthy is the seed's node with flatnet running under systemd: two pods,
// both routed through a shim flatnet made.
func healthy() *scenario {
	s := &scenario{allocs: map[string]time.Time{"192.168.1.2": stateAt, "192.168.1.3": stateAt}}
	s.f = check.Facts{
		ConfigPath: config.DefaultPath,
		Config:     config.Default(),
		Observation: inspect.Observation{
			CNIFiles: []cni.File{{Name: "00-default.conflist", Data: []byte(confList("eno1", "", seedRange))}},
			Snap: &reconcile.Snapshot{
				Links: []reconcile.Link{
					{Index: 1, Name: "lo", Up: true, MTU: 65536},
					{Index: 2, Name: "eno1", Up: true, LowerUp: true, MTU: 1500, MAC: mac("52:54:00:12:34:56"), Addrs: []netip.Prefix{pfx("192.168.0.5/16")}},
					{Index: 3, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: true, LowerUp: true, MTU: 1500,
						MAC: mac("02:68:e4:f9:d5:ec"), Alias: reconcile.ShimAlias, ARPFilter: true, ProxyNDP: true, ProxyDelay0: true},
				},
				Addrs:  []netip.Addr{addr("127.0.0.1"), addr("192.168.0.5"), addr("::1")},
				Filter: &reconcile.Filter{Drops: []reconcile.Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec", Packets: 3}}},
				Routes: []reconcile.Route{
					{Dst: pfx("0.0.0.0/0"), Dev: "eno1", Protocol: 3},
					{Dst: pfx("192.168.0.0/16"), Dev: "eno1", Protocol: 2},
					{Dst: pfx("192.168.1.2/32"), Dev: "eno1.host", Protocol: reconcile.Protocol, Src: addr("192.168.0.5")},
					{Dst: pfx("192.168.1.3/32"), Dev: "eno1.host", Protocol: reconcile.Protocol, Src: addr("192.168.0.5")},
				},
			},
			Guard: reconcile.GuardFilter,
		},
		Sysctls:  sysctls(map[string]string{"eno1.host/arp_filter": "1"}),
		Macvlan:  check.Support{State: "loaded", From: "/proc/modules"},
		BootTime: boot,
		Networkd: check.Networkd{ManageForeignRoutes: true},
		Daemon: check.Daemon{Systemd: true, PIDsKnown: true, Unit: &sysconf.Unit{LoadState: "loaded", ActiveState: "active", SubState: "running",
			StatusText: "default: 2 pod routes via eno1.host (master eno1)", MainPID: 812, MainPIDHere: true}},
	}
	return s
}

// sysctls are the kernel's defaults on every device, with over on top.
func sysctls(over map[string]string) map[string]string {
	out := map[string]string{}
	for _, dev := range []string{"all", "default", "eno1", "eno1.host"} {
		for _, k := range []string{"arp_ignore", "arp_filter", "arp_announce", "rp_filter"} {
			out[dev+"/"+k] = "0"
		}
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func (s *scenario) facts() check.Facts {
	f := s.f
	f.CNI, f.CNIProblems = cni.Discover(f.CNIFiles)
	f.Networks, f.Resolve = reconcile.Resolve(f.Config, cni.Discovery{Networks: f.CNI}, f.Snap)
	states := map[string]reconcile.DirState{}
	f.StateFiles = map[string][]check.StateFile{}
	// Each allocation goes to the network whose subnet holds it, else to
	// the first.
	home := func(a netip.Addr) string {
		for _, n := range f.Networks {
			for _, r := range n.Ranges {
				if r.Subnet.Contains(a) {
					return n.Name
				}
			}
		}
		return f.Networks[0].Name
	}
	for _, n := range f.Networks {
		ds := reconcile.DirState{Allocs: map[netip.Addr]hostlocal.Owner{}}
		for ip, t := range s.allocs {
			a := addr(ip)
			if home(a) != n.Name {
				continue
			}
			ds.Allocs[a] = hostlocal.Owner{ContainerID: "c-" + ip, IfName: "eth0"}
			f.StateFiles[n.StateDir] = append(f.StateFiles[n.StateDir], check.StateFile{IP: a, ModTime: t})
		}
		states[n.StateDir] = ds
	}
	f.Plan = reconcile.Compute(reconcile.Input{Networks: f.Networks, States: states, Snap: f.Snap, MachineID: "test", Guard: f.Guard})
	return f
}

// setLink changes the link called name.
func (s *scenario) setLink(name string, fn func(*reconcile.Link)) {
	for i := range s.f.Snap.Links {
		if s.f.Snap.Links[i].Name == name {
			fn(&s.f.Snap.Links[i])
		}
	}
}

// dropLink removes the link called name and the routes through it.
func (s *scenario) dropLink(name string) {
	var ls []reconcile.Link
	for _, l := range s.f.Snap.Links {
		if l.Name != name {
			ls = append(ls, l)
		}
	}
	var rs []reconcile.Route
	for _, r := range s.f.Snap.Routes {
		if r.Dev != name {
			rs = append(rs, r)
		}
	}
	s.f.Snap.Links, s.f.Snap.Routes = ls, rs
}

// setRoute replaces the main table's route to dst.
func (s *scenario) setRoute(r reconcile.Route) {
	var rs []reconcile.Route
	for _, x := range s.f.Snap.Routes {
		if x.Dst != r.Dst {
			rs = append(rs, x)
		}
	}
	s.f.Snap.Routes = append(rs, r)
}

func (s *scenario) conflist(c string) {
	s.f.CNIFiles = []cni.File{{Name: "00-default.conflist", Data: []byte(c)}}
}

// want is a result a case must produce: its name, status, and words its
// detail and its fix must hold.
type want struct {
	name   string
	status check.Status
	detail []string
	fix    []string
}

func TestHealthyNodeHasNoWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*scenario)
	}{
		{"under systemd", func(*scenario) {}},
		{"not under systemd, flatnet run in this namespace", func(s *scenario) {
			s.f.Daemon = check.Daemon{PIDs: []int{4242}, PIDsKnown: true}
		}},
		{"systemd-networkd leaves the shim unmanaged", func(s *scenario) {
			s.f.Networkd = check.Networkd{Running: true, ManageForeignRoutes: true, Links: map[string]check.NetworkdLink{
				"eno1.host": {State: "unmanaged", NetworkFile: "/usr/lib/systemd/network/05-flatnet-shim.network"}}}
		}},
		{"NetworkManager leaves the shim unmanaged", func(s *scenario) {
			s.f.NM = check.NetworkManager{Running: true, Unmanaged: map[string]string{"eno1.host": "/usr/lib/NetworkManager/conf.d/flatnet.conf [device-flatnet-shim]"}}
		}},
		{"strict rp_filter everywhere", func(s *scenario) {
			s.f.Sysctls = sysctls(map[string]string{"all/rp_filter": "1", "default/rp_filter": "1", "eno1/rp_filter": "1", "eno1.host/rp_filter": "1", "eno1.host/arp_filter": "1"})
		}},
		{"arp_ignore 1 on the master only, 3 on all", func(s *scenario) {
			s.f.Sysctls = sysctls(map[string]string{"all/arp_ignore": "3", "eno1/arp_ignore": "1", "eno1.host/arp_filter": "1"})
		}},
		{"default arp_ignore 1, but sysctl.d sets the shim's", func(s *scenario) {
			s.f.Sysctls = sysctls(map[string]string{"default/arp_ignore": "1", "eno1.host/arp_filter": "1"})
			s.f.SysctlD = map[string]int{"eno1.host/arp_ignore": 0}
		}},
		{"a hand-made shim, adopted", func(s *scenario) {
			s.setLink("eno1.host", func(l *reconcile.Link) { l.Alias = "" })
		}},
		{"no pods yet", func(s *scenario) {
			s.allocs = nil
			s.f.Snap.Routes = s.f.Snap.Routes[:2]
		}},
		{"a configuration file", func(s *scenario) {
			cfg, err := config.Parse([]byte("resync_interval = \"1m\"\n"), "/etc/flatnet/flatnet.toml")
			if err != nil {
				panic(err)
			}
			s.f.Config = cfg
		}},
		{"the README's table narrows the pool, with strict rp_filter", func(s *scenario) {
			cfg, err := config.Parse([]byte("[[network]]\nname = \"default\"\nranges = [\"192.168.1.0/24\"]\n"), "/etc/flatnet/flatnet.toml")
			if err != nil {
				panic(err)
			}
			s.f.Config = cfg
			s.f.Sysctls = sysctls(map[string]string{"all/rp_filter": "1", "default/rp_filter": "1", "eno1/rp_filter": "1", "eno1.host/rp_filter": "1", "eno1.host/arp_filter": "1"})
		}},
		{"the configuration on disk is the one running", func(s *scenario) {
			cfg, err := config.Parse([]byte("resync_interval = \"1m\"\n"), "/etc/flatnet/flatnet.toml")
			if err != nil {
				panic(err)
			}
			cfg.Digest = "d1"
			s.f.Config = cfg
			s.f.Daemon.ConfigDigest, s.f.Daemon.ConfigDigestKnown = "d1", true
		}},
		{"two networks on two masters", func(s *scenario) {
			storage := strings.Replace(confList("eno2", "bridge", `{"subnet": "10.10.0.0/16", "rangeStart": "10.10.5.2", "rangeEnd": "10.10.5.254"}`), `"default"`, `"storage"`, 1)
			s.f.CNIFiles = append(s.f.CNIFiles, cni.File{Name: "10-storage.conflist", Data: []byte(storage)})
			s.f.Snap.Links = append(s.f.Snap.Links,
				reconcile.Link{Index: 4, Name: "eno2", Up: true, LowerUp: true, MTU: 9000},
				reconcile.Link{Index: 5, Name: "eno2.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 4, Up: true, LowerUp: true, MTU: 9000, Alias: reconcile.ShimAlias, ARPFilter: true, ProxyNDP: true, ProxyDelay0: true,
					MAC: mac("02:11:22:33:44:55")})
			s.f.Snap.Filter.Drops = append(s.f.Snap.Filter.Drops, reconcile.Drop{Master: "eno2", MAC: "02:11:22:33:44:55"})
			s.f.Snap.Addrs = append(s.f.Snap.Addrs, addr("10.10.0.5"))
			s.f.Snap.Routes = append(s.f.Snap.Routes,
				reconcile.Route{Dst: pfx("10.10.0.0/16"), Dev: "eno2", Protocol: 2},
				reconcile.Route{Dst: pfx("10.10.5.2/32"), Dev: "eno2.host", Protocol: reconcile.Protocol, Src: addr("10.10.0.5")})
			s.setAddrs("eno2", pfx("10.10.0.5/16"))
			s.f.Sysctls["eno2/rp_filter"], s.f.Sysctls["eno2.host/arp_filter"], s.f.Sysctls["eno2.host/arp_ignore"] = "0", "1", "0"
			s.allocs["10.10.5.2"] = stateAt
		}},
		{"dual stack", dualStack},
		{"the shim guard", shimGuard},
		{"the shim guard, dual stack", func(s *scenario) { dualStack(s); shimGuard(s) }},
		{"a second, unrelated CNI file", func(s *scenario) {
			s.f.CNIFiles = append(s.f.CNIFiles, cni.File{Name: "10-bridge.conflist", Data: []byte(`{"cniVersion":"1.0.0","name":"br","plugins":[{"type":"bridge"}]}`)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			tc.mod(s)
			rs := check.Run(s.facts())
			for _, r := range rs {
				if r.Status != check.OK {
					t.Errorf("false alarm: %s %s: %s — fix: %s", r.Status, r.Name, r.Detail, r.Fix)
				}
				if r.Fix != "" {
					t.Errorf("%s is ok but has a fix: %s", r.Name, r.Fix)
				}
			}
			for _, name := range []string{"config", "cni", "cni 00-default.conflist", "network default", "macvlan", "master eno1", "shim eno1.host",
				"arp_ignore eno1.host", "rp_filter default", "routes default", "foreign routes default", "allocations default", "networkd", "NetworkManager", "daemon"} {
				if !hasName(rs, name) && !hasName(rs, name+" eno1.host") {
					t.Errorf("no %q check; got %v", name, names(rs))
				}
			}
			if tc.name == "dual stack" && !hasName(rs, "ndp eno1.host") {
				t.Errorf("no ndp check on a dual-stack network; got %v", names(rs))
			}
			if tc.name == "two networks on two masters" {
				for _, name := range []string{"master eno2", "shim eno2.host", "arp_ignore eno2.host", "rp_filter storage", "routes storage", "allocations storage"} {
					if !hasName(rs, name) {
						t.Errorf("no %q check; got %v", name, names(rs))
					}
				}
			}
			if t.Failed() {
				for _, r := range rs {
					t.Logf("%-4s %-24s %s", r.Status, r.Name, r.Detail)
				}
			}
		})
	}
}

// dualStack gives the healthy node an IPv6 range set too, with the proxy
// neighbour entry flatnet keeps for the node's fd00::5.
// shimGuard puts the node under the shim guard: the ARP rule for the shim,
// and its ingress chain when it proxies IPv6 (dualStack first).
func shimGuard(s *scenario) {
	s.f.Guard = reconcile.GuardShim
	s.f.Snap.Probes = &reconcile.ProbeTable{Shields: []reconcile.Shield{{Shim: "eno1.host", Packets: 4}}}
	s.f.Snap.Filter = nil
	if len(s.f.Snap.Proxies) > 0 {
		s.f.Snap.Filter = &reconcile.Filter{Solicits: []reconcile.Shield{{Shim: "eno1.host", Packets: 2}}}
	}
}

func dualStack(s *scenario) {
	s.conflist(confList("eno1", "", seedRange+`], [{"subnet": "fd00::/64", "rangeStart": "fd00::1:2", "rangeEnd": "fd00::1:ff"}`))
	s.f.Snap.Addrs = append(s.f.Snap.Addrs, addr("fd00::5"))
	s.f.Snap.Proxies = []reconcile.Proxy{{Dev: "eno1.host", IP: addr("fd00::5")}}
	s.f.Snap.Routes = append(s.f.Snap.Routes, reconcile.Route{Dst: pfx("fd00::1:2/128"), Dev: "eno1.host", Protocol: reconcile.Protocol})
	s.allocs["fd00::1:2"] = stateAt
}

func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*scenario)
		want []want
	}{
		{
			name: "the seed's failed attempt: subnet 192.168.1.0/24 with gateway 192.168.0.1",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.1.0/24", "rangeStart": "192.168.1.2", "rangeEnd": "192.168.1.254", "gateway": "192.168.0.1"}`))
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Fail,
				detail: []string{"gateway 192.168.0.1 is outside subnet 192.168.1.0/24", "host-local refuses"},
				fix:    []string{`"subnet": "192.168.0.0/16", "rangeStart": "192.168.1.2", "rangeEnd": "192.168.1.254", "gateway": "192.168.0.1"`}}},
		},
		{
			name: "the seed's failed attempt without a pool",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.1.0/24", "gateway": "192.168.0.1"}`))
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"outside subnet"},
				fix: []string{`"subnet": "192.168.0.0/16", "rangeStart": "192.168.1.1", "rangeEnd": "192.168.1.254"`}}},
		},
		{
			name: "a gateway outside the subnet and the LAN",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.1.0/24", "gateway": "10.0.0.1"}`))
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"gateway 10.0.0.1 is outside subnet"},
				fix: []string{`set "gateway"`, "inside 192.168.1.0/24"}}},
		},
		{
			name: "rangeStart outside the subnet",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.1.0/24", "rangeStart": "192.168.2.10", "gateway": "192.168.1.1"}`))
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"rangeStart 192.168.2.10 is outside subnet 192.168.1.0/24"},
				fix: []string{`"rangeStart"`, "192.168.1.1"}}},
		},
		{
			name: "rangeEnd outside the subnet",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.0.0/16", "rangeStart": "192.168.1.2", "rangeEnd": "192.169.0.9"}`))
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"rangeEnd 192.169.0.9 is outside subnet 192.168.0.0/16"},
				fix: []string{`"rangeEnd"`, "192.168.255.254"}}},
		},
		{
			name: "rangeStart and rangeEnd reversed",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.0.0/16", "rangeStart": "192.168.1.254", "rangeEnd": "192.168.1.2"}`))
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"rangeEnd 192.168.1.2 is before rangeStart 192.168.1.254"},
				fix: []string{`"rangeStart": "192.168.1.2", "rangeEnd": "192.168.1.254"`}}},
		},
		{
			name: "subnet with host bits",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.1.5/16", "rangeStart": "192.168.1.2", "rangeEnd": "192.168.1.254"}`))
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"subnet 192.168.1.5/16 has host bits set: host-local refuses this"},
				fix: []string{`"subnet"`, `"192.168.0.0/16"`}}},
		},
		{
			name: "subnet too small",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.1.4/31"}`))
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"subnet 192.168.1.4/31 is too small to allocate from"},
				fix: []string{`widen "subnet"`}}},
		},
		{
			name: "a pool holding the node's address",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.0.0/16", "rangeStart": "192.168.0.2", "rangeEnd": "192.168.0.100"}`))
				s.allocs = nil
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"holds the node's own address 192.168.0.5"},
				fix: []string{`"rangeStart": "192.168.0.6"`}}},
		},
		{
			name: "a pool holding the node's address near its end",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.0.0/16", "rangeStart": "192.168.0.2", "rangeEnd": "192.168.0.6"}`))
				s.allocs = nil
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, fix: []string{`"rangeEnd": "192.168.0.4"`}}},
		},
		{
			name: "a master that does not exist",
			mod:  func(s *scenario) { s.conflist(confList("eth9", "", seedRange)) },
			want: []want{
				{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"master eth9 does not exist"}, fix: []string{`"master"`, "default route is on eno1"}},
				{name: "master eth9", status: check.Fail, detail: []string{"eth9 does not exist"}},
			},
		},
		{
			name: "macvlan mode private",
			mod:  func(s *scenario) { s.conflist(confList("eno1", "private", seedRange)) },
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{`mode "private"`, "cannot reach the pods"},
				fix: []string{`"mode": "bridge"`, "recreate the pods"}}},
		},
		{
			name: "macvlan mode vepa",
			mod:  func(s *scenario) { s.conflist(confList("eno1", "vepa", seedRange)) },
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"vepa", "reflective relay"}, fix: []string{`"mode": "bridge"`}}},
		},
		{
			name: "macvlan mode passthru",
			mod:  func(s *scenario) { s.conflist(confList("eno1", "passthru", seedRange)) },
			want: []want{{name: "cni 00-default.conflist", status: check.Fail, detail: []string{"single macvlan"}}},
		},
		{
			name: "IPAM other than host-local: followed through libcni's cache",
			mod: func(s *scenario) {
				s.conflist(`{"cniVersion":"0.3.1","name":"default","plugins":[{"type":"macvlan","master":"eno1","ipam":{"type":"dhcp"}}]}`)
			},
			want: []want{{name: "cni 00-default.conflist", status: check.OK, detail: []string{"IPAM dhcp", "libcni caches"}},
				{name: "network default", status: check.OK, detail: []string{"IPAM dhcp", "cached results"}}},
		},
		{
			name: "a macvlan without IPAM: not routable",
			mod: func(s *scenario) {
				s.conflist(`{"cniVersion":"0.3.1","name":"default","plugins":[{"type":"macvlan","master":"eno1"}]}`)
			},
			want: []want{{name: "cni 00-default.conflist", status: check.Warn, detail: []string{"no IPAM", "not routable"}, fix: []string{"give the network an IPAM"}}},
		},
		{
			name: "a CNI file that is not JSON",
			mod: func(s *scenario) {
				s.f.CNIFiles = append(s.f.CNIFiles, cni.File{Name: "10-broken.conflist", Data: []byte("{\"name\": \"x\",\n")})
			},
			want: []want{{name: "cni 10-broken.conflist", status: check.Fail, detail: []string{"invalid JSON at line"}, fix: []string{"10-broken.conflist"}}},
		},
		{
			name: "the network defined twice",
			mod: func(s *scenario) {
				s.f.CNIFiles = append(s.f.CNIFiles, cni.File{Name: "10-again.conflist", Data: []byte(confList("eno1", "", seedRange))})
			},
			want: []want{{name: "cni 10-again.conflist", status: check.Warn, detail: []string{"already defined in 00-default.conflist"}}},
		},
		{
			name: "pods outside the node's subnet, with strict rp_filter",
			mod: func(s *scenario) {
				s.conflist(confList("eno1", "", `{"subnet": "192.168.1.0/24", "rangeStart": "192.168.1.2", "gateway": "192.168.1.1"}`))
				s.setAddrs("eno1", pfx("192.168.0.5/24"))
				s.f.Snap.Routes[1] = reconcile.Route{Dst: pfx("192.168.0.0/24"), Dev: "eno1", Protocol: 2}
				s.f.Sysctls["all/rp_filter"] = "1"
			},
			want: []want{
				{name: "cni 00-default.conflist", status: check.Warn, detail: []string{"does not hold eno1's address", "through their gateway 192.168.1.1"}, fix: []string{"192.168.0.0/24"}},
				{name: "rp_filter default", status: check.Fail, detail: []string{"strict rp_filter", "all 1, eno1 0"}, fix: []string{"sysctl -w net.ipv4.conf.eno1.rp_filter=2"}},
			},
		},
		{
			name: "arp_ignore 1 on all",
			mod:  func(s *scenario) { s.f.Sysctls["all/arp_ignore"] = "1" },
			want: []want{{name: "arp_ignore eno1.host", status: check.Fail, detail: []string{"arp_ignore 1", "all 1, eno1.host 0", "never answers pods' ARP"},
				fix: []string{"net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.eno1.arp_ignore=1", "/etc/sysctl.d/"}}},
		},
		{
			name: "arp_ignore 2 on the shim",
			mod:  func(s *scenario) { s.f.Sysctls["eno1.host/arp_ignore"] = "2" },
			want: []want{{name: "arp_ignore eno1.host", status: check.Fail, fix: []string{"net.ipv4.conf.eno1/host.arp_ignore=0"}}},
		},
		{
			name: "arp_ignore 8 on all and 1 by default",
			mod: func(s *scenario) {
				s.f.Sysctls["all/arp_ignore"] = "8"
				s.f.Sysctls["default/arp_ignore"] = "1"
			},
			want: []want{{name: "arp_ignore eno1.host", status: check.Fail,
				fix: []string{"net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.eno1.arp_ignore=8 net.ipv4.conf.default.arp_ignore=0"}}},
		},
		{
			name: "default arp_ignore a new shim would inherit",
			mod:  func(s *scenario) { s.f.Sysctls["default/arp_ignore"] = "1" },
			want: []want{{name: "arp_ignore eno1.host", status: check.Warn, detail: []string{"inherits"}, fix: []string{"net.ipv4.conf.default.arp_ignore=0"}}},
		},
		{
			name: "the shim is missing and flatnet does not run",
			mod: func(s *scenario) {
				s.dropLink("eno1.host")
				s.f.Daemon.Unit = &sysconf.Unit{LoadState: "loaded", ActiveState: "inactive", SubState: "dead"}
				s.f.Sysctls["default/arp_ignore"] = "1"
			},
			want: []want{
				{name: "shim eno1.host", status: check.Fail, detail: []string{"does not exist"}, fix: []string{"systemctl enable --now flatnet"}},
				{name: "arp_ignore eno1.host", status: check.Fail, detail: []string{"a shim made now"}, fix: []string{"net.ipv4.conf.default.arp_ignore=0"}},
				{name: "routes default", status: check.Fail, detail: []string{"2 of 2 allocations have no route", "192.168.1.2, 192.168.1.3"}, fix: []string{"systemctl enable --now flatnet"}},
				{name: "daemon", status: check.Fail, detail: []string{"inactive (dead)"}, fix: []string{"systemctl enable --now flatnet"}},
			},
		},
		{
			name: "IPv6: the shim does not proxy neighbour discovery",
			mod: func(s *scenario) {
				dualStack(s)
				s.setLink("eno1.host", func(l *reconcile.Link) { l.ProxyNDP = false })
			},
			want: []want{{name: "ndp eno1.host", status: check.Fail, detail: []string{"proxy_ndp or forwarding off"}, fix: []string{"net.ipv6.conf.eno1/host.proxy_ndp=1"}}},
		},
		{
			name: "IPv6: no proxy entry for the node's address",
			mod: func(s *scenario) {
				dualStack(s)
				s.f.Snap.Proxies = nil
			},
			want: []want{{name: "ndp eno1.host", status: check.Fail, detail: []string{"no proxy neighbour entry for the node's fd00::5"}, fix: []string{"ip -6 neigh add proxy fd00::5 dev eno1.host"}}},
		},
		{
			name: "the shim is down while flatnet runs",
			mod:  func(s *scenario) { s.setLink("eno1.host", func(l *reconcile.Link) { l.Up = false }) },
			want: []want{{name: "shim eno1.host", status: check.Fail, detail: []string{"is down"}, fix: []string{"ip link set eno1.host up"}}},
		},
		{
			name: "the shim answers the LAN's ARP",
			mod:  func(s *scenario) { s.f.Sysctls["eno1.host/arp_filter"] = "0" },
			want: []want{{name: "shim eno1.host", status: check.Warn, detail: []string{"ARP flux"}, fix: []string{"net.ipv4.conf.eno1/host.arp_filter=1"}}},
		},
		{
			name: "the shim's MTU differs from the master's",
			mod:  func(s *scenario) { s.setLink("eno1.host", func(l *reconcile.Link) { l.MTU = 1400 }) },
			want: []want{{name: "shim eno1.host", status: check.Warn, detail: []string{"MTU 1400"}, fix: []string{"mtu 1500"}}},
		},
		{
			name: "the shim has an address",
			mod: func(s *scenario) {
				s.setAddrs("eno1.host", pfx("192.168.0.77/16"))
			},
			want: []want{{name: "shim eno1.host", status: check.Warn, detail: []string{"192.168.0.77/16"}, fix: []string{"ip addr flush dev eno1.host"}}},
		},
		{
			name: "a state directory no network explains (a Multus network flatnet cannot see)",
			mod: func(s *scenario) {
				s.f.Unmatched = []statedir.Unmatched{{Dir: "/var/lib/cni/networks/nadnet", Allocated: 2}}
			},
			want: []want{{name: "unmatched nadnet", status: check.Fail, detail: []string{"holds 2 allocations", "no network nadnet", "cannot reach"},
				fix: []string{"cni_cache_dirs", `[[network]] name = "nadnet"`, "systemctl reload flatnet"}}},
		},
		{
			name: "a cached macvlan attachment flatnet cannot follow",
			mod: func(s *scenario) {
				s.f.CacheProblems = []cni.Problem{{File: "/var/lib/cni/results/inner-c1-eth0",
					Err: &cni.UnfollowableError{Network: "inner", Err: errors.New(`"linkInContainer": the master is inside the container's namespace, not on the node`)}}}
			},
			want: []want{{name: "cni cache inner-c1-eth0", status: check.Warn, detail: []string{"linkInContainer", "cannot reach that pod"}, fix: []string{"NetworkAttachmentDefinition"}}},
		},
		{
			name: "flatnet.toml edited, not reloaded",
			mod: func(s *scenario) {
				cfg, err := config.Parse([]byte("resync_interval = \"1m\"\n"), "/etc/flatnet/flatnet.toml")
				if err != nil {
					panic(err)
				}
				cfg.Digest = "new"
				s.f.Config = cfg
				s.f.Daemon.ConfigDigest, s.f.Daemon.ConfigDigestKnown = "old", true
			},
			want: []want{{name: "config", status: check.Warn, detail: []string{"not what flatnet runs with"}, fix: []string{"systemctl reload flatnet"}}},
		},
		{
			name: "the egress filter is gone (a firewall flushed the ruleset)",
			mod:  func(s *scenario) { s.f.Snap.Filter = nil },
			want: []want{{name: "lan guard eno1.host", status: check.Fail, detail: []string{"no egress filter drops eno1.host's frames on eno1", "rp_filter"}, fix: []string{"systemctl reload flatnet"}}},
		},
		{
			name: "a table named flatnet that flatnet did not make",
			mod:  func(s *scenario) { s.f.Snap.Filter = &reconcile.Filter{Foreign: true} },
			want: []want{{name: "lan guard eno1.host", status: check.Fail, detail: []string{"no egress filter drops eno1.host's frames on eno1", "not made by flatnet"}, fix: []string{"nft delete table netdev flatnet", `lan_guard = "address"`}}},
		},
		{
			name: "another party's chain named after the master in flatnet's table",
			mod:  func(s *scenario) { s.f.Snap.Filter = &reconcile.Filter{Other: []string{"eno1"}} },
			want: []want{{name: "lan guard eno1.host", status: check.Fail, detail: []string{"no egress filter drops eno1.host's frames on eno1", "chain eno1"}, fix: []string{"nft delete chain netdev flatnet eno1"}}},
		},
		{
			name: "the shim's own address is gone",
			mod: func(s *scenario) {
				s.f.Guard, s.f.Config.LANGuard, s.f.Snap.Filter = reconcile.GuardAddress, "address", nil
				s.setLink("eno1.host", func(l *reconcile.Link) { l.ARPAnnounce = 2 })
			},
			want: []want{{name: "lan guard eno1.host", status: check.Fail, detail: []string{"lacks 192.0.0.8/32"}, fix: []string{"systemctl reload flatnet"}}},
		},
		{
			name: "lan_guard off",
			mod: func(s *scenario) {
				s.f.Guard, s.f.Config.LANGuard, s.f.Snap.Filter = reconcile.GuardOff, "off", nil
			},
			want: []want{{name: "lan guard eno1.host", status: check.Warn, detail: []string{`lan_guard = "off"`, "tells the LAN its MAC"}, fix: []string{`lan_guard = "auto"`}}},
		},
		{
			name: "lan_guard filter on a kernel without it",
			mod: func(s *scenario) {
				s.f.Config.LANGuard, s.f.Snap.Filter = "filter", nil
				s.f.Guard, s.f.GuardWhy = reconcile.ChooseGuard("filter", reconcile.GuardKernel{Filter: errors.New("no egress hook")})
			},
			want: []want{{name: "lan guard eno1.host", status: check.Fail, detail: []string{`lan_guard = "filter" but the kernel cannot filter`}, fix: []string{`lan_guard = "auto"`}}},
		},
		{
			name: "shim guard: its ARP rule is gone (a firewall flushed the ruleset)",
			mod:  func(s *scenario) { shimGuard(s); s.f.Snap.Probes = nil },
			want: []want{{name: "lan guard eno1.host", status: check.Fail, detail: []string{"not made probes", "rp_filter 1 or 2"}, fix: []string{"systemctl reload flatnet"}}},
		},
		{
			name: "shim guard: a table arp flatnet that flatnet did not make",
			mod:  func(s *scenario) { shimGuard(s); s.f.Snap.Probes = &reconcile.ProbeTable{Foreign: true} },
			want: []want{{name: "lan guard eno1.host", status: check.Fail, detail: []string{"not made probes", "not made by flatnet"}, fix: []string{"nft delete table arp flatnet", `lan_guard = "address"`}}},
		},
		{
			name: "shim guard: another party's chain named after the shim in flatnet's arp table",
			mod: func(s *scenario) {
				shimGuard(s)
				s.f.Snap.Probes = &reconcile.ProbeTable{Other: []string{"eno1.host"}}
			},
			want: []want{{name: "lan guard eno1.host", status: check.Fail, detail: []string{"not made probes", "chain eno1.host"}, fix: []string{"nft delete chain arp flatnet eno1.host"}}},
		},
		{
			name: "shim guard, dual stack: the shim's ingress chain is gone",
			mod: func(s *scenario) {
				dualStack(s)
				shimGuard(s)
				s.f.Snap.Filter = nil
			},
			want: []want{{name: "lan guard eno1.host", status: check.Fail, detail: []string{"no ingress chain on eno1.host", "over IPv6"}, fix: []string{"systemctl reload flatnet"}}},
		},
		{
			name: "shim guard, dual stack: a table netdev flatnet that flatnet did not make",
			mod: func(s *scenario) {
				dualStack(s)
				shimGuard(s)
				s.f.Snap.Filter = &reconcile.Filter{Foreign: true}
			},
			want: []want{{name: "lan guard eno1.host", status: check.Fail, detail: []string{"no ingress chain on eno1.host", "not made by flatnet"}, fix: []string{"nft delete table netdev flatnet"}}},
		},
		{
			name: "shim guard, dual stack: proxy_delay not 0",
			mod: func(s *scenario) {
				dualStack(s)
				shimGuard(s)
				s.setLink("eno1.host", func(l *reconcile.Link) { l.ProxyDelay0 = false })
			},
			want: []want{{name: "lan guard eno1.host", status: check.Warn, detail: []string{"proxy_delay is not 0", "0.8 s"}, fix: []string{"proxy_delay=0"}}},
		},
		{
			name: "a kernel without the shim guard or netdev egress: the shim's own address",
			mod: func(s *scenario) {
				s.f.Guard, s.f.FilterErr, s.f.ShimErr, s.f.Snap.Filter = reconcile.GuardAddress, errors.New("the kernel has no nftables netdev egress hook"), errors.New("no fib"), nil
				s.setLink("eno1.host", func(l *reconcile.Link) { l.Sender, l.ARPAnnounce = true, 2 })
				s.setAddrs("eno1.host", pfx("192.0.0.8/32"), pfx("fe80::2/64"))
			},
			want: []want{{name: "lan guard eno1.host", status: check.Warn, detail: []string{"sends ARP from 192.0.0.8", "no shim guard: no fib", "no nftables netdev egress hook"},
				fix: []string{"CONFIG_NFT_FIB_NETDEV"}}},
		},
		{
			name: "the shim's name is taken by another device",
			mod: func(s *scenario) {
				s.setLink("eno1.host", func(l *reconcile.Link) { l.Kind, l.MacvlanMode, l.ParentIndex, l.Alias = "dummy", "", 0, "" })
			},
			want: []want{
				{name: "shim eno1.host", status: check.Fail, detail: []string{"not a bridge-mode macvlan", "not mirrored"}, fix: []string{"ip link del eno1.host", `shim = "<another name>"`}},
				{name: "routes default", status: check.Fail, detail: []string{"not mirrored"}},
			},
		},
		{
			name: "a foreign route to a pod through the master",
			mod:  func(s *scenario) { s.setRoute(reconcile.Route{Dst: pfx("192.168.1.2/32"), Dev: "eno1", Protocol: 4}) },
			want: []want{{name: "foreign routes default", status: check.Fail, detail: []string{"1 pod address of default has a route flatnet does not own that bypasses eno1.host (192.168.1.2/32 dev eno1 proto static)", "does not reach that pod"},
				fix: []string{"ip route del 192.168.1.2/32 dev eno1 proto static"}}},
		},
		{
			name: "the seed's hand-made route through the shim",
			mod: func(s *scenario) {
				s.setRoute(reconcile.Route{Dst: pfx("192.168.1.2/32"), Dev: "eno1.host", Protocol: 3})
			},
			want: []want{{name: "foreign routes default", status: check.Warn, detail: []string{"stays when the pod goes"},
				fix: []string{"ip route del 192.168.1.2/32 dev eno1.host proto boot"}}},
		},
		{
			name: "a stale route",
			mod:  func(s *scenario) { delete(s.allocs, "192.168.1.3") },
			want: []want{{name: "routes default", status: check.Warn, detail: []string{"no longer allocated: 192.168.1.3"}, fix: []string{"next pass"}}},
		},
		{
			name: "a missing route while flatnet runs",
			mod:  func(s *scenario) { s.allocs["192.168.1.9"] = stateAt },
			want: []want{{name: "routes default", status: check.Fail, detail: []string{"1 of 3 allocations", "192.168.1.9"}, fix: []string{"journalctl -u flatnet"}}},
		},
		{
			name: "allocations leaked before the boot",
			mod: func(s *scenario) {
				s.allocs["192.168.1.7"] = boot.Add(-24 * time.Hour)
				s.allocs["192.168.1.8"] = boot.Add(-time.Minute)
				s.setRoute(reconcile.Route{Dst: pfx("192.168.1.7/32"), Dev: "eno1.host", Protocol: reconcile.Protocol, Src: addr("192.168.0.5")})
				s.setRoute(reconcile.Route{Dst: pfx("192.168.1.8/32"), Dev: "eno1.host", Protocol: reconcile.Protocol, Src: addr("192.168.0.5")})
			},
			want: []want{{name: "allocations default", status: check.Warn, detail: []string{"2 allocations", "older than the last boot", "192.168.1.7, 192.168.1.8"},
				fix: []string{"crictl pods", "rm /var/lib/cni/networks/default/<ip>", "never deletes"}}},
		},
		{
			name: "an allocation of the gateway",
			mod:  func(s *scenario) { s.allocs["192.168.0.1"] = stateAt },
			want: []want{{name: "allocations default", status: check.Warn, detail: []string{"192.168.0.1 (the gateway)"}, fix: []string{"not written by host-local"}}},
		},
		{
			name: "junk in the state dir",
			mod: func(s *scenario) {
				s.f.Bad = map[string][]statedir.Bad{"/var/lib/cni/networks/default": {{Name: "192.168.001.009", Reason: "not canonical"}}}
			},
			want: []want{{name: "allocations default", status: check.Warn, detail: []string{"192.168.001.009 (not canonical)"}}},
		},
		{
			name: "systemd-networkd manages the shim",
			mod: func(s *scenario) {
				s.f.Networkd = check.Networkd{Running: true, ManageForeignRoutes: true, Links: map[string]check.NetworkdLink{
					"eno1.host": {State: "configured", NetworkFile: "/etc/systemd/network/10-all.network"}}}
			},
			want: []want{{name: "networkd eno1.host", status: check.Fail, detail: []string{"manages eno1.host through /etc/systemd/network/10-all.network (state configured)", "ManageForeignRoutes=yes (the default)", "deletes flatnet's routes"},
				fix: []string{"Unmanaged=yes", "networkctl reload"}}},
		},
		{
			name: "systemd-networkd manages the shim, foreign routes kept",
			mod: func(s *scenario) {
				s.f.Networkd = check.Networkd{Running: true, ManageForeignRoutes: false, ManageForeignRoutesFrom: "/etc/systemd/networkd.conf.d/keep.conf",
					Links: map[string]check.NetworkdLink{"eno1.host": {State: "managed", Predicted: true}}}
			},
			want: []want{{name: "networkd eno1.host", status: check.Warn, detail: []string{"ManageForeignRoutes=no"}}},
		},
		{
			name: "NetworkManager may manage the shim",
			mod:  func(s *scenario) { s.f.NM = check.NetworkManager{Running: true} },
			want: []want{{name: "NetworkManager eno1.host", status: check.Warn, fix: []string{"match-device=interface-name:eno1.host", "managed=0"}}},
		},
		{
			name: "flatnet.service not installed",
			mod: func(s *scenario) {
				s.f.Daemon.Unit = &sysconf.Unit{LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}
			},
			want: []want{{name: "daemon", status: check.Fail, detail: []string{"not installed"}, fix: []string{"apt install ./flatnet_<version>_amd64.deb"}}},
		},
		{
			name: "no systemd, no daemon",
			mod:  func(s *scenario) { s.f.Daemon = check.Daemon{PIDsKnown: true} },
			want: []want{{name: "daemon", status: check.Warn, detail: []string{"not running under systemd"}, fix: []string{"flatnet run"}}},
		},
		{
			name: "the unit runs in another network namespace",
			mod:  func(s *scenario) { s.f.Daemon.Unit.MainPIDHere = false },
			want: []want{{name: "daemon", status: check.Warn, detail: []string{"another network namespace"}}},
		},
		{
			name: "the master is down",
			mod:  func(s *scenario) { s.setLink("eno1", func(l *reconcile.Link) { l.Up = false }) },
			want: []want{{name: "master eno1", status: check.Fail, detail: []string{"eno1 is down"}, fix: []string{"ip link set eno1 up"}}},
		},
		{
			name: "the master has no carrier",
			mod:  func(s *scenario) { s.setLink("eno1", func(l *reconcile.Link) { l.LowerUp = false }) },
			want: []want{{name: "master eno1", status: check.Warn, detail: []string{"no carrier"}}},
		},
		{
			name: "no macvlan in the kernel",
			mod: func(s *scenario) {
				s.dropLink("eno1.host")
				s.f.Macvlan = check.Support{State: "absent", From: "/proc/config.gz: CONFIG_MACVLAN is not set"}
			},
			want: []want{{name: "macvlan", status: check.Fail, detail: []string{"no macvlan support"}, fix: []string{"modprobe macvlan"}}},
		},
		{
			name: "flatnet.toml puts the shim on another master",
			mod: func(s *scenario) {
				cfg, err := config.Parse([]byte("[[network]]\nname = \"default\"\nmaster = \"eno2\"\n"), "/etc/flatnet/flatnet.toml")
				if err != nil {
					panic(err)
				}
				s.f.Config = cfg
			},
			want: []want{{name: "network default", status: check.Fail, detail: []string{"on eno2", "pods on eno1"}, fix: []string{"remove master"}}},
		},
		{
			name: "flatnet.toml names a network without ranges",
			mod: func(s *scenario) {
				cfg, err := config.Parse([]byte("[[network]]\nname = \"other\"\n"), "/etc/flatnet/flatnet.toml")
				if err != nil {
					panic(err)
				}
				s.f.Config = cfg
			},
			want: []want{{name: "network other", status: check.Fail, detail: []string{"no address ranges"}, fix: []string{"ranges ="}}},
		},
		{
			name: "an invalid configuration file",
			mod: func(s *scenario) {
				_, err := config.Parse([]byte("resync_interval = \"often\"\nfoo = 1\n"), "/etc/flatnet/flatnet.toml")
				s.f.ConfigErr = err
			},
			want: []want{
				{name: "config", status: check.Fail, detail: []string{"flatnet.toml:1", "resync_interval"}, fix: []string{"systemctl reload flatnet"}},
				{name: "config", status: check.Fail, detail: []string{"flatnet.toml:2", "foo"}},
			},
		},
		{
			name: "the kernel cannot be read",
			mod:  func(s *scenario) { s.f.KernelErr = errors.New("netlink: permission denied") },
			want: []want{{name: "kernel", status: check.Fail, detail: []string{"permission denied"}}},
		},
		{
			name: "the CNI directory cannot be read",
			mod: func(s *scenario) {
				s.f.CNIDirErr = errors.New("permission denied")
				s.f.CNIFiles = nil
			},
			want: []want{{name: "cni", status: check.Fail, detail: []string{"cannot read /etc/cni/net.d"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			tc.mod(s)
			f := s.facts()
			if s.f.KernelErr != nil {
				f.Snap, f.Plan = nil, nil
			}
			rs := check.Run(f)
			for _, w := range tc.want {
				if !found(rs, w) {
					t.Errorf("want %s %q with detail %q and fix %q", w.status, w.name, w.detail, w.fix)
				}
			}
			for _, r := range rs {
				if r.Status != check.OK && r.Fix == "" {
					t.Errorf("%s %s has no fix", r.Status, r.Name)
				}
				if strings.Contains(r.Detail, "\n") || strings.Contains(r.Fix, "\n") {
					t.Errorf("%s takes more than one line", r.Name)
				}
			}
			if t.Failed() || testing.Verbose() {
				for _, r := range rs {
					if r.Status == check.OK && !t.Failed() {
						continue
					}
					t.Logf("%-4s %-24s %s — fix: %s", r.Status, r.Name, r.Detail, r.Fix)
				}
			}
		})
	}
}

// TestFaultIsTheOnlyComplaint makes sure one fault is not reported under
// unrelated names too: a CNI lint failure stays in the CNI lines.
func TestFaultIsTheOnlyComplaint(t *testing.T) {
	s := healthy()
	s.conflist(confList("eno1", "private", seedRange))
	for _, r := range check.Run(s.facts()) {
		if r.Status != check.OK && r.Name != "cni 00-default.conflist" {
			t.Errorf("unexpected %s %s: %s", r.Status, r.Name, r.Detail)
		}
	}
}

func TestCounts(t *testing.T) {
	ok, warn, fail := check.Counts([]check.Result{{Status: check.OK}, {Status: check.Warn}, {Status: check.Fail}, {Status: check.Fail}})
	if ok != 1 || warn != 1 || fail != 2 {
		t.Errorf("Counts = %d, %d, %d", ok, warn, fail)
	}
}

func found(rs []check.Result, w want) bool {
	for _, r := range rs {
		if r.Name != w.name || r.Status != w.status {
			continue
		}
		if containsAll(r.Detail, w.detail) && containsAll(r.Fix, w.fix) {
			return true
		}
	}
	return false
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func hasName(rs []check.Result, name string) bool {
	for _, r := range rs {
		if r.Name == name {
			return true
		}
	}
	return false
}

func names(rs []check.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
