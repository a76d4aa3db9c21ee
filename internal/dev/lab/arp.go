package lab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// ARPWindow is how long ARPProbe keeps collecting replies after the first:
// the window in which a second answer (ARP flux) would show. Nothing that
// must arrive is timed by it.
const ARPWindow = 500 * time.Millisecond

// ProbeDeadline is how long ARPProbe and NDPProbe wait for a first answer
// before they return none: a safety net, not a measurement.
const ProbeDeadline = 10 * time.Second

// ARPProbe sends ONE broadcast ARP request "who has target?" out of dev in a
// lab namespace, from dev's MAC and first IPv4 address, and returns the
// distinct sender MACs of the replies, in arrival order: it waits up to
// ProbeDeadline for the first, then collects for ARPWindow more. It is how
// the LAN sees the node: exactly one answer for the node's address is
// right; two are "ARP flux" (the shim answering for the NIC's address too).
//
// The request carries a real sender address on purpose: the kernel answers
// a request from 0.0.0.0 (duplicate address detection) without consulting
// arp_filter.
func (l *Lab) ARPProbe(ns, dev string, target netip.Addr) ([]net.HardwareAddr, error) {
	if !target.Is4() {
		return nil, fmt.Errorf("ARPProbe: %s is not an IPv4 address", target)
	}
	var fd, index int
	var src netip.Addr
	var mac net.HardwareAddr
	err := l.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		mac, index = ifi.HardwareAddr, ifi.Index
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && n.IP.To4() != nil {
					src = ip
					break
				}
			}
		}
		if !src.IsValid() {
			return fmt.Errorf("%s in %s has no IPv4 address to ask from", dev, ns)
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket to %s: %w", dev, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if len(mac) != 6 {
		return nil, fmt.Errorf("%s has no Ethernet address", dev)
	}

	// Ethernet header + ARP request.
	frame := make([]byte, 0, 42)
	frame = append(frame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	frame = append(frame, mac...)
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_ARP)
	frame = binary.BigEndian.AppendUint16(frame, 1)      // htype Ethernet
	frame = binary.BigEndian.AppendUint16(frame, 0x0800) // ptype IPv4
	frame = append(frame, 6, 4)
	frame = binary.BigEndian.AppendUint16(frame, 1) // request
	frame = append(frame, mac...)
	s4 := src.As4()
	frame = append(frame, s4[:]...)
	frame = append(frame, 0, 0, 0, 0, 0, 0)
	t4 := target.As4()
	frame = append(frame, t4[:]...)

	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: index, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(fd, frame, 0, to); err != nil {
		return nil, fmt.Errorf("send ARP request: %w", err)
	}

	var macs []net.HardwareAddr
	deadline := time.Now().Add(ProbeDeadline)
	buf := make([]byte, 1500)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return macs, nil
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return macs, fmt.Errorf("poll: %w", err)
		}
		if n == 0 {
			continue
		}
		n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return macs, fmt.Errorf("receive: %w", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		sha, ok := arpReply(buf[:n], t4, s4)
		if !ok {
			continue
		}
		dup := false
		for _, m := range macs {
			if bytes.Equal(m, sha) {
				dup = true
			}
		}
		if !dup {
			if len(macs) == 0 {
				deadline = time.Now().Add(ARPWindow)
			}
			macs = append(macs, sha)
		}
	}
}

// arpReply returns the sender MAC of an Ethernet frame that is an ARP reply
// from spa to tpa.
func arpReply(f []byte, spa, tpa [4]byte) (net.HardwareAddr, bool) {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_ARP {
		return nil, false
	}
	a := f[14:]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != 0x0800 ||
		a[4] != 6 || a[5] != 4 || binary.BigEndian.Uint16(a[6:8]) != 2 {
		return nil, false
	}
	if !bytes.Equal(a[14:18], spa[:]) || !bytes.Equal(a[24:28], tpa[:]) {
		return nil, false
	}
	return net.HardwareAddr(bytes.Clone(a[8:14])), true
}

// htons converts a 16-bit value to network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
