package hostlocal

import (
	"net/netip"
	"testing"
)

// The parsers run once per allocation file on every full read of a state
// directory: tens of thousands of times at start-up on a big node.

func BenchmarkParseName(b *testing.B) {
	names := []string{"10.1.2.3", "192.168.1.254", "fd00::2", "lock", "last_reserved_ip.0"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, _ = ParseName(names[i%len(names)])
	}
}

func BenchmarkParseNameIPv4(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseName("10.123.45.67"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseContent(b *testing.B) {
	content := []byte("f81d4fae7dec11d0a76500a0c91e6bf6f81d4fae7dec11d0a76500a0c91e6bf6\r\neth0")
	b.ReportAllocs()
	for b.Loop() {
		if o := ParseContent(content); o.IfName != "eth0" {
			b.Fatal(o)
		}
	}
}

func BenchmarkReject(b *testing.B) {
	rs := []Range{RangeFromPrefix(netip.MustParsePrefix("10.0.0.0/8"))}
	rs[0].Gateway = netip.MustParseAddr("10.0.0.1")
	node := netip.MustParseAddr("10.0.0.5")
	ip := netip.MustParseAddr("10.1.2.3")
	isNode := func(a netip.Addr) bool { return a == node }
	b.ReportAllocs()
	for b.Loop() {
		if why := Reject(ip, rs, isNode); why != 0 {
			b.Fatal(why)
		}
	}
}
