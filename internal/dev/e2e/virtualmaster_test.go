//go:build integration

package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/dev/testenv"
)

// TestVirtualMaster: the master is not a NIC but a device stacked on one,
// with a CNI network of its own on it beside the default network on eno1:
// a VLAN device, eno1.100 (the LAN carries VLAN 100 to a VLAN device of
// its bridge), and a VXLAN device, vx100 (a segment tunnelled between the
// node and the LAN). flatnet gives it a shim and routes its pods; the node,
// its pods and that segment's side of the LAN reach each other both ways;
// the LAN guard makes the shim's ARP requests probes, and the LAN's end of
// the segment hears no frame from that shim naming the node while the node
// reaches a new pod there.
func TestVirtualMaster(t *testing.T) {
	t.Run("vlan", func(t *testing.T) {
		virtualMaster(t, "eno1.100", "br0.100", func(l *lab.Lab, node, lan netip.Prefix) error {
			err := l.AddVLAN(lab.VLAN{ID: 100, Addrs: []netip.Prefix{node}, LANAddrs: []netip.Prefix{lan}})
			if err != nil && strings.Contains(err.Error(), "Unknown device type") {
				testenv.Unsupported(t, "no 802.1Q VLAN devices (CONFIG_VLAN_8021Q); the vxlan case covers a stacked master: %v", err)
			}
			return err
		})
	})
	t.Run("vxlan", func(t *testing.T) {
		virtualMaster(t, "vx100", "vx100", func(l *lab.Lab, node, lan netip.Prefix) error {
			return l.AddVXLAN(lab.VXLAN{Name: "vx100", VNI: 100, Addrs: []netip.Prefix{node}, LANAddrs: []netip.Prefix{lan}})
		})
	})
}

// virtualMaster runs TestVirtualMaster with master, the node's end of a
// segment that add makes, and lanEnd, the LAN's.
func virtualMaster(t *testing.T, master, lanEnd string, add func(l *lab.Lab, node, lan netip.Prefix) error) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{})
	lanAddr, nodeAddr := netip.MustParsePrefix("10.100.0.1/24"), netip.MustParsePrefix("10.100.0.5/24")
	if err := add(l, nodeAddr, lanAddr); err != nil {
		t.Fatal(err)
	}
	shim := master + ".host"
	waitFor(t, deadline, "the node reaches the LAN's side of "+master, pings(l, l.Node, lanAddr.Addr()))
	r := lab.Range{Subnet: netip.MustParsePrefix("10.100.0.0/24"),
		RangeStart: netip.MustParseAddr("10.100.0.100"), RangeEnd: netip.MustParseAddr("10.100.0.150")}
	if err := l.AddNetwork(lab.NetworkOptions{Name: "seg100", Master: master, Ranges: []lab.Range{r}}); err != nil {
		t.Fatal(err)
	}
	v1, err := l.AddPodTo("seg100", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartPodHTTP(v1); err != nil {
		t.Fatal(err)
	}
	d1 := mustPod(t, l, "pod1")
	// The seed's problem on this master too: the node cannot reach its pod,
	// the LAN can.
	if err := l.Ping(l.Node, v1.IP); err == nil {
		t.Fatalf("the node reached %s on %s before flatnet ran", v1.IP, master)
	}
	waitFor(t, deadline, "the LAN's side of "+master+" pings v1", pings(l, l.LAN, v1.IP))

	fn := startFlatnet(t, l, "")
	waitFor(t, deadline, "flatnet routes "+v1.IP.String()+" via "+shim, routedVia(l, v1.IP, shim))
	waitFor(t, deadline, "flatnet routes pod1 via "+l.Master+".host", routedVia(l, d1.IP, l.Master+".host"))
	h := nodeHandle(t, l)
	sh, err := h.LinkByName(shim)
	if err != nil {
		t.Fatal(err)
	}
	ml, err := h.LinkByName(master)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Type() != "macvlan" || sh.Attrs().ParentIndex != ml.Attrs().Index {
		t.Errorf("%s: %s on ifindex %d, want a macvlan on %s (ifindex %d)", shim, sh.Type(), sh.Attrs().ParentIndex, master, ml.Attrs().Index)
	}
	shimMAC := mustMAC(t, l, l.Node, shim)
	waitFor(t, deadline, "the shim guard makes "+shim+"'s ARP requests probes", func() error {
		out, err := l.Exec(l.Node, "nft", "list", "table", "arp", "flatnet")
		if err != nil {
			return err
		}
		chain, ok := nftChain(out, shim)
		if !ok {
			return fmt.Errorf("no chain for %s in:\n%s", shim, out)
		}
		if !strings.Contains(chain, "hook output") || !strings.Contains(chain, `oifname "`+shim+`" arp operation request arp saddr ip set 0.0.0.0`) {
			return fmt.Errorf("the chain for %s does not make its requests probes:\n%s", shim, chain)
		}
		return nil
	})

	// Both ways: the node and its pod, the LAN and both.
	waitFor(t, deadline, "the node pings v1", pings(l, l.Node, v1.IP))
	waitFor(t, deadline, "v1 pings the node's address on "+master, freshPings(l, v1.NS, nodeAddr.Addr()))
	if body, err := l.HTTPGet(l.Node, "http://"+v1.IP.String()+"/"); err != nil || body != lab.PodPage(v1) {
		t.Errorf("GET v1 from the node: %q, %v", body, err)
	}
	for _, ip := range []netip.Addr{v1.IP, nodeAddr.Addr()} {
		waitFor(t, deadline, "the LAN's side of "+master+" pings "+ip.String(), freshPings(l, l.LAN, ip))
	}
	reachable(t, l, d1, deadline)

	// The LAN's end of the segment hears nothing from the shim while the
	// node reaches a new pod there (its first packet makes the shim ask
	// for the pod).
	capture, err := l.StartCapture(l.LAN, lanEnd)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := l.AddPodTo("seg100", "v2")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, deadline, "flatnet routes v2", routedVia(l, v2.IP, shim))
	waitFor(t, deadline, "the node pings v2", freshPings(l, l.Node, v2.IP))
	// The node's own frames reach the capture: it works, and it has seen
	// what the node sent before them.
	waitFor(t, deadline, "the node pings the LAN's side of "+master, freshPings(l, l.Node, lanAddr.Addr()))
	nodeMAC := mustMAC(t, l, l.Node, master)
	waitFor(t, deadline, "the capture on "+lanEnd+" sees the node's frames", func() error {
		for _, f := range capture.Frames(func(f lab.Frame) bool { return !f.Out }) {
			if bytes.Equal(f.Src, nodeMAC) {
				return nil
			}
		}
		return fmt.Errorf("no frame from %s (%s) captured yet", master, nodeMAC)
	})
	_ = capture.Close()
	probes := 0
	for _, f := range capture.Frames(func(f lab.Frame) bool { return !f.Out }) {
		if !bytes.Equal(f.Src, shimMAC) {
			continue
		}
		if f.ARPSender == nodeAddr.Addr() || f.ARPTarget == nodeAddr.Addr() || f.ARPOp == 1 && f.ARPSender != netip.IPv4Unspecified() {
			t.Errorf("a frame of %s naming the node reached the LAN: %v", shim, f)
		}
		if f.ARPOp == 1 && f.ARPTarget == v2.IP {
			probes++
		}
	}
	if probes == 0 {
		t.Errorf("no ARP probe of %s for %s reached the LAN's end of the segment: the capture cannot see the shim", shim, v2.IP)
	}
	running(t, fn)
	t.Logf("%s as master: pods %s and %s routed through %s (%s); its ARP requests reach the segment as probes", master, v1.IP, v2.IP, shim, shimMAC)
}

// nftChain returns the text of the chain named name in `nft list table`
// output (nft quotes names that are not plain words).
func nftChain(out, name string) (string, bool) {
	for _, head := range []string{"chain " + name + " {", "chain \"" + name + "\" {"} {
		if i := strings.Index(out, head); i >= 0 {
			rest := out[i:]
			if j := strings.Index(rest, "\n\t}"); j >= 0 {
				return rest[:j], true
			}
			return rest, true
		}
	}
	return "", false
}
