package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
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
// of the wire, or a node's device's. Frames are kept in memory; a test
// captures seconds, not hours.
type Capture struct {
	conn *packet.Conn
	done chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	frames []Frame
}

// StartCapture opens a packet socket (every EtherType) on dev in ns. The
// lab closes it with everything else; Close stops it earlier.
func (l *Lab) StartCapture(ns, dev string) (*Capture, error) {
	c := &Capture{done: make(chan struct{})}
	err := l.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		c.conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		if err != nil {
			return err
		}
		// Frames come in bursts (a node reaching new pods); the kernel
		// keeps them until read.
		if rc, err := c.conn.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20) })
		}
		return nil
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

// read records frames until the capture stops. It reads through the
// socket's raw connection, as packet.Conn.ReadFrom does, for the packet
// type (PACKET_OUTGOING) that ReadFrom leaves out.
func (c *Capture) read() {
	defer c.wg.Done()
	rc, err := c.conn.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 1<<16)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if err != nil {
			return // closed
		}
		if rerr != nil || n < 14 {
			continue // EINTR, a runt
		}
		f, ok := parseFrame(buf[:n])
		if !ok {
			continue
		}
		f.At = time.Now()
		if ll, ok := from.(*unix.SockaddrLinklayer); ok {
			f.Out = ll.Pkttype == unix.PACKET_OUTGOING
		}
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.mu.Unlock()
	}
}

// parseFrame reads an Ethernet frame (with mdlayher/ethernet, which also
// takes VLAN tags off), and ARP and neighbour discovery in it (with
// mdlayher/arp and mdlayher/ndp).
func parseFrame(b []byte) (Frame, bool) {
	var e ethernet.Frame
	if err := e.UnmarshalBinary(b); err != nil {
		return Frame{}, false
	}
	f := Frame{Src: e.Source, Dst: e.Destination, Type: uint16(e.EtherType)}
	switch e.EtherType {
	case ethernet.EtherTypeARP:
		var p arp.Packet
		if p.UnmarshalBinary(e.Payload) == nil {
			f.ARPOp, f.ARPSender, f.ARPTarget = uint16(p.Operation), p.SenderIP, p.TargetIP
		}
	case ethernet.EtherTypeIPv6:
		h, err := ipv6.ParseHeader(e.Payload)
		if err != nil || h.NextHeader != unix.IPPROTO_ICMPV6 || len(e.Payload) < ipv6.HeaderLen+4 {
			break // neighbour discovery carries no extension headers
		}
		f.IP6Src, _ = netip.AddrFromSlice(h.Src)
		icmp := e.Payload[ipv6.HeaderLen:]
		f.ICMP6Type = icmp[0]
		if m, err := ndp.ParseMessage(icmp); err == nil {
			switch m := m.(type) {
			case *ndp.NeighborSolicitation:
				f.NDTarget = m.TargetAddress
			case *ndp.NeighborAdvertisement:
				f.NDTarget = m.TargetAddress
			}
		}
	}
	return f, true
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
	err := c.conn.Close()
	c.wg.Wait()
	return err
}
