//go:build integration

package netlinkx_test

import (
	"context"
	"net/netip"
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

// TestWatchIgnoresLinkLocalAddresses: a link-local address coming or going
// (every link gets one when it comes up, a new shim too) wakes nothing, so
// a node with many routes is not read again for it; a global address does.
func TestWatchIgnoresLinkLocalAddresses(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoMaster: true})
	events := make(chan netlinkx.Event, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Do(l.Node, func() error {
			return netlinkx.Watch(ctx, func(e netlinkx.Event) { events <- e })
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	if e := <-events; e.Kind != netlinkx.Subscribed {
		t.Fatalf("first event %+v, want Subscribed", e)
	}
	for _, argv := range [][]string{
		{"ip", "link", "add", "fnll0", "type", "veth", "peer", "name", "fnll1"},
		{"ip", "addr", "add", "fe80::1234/64", "dev", "fnll0", "nodad"},
		{"ip", "addr", "add", "169.254.7.7/16", "dev", "fnll0"},
		{"ip", "addr", "add", "fe80::5678/64", "dev", "fnll0", "nodad"},
		{"ip", "addr", "add", "198.51.100.7/32", "dev", "fnll0"},
	} {
		if out, err := l.Exec(l.Node, argv...); err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
	}
	// The four additions arrive in order on one socket: had a link-local
	// one woken the loop, its event would come before the global one's,
	// which is the marker that all of them were read.
	global := netip.MustParseAddr("198.51.100.7")
	var early []netip.Addr
	for timeout := time.After(10 * time.Second); ; {
		select {
		case e := <-events:
			if e.Kind != netlinkx.AddrChanged {
				continue
			}
			if e.Addr != global {
				early = append(early, e.Addr)
				continue
			}
		case <-timeout:
			t.Fatalf("no event for the global address %s", global)
		}
		break
	}
	if len(early) > 0 {
		t.Fatalf("address events for %v before the global one; want none (link-local addresses wake nothing)", early)
	}
}
