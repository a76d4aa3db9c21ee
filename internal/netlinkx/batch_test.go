package netlinkx

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TestRouteRequest decodes what the one route encoder writes and checks
// every field an `ip route` of the same op would send.
func TestRouteRequest(t *testing.T) {
	tests := []struct {
		op            reconcile.Op
		typ, flags    uint16
		family, scope uint8
		src           string
	}{
		{reconcile.Op{Kind: reconcile.AddRoute, Dev: "eno1.host", Dst: netip.MustParsePrefix("192.168.1.2/32"), Src: netip.MustParseAddr("192.168.0.5")},
			unix.RTM_NEWROUTE, unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_EXCL, unix.AF_INET, unix.RT_SCOPE_LINK, "192.168.0.5"},
		{reconcile.Op{Kind: reconcile.ReplaceRoute, Dev: "eno1.host", Dst: netip.MustParsePrefix("fd00::1:2/128")},
			unix.RTM_NEWROUTE, unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_REPLACE, unix.AF_INET6, unix.RT_SCOPE_LINK, ""},
		{reconcile.Op{Kind: reconcile.DelRoute, Dev: "eno1.host", Dst: netip.MustParsePrefix("192.168.1.2/32"), Src: netip.MustParseAddr("192.168.0.5")},
			unix.RTM_DELROUTE, unix.NLM_F_REQUEST | unix.NLM_F_ACK, unix.AF_INET, unix.RT_SCOPE_NOWHERE, ""},
	}
	for _, tt := range tests {
		req, ok := routeRequest(tt.op, 7)
		if !ok {
			t.Fatalf("%v: not encoded", tt.op)
		}
		b := req.Serialize()
		if got := binary.NativeEndian.Uint32(b[0:]); int(got) != len(b) {
			t.Errorf("%v: length %d in a message of %d bytes", tt.op, got, len(b))
		}
		if typ, flags, seq := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint16(b[6:]), binary.NativeEndian.Uint32(b[8:]); typ != tt.typ || flags != tt.flags || seq != req.Seq {
			t.Errorf("%v: type %d flags %#x seq %d, want %d %#x %d", tt.op, typ, flags, seq, tt.typ, tt.flags, req.Seq)
		}
		msg := nl.DeserializeRtMsg(b[unix.NLMSG_HDRLEN:])
		if msg.Family != tt.family || int(msg.Dst_len) != tt.op.Dst.Bits() || msg.Table != unix.RT_TABLE_MAIN ||
			msg.Protocol != reconcile.Protocol || msg.Scope != tt.scope {
			t.Errorf("%v: rtmsg %+v", tt.op, msg)
		}
		attrs, err := nl.ParseRouteAttr(b[unix.NLMSG_HDRLEN+unix.SizeofRtMsg:])
		if err != nil {
			t.Fatal(err)
		}
		got := map[uint16][]byte{}
		for _, a := range attrs {
			got[a.Attr.Type] = a.Value
		}
		if dst, _ := netip.AddrFromSlice(got[unix.RTA_DST]); dst != tt.op.Dst.Addr() {
			t.Errorf("%v: RTA_DST %v", tt.op, net.IP(got[unix.RTA_DST]))
		}
		if oif := binary.NativeEndian.Uint32(got[unix.RTA_OIF]); oif != 7 {
			t.Errorf("%v: RTA_OIF %d", tt.op, oif)
		}
		if src := got[unix.RTA_PREFSRC]; (tt.src == "") != (src == nil) || src != nil && net.IP(src).String() != tt.src {
			t.Errorf("%v: RTA_PREFSRC %v, want %q", tt.op, net.IP(src), tt.src)
		}
		want := 2 // RTA_DST, RTA_OIF
		if tt.src != "" {
			want++
		}
		if len(attrs) != want {
			t.Errorf("%v: %d attributes, want %d", tt.op, len(attrs), want)
		}
	}
	if _, ok := routeRequest(reconcile.Op{Kind: reconcile.AddShim}, 7); ok {
		t.Errorf("a link op was encoded as a route")
	}
}
