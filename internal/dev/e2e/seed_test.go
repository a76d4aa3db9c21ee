//go:build integration

package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// TestSeedScenario is the seed's story with flatnet instead of the manual
// fix: two pods, the node cannot reach them, flatnet starts, the node and
// the pods talk, the LAN still sees one owner of the node's address, and a
// pod's route goes with the pod.
func TestSeedScenario(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{})
	p1 := mustPod(t, l, "pod1")
	p2 := mustPod(t, l, "pod2")
	nodeMAC, err := l.MAC(l.Node, l.Master)
	if err != nil {
		t.Fatal(err)
	}

	if err := l.Ping(l.Node, p1.IP); err == nil {
		t.Fatalf("the node pinged pod1 before flatnet ran; the lab does not reproduce the seed")
	}

	fn := startFlatnet(t, l, "")

	for _, p := range []*lab.Pod{p1, p2} {
		waitFor(t, 15*time.Second, "flatnet routes "+p.Name, routed(l, p.IP.String()))
		waitFor(t, 15*time.Second, "the node pings "+p.Name, func() error { return l.Ping(l.Node, p.IP) })
	}
	if ok, err := l.LinkExists(l.Node, l.Master+".host"); !ok {
		t.Errorf("no shim %s.host in the node: %v", l.Master, err)
	}
	body, err := l.HTTPGet(l.Node, "http://"+p1.IP.String()+"/")
	if err != nil || body != lab.PodPage(p1) {
		t.Errorf("GET pod1 from the node: %q, %v", body, err)
	}
	if err := l.Ping(p1.NS, l.NodeIP); err != nil {
		t.Errorf("pod1 pings the node: %v", err)
	}
	checkARP(t, l, nodeMAC)

	if err := l.DelPod(p2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "pod2's route goes", notRouted(l, p2.IP.String()))
	if err := l.Ping(l.Node, p1.IP); err != nil {
		t.Errorf("after pod2 went, ping pod1: %v", err)
	}
	if fn.Exited() {
		t.Errorf("flatnet exited (status %d)", fn.ExitCode())
	}
}

// mustAddr parses an IP address.
func mustAddr(t testing.TB, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
