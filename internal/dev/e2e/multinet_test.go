//go:build integration

package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// shims lists the node's devices flatnet made (alias "flatnet shim").
func shims(t testing.TB, l *lab.Lab) []string {
	t.Helper()
	out, err := l.Exec(l.Node, "ip", "-o", "-d", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "alias flatnet shim") {
			continue
		}
		// "3: eno1.host@eno1: <...> ..."
		f := strings.Fields(line)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// shimsAre is a waitFor condition: flatnet's shims are exactly want.
func shimsAre(t testing.TB, l *lab.Lab, want ...string) func() error {
	return func() error {
		if got := shims(t, l); !slices.Equal(got, want) {
			return fmt.Errorf("flatnet's shims: %v, want %v", got, want)
		}
		return nil
	}
}

// tenantRange is a second network's range on the seed's LAN.
func tenantRange() lab.Range { return v4Range("192.168.2.2", "192.168.2.254") }

// storageNIC is a second NIC of the node, eno2, on a second LAN (br1,
// 10.0.0.0/24), and storageRange the range of a network on it.
func storageNIC() lab.NIC {
	return lab.NIC{Name: "eno2", Bridge: "br1",
		Addrs:       []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24")},
		BridgeAddrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}
}

func storageRange() lab.Range {
	return lab.Range{Subnet: netip.MustParsePrefix("10.0.0.0/24"),
		RangeStart: netip.MustParseAddr("10.0.0.100"), RangeEnd: netip.MustParseAddr("10.0.0.150")}
}

var storageNodeIP = netip.MustParseAddr("10.0.0.5")

// TestTwoNetworksOneMaster: two CNI networks on eno1 (a tenant's pods
// beside the default's) share one shim; both networks' pods and the node
// talk. Deleting the tenant's conflist removes its pods' routes, without
// a restart, and the shim stays for the default network.
func TestTwoNetworksOneMaster(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{Ranges: []lab.Range{v4Range("192.168.1.2", "192.168.1.254")}})
	if err := l.AddNetwork(lab.NetworkOptions{Name: "tenant", Ranges: []lab.Range{tenantRange()},
		Routes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}); err != nil {
		t.Fatal(err)
	}
	a1 := mustPod(t, l, "a1")
	b1, err := l.AddPodTo("tenant", "b1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("default pod a1 %s, tenant pod b1 %s", a1.IP, b1.IP)
	fn := startFlatnet(t, l, "")
	shim := l.Master + ".host"
	for _, p := range []*lab.Pod{a1, b1} {
		waitFor(t, 15*time.Second, "flatnet routes "+p.Name, routedVia(l, p.IP, shim))
		waitFor(t, 15*time.Second, "the node pings "+p.Name, pings(l, l.Node, p.IP))
		waitFor(t, 15*time.Second, p.Name+" pings the node", pings(l, p.NS, l.NodeIP))
	}
	waitFor(t, 5*time.Second, "one shim", shimsAre(t, l, shim))
	checkARP(t, l, mustMAC(t, l, l.Node, l.Master))

	if err := l.RemoveConfList("tenant"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "b1's route goes with its network", notRouted(l, b1.IP.String()))
	if err := routedVia(l, a1.IP, shim)(); err != nil {
		t.Errorf("the default network lost a route: %v", err)
	}
	if got := shims(t, l); !slices.Equal(got, []string{shim}) {
		t.Errorf("shims after the tenant network went: %v", got)
	}
	waitFor(t, 15*time.Second, "the node still pings a1", pings(l, l.Node, a1.IP))
	if fn.Exited() {
		t.Errorf("flatnet exited (status %d)", fn.ExitCode())
	}
}

// twoMasters builds the node with eno1 and eno2 and one pod on each: a1 of
// the default network on eno1, s1 of network "storage" on eno2.
func twoMasters(t *testing.T) (l *lab.Lab, a1, s1 *lab.Pod) {
	t.Helper()
	needFlatnet(t)
	l = lab.NewT(t, lab.Options{})
	if err := l.AddNIC(storageNIC()); err != nil {
		t.Fatal(err)
	}
	if err := l.AddNetwork(lab.NetworkOptions{Name: "storage", Master: "eno2", Ranges: []lab.Range{storageRange()}}); err != nil {
		t.Fatal(err)
	}
	a1 = mustPod(t, l, "a1")
	s1, err := l.AddPodTo("storage", "s1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("default pod a1 %s on eno1, storage pod s1 %s on eno2", a1.IP, s1.IP)
	return l, a1, s1
}

// bothMirrored waits until each network is mirrored through its own
// shim and the node and the pods talk.
func bothMirrored(t *testing.T, l *lab.Lab, a1, s1 *lab.Pod) {
	t.Helper()
	waitFor(t, 15*time.Second, "flatnet routes a1 through eno1.host", routedVia(l, a1.IP, "eno1.host"))
	waitFor(t, 15*time.Second, "flatnet routes s1 through eno2.host", routedVia(l, s1.IP, "eno2.host"))
	waitFor(t, 5*time.Second, "a shim per master", shimsAre(t, l, "eno1.host", "eno2.host"))
	for _, c := range []struct {
		ns string
		ip netip.Addr
	}{{l.Node, a1.IP}, {l.Node, s1.IP}, {a1.NS, l.NodeIP}, {s1.NS, storageNodeIP}} {
		waitFor(t, 15*time.Second, fmt.Sprintf("%s pings %s", c.ns, c.ip), pings(l, c.ns, c.ip))
	}
}

// TestNetworksOnTwoMasters: a network on eno1 and one on a second NIC,
// eno2, get a shim each. Deleting the storage network's conflist removes
// its route and, as no network uses eno2 any more, its shim, without a
// restart; the default network is untouched.
func TestNetworksOnTwoMasters(t *testing.T) {
	l, a1, s1 := twoMasters(t)
	fn := startFlatnet(t, l, "")
	bothMirrored(t, l, a1, s1)
	if err := l.Ping(l.LAN, s1.IP); err != nil {
		t.Errorf("the storage LAN pings s1: %v", err)
	}

	if err := l.RemoveConfList("storage"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "s1's route goes with its network", notRouted(l, s1.IP.String()))
	waitFor(t, 15*time.Second, "eno2.host goes: no network uses it", shimsAre(t, l, "eno1.host"))
	if err := routedVia(l, a1.IP, "eno1.host")(); err != nil {
		t.Errorf("the default network lost its route: %v", err)
	}
	waitFor(t, 15*time.Second, "the node still pings a1", pings(l, l.Node, a1.IP))
	if fn.Exited() {
		t.Errorf("flatnet exited (status %d)", fn.ExitCode())
	}
	if !strings.Contains(fn.Log(), "shim eno2.host removed") {
		t.Errorf("flatnet did not log eno2.host's removal:\n%s", fn.Log())
	}
}

// TestNetworkRemovedFromConfig: with discovery off and both networks named
// in flatnet.toml, dropping one from the file and reloading (SIGHUP, what
// systemctl reload does) removes its route and its shim; putting it back
// brings them back.
func TestNetworkRemovedFromConfig(t *testing.T) {
	l, a1, s1 := twoMasters(t)
	both := "discover = false\n\n[[network]]\nname = \"default\"\n\n[[network]]\nname = \"storage\"\n"
	fn := startFlatnet(t, l, both)
	bothMirrored(t, l, a1, s1)

	reload := func(extra string) {
		t.Helper()
		if _, err := l.WriteFlatnetConfig(extra); err != nil {
			t.Fatal(err)
		}
		if err := fn.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	reload("discover = false\n\n[[network]]\nname = \"default\"\n")
	waitFor(t, 15*time.Second, "s1's route goes on reload", notRouted(l, s1.IP.String()))
	waitFor(t, 15*time.Second, "eno2.host goes on reload", shimsAre(t, l, "eno1.host"))
	if err := routedVia(l, a1.IP, "eno1.host")(); err != nil {
		t.Errorf("the default network lost its route: %v", err)
	}
	waitFor(t, 15*time.Second, "the node still pings a1", pings(l, l.Node, a1.IP))

	reload(both)
	bothMirrored(t, l, a1, s1)
	if fn.Exited() {
		t.Errorf("flatnet exited (status %d)", fn.ExitCode())
	}
}
