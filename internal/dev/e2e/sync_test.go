//go:build integration

package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/sd"
)

// Waiting for flatnet without sleeping: each helper here waits for an
// event that proves what the test needs, with a generous safety deadline.

// markerRoute is the address readSince routes as a marker: inside the
// seed's pod range, never allocated by the tests that use it.
var markerRoute = netip.MustParseAddr("192.168.1.250")

// readSince returns once flatnet has completed a pass on a reading of the
// node's kernel taken after readSince was called. The proof is a marker: a
// route of flatnet's protocol to markerRoute through a shim flatnet made
// and no network uses (a macvlan "fnmark.host" on a veth of the node's
// own, with flatnet's alias and the MAC flatnet derives for it, which
// only the machine id flatnet reads tells); its addition is taken for the
// echo of flatnet's own (it wakes nothing). A foreign route change then
// wakes flatnet, and the watch w sees flatnet delete the marker as stale
// (with the unused shim), which only a pass whose reading of the kernel
// showed it can plan. The marker's addition and deletion are the only
// route events it causes for flatnet's protocol.
func readSince(t testing.TB, l *lab.Lab, w *lab.RouteWatch) {
	t.Helper()
	t0 := time.Now()
	// The veth stays between calls; the macvlan goes with each marker.
	_, _ = l.Exec(l.Node, "ip", "link", "add", "fnmk0", "type", "veth", "peer", "name", "fnmk1")
	lower, err := l.MAC(l.Node, "fnmk0")
	if err != nil {
		t.Fatalf("marker for a pass of flatnet: %v", err)
	}
	mac := reconcile.ShimMAC(reconcile.ShimSeed(flatnetMachineID(l), reconcile.Link{MAC: lower}), "fnmark.host")
	steps := [][]string{
		{"ip", "link", "set", "fnmk0", "up"},
		{"ip", "link", "add", "fnmark.host", "link", "fnmk0", "address", mac.String(), "type", "macvlan", "mode", "bridge"},
		{"ip", "link", "set", "fnmark.host", "alias", reconcile.ShimAlias, "up"},
		{"ip", "route", "add", markerRoute.String() + "/32", "dev", "fnmark.host", "proto", fmt.Sprint(flatnetProto)},
		{"ip", "route", "add", "unreachable", "198.51.100.1/32", "proto", "static"},
		{"ip", "route", "del", "unreachable", "198.51.100.1/32", "proto", "static"},
	}
	// A pass that read the kernel between the shim's creation and its
	// route's takes the shim for a stale one of flatnet's and deletes it
	// (a start's passes, or any other): then the marker is made again.
	for try := 1; ; try++ {
		var err error
		for _, s := range steps {
			if _, err = l.Exec(l.Node, s...); err != nil {
				break
			}
		}
		if err == nil {
			break
		}
		if ok, lerr := l.LinkExists(l.Node, "fnmark.host"); ok || lerr != nil || try == 5 {
			t.Fatalf("marker for a pass of flatnet (try %d): %v", try, err)
		}
		t.Logf("marker for a pass of flatnet: a pass deleted its shim before its route was added; made again")
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

// flatnetMachineID is the machine id the lab's flatnet reads, which seeds
// its shims' MACs: the lab's own, none, else this machine's.
func flatnetMachineID(l *lab.Lab) string {
	if l.Opts.MachineID != "" || l.Opts.NoMachineID {
		return l.Opts.MachineID
	}
	return sd.MachineID()
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
