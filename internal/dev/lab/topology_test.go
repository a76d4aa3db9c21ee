package lab

import (
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

// TestNAOf: what an advertisement's bytes say, as mdlayher/ndp parses them.
func TestNAOf(t *testing.T) {
	msg := []byte{136, 0, 0, 0, 0x60, 0, 0, 0}
	tgt := netip.MustParseAddr("fd00::5").As16()
	msg = append(msg, tgt[:]...)
	msg = append(msg, 2, 1, 2, 0, 0, 0, 0, 5)
	parse := func() (NA, bool) {
		m, err := ndp.ParseMessage(msg)
		if err != nil {
			return NA{}, false
		}
		return naOf(m)
	}
	na, ok := parse()
	if !ok || na.Target.String() != "fd00::5" || na.MAC.String() != "02:00:00:00:00:05" || !na.Solicited || !na.Override || na.Router {
		t.Errorf("naOf = %+v, %v", na, ok)
	}
	msg[4] = 0x40
	if na, _ := parse(); na.Override || !na.Solicited {
		t.Errorf("flags 0x40: %+v", na)
	}
	msg[0] = 135
	if _, ok := parse(); ok {
		t.Error("a solicitation was taken for an advertisement")
	}
}

func TestParseNeigh(t *testing.T) {
	ns, err := parseNeigh([]byte(`[{"dst":"192.168.0.5","dev":"br0","lladdr":"9a:af:e9:d5:18:cb","state":["REACHABLE"]},` +
		`{"dst":"fd00::5","dev":"br0","state":["FAILED"]},{"dst":"junk","dev":"x"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0].String() != "192.168.0.5 dev br0 lladdr 9a:af:e9:d5:18:cb REACHABLE" || ns[1].String() != "fd00::5 dev br0 FAILED" {
		t.Errorf("parseNeigh: %v", ns)
	}
	if _, err := parseNeigh([]byte("nope")); err == nil {
		t.Error("garbage parsed")
	}
}
