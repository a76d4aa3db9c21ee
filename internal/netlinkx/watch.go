package netlinkx

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Event is a kernel notification, reduced to what may need a reconcile.
type Event struct {
	Kind EventKind
	Link string       // the link's name, for link events
	Dst  netip.Prefix // the route's destination, for the deletion of one of ours
	Addr netip.Addr   // AddrChanged: the address that came or went (for the tests; no decision reads it)
	By   string       // FilterChanged: the process that changed the table, when known
}

// String says what happened, for the debug log: "link eno1.host",
// "route 192.168.1.2/32 deleted", "nftables table (by nft)".
func (e Event) String() string {
	switch e.Kind {
	case LinkChanged:
		return "link " + e.Link
	case AddrChanged:
		return "node address"
	case RouteChanged:
		return "route"
	case OwnRouteDeleted:
		return "route " + e.Dst.String() + " deleted"
	case Lost:
		return "lost notifications"
	case Subscribed:
		return "subscribed"
	case FilterChanged:
		if e.By != "" {
			return "nftables table (by " + e.By + ")"
		}
		return "nftables table"
	}
	return "kernel"
}

// EventKind says what changed.
type EventKind int

// The kinds of [Event].
const (
	LinkChanged     EventKind = iota + 1 // a link appeared, changed or went away
	AddrChanged                          // a node address came or went
	RouteChanged                         // a route flatnet may care about changed
	OwnRouteDeleted                      // a route with flatnet's protocol went away (Dst says which)
	Lost                                 // notifications were lost; resync everything
	// Subscribed says notifications now flow: what changed before it may be
	// in no event and in no snapshot taken before it, so read the kernel
	// again. It is the first event Watch delivers.
	Subscribed
	// FilterChanged: flatnet's nftables table changed (WatchFilter).
	FilterChanged
)

// Subscription buffers: the socket's is big enough for a burst of route
// changes (thousands of pods at once); the channels stay small, since
// events are handled in microseconds and each slot costs memory whatever
// the node's size.
const chanSize = 128

// rcvBuf is the subscription sockets' receive buffer; a variable for the
// test that overflows it.
var rcvBuf = 4 << 20

// Watch delivers kernel notifications to events until ctx is done. It
// leaves out the echo of flatnet's own route additions. Once subscribed it
// reports [Subscribed]; when a subscription breaks it subscribes again and
// then reports [Lost]. Either way, a snapshot taken after that event
// misses no change: one taken before it may have, as the kernel tells only
// the subscribers it has.
func Watch(ctx context.Context, events func(Event)) error {
	for again := false; ; again = true {
		lost, err := watchOnce(ctx, events, again)
		if err != nil {
			return err
		}
		if !lost {
			return nil
		}
	}
}

// watchOnce runs one set of subscriptions until ctx is done (false) or one
// of them breaks (true). Once subscribed it reports Subscribed, or Lost when
// this is a subscription again after one broke.
func watchOnce(ctx context.Context, events func(Event), again bool) (lost bool, err error) {
	done := make(chan struct{})
	defer close(done)
	links := make(chan netlink.LinkUpdate, chanSize)
	addrs := make(chan netlink.AddrUpdate, chanSize)
	routes := make(chan routeUpdate, chanSize)
	onErr := func(error) {} // a broken subscription closes its channel; that is what we act on
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: rcvBuf}); err != nil {
		return false, fmt.Errorf("subscribing to links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: rcvBuf}); err != nil {
		return false, fmt.Errorf("subscribing to addresses: %w", err)
	}
	if err := subscribeRoutes(routes, done, rcvBuf); err != nil {
		return false, fmt.Errorf("subscribing to routes: %w", err)
	}
	if again {
		events(Event{Kind: Lost})
	} else {
		events(Event{Kind: Subscribed})
	}
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case u, ok := <-links:
			if !ok {
				return true, nil
			}
			events(Event{Kind: LinkChanged, Link: u.Attrs().Name})
		case u, ok := <-addrs:
			if !ok {
				return true, nil
			}
			if u.LinkAddress.IP.IsLinkLocalUnicast() {
				// Every link that comes up gets an IPv6 link-local address
				// (a new shim too, a second after it is created), and no
				// decision depends on one: link-local addresses are never
				// routed (hostlocal.NotUnicast) nor proxied.
				continue
			}
			a, _ := netip.AddrFromSlice(u.LinkAddress.IP)
			events(Event{Kind: AddrChanged, Addr: a.Unmap()})
		case u, ok := <-routes:
			if !ok {
				return true, nil
			}
			if !routeMatters(u) {
				continue
			}
			if u.protocol == reconcile.Protocol && u.table == unix.RT_TABLE_MAIN {
				if u.typ == unix.RTM_NEWROUTE {
					continue // our own addition coming back (the filter drops most)
				}
				events(Event{Kind: OwnRouteDeleted, Dst: u.dst})
				continue
			}
			events(Event{Kind: RouteChanged})
		}
	}
}

// routeMatters reports whether a route notification can change a
// decision. Every route of every table but local does: the reconciler
// refuses a next hop of any route, and an address any route but the
// master's connected one answers for (reconcile.Refusal). Routes to
// link-local and multicast destinations do not (fe80::/64 when a shim
// comes up): pod addresses are never such.
func routeMatters(u routeUpdate) bool {
	if u.table == unix.RT_TABLE_LOCAL {
		return false
	}
	a := u.dst.Addr()
	return u.dst.Bits() == 0 || !(a.IsLinkLocalUnicast() || a.IsMulticast())
}

// WatchFilter delivers a FilterChanged event whenever flatnet's nftables
// table, or a chain or rule in it, is added or deleted, by anyone (a `nft
// flush ruleset` from a firewall service deletes it), until ctx is done.
// When the subscription breaks it subscribes again and reports [Lost]. It
// returns at once with the error when nftables cannot be watched at all,
// which on a kernel without nf_tables means there is no filter to lose.
func WatchFilter(ctx context.Context, events func(Event)) error {
	for {
		lost, err := watchFilter(ctx, func(by string) { events(Event{Kind: FilterChanged, By: by}) })
		if !lost {
			return err
		}
		events(Event{Kind: Lost})
		select { // a monitor that keeps breaking must not spin
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
