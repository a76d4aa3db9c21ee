//go:build integration

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// Hardened nodes: what arp_ignore and rp_filter in the node do to pods
// talking to the node through the shim. For both, the kernel applies the
// larger of net.ipv4.conf.all.<key> and the receiving device's own
// (IN_DEV_MAXCONF), so a per-device 0 on the shim cannot undo an "all" of
// 1; and a new device (the shim) starts with default.<key>.

// dualStack are the options of a dual-stack lab.
func dualStack(sysctls map[string]string) lab.Options {
	return lab.Options{
		Ranges:      []lab.Range{lab.SeedRange(), v6Range("fd00::1:2", "fd00::1:ff")},
		NodeSysctls: sysctls,
	}
}

// freshPings is a waitFor condition: ns, with its neighbour table emptied
// first, pings ip, so it must resolve ip's MAC anew.
func freshPings(l *lab.Lab, ns string, ip netip.Addr) func() error {
	return func() error {
		if _, err := l.Exec(ns, "ip", "neigh", "flush", "all"); err != nil {
			return err
		}
		return l.Ping(ns, ip)
	}
}

// hardenedLab starts flatnet in a dual-stack lab with sysctls, adds a pod
// after flatnet runs (so the pod learns nothing of the node before it
// asks) and waits until the pod is routed and the node reaches it.
func hardenedLab(t *testing.T, sysctls map[string]string) (*lab.Lab, *lab.Pod, *lab.Process) {
	t.Helper()
	needFlatnet(t)
	l := lab.NewT(t, dualStack(sysctls))
	fn := startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "the shim", func() error {
		_, err := l.MAC(l.Node, l.Master+".host")
		return err
	})
	p := mustPod(t, l, "pod1")
	for _, a := range p.IPs {
		waitFor(t, 15*time.Second, "flatnet routes "+a.Addr().String(), routedVia(l, a.Addr(), l.Master+".host"))
	}
	return l, p, fn
}

// TestStrictRPFilter: rp_filter=1 (strict) in the node, in "all" and
// "default" (so the shim has it too). A pod's packets arrive on the shim,
// and the node's route back to the pod is flatnet's, through the shim:
// the reverse-path check passes, for the pod's ARP requests too (the
// kernel validates their sender the same way). IPv6 has no rp_filter.
// Pods and node talk both ways, over both families.
func TestStrictRPFilter(t *testing.T) {
	l, p, _ := hardenedLab(t, map[string]string{"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.default.rp_filter": "1"})
	if v, err := l.ReadSysctl(l.Node, "net/ipv4/conf/"+l.Master+".host/rp_filter"); err != nil || v != "1" {
		t.Fatalf("the shim's rp_filter is %q (%v), want 1", v, err)
	}
	node6 := l.Opts.NodeAddr6.Addr()
	waitFor(t, 15*time.Second, "the pod pings the node (IPv4), resolving it afresh", freshPings(l, p.NS, l.NodeIP))
	waitFor(t, 15*time.Second, "the pod pings the node (IPv6), resolving it afresh", freshPings(l, p.NS, node6))
	for _, a := range p.IPs {
		waitFor(t, 15*time.Second, "the node pings "+a.Addr().String(), freshPings(l, l.Node, a.Addr()))
	}
	startNodeHTTP(t, l, "node\n")
	if body, err := l.HTTPGet(p.NS, "http://"+l.NodeIP.String()+":8080/"); err != nil || body != "node\n" {
		t.Errorf("GET the node from the pod: %q, %v", body, err)
	}
	if body, err := l.HTTPGet(l.Node, "http://"+p.IP.String()+"/"); err != nil || body != lab.PodPage(p) {
		t.Errorf("GET the pod from the node: %q, %v", body, err)
	}
	waitFor(t, 15*time.Second, "the LAN pings the node", freshPings(l, l.LAN, l.NodeIP))
	checkARP(t, l, mustMAC(t, l, l.Node, l.Master))
}

// TestARPIgnoreAll: all.arp_ignore=1 in the node (kube-proxy's strictARP,
// LVS direct routing). arp_ignore=1 answers ARP only for addresses on the
// receiving device, and the shim has none: it stops answering pods' ARP
// for the node's address, so a pod that has to resolve the node cannot
// reach it over IPv4. flatnet cannot undo this (the kernel takes the
// larger of all and the shim's 0); flatnet check names it and its fix:
// all.arp_ignore=0 and arp_ignore=1 on the NICs that need it, which
// TestARPIgnoreOnTheNICOnly proves works. IPv6 is not affected: the shim's
// proxy neighbour entries answer whatever arp_ignore says.
func TestARPIgnoreAll(t *testing.T) {
	l, p, fn := hardenedLab(t, map[string]string{"net.ipv4.conf.all.arp_ignore": "1"})
	waitFor(t, 15*time.Second, "the pod pings the node over IPv6", freshPings(l, p.NS, l.Opts.NodeAddr6.Addr()))
	if err := freshPings(l, p.NS, l.NodeIP)(); err == nil {
		t.Fatal("with all.arp_ignore=1 the pod resolved the node's IPv4 address through the shim")
	}
	// The node can still open conversations with the pod: the pod answers
	// the shim's ARP request and learns the shim's MAC from it, which is
	// why this fault shows only for connections pods open. That needs
	// requests that name the node: "auto" takes the egress filter instead
	// of the shim guard, whose probes name no one.
	waitFor(t, 15*time.Second, "the node pings the pod", pings(l, l.Node, p.IP))
	if !strings.Contains(fn.Log(), "LAN guard: net.ipv4.conf.all.arp_ignore is set") {
		t.Errorf("flatnet does not say why the egress filter guards the LAN")
	}
}

// TestARPIgnoreAllLater: all.arp_ignore set while flatnet runs, as
// kube-proxy's strictARP does at kube-proxy's start. A sysctl write makes
// no event and the resync is an hour away: the loop reads it on its
// watchdog's tick, and the egress filter replaces the shim guard, so the
// node reaches a new pod, which must resolve the node to answer. Set back
// to 0, the shim guard returns and pods resolve the node again.
func TestARPIgnoreAllLater(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, dualStack(nil))
	if _, err := l.WriteFlatnetConfig(`resync_interval = "1h"` + "\n"); err != nil {
		t.Fatal(err)
	}
	fn, err := l.Start(l.Node, "flatnet", "env", "WATCHDOG_USEC=1000000", flatnetBin, "run", "--config", l.FlatnetConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, fn)
	waitLog(t, fn, "ARP rule set for "+l.Master+".host", deadline)
	if err := l.Sysctl(l.Node, "net.ipv4.conf.all.arp_ignore", "1"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, fn, "LAN guard: net.ipv4.conf.all.arp_ignore is set", deadline)
	waitLog(t, fn, "egress filter set", deadline)
	p := mustPod(t, l, "pod1")
	waitFor(t, deadline, "flatnet routes the pod", routedVia(l, p.IP, l.Master+".host"))
	waitFor(t, 15*time.Second, "the node pings the new pod", pings(l, l.Node, p.IP))

	if err := l.Sysctl(l.Node, "net.ipv4.conf.all.arp_ignore", "0"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, fn, "LAN guard: the shim guard again", deadline)
	waitFor(t, 15*time.Second, "the pod pings the node, resolving it afresh", freshPings(l, p.NS, l.NodeIP))
	waitFor(t, 15*time.Second, "the node pings the pod", pings(l, l.Node, p.IP))
}

// TestARPIgnoreDefault: default.arp_ignore=1 with all at 0: the shim,
// a new device, would inherit 1 and answer no pod; flatnet sets the
// shim's own arp_ignore to 0, so pods reach the node.
func TestARPIgnoreDefault(t *testing.T) {
	l, p, fn := hardenedLab(t, map[string]string{"net.ipv4.conf.default.arp_ignore": "1"})
	if v, err := l.ReadSysctl(l.Node, "net/ipv4/conf/"+l.Master+".host/arp_ignore"); err != nil || v != "0" {
		t.Errorf("the shim's arp_ignore is %q (%v), want 0", v, err)
	}
	waitFor(t, 15*time.Second, "the pod pings the node (IPv4), resolving it afresh", freshPings(l, p.NS, l.NodeIP))

	// Set on the shim later (by hand, a sysctl.d glob): flatnet's next full
	// pass puts it back (a sysctl write makes no event; a reload, the resync
	// timer or a restart makes that pass). First the fault itself, with
	// flatnet stopped (SIGSTOP) so that no pass can mend it meanwhile: with
	// the shim's arp_ignore at 1, the pod cannot resolve the node.
	if err := fn.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := l.Sysctl(l.Node, "net/ipv4/conf/"+l.Master+".host/arp_ignore", "1"); err != nil {
		t.Fatal(err)
	}
	if err := freshPings(l, p.NS, l.NodeIP)(); err == nil {
		t.Error("with the shim's arp_ignore at 1 (flatnet stopped), the pod still resolved the node: the fault this test mends is not reproduced")
	}
	if v, err := l.ReadSysctl(l.Node, "net/ipv4/conf/"+l.Master+".host/arp_ignore"); err != nil || v != "1" {
		t.Fatalf("the shim's arp_ignore changed with flatnet stopped: %q (%v)", v, err)
	}
	if err := fn.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	hup(t, fn)
	waitFor(t, 15*time.Second, "flatnet sets the shim's arp_ignore back to 0", func() error {
		if v, err := l.ReadSysctl(l.Node, "net/ipv4/conf/"+l.Master+".host/arp_ignore"); err != nil || v != "0" {
			return fmt.Errorf("arp_ignore %q (%v)", v, err)
		}
		return nil
	})
	waitFor(t, 15*time.Second, "the pod pings the node again", freshPings(l, p.NS, l.NodeIP))
}

// TestARPIgnoreOnTheNICOnly: arp_ignore=1 on eno1 only, the setting
// flatnet check recommends: the NIC keeps its strictness towards the LAN,
// the shim answers pods, the LAN still gets one answer, the NIC's.
func TestARPIgnoreOnTheNICOnly(t *testing.T) {
	l, p, _ := hardenedLab(t, nil)
	if err := l.Sysctl(l.Node, "net/ipv4/conf/"+l.Master+"/arp_ignore", "1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the pod pings the node, resolving it afresh", freshPings(l, p.NS, l.NodeIP))
	waitFor(t, 15*time.Second, "the LAN pings the node, resolving it afresh", freshPings(l, l.LAN, l.NodeIP))
	checkARP(t, l, mustMAC(t, l, l.Node, l.Master))
}
