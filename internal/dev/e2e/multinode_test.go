//go:build integration

package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// clusterNode is one node of a multi-node lab.
type clusterNode struct {
	name string
	l    *lab.Lab
	pods []*lab.Pod
}

// poll is waitFor for goroutines: it returns cond's last error instead of
// failing the test.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inRange reports whether ip is in one of the host-local ranges.
func inRange(rs []lab.Range, ip netip.Addr) bool {
	for _, r := range rs {
		if r.Subnet.Contains(ip) && r.RangeStart.Compare(ip) <= 0 && ip.Compare(r.RangeEnd) <= 0 {
			return true
		}
	}
	return false
}

// routeDev returns the device `ip route get ip` names in ns.
func routeDev(l *lab.Lab, ns string, ip netip.Addr) (string, error) {
	out, err := l.Exec(ns, "ip", "route", "get", ip.String())
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	for i := range f[:max(len(f)-1, 0)] {
		if f[i] == "dev" {
			return f[i+1], nil
		}
	}
	return "", fmt.Errorf("no dev in %q", out)
}

// TestThreeNodesOneLAN: three nodes on one LAN, each with its own
// host-local ranges (IPv4 and IPv6), CNI config, state dir, machine id and
// flatnet. Every node reaches its own pods through its shim and the other
// nodes' pods through the LAN; every pod reaches every node; no node
// routes another's pods through its shim; the LAN and the pods know each
// node's addresses by its NIC's MAC, except a node's own pods, which know
// them by that node's shim's.
func TestThreeNodesOneLAN(t *testing.T) {
	needFlatnet(t)
	hostID, hostErr := os.ReadFile("/etc/machine-id")

	specs := []struct {
		name, v4, v6 string
		r4, r6       lab.Range
	}{
		{"a", "192.168.0.5/16", "fd00::5/64", v4Range("192.168.1.2", "192.168.1.62"), v6Range("fd00::1:2", "fd00::1:ff")},
		{"b", "192.168.0.6/16", "fd00::6/64", v4Range("192.168.1.66", "192.168.1.126"), v6Range("fd00::2:2", "fd00::2:ff")},
		{"c", "192.168.0.7/16", "fd00::7/64", v4Range("192.168.1.130", "192.168.1.190"), v6Range("fd00::3:2", "fd00::3:ff")},
	}
	var nodes []*clusterNode
	for i, s := range specs {
		o := lab.Options{
			NodeAddr: netip.MustParsePrefix(s.v4), NodeAddr6: netip.MustParsePrefix(s.v6),
			Ranges: []lab.Range{s.r4, s.r6},
			// Each node its own machine id, so its own shim MAC.
			MachineID: strings.Repeat(fmt.Sprintf("%x", 10+i), 32),
		}
		if i > 0 {
			o.JoinLAN = nodes[0].l
		}
		nodes = append(nodes, &clusterNode{name: s.name, l: lab.NewT(t, o)})
	}
	// Two pods a node, made at once (IPv6 makes the plugin wait for
	// duplicate address detection).
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range nodes {
		for j := 1; j <= 2; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("%s%d", n.name, j)
				p, err := n.l.AddPod(name)
				if err == nil {
					_, err = n.l.StartPodHTTP(p)
				}
				if err != nil {
					t.Errorf("pod %s: %v", name, err)
					return
				}
				mu.Lock()
				n.pods = append(n.pods, p)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, n := range nodes {
		slices.SortFunc(n.pods, func(a, b *lab.Pod) int { return strings.Compare(a.Name, b.Name) })
		for _, p := range n.pods {
			t.Logf("node %s, pod %s: %v", n.name, p.Name, p.IPs)
		}
	}
	lan := nodes[0].l.LAN
	for _, n := range nodes {
		startFlatnet(t, n.l, "")
	}

	// Each node routes exactly its own pods, through its own shim, whose
	// MAC comes from its own machine id.
	shimMACs := map[string]string{}
	for _, n := range nodes {
		var want []string
		for _, p := range n.pods {
			for _, a := range p.IPs {
				waitFor(t, 15*time.Second, fmt.Sprintf("node %s routes %s", n.name, a.Addr()), routedVia(n.l, a.Addr(), "eno1.host"))
				want = append(want, a.Addr().String())
			}
		}
		rs, err := n.l.Routes(n.l.Node, flatnetProto)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.Dst.Addr().String())
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("node %s's flatnet routes %v, want its own pods' %v", n.name, got, want)
		}
		mac := mustMAC(t, n.l, n.l.Node, "eno1.host")
		if want := reconcile.ShimMAC(n.l.Opts.MachineID, "eno1.host"); !bytes.Equal(mac, want) {
			t.Errorf("node %s's shim has MAC %s, want %s from its machine id", n.name, mac, want)
		}
		if other, dup := shimMACs[mac.String()]; dup {
			t.Errorf("nodes %s and %s have the same shim MAC %s", other, n.name, mac)
		}
		shimMACs[mac.String()] = n.name
	}
	if now, err := os.ReadFile("/etc/machine-id"); hostErr == nil && (err != nil || !bytes.Equal(now, hostID)) {
		t.Fatalf("this machine's /etc/machine-id changed: %q -> %q (%v)", hostID, now, err)
	}

	// Packets: every node to every pod, then every pod to every node, both
	// families (each source on its own goroutine).
	try := func(l *lab.Lab, ns, what string, targets []netip.Addr) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, ip := range targets {
				if err := poll(15*time.Second, pings(l, ns, ip)); err != nil {
					t.Errorf("%s cannot ping %s: %v", what, ip, err)
				}
			}
		}()
	}
	var allPods, allNodes []netip.Addr
	for _, n := range nodes {
		allNodes = append(allNodes, n.l.NodeIP, n.l.Opts.NodeAddr6.Addr())
		for _, p := range n.pods {
			for _, a := range p.IPs {
				allPods = append(allPods, a.Addr())
			}
		}
	}
	for _, n := range nodes {
		// Its own pods first: the node's first packets to them are the
		// only ARP requests its shim sends.
		var own, others []netip.Addr
		for _, ip := range allPods {
			if inRange(n.l.Opts.Ranges, ip) {
				own = append(own, ip)
			} else {
				others = append(others, ip)
			}
		}
		try(n.l, n.l.Node, "node "+n.name, append(own, others...))
	}
	wg.Wait()
	for _, n := range nodes {
		for _, p := range n.pods {
			try(n.l, p.NS, "pod "+p.Name, allNodes)
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, n := range nodes {
		p := nodes[(slices.Index(nodes, n)+1)%len(nodes)].pods[0]
		url := "http://[" + podAddr(t, p, true).String() + "]/"
		if body, err := n.l.HTTPGet(n.l.Node, url); err != nil || body != lab.PodPage(p) {
			t.Errorf("node %s: GET %s of pod %s: %q, %v", n.name, url, p.Name, body, err)
		}
	}

	// Nothing crosses a shim that should not: each node sends to its own
	// pods through its shim and to the others' through its NIC.
	for _, n := range nodes {
		for _, m := range nodes {
			want := "eno1"
			if m == n {
				want = "eno1.host"
			}
			for _, a := range m.pods[0].IPs {
				if dev, err := routeDev(n.l, n.l.Node, a.Addr()); err != nil || dev != want {
					t.Errorf("node %s: ip route get %s (pod %s of node %s) goes via %q, want %s (%v)", n.name, a.Addr(), m.pods[0].Name, m.name, dev, want, err)
				}
			}
		}
	}

	// Neighbour tables: the LAN knows each node by its NIC's MAC; so do
	// the pods of the other nodes; a node's own pods know it by its shim's.
	var lanWants []neighbourWant
	for _, n := range nodes {
		lanWants = append(lanWants, nodeWants(t, n.l, "node "+n.name)...)
	}
	checkNeighbours(t, nodes[0].l, lan, lanWants, 2)
	for _, n := range nodes {
		var wants []neighbourWant
		for _, m := range nodes {
			if m != n {
				wants = append(wants, nodeWants(t, m.l, "node "+m.name)...)
				continue
			}
			shim := mustMAC(t, n.l, n.l.Node, "eno1.host")
			wants = append(wants,
				neighbourWant{ip: n.l.NodeIP, want: shim, who: "the shim of node " + n.name},
				neighbourWant{ip: n.l.Opts.NodeAddr6.Addr(), want: shim, who: "the shim of node " + n.name})
		}
		checkNeighbours(t, n.l, n.pods[0].NS, wants, 1)
	}
}
