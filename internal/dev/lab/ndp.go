package lab

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// NDPWindow is how long NDPProbe keeps collecting advertisements after the
// first: longer than the kernel's proxy_delay (0.8 s), within which a
// proxy answers, late on purpose. Nothing that must arrive is timed by it.
const NDPWindow = 2 * time.Second

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
// socket of that namespace: what its neighbour table learns from.
type NDPWatch struct {
	ns     string
	fd     int
	mu     sync.Mutex
	nas    []NA
	done   chan struct{}
	ended  chan struct{}
	once   sync.Once
	closer *closer
	lab    *Lab
}

// WatchNDP starts recording the neighbour advertisements received in ns.
func (l *Lab) WatchNDP(ns string) (*NDPWatch, error) {
	w := &NDPWatch{ns: ns, done: make(chan struct{}), ended: make(chan struct{}), lab: l}
	err := l.Do(ns, func() (err error) {
		w.fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return fmt.Errorf("ICMPv6 socket: %w", err)
		}
		// RFC 4861 wants hop limit 255 on what is sent.
		_ = unix.SetsockoptInt(w.fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255)
		_ = unix.SetsockoptInt(w.fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255)
		return nil
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
	buf := make([]byte, 1500)
	for {
		select {
		case <-w.done:
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, 50); err != nil || n == 0 {
			continue
		}
		n, from, err := unix.Recvfrom(w.fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			continue
		}
		src := netip.Addr{}
		if sa, ok := from.(*unix.SockaddrInet6); ok {
			src = netip.AddrFrom16(sa.Addr)
		}
		if na, ok := parseNA(buf[:n]); ok {
			na.Time, na.From = time.Now(), src
			w.mu.Lock()
			w.nas = append(w.nas, na)
			w.mu.Unlock()
		}
	}
}

// parseNA reads an ICMPv6 message that is a neighbour advertisement.
func parseNA(b []byte) (NA, bool) {
	if len(b) < 24 || b[0] != 136 || b[1] != 0 {
		return NA{}, false
	}
	na := NA{
		Router:    b[4]&0x80 != 0,
		Solicited: b[4]&0x40 != 0,
		Override:  b[4]&0x20 != 0,
		Target:    netip.AddrFrom16([16]byte(b[8:24])),
	}
	for opts := b[24:]; len(opts) >= 8; {
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			break
		}
		if opts[0] == 2 && l >= 8 { // target link-layer address
			na.MAC = net.HardwareAddr(bytes.Clone(opts[2:8]))
		}
		opts = opts[l:]
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
// solicited-node multicast address, with dev's MAC as source link-layer
// address), as the kernel of the namespace would when it resolves target.
func (w *NDPWatch) Solicit(dev string, target netip.Addr) error {
	if !target.Is6() || target.Is4In6() {
		return fmt.Errorf("Solicit: %s is not an IPv6 address", target)
	}
	var ifi *net.Interface
	err := w.lab.Do(w.ns, func() (err error) {
		ifi, err = net.InterfaceByName(dev)
		return err
	})
	if err != nil {
		return fmt.Errorf("Solicit: %s in %s: %w", dev, w.ns, err)
	}
	index, mac := ifi.Index, ifi.HardwareAddr
	if len(mac) != 6 {
		return fmt.Errorf("Solicit: %s has no Ethernet address", dev)
	}
	t := target.As16()
	msg := []byte{135, 0, 0, 0, 0, 0, 0, 0}
	msg = append(msg, t[:]...)
	msg = append(msg, 1, 1)
	msg = append(msg, mac...)
	dst := [16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff}
	copy(dst[13:], t[13:])
	return unix.Sendto(w.fd, msg, 0, &unix.SockaddrInet6{Addr: dst, ZoneId: uint32(index)})
}

// Close stops recording.
func (w *NDPWatch) Close() error {
	w.lab.dropCloser(w.closer)
	return w.stop()
}

func (w *NDPWatch) stop() error {
	w.once.Do(func() { close(w.done) })
	<-w.ended
	return unix.Close(w.fd)
}

// NDPProbe sends ONE neighbour solicitation for target out of dev in a lab
// namespace and returns the advertisements for target, in arrival order: it
// waits up to ProbeDeadline for the first, then collects until NDPWindow
// after it. It is how the LAN sees the node's IPv6 address.
// With flatnet, two come for a node address: the NIC's at once, with the
// Override flag, and the shim's proxy answer, late and without it, which a
// neighbour table that learnt the NIC's keeps ignoring (RFC 4861 7.2.5).
func (l *Lab) NDPProbe(ns, dev string, target netip.Addr) ([]NA, error) {
	w, err := l.WatchNDP(ns)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	if err := w.Solicit(dev, target); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(ProbeDeadline); ; time.Sleep(10 * time.Millisecond) {
		if nas := w.For(target); len(nas) > 0 {
			// The window for a late answer (a proxy's), or one that must
			// not come: only a wait can show that.
			time.Sleep(time.Until(nas[0].Time.Add(NDPWindow)))
			return w.For(target), nil
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
	}
}
