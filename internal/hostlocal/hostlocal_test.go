package hostlocal

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name    string
		want    string // "" when rejected
		skipped bool   // ErrNotAllocation
	}{
		{name: "192.168.1.2", want: "192.168.1.2"},
		{name: "fd00::2", want: "fd00::2"},
		{name: "lock", skipped: true},
		{name: "last_reserved_ip.0", skipped: true},
		{name: ".hidden", skipped: true},
		{name: "192.168.001.002"},
		{name: "::ffff:192.168.1.2"},
		{name: "fd00:0::2"},
		{name: "FD00::2"},
		{name: "fe80::1%eth0"},
		{name: "192.168.1.2 "},
		{name: "not-an-ip"},
		{name: ""},
	}
	for _, tt := range tests {
		got, err := ParseName(tt.name)
		switch {
		case tt.skipped:
			if !errors.Is(err, ErrNotAllocation) {
				t.Errorf("ParseName(%q) err = %v, want ErrNotAllocation", tt.name, err)
			}
		case tt.want == "":
			if err == nil || errors.Is(err, ErrNotAllocation) {
				t.Errorf("ParseName(%q) = %v, %v; want a rejection", tt.name, got, err)
			}
		default:
			if err != nil || got.String() != tt.want {
				t.Errorf("ParseName(%q) = %v, %v; want %s", tt.name, got, err, tt.want)
			}
		}
	}
}

func TestParseContent(t *testing.T) {
	tests := []struct{ in, id, ifname string }{
		{"7bd849c5\r\neth0", "7bd849c5", "eth0"},
		{"7bd849c5", "7bd849c5", ""},
		{"", "", ""},
		{"  abc\r\nnet1\r\n", "abc", "net1"},
		{"a\x1b[31mb\r\ne\x00th0", "a[31mb", "eth0"},
	}
	for _, tt := range tests {
		got := ParseContent([]byte(tt.in))
		if got.ContainerID != tt.id || got.IfName != tt.ifname {
			t.Errorf("ParseContent(%q) = %+v, want %q/%q", tt.in, got, tt.id, tt.ifname)
		}
	}
}

func TestRangeFromPrefix(t *testing.T) {
	tests := []struct{ p, start, end string }{
		{"192.168.1.0/24", "192.168.1.1", "192.168.1.254"},
		{"192.168.1.7/32", "192.168.1.7", "192.168.1.7"},
		{"10.0.0.0/31", "10.0.0.0", "10.0.0.1"},
		{"fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:ffff"},
	}
	for _, tt := range tests {
		r := RangeFromPrefix(netip.MustParsePrefix(tt.p))
		if r.Start.String() != tt.start || r.End.String() != tt.end {
			t.Errorf("RangeFromPrefix(%s) = %s", tt.p, r)
		}
	}
}

func TestReject(t *testing.T) {
	seed := []Range{{
		Subnet: netip.MustParsePrefix("192.168.0.0/16"),
		Start:  netip.MustParseAddr("192.168.1.2"), End: netip.MustParseAddr("192.168.1.254"),
		Gateway: netip.MustParseAddr("192.168.1.2"),
	}, RangeFromPrefix(netip.MustParsePrefix("10.1.0.0/24"))}
	node := func(ip netip.Addr) bool { return ip == netip.MustParseAddr("192.168.1.9") }
	tests := map[string]Rejection{
		"192.168.1.3":     0,
		"10.1.0.5":        0,
		"192.168.1.2":     Gateway,
		"192.168.1.9":     NodeAddress,
		"192.168.2.1":     OutsideRanges,
		"10.1.0.0":        NetworkOrBroadcast,
		"10.1.0.255":      NetworkOrBroadcast,
		"224.0.0.1":       NotUnicast,
		"0.0.0.0":         NotUnicast,
		"127.0.0.1":       NotUnicast,
		"255.255.255.255": NotUnicast,
		"169.254.1.1":     NotUnicast,
	}
	for s, want := range tests {
		if got := Reject(netip.MustParseAddr(s), seed, node); got != want {
			t.Errorf("Reject(%s) = %v, want %v", s, got, want)
		}
	}
}

// FuzzParse feeds arbitrary names and contents: no panic, and an accepted
// name always prints back to itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"192.168.1.2", "fd00::2", "lock", "::ffff:1.2.3.4", "1.2.3.04"} {
		f.Add(s, []byte("id\r\neth0"))
	}
	f.Fuzz(func(t *testing.T, name string, content []byte) {
		if ip, err := ParseName(name); err == nil && ip.String() != name {
			t.Fatalf("accepted %q as %s", name, ip)
		}
		o := ParseContent(content)
		if len(o.ContainerID) > 128 || len(o.IfName) > 16 || strings.ContainsAny(o.ContainerID+o.IfName, "\r\n\x00 ") {
			t.Fatalf("ParseContent(%q) = %+v", content, o)
		}
	})
}

// TestParseContentPrintable: only printable ASCII is kept, space and DEL
// being neither, and at most 128 bytes of an id.
func TestParseContentPrintable(t *testing.T) {
	got := ParseContent([]byte("ab c\x7fd\x1f!~\r\neth 0"))
	if got.ContainerID != "abcd!~" || got.IfName != "eth0" {
		t.Errorf("ParseContent = %+v", got)
	}
	long := strings.Repeat("a", 127) + " b" + strings.Repeat("c", 10)
	if got := ParseContent([]byte(long)); got.ContainerID != strings.Repeat("a", 127)+"b" {
		t.Errorf("a long id: %q", got.ContainerID)
	}
}

// TestRangeContains: Start and End are in, the rest of the subnet is not.
func TestRangeContains(t *testing.T) {
	r := Range{Subnet: netip.MustParsePrefix("192.168.0.0/16"),
		Start: netip.MustParseAddr("192.168.1.2"), End: netip.MustParseAddr("192.168.1.254")}
	for s, want := range map[string]bool{
		"192.168.1.2": true, "192.168.1.254": true, "192.168.1.100": true,
		"192.168.1.1": false, "192.168.1.255": false, "192.168.0.5": false, "10.0.0.1": false,
	} {
		if got := r.Contains(netip.MustParseAddr(s)); got != want {
			t.Errorf("%s.Contains(%s) = %v", r, s, got)
		}
	}
}

// TestRangeFromPrefixUnaligned: a prefix that ends inside a byte keeps
// that byte's network bits.
func TestRangeFromPrefixUnaligned(t *testing.T) {
	for p, end := range map[string]string{
		"10.1.16.0/20":     "10.1.31.254",
		"10.1.16.0/16":     "10.1.255.254",
		"fd00:0:0:a0::/59": "fd00::bf:ffff:ffff:ffff:ffff",
	} {
		if r := RangeFromPrefix(netip.MustParsePrefix(p)); r.End.String() != end {
			t.Errorf("RangeFromPrefix(%s).End = %s, want %s", p, r.End, end)
		}
	}
}

// TestRejection: no reason is 0, the value of an address that may be
// routed; each says itself; Explain names the subnet of a network or
// broadcast address.
func TestRejection(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range []Rejection{NotUnicast, NodeAddress, Gateway, NetworkOrBroadcast, OutsideRanges} {
		if r == 0 || r.String() == "" || seen[r.String()] {
			t.Errorf("Rejection %d: %q", int(r), r.String())
		}
		seen[r.String()] = true
	}
	if Rejection(0).String() != "" {
		t.Errorf("Rejection(0) = %q", Rejection(0).String())
	}
	rs := []Range{RangeFromPrefix(netip.MustParsePrefix("10.1.0.0/24"))}
	ip := netip.MustParseAddr("10.1.0.255")
	if got := NetworkOrBroadcast.Explain(ip, rs); got != "the network or broadcast address of 10.1.0.0/24" {
		t.Errorf("Explain = %q", got)
	}
	if got := Gateway.Explain(ip, rs); got != "the gateway" {
		t.Errorf("Explain = %q", got)
	}
}

// TestRejectEdges: a /31 has no network or broadcast address (RFC 3021),
// nor has IPv6, whatever its prefix length; every address of a /31 range
// and an IPv6 range's last one may be routed.
func TestRejectEdges(t *testing.T) {
	rs := []Range{RangeFromPrefix(netip.MustParsePrefix("10.9.0.0/31")), RangeFromPrefix(netip.MustParsePrefix("fd00::/16"))}
	for _, s := range []string{"10.9.0.0", "10.9.0.1", "fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		if got := Reject(netip.MustParseAddr(s), rs, nil); got != 0 {
			t.Errorf("Reject(%s) = %v", s, got)
		}
	}
}
