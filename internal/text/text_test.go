package text

import (
	"net/netip"
	"testing"
)

func TestText(t *testing.T) {
	if got := Plural(1, "route", "routes") + "; " + Plural(0, "route", "routes"); got != "1 route; 0 routes" {
		t.Errorf("Plural: %q", got)
	}
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	if got := Addrs([]netip.Addr{a("10.0.0.3"), a("10.0.0.1"), a("10.0.0.2")}, 2); got != "10.0.0.1, 10.0.0.2, and 1 more" {
		t.Errorf("Addrs: %q", got)
	}
	if got := Printable("a\nb\x00c\xffd"); got != `a\nb\x00c\xffd` {
		t.Errorf("Printable: %q", got)
	}
	if got := Head([]int{1, 2, 3}, 2); len(got) != 2 {
		t.Errorf("Head: %v", got)
	}
}
