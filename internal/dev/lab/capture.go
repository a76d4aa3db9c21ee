package lab

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Frame is one Ethernet frame a Capture saw, with the ARP and IPv6
// neighbour discovery fields the LAN tests look at.
type Frame struct {
	At time.Time
	// Out is set for a frame the captured device sent; unset for one it
	// received.
	Out      bool
	Src, Dst net.HardwareAddr
	Type     uint16 // EtherType
	// ARP (Type 0x0806): operation (1 request, 2 reply), sender and target
	// protocol addresses.
	ARPOp                uint16
	ARPSender, ARPTarget netip.Addr
	// ICMPv6 (Type 0x86dd, next header 58): its type (135 solicitation, 136
	// advertisement), the NDP target and the IPv6 source.
	ICMP6Type uint8
	NDTarget  netip.Addr
	IP6Src    netip.Addr
}

// String prints f the way tcpdump -e would, roughly.
func (f Frame) String() string {
	s := fmt.Sprintf("%s > %s type %#04x", f.Src, f.Dst, f.Type)
	switch {
	case f.Type == unix.ETH_P_ARP && f.ARPOp == 1:
		s += fmt.Sprintf(" ARP who-has %s tell %s", f.ARPTarget, f.ARPSender)
	case f.Type == unix.ETH_P_ARP && f.ARPOp == 2:
		s += fmt.Sprintf(" ARP reply %s is-at %s", f.ARPSender, f.Src)
	case f.ICMP6Type == 135:
		s += fmt.Sprintf(" IPv6 %s neighbor solicitation for %s", f.IP6Src, f.NDTarget)
	case f.ICMP6Type == 136:
		s += fmt.Sprintf(" IPv6 %s neighbor advertisement for %s", f.IP6Src, f.NDTarget)
	case f.ICMP6Type != 0:
		s += fmt.Sprintf(" IPv6 %s ICMPv6 type %d", f.IP6Src, f.ICMP6Type)
	}
	return s
}

// Capture records every frame a device of a lab namespace receives or
// sends, from the moment StartCapture returns until Close: the LAN's view
// of the wire. Frames are kept in memory; a test captures seconds, not
// hours.
type Capture struct {
	fd   int
	done chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	frames []Frame
}

// StartCapture opens a packet socket on dev in ns. The lab closes it with
// everything else; Close stops it earlier.
func (l *Lab) StartCapture(ns, dev string) (*Capture, error) {
	c := &Capture{done: make(chan struct{})}
	err := l.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(c.fd)
			return fmt.Errorf("binding the packet socket to %s: %w", dev, err)
		}
		_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		return unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		return nil, fmt.Errorf("capturing on %s in %s: %w", dev, ns, err)
	}
	c.wg.Add(1)
	go c.read()
	cl := l.addCloser("capture on "+dev+" in "+ns, c.stop)
	go func() { <-c.done; l.dropCloser(cl) }()
	return c, nil
}

func (c *Capture) read() {
	defer c.wg.Done()
	buf := make([]byte, 2048)
	for {
		select {
		case <-c.done:
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil || n < 14 {
			continue // timeout, EINTR, runt
		}
		f := parseFrame(buf[:n])
		f.At = time.Now()
		if ll, ok := from.(*unix.SockaddrLinklayer); ok {
			f.Out = ll.Pkttype == unix.PACKET_OUTGOING
		}
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.mu.Unlock()
	}
}

// parseFrame reads an Ethernet frame (without VLAN tags).
func parseFrame(b []byte) Frame {
	f := Frame{Dst: net.HardwareAddr(bytes.Clone(b[0:6])), Src: net.HardwareAddr(bytes.Clone(b[6:12])), Type: binary.BigEndian.Uint16(b[12:14])}
	p := b[14:]
	switch f.Type {
	case unix.ETH_P_ARP:
		// htype(2) ptype(2) hlen(1) plen(1) op(2) sha(6) spa(4) tha(6) tpa(4)
		if len(p) >= 28 && p[4] == 6 && p[5] == 4 {
			f.ARPOp = binary.BigEndian.Uint16(p[6:8])
			f.ARPSender = netip.AddrFrom4([4]byte(p[14:18]))
			f.ARPTarget = netip.AddrFrom4([4]byte(p[24:28]))
		}
	case unix.ETH_P_IPV6:
		// A fixed header then ICMPv6 directly (neighbour discovery carries
		// no extension headers).
		if len(p) >= 40+4 && p[6] == unix.IPPROTO_ICMPV6 {
			f.IP6Src = netip.AddrFrom16([16]byte(p[8:24]))
			icmp := p[40:]
			f.ICMP6Type = icmp[0]
			if (f.ICMP6Type == 135 || f.ICMP6Type == 136) && len(icmp) >= 24 {
				f.NDTarget = netip.AddrFrom16([16]byte(icmp[8:24]))
			}
		}
	}
	return f
}

// Frames returns the frames seen so far that match keep (all of them with
// a nil keep).
func (c *Capture) Frames(keep func(Frame) bool) []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Frame
	for _, f := range c.frames {
		if keep == nil || keep(f) {
			out = append(out, f)
		}
	}
	return out
}

// Close stops the capture; the frames stay readable.
func (c *Capture) Close() error { return c.stop() }

func (c *Capture) stop() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	close(c.done)
	c.wg.Wait()
	return unix.Close(c.fd)
}
