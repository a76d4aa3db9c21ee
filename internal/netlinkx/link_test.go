package netlinkx

import (
	"bytes"
	"net"
	"testing"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TestLinkOfPermanentAddress: a link dump's IFLA_PERM_ADDRESS, parsed by
// the library as LinkList parses it, reaches the snapshot as PermMAC, from
// which a node without a machine id derives its shims' MACs
// (reconcile.ShimSeed). Few virtual devices have a permanent address, so
// the integration test of a node without a machine id (e2e's
// TestNoMachineID) checks it on the kernel only where the master has one;
// this test checks it always, from the bytes the kernel sends.
func TestLinkOfPermanentAddress(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x05}
	perm := net.HardwareAddr{0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x5e}
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = 7
	msg.Flags = unix.IFF_UP | unix.IFF_LOWER_UP
	b := msg.Serialize()
	for _, a := range []*nl.RtAttr{
		nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated("eno1")),
		nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(1500)),
		nl.NewRtAttr(unix.IFLA_ADDRESS, mac),
		nl.NewRtAttr(unix.IFLA_PERM_ADDRESS, perm),
		nl.NewRtAttr(unix.IFLA_IFALIAS, nl.ZeroTerminated("uplink")),
	} {
		b = append(b, a.Serialize()...)
	}
	l, err := netlink.LinkDeserialize(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	got := linkOf(l)
	want := reconcile.Link{Index: 7, Name: "eno1", Kind: "device", Up: true, LowerUp: true, MTU: 1500, MAC: mac, PermMAC: perm, Alias: "uplink"}
	if got.Index != want.Index || got.Name != want.Name || got.Kind != want.Kind || got.Up != want.Up || got.LowerUp != want.LowerUp ||
		got.MTU != want.MTU || !bytes.Equal(got.MAC, want.MAC) || !bytes.Equal(got.PermMAC, want.PermMAC) || got.Alias != want.Alias {
		t.Fatalf("linkOf = %+v\nwant    %+v", got, want)
	}
	if seed := reconcile.ShimSeed("", got); seed != "mac "+perm.String() {
		t.Fatalf("a node without a machine id seeds its shims' MACs with %q, want the permanent address's", seed)
	}
}
