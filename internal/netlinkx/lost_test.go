package netlinkx

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// TestWatchReportsLostNotifications provokes the kernel into dropping
// notifications for real: subscriptions with a tiny receive buffer, a
// reader that does not read, and thousands of route changes. The
// subscription breaks (ENOBUFS); Watch subscribes again and reports Lost,
// which makes the daemon read the whole kernel again.
func TestWatchReportsLostNotifications(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	defer func(old int) { rcvBuf = old }(rcvBuf)
	rcvBuf = 4096 // the kernel doubles it and keeps a minimum; still tiny

	gate := make(chan struct{})
	events := make(chan Event, 1<<16) // room for every event: none may be dropped
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = l.Do(l.Node, func() error {
			return Watch(ctx, func(e Event) {
				if e.Kind == Subscribed {
					select {
					case events <- e:
					default:
					}
					return
				}
				<-gate // the reader stalls: the socket fills
				events <- e
			})
		})
	}()
	select {
	case e := <-events:
		if e.Kind != Subscribed {
			t.Fatalf("first event %v", e.Kind)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("never subscribed")
	}
	// A flood of route changes on the lab node's NIC.
	var k *Kernel
	if err := l.Do(l.Node, func() (err error) { k, err = New(); return err }); err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var ops []reconcile.Op
	for i := range 4000 {
		ip := fmt.Sprintf("10.%d.%d.%d/32", 200+i>>16, i>>8&255, i&255)
		ops = append(ops, reconcile.Op{Kind: reconcile.AddRoute, Dev: l.Master, Dst: mustPrefix(t, ip)})
	}
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
	close(gate)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == Lost {
				return
			}
		case <-deadline:
			t.Fatal("4000 route changes into a tiny buffer, and no Lost")
		}
	}
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
