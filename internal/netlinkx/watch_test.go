//go:build integration

package netlinkx_test

import (
	"context"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/netlinkx"
)

// TestWatchSubscribedFirst: the first event says the subscriptions are in
// place, so a reconcile after it misses nothing that changes later (a NIC
// appearing just as flatnet starts); changes then arrive as events.
func TestWatchSubscribedFirst(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoMaster: true})
	events := make(chan netlinkx.Event, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// Watch subscribes in the namespace of the thread calling it.
		done <- l.Do(l.Node, func() error {
			return netlinkx.Watch(ctx, func(e netlinkx.Event) {
				select {
				case events <- e:
				default:
				}
			})
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	next := func(what string) netlinkx.Event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			t.Fatalf("no event: %s", what)
		}
		return netlinkx.Event{}
	}
	if e := next("subscribed"); e.Kind != netlinkx.Subscribed {
		t.Fatalf("first event %+v, want Subscribed", e)
	}
	if err := l.AddMaster(); err != nil {
		t.Fatal(err)
	}
	for {
		if e := next("the master appearing"); e.Kind == netlinkx.LinkChanged && e.Link == l.Master {
			return
		}
	}
}
