//go:build integration

package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// Waiting for flatnet without sleeping: each helper here waits for an
// event that proves what the test needs, with a generous safety deadline.

// markerRoute is the address readSince routes as a marker: inside the
// seed's pod range, never allocated by the tests that use it.
var markerRoute = netip.MustParseAddr("192.168.1.250")

// readSince returns once flatnet has completed a pass on a reading of the
// node's kernel taken after readSince was called. The proof is a marker:
// a route of flatnet's protocol to markerRoute on lo (which flatnet's
// notification filter takes for the echo of its own addition, so it wakes
// nothing), then a foreign route change that does wake flatnet; the watch
// w then sees flatnet delete the marker as stale, which only a pass whose
// reading of the kernel showed it can plan. The marker's addition and
// deletion are the only route events it causes for flatnet's protocol.
func readSince(t testing.TB, l *lab.Lab, w *lab.RouteWatch) {
	t.Helper()
	t0 := time.Now()
	steps := [][]string{
		{"ip", "route", "add", markerRoute.String() + "/32", "dev", "lo", "proto", fmt.Sprint(flatnetProto)},
		{"ip", "route", "add", "unreachable", "198.51.100.1/32", "proto", "static"},
		{"ip", "route", "del", "unreachable", "198.51.100.1/32", "proto", "static"},
	}
	for _, s := range steps {
		if _, err := l.Exec(l.Node, s...); err != nil {
			t.Fatalf("marker for a pass of flatnet: %v", err)
		}
	}
	waitFor(t, deadline, "flatnet removes the marker route "+markerRoute.String()+" (a pass that read the kernel)", func() error {
		for _, e := range w.Events() {
			if e.Deleted && e.Proto == flatnetProto && e.Dst == netip.PrefixFrom(markerRoute, 32) && !e.Time.Before(t0) {
				return nil
			}
		}
		return errors.New("not yet")
	})
}

// podRouteEvents returns the route events the watch saw since t0 for the
// addresses of pods, of any protocol except markerRoute's.
func podRouteEvents(w *lab.RouteWatch, t0 time.Time, pods ...*lab.Pod) []lab.RouteEvent {
	want := map[netip.Prefix]bool{}
	for _, p := range pods {
		for _, a := range p.IPs {
			want[netip.PrefixFrom(a.Addr(), a.Addr().BitLen())] = true
		}
	}
	var out []lab.RouteEvent
	for _, e := range w.Events() {
		if want[e.Dst] && !e.Time.Before(t0) {
			out = append(out, e)
		}
	}
	return out
}
