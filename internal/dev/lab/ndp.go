package lab

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// NA is an IPv6 neighbour advertisement a lab namespace received.
type NA struct {
	Time   time.Time
	From   netip.Addr       // its source address
	Target netip.Addr       // the address it advertises
	MAC    net.HardwareAddr // its target link-layer address option; nil without
	// The flags: sent by a router, in answer to a solicitation, and asking
	// to override a cached link-layer address (RFC 4861 4.4).
	Router, Solicited, Override bool
}

// String formats the advertisement like tcpdump, roughly.
func (a NA) String() string {
	flags := ""
	for _, f := range []struct {
		on bool
		c  string
	}{{a.Router, "R"}, {a.Solicited, "S"}, {a.Override, "O"}} {
		if f.on {
			flags += f.c
		}
	}
	return fmt.Sprintf("%s: %s is-at %s [%s]", a.From, a.Target, a.MAC, flags)
}

// NDPWatch records the neighbour advertisements a lab namespace receives
// (its kernel's solicitations answered, and NDPProbe's), through an ICMPv6
// socket of that namespace bound to no address (mdlayher/ndp's
// Unspecified): what its neighbour table learns from.
type NDPWatch struct {
	ns     string
	conn   *ndp.Conn
	mu     sync.Mutex
	nas    []NA
	ended  chan struct{}
	once   sync.Once
	closer *closer
	lab    *Lab
}

// WatchNDP starts recording the neighbour advertisements received in ns.
func (l *Lab) WatchNDP(ns string) (*NDPWatch, error) {
	w := &NDPWatch{ns: ns, ended: make(chan struct{}), lab: l}
	err := l.Do(ns, func() error {
		// Bound to no address, the socket hears every interface; the
		// interface only sizes its reads.
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		w.conn, _, err = ndp.Listen(lo, ndp.Unspecified)
		if err != nil {
			return fmt.Errorf("ICMPv6 socket: %w", err)
		}
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
		return w.conn.SetICMPFilter(&f)
	})
	if err != nil {
		return nil, err
	}
	go w.read()
	w.closer = l.addCloser("NDP watch in "+ns, w.stop)
	return w, nil
}

func (w *NDPWatch) read() {
	defer close(w.ended)
	for {
		m, _, from, err := w.conn.ReadFrom()
		if err != nil {
			return // closed
		}
		if na, ok := naOf(m); ok {
			na.Time, na.From = time.Now(), from
			w.mu.Lock()
			w.nas = append(w.nas, na)
			w.mu.Unlock()
		}
	}
}

// naOf is m when it is a neighbour advertisement, with its target
// link-layer address option.
func naOf(m ndp.Message) (NA, bool) {
	a, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		return NA{}, false
	}
	na := NA{Router: a.Router, Solicited: a.Solicited, Override: a.Override, Target: a.TargetAddress}
	for _, o := range a.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			na.MAC = lla.Addr
		}
	}
	return na, true
}

// Adverts returns the advertisements received so far.
func (w *NDPWatch) Adverts() []NA {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]NA(nil), w.nas...)
}

// For returns the advertisements received so far for target.
func (w *NDPWatch) For(target netip.Addr) []NA {
	var out []NA
	for _, a := range w.Adverts() {
		if a.Target == target {
			out = append(out, a)
		}
	}
	return out
}

// Solicit sends ONE neighbour solicitation for target out of dev (to its
// solicited-node multicast address, from dev's link-local address, with
// dev's MAC as source link-layer address), as the kernel of the namespace
// would when it resolves target.
func (w *NDPWatch) Solicit(dev string, target netip.Addr) error {
	if !target.Is6() || target.Is4In6() {
		return fmt.Errorf("Solicit: %s is not an IPv6 address", target)
	}
	dst, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		return err
	}
	return w.lab.Do(w.ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return fmt.Errorf("Solicit: %s in %s: %w", dev, w.ns, err)
		}
		c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
		if err != nil {
			return fmt.Errorf("Solicit: %s in %s: %w", dev, w.ns, err)
		}
		defer c.Close()
		m := &ndp.NeighborSolicitation{TargetAddress: target,
			Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr}}}
		return c.WriteTo(m, nil, dst)
	})
}

// Close stops recording.
func (w *NDPWatch) Close() error {
	w.lab.dropCloser(w.closer)
	return w.stop()
}

func (w *NDPWatch) stop() error {
	var err error
	w.once.Do(func() { err = w.conn.Close() })
	<-w.ended
	return err
}

// NDPProbe sends ONE neighbour solicitation for target out of dev in a lab
// namespace and returns the advertisements for target received once the
// first has come (up to ProbeDeadline; none when none came): how the LAN
// sees the node's IPv6 address. It waits for nothing more: a late answer
// (the shim's proxy answer without the egress filter, up to proxy_delay
// later) is waited for as an event by the test that needs it (For).
func (l *Lab) NDPProbe(ns, dev string, target netip.Addr) ([]NA, error) {
	w, err := l.WatchNDP(ns)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	if err := w.Solicit(dev, target); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(ProbeDeadline); ; time.Sleep(5 * time.Millisecond) {
		if nas := w.For(target); len(nas) > 0 {
			return nas, nil
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
	}
}
