package reconcile

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
)

// trustNode is the node FuzzTrust plays on: eno1 on the LAN 192.168.0.0/16
// (the node 192.168.0.5, the gateway 192.168.0.1), a second NIC eth1 on
// 172.16.0.0/24, a bridge cni0 of a primary CNI (10.244.1.0/24), a route
// to 10.0.0.0/8 through a router on the LAN, a blackhole, a policy table
// with its own next hop, and flatnet's shim on eno1.
func trustNode() *Snapshot {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	return &Snapshot{
		Links: []Link{
			{Index: 2, Name: "eno1", Kind: "device", Up: true, MTU: 1500, Addrs: []netip.Prefix{p("192.168.0.5/16")}},
			{Index: 3, Name: "eth1", Kind: "device", Up: true, MTU: 1500, Addrs: []netip.Prefix{p("172.16.0.5/24")}},
			{Index: 4, Name: "cni0", Kind: "bridge", Up: true, MTU: 1500, Addrs: []netip.Prefix{p("10.244.1.1/24")}},
			{Index: 7, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: true, MTU: 1500, Alias: ShimAlias, MAC: ShimMAC("mid", "eno1.host"), ARPFilter: true, ProxyNDP: true, ProxyDelay0: true},
		},
		Addrs: []netip.Addr{a("192.168.0.5"), a("172.16.0.5"), a("10.244.1.1")},
		Routes: []Route{
			{Dst: p("0.0.0.0/0"), Dev: "eno1", Protocol: 3, Gateways: []netip.Addr{a("192.168.0.1")}},
			{Dst: p("192.168.0.0/16"), Dev: "eno1", Protocol: 2},
			{Dst: p("172.16.0.0/24"), Dev: "eth1", Protocol: 2},
			{Dst: p("10.244.1.0/24"), Dev: "cni0", Protocol: 2},
			{Dst: p("10.0.0.0/8"), Dev: "eno1", Protocol: 4, Gateways: []netip.Addr{a("192.168.0.254")}},
			{Dst: p("192.168.9.0/24"), Protocol: 12, Type: "blackhole"},
		},
		NextHops: []NextHop{
			{Addr: a("192.168.0.1"), Table: 254},
			{Addr: a("192.168.0.254"), Table: 254},
			{Addr: a("192.168.0.200"), Table: 100},
		},
	}
}

// fuzzBytes reads choices from the fuzzer's input, zeros once it is spent.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) next() int {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return int(c)
}

func pick[T any](f *fuzzBytes, from []T) T { return from[f.next()%len(from)] }

// The pieces the fuzzer builds networks and allocations from: names that
// collide with each other and with the bridge's, masters among them the
// shim itself, data dirs among them another's and flatnet's own inputs,
// and addresses among them every kind that must never be routed.
var (
	fuzzNames    = []string{"default", "lan", "cbr0", "nad", "networks", "results"}
	fuzzMasters  = []string{"eno1", "eno1", "eth1", "cni0", "eno1.host", ""}
	fuzzDataDirs = []string{"", "", "/var/lib/cni", "/var/lib/cni/networks/default", "/etc/cni", "/var/lib/cni/multus", "/srv/ipam"}
	fuzzSubnets  = []string{"192.168.0.0/16", "192.168.0.0/16", "10.244.0.0/16", "10.0.0.0/8", "172.16.0.0/24", "8.8.8.0/24"}
	fuzzAddrs    = []string{
		"192.168.1.2", "192.168.1.3", "192.168.3.7", "192.168.0.1", "192.168.0.254", "192.168.0.200", "192.168.0.5",
		"192.168.9.9", "10.244.1.5", "10.244.2.5", "10.1.2.3", "172.16.0.9", "8.8.8.8", "192.168.255.255",
	}
)

// fuzzConf is one macvlan (or bridge) configuration the fuzzer made.
func fuzzConf(f *fuzzBytes, name string) string {
	plugin := "macvlan"
	if f.next()%5 == 0 {
		plugin = "bridge"
	}
	ipam := map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": pick(f, fuzzSubnets)}}}}
	if d := pick(f, fuzzDataDirs); d != "" {
		ipam["dataDir"] = d
	}
	p := map[string]any{"type": plugin, "ipam": ipam}
	if m := pick(f, fuzzMasters); m != "" && plugin == "macvlan" {
		p["master"] = m
	}
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": []any{p}})
	return string(b)
}

// FuzzTrust: whatever the configuration directory, libcni's cache and the
// state directories say, in any order, flatnet never routes a node
// address, a next hop of any of the node's routes, an address the node
// reaches through another route or device, nor, for a network from the
// cache, an address off its master's connected subnets or inside a range
// root's configuration gives another network; a network from the cache
// never takes the name or the state directory of another; and flatnet
// never replaces or deletes a route on a device it does not manage. The
// invariant is checked on every full pass and every update of a sequence.
func FuzzTrust(f *testing.F) {
	for _, seed := range []string{"", "\x00\x01\x02\x03\x04\x05\x06", "\x02\x02\x02\x02\x09\x01\x05\x07\x03", "\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzBytes{b: data}
		snap := trustNode()
		cfg := config.Config{Discover: true, StateRoot: "/var/lib/cni/networks", CNIConfDir: "/etc/cni/net.d", CNICacheDirs: []string{"/var/lib/cni", "/var/lib/cni/multus"}}
		lg := cni.NewLastGood()
		node := NewNode()
		now := time.Unix(1e9, 0)
		var entries []cni.CacheEntry
		var prev []cni.Network
		states := map[string]DirState{}
		for step := range 1 + in.next()%6 {
			// The configuration directory: up to three files.
			var files []cni.File
			for i := range in.next() % 4 {
				files = append(files, cni.File{Name: fmt.Sprintf("%02d-%d.conflist", i*10, step), Data: []byte(fuzzConf(in, pick(in, fuzzNames)))})
			}
			conf, _ := lg.Update(files)
			// libcni's cache: entries come and go.
			for range in.next() % 4 {
				if len(entries) > 0 && in.next()%3 == 0 {
					entries = entries[1:]
					continue
				}
				name := pick(in, fuzzNames)
				id := fmt.Sprintf("c%d", in.next())
				raw, _ := json.Marshal(map[string]any{"kind": "cniCacheV1", "containerId": id, "ifName": "net1", "networkName": name,
					"config": base64.StdEncoding.EncodeToString([]byte(fuzzConf(in, name)))})
				e, err := cni.ParseCache(cni.CacheFile{Path: filepath.Join("/var/lib/cni/results", name+"-"+id+"-net1"), Data: raw, ModTime: now.Add(time.Duration(in.next()) * time.Second)})
				if err == nil {
					entries = append(entries, e)
				}
			}
			d := cni.Combine(conf, lg.Claims(), entries)
			d.Networks = append(d.Networks, d.Keep(prev, func(cni.Network) bool { return in.next()%2 == 0 })...)
			prev = d.Networks
			nets, _ := Resolve(cfg, d, snap)
			// The state directories: allocations of any address.
			for _, n := range nets {
				st := states[n.StateDir]
				if st.Allocs == nil {
					st.Allocs = map[netip.Addr]hostlocal.Owner{}
				}
				for range in.next() % 4 {
					st.Allocs[netip.MustParseAddr(pick(in, fuzzAddrs))] = hostlocal.Owner{ContainerID: fmt.Sprintf("c%d", in.next()), IfName: "net1"}
				}
				states[n.StateDir] = st
			}
			p := node.full(Input{Networks: nets, States: states, Snap: snap, MachineID: "mid", Now: now})
			checkTrust(t, d, nets, snap, p.Ops)
			// An update: one address allocated in some network.
			if len(nets) > 0 {
				n := pick(in, nets)
				ip := netip.MustParseAddr(pick(in, fuzzAddrs))
				states[n.StateDir].Allocs[ip] = hostlocal.Owner{ContainerID: "upd", IfName: "net1"}
				checkTrust(t, d, nets, snap, node.update([]netip.Addr{ip}, nil, nil))
			}
		}
	})
}

// checkTrust fails t when ops break the trust rules (see FuzzTrust).
func checkTrust(t *testing.T, d cni.Discovery, nets []Network, snap *Snapshot, ops []Op) {
	t.Helper()
	byName := map[string]*Network{}
	for i := range nets {
		byName[nets[i].Name] = &nets[i]
	}
	claimed := map[string]cni.Claim{}
	for _, c := range d.Claims {
		claimed[c.Name] = c
	}
	r := newRouting(snap, map[string]bool{"eno1.host": true})
	for _, op := range ops {
		if op.Kind == DelRoute || op.Kind == ReplaceRoute {
			if op.Dev != "eno1.host" && !strings.HasSuffix(op.Dev, ".host") {
				t.Fatalf("%s: a route on a device flatnet does not manage", op)
			}
		}
		if op.Kind != AddRoute && op.Kind != ReplaceRoute {
			continue
		}
		ip := op.Dst.Addr()
		n := byName[op.Network]
		if n == nil {
			t.Fatalf("%s: a route for no network", op)
		}
		for _, a := range snap.Addrs {
			if a == ip {
				t.Fatalf("%s: a node address", op)
			}
		}
		for _, h := range snap.NextHops {
			if h.Addr == ip {
				t.Fatalf("%s: a next hop", op)
			}
		}
		if op.Dev != n.Shim {
			t.Fatalf("%s: not through network %s's shim %s", op, n.Name, n.Shim)
		}
		rs, ok := r.longest(ip)
		if ok && rs[0].Dst.Bits() > 0 {
			for _, rt := range rs {
				if rt.Dev != n.Master || len(rt.Gateways) > 0 || rt.Type != "" {
					t.Fatalf("%s: the node reaches %s through %s (network %s on %s)", op, ip, describeRoute(*rt), n.Name, n.Master)
				}
			}
		} else if n.Tenant {
			t.Fatalf("%s: network %s from the cache, off its master's subnets", op, n.Name)
		}
		if !n.Tenant {
			continue
		}
		if c, ok := claimed[n.Name]; ok {
			t.Fatalf("%s: network %s from the cache has the name of %s", op, n.Name, c.File)
		}
		for _, c := range d.Claims {
			for _, dir := range append(c.StateDirs, filepath.Join("/var/lib/cni/networks", c.Name)) {
				if dir == n.StateDir {
					t.Fatalf("%s: network %s from the cache keeps its state in %s, %s's", op, n.Name, dir, c.File)
				}
			}
			for _, rg := range c.Ranges {
				if rg.Contains(ip) {
					t.Fatalf("%s: network %s from the cache routes %s, in the range %s of %s", op, n.Name, ip, rg, c.File)
				}
			}
		}
		for _, o := range nets {
			if o.Name != n.Name && filepath.Clean(o.StateDir) == filepath.Clean(n.StateDir) {
				t.Fatalf("%s: networks %s and %s share %s", op, n.Name, o.Name, n.StateDir)
			}
		}
	}
}
