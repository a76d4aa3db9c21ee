//go:build integration

package netlinkx

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// TestWatchReportsLostNotifications provokes the kernel into dropping
// notifications for real: subscriptions with a tiny receive buffer, a
// reader that stalls, and thousands of route changes. First 4,000 routes
// of flatnet's are added: their echoes are filtered out in the kernel, so
// nothing is lost and the next event is a marker route. Then the 4,000 are
// deleted (deletions of flatnet's routes are not filtered): the
// subscription breaks (ENOBUFS), Watch subscribes again and reports Lost,
// which makes the daemon read the whole kernel again.
func TestWatchReportsLostNotifications(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	defer func(old int) { rcvBuf = old }(rcvBuf)
	rcvBuf = 4096 // the kernel doubles it and keeps a minimum; still tiny

	var mu sync.Mutex
	gate := make(chan struct{}) // closed: the reader reads
	stall := func() { mu.Lock(); gate = make(chan struct{}); mu.Unlock() }
	release := func() { mu.Lock(); close(gate); mu.Unlock() }
	events := make(chan Event, 1<<16) // room for every event: none may be dropped
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = l.Do(l.Node, func() error {
			return Watch(ctx, func(e Event) {
				mu.Lock()
				g := gate
				mu.Unlock()
				if e.Kind != Subscribed {
					<-g
				}
				events <- e
			})
		})
	}()
	next := func(what string, want EventKind) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Kind == want {
					return
				}
				if e.Kind == Lost && want != Lost {
					t.Fatalf("%s: notifications were lost", what)
				}
			case <-deadline:
				t.Fatalf("%s: no %v event", what, want)
			}
		}
	}
	next("subscribing", Subscribed)

	var k *Kernel
	if err := l.Do(l.Node, func() (err error) { k, err = New(); return err }); err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var adds, dels []reconcile.Op
	for i := range 4000 {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200 + byte(i>>16), byte(i >> 8), byte(i)}), 32)
		adds = append(adds, reconcile.Op{Kind: reconcile.AddRoute, Dev: l.Master, Dst: dst})
		dels = append(dels, reconcile.Op{Kind: reconcile.DelRoute, Dev: l.Master, Dst: dst})
	}
	apply := func(ops []reconcile.Op) {
		t.Helper()
		if err := l.Do(l.Node, func() error {
			for i, err := range k.DoBatch(ops) {
				if err != nil {
					return fmt.Errorf("%s: %w", ops[i], err)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	stall()
	apply(adds)
	if _, err := l.Exec(l.Node, "ip", "route", "add", "10.99.99.99/32", "dev", l.Master, "proto", "static"); err != nil {
		t.Fatal(err)
	}
	release()
	next("after 4,000 additions of flatnet's, the marker route", RouteChanged)

	stall()
	apply(dels)
	release()
	next("after 4,000 deletions into a tiny buffer", Lost)
}
