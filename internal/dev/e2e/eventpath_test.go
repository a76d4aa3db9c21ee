//go:build integration

package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// TestEventPath: a pod that comes and a pod that goes while flatnet runs
// are routed and unrouted by the event path, the update pass, and not by a
// full pass that would mend the node later. With resync_interval "1h"
// nothing but the pods' own events wakes flatnet; the pass that logs the
// route's change must say full=false (the debug line "reconciled" that
// ends every pass), so a broken update pass fails here whatever the
// timing: the route never comes, or a full pass brings it.
func TestEventPath(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{})
	p1 := mustPod(t, l, "pod1")
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	fn := startFlatnet(t, l, `resync_interval = "1h"`+"\n")
	waitFor(t, deadline, "flatnet routes pod1", routed(l, p1.IP.String()))
	readSince(t, l, w) // the passes of the start are over

	p2 := mustPod(t, l, "pod2")
	waitFor(t, deadline, "flatnet routes pod2", routed(l, p2.IP.String()))
	passOf(t, fn, fmt.Sprintf("route %s/32 dev %s.host added", p2.IP, l.Master))
	if err := l.Ping(l.Node, p2.IP); err != nil {
		t.Errorf("the node pings pod2: %v", err)
	}

	if err := l.DelPod(p2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, deadline, "pod2's route goes", notRouted(l, p2.IP.String()))
	passOf(t, fn, fmt.Sprintf("route %s/32 dev %s.host removed", p2.IP, l.Master))
}

// passOf waits for the debug line "reconciled" of the pass that logged
// change, and fails the test unless that pass was an update pass.
func passOf(t testing.TB, p *lab.Process, change string) {
	t.Helper()
	pass := passAfter(t, p, change)
	if !strings.Contains(pass, " full=false ") {
		t.Fatalf("%q was the work of a full pass, not of the event path: %s", change, pass)
	}
	t.Logf("%s: %s", change, pass)
}

// passAfter waits for the debug line "reconciled" that ends the pass that
// logged change (its first occurrence), which says what kind of pass it
// was and why it ran (full=, why=), and returns it.
func passAfter(t testing.TB, p *lab.Process, change string) string {
	t.Helper()
	var pass string
	waitFor(t, deadline, "the pass that logged "+change, func() error {
		lines := strings.Split(p.Log(), "\n")
		for i, l := range lines {
			if !strings.Contains(l, change) {
				continue
			}
			for _, after := range lines[i+1:] {
				if strings.Contains(after, "msg=reconciled") {
					pass = after
					return nil
				}
			}
			return fmt.Errorf("%q logged, its pass not yet", change)
		}
		return fmt.Errorf("%q not logged", change)
	})
	return pass
}
