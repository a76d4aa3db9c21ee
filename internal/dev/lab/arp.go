package lab

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ProbeDeadline is how long ARPProbe and NDPProbe wait for a first answer
// (and ARPProbe for its marker) before they give up: a safety net, not a
// measurement.
const ProbeDeadline = 10 * time.Second

// arpMarkers are the addresses ARPProbe's marker requests ask for: in
// TEST-NET-1, which nothing in a lab holds, so that nobody answers them.
var arpMarkers = [2]netip.Addr{netip.MustParseAddr("192.0.2.254"), netip.MustParseAddr("192.0.2.253")}

// ARPProbe sends ONE broadcast ARP request "who has target?" out of dev in
// a lab namespace, from dev's MAC and first IPv4 address, and returns the
// distinct sender MACs of the replies the lab's node sent for it, in the
// order they left: how the LAN sees the node. Exactly one answer for the
// node's address is right; two are "ARP flux" (the shim answering for the
// NIC's address too). It returns none when no answer comes within
// ProbeDeadline.
//
// That no second answer comes is proven, not waited for: once the first
// reply is in, a second request (the marker, for an address nobody holds)
// follows the first, and ARPProbe waits until every device of the node
// that hears the LAN's broadcasts (its NIC and the macvlans on it, the
// shims) has received the marker. Each device answers a request while it
// receives it, and a macvlan receives its broadcasts in order, so by then
// every answer to the first request has left the node: the replies are
// read where they leave it, on the NIC, after the egress filter.
//
// The request carries a real sender address on purpose: the kernel answers
// a request from 0.0.0.0 (duplicate address detection) without consulting
// arp_filter.
func (l *Lab) ARPProbe(ns, dev string, target netip.Addr) ([]net.HardwareAddr, error) {
	if !target.Is4() {
		return nil, fmt.Errorf("ARPProbe: %s is not an IPv4 address", target)
	}
	taps, err := l.nodeARPTaps()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range taps {
			_ = c.Close()
		}
	}()
	var c *arp.Client
	err = l.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ARPProbe from %s in %s: %w", dev, ns, err)
	}
	defer c.Close()
	if err := c.Request(target); err != nil {
		return nil, fmt.Errorf("ARPProbe: sending who-has %s: %w", target, err)
	}
	if !firstReply(c, target, time.Now().Add(ProbeDeadline)) {
		return nil, nil
	}
	// The first marker: every device has received it, so each has
	// answered the request before it. The second, once that is so: the
	// NIC's capture reads in order, so once it has read the second, it
	// has read every reply that left before.
	if err := l.arpMarker(c, arpMarkers[0], taps); err != nil {
		return nil, err
	}
	if err := l.arpMarker(c, arpMarkers[1], taps[:1]); err != nil {
		return nil, err
	}
	var macs []net.HardwareAddr
	asker := c.HardwareAddr()
	for _, f := range taps[0].Frames(func(f Frame) bool {
		return f.Out && f.Type == unix.ETH_P_ARP && f.ARPOp == uint16(arp.OperationReply) && f.ARPSender == target && bytes.Equal(f.Dst, asker)
	}) {
		if !hasHW(macs, f.Src) {
			macs = append(macs, f.Src)
		}
	}
	return macs, nil
}

// arpMarker sends a request for marker from c and waits until each
// capture of taps has seen it.
func (l *Lab) arpMarker(c *arp.Client, marker netip.Addr, taps []*Capture) error {
	if err := c.Request(marker); err != nil {
		return fmt.Errorf("ARPProbe: sending the marker: %w", err)
	}
	isMarker := func(f Frame) bool {
		return f.Type == unix.ETH_P_ARP && f.ARPOp == uint16(arp.OperationRequest) && f.ARPTarget == marker
	}
	for deadline := time.Now().Add(ProbeDeadline); ; time.Sleep(2 * time.Millisecond) {
		heard := 0
		for _, t := range taps {
			if len(t.Frames(isMarker)) > 0 {
				heard++
			}
		}
		if heard == len(taps) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ARPProbe: the marker reached %d of the node's %d devices", heard, len(taps))
		}
	}
}

// firstReply waits until c reads an ARP reply from target, or deadline.
func firstReply(c *arp.Client, target netip.Addr, deadline time.Time) bool {
	if err := c.SetReadDeadline(deadline); err != nil {
		return false
	}
	for {
		p, _, err := c.Read()
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return false
		case err != nil:
			if time.Now().After(deadline) {
				return false
			}
			continue // not an ARP packet
		case p.Operation == arp.OperationReply && p.SenderIP == target:
			return true
		}
	}
}

// nodeARPTaps captures on the node's NIC (first) and on each macvlan
// of the node that sits on it: every device of the node that hears the
// LAN's broadcasts.
func (l *Lab) nodeARPTaps() ([]*Capture, error) {
	devs := []string{l.Master}
	err := l.Do(l.Node, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		master := -1
		for _, k := range links {
			if k.Attrs().Name == l.Master {
				master = k.Attrs().Index
			}
		}
		for _, k := range links {
			if _, ok := k.(*netlink.Macvlan); ok && k.Attrs().ParentIndex == master && k.Attrs().Flags&net.FlagUp != 0 {
				devs = append(devs, k.Attrs().Name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ARPProbe: the node's devices: %w", err)
	}
	var taps []*Capture
	for _, d := range devs {
		// Every EtherType: a socket of one sees only what the device
		// receives, not what it sends.
		c, err := l.StartCapture(l.Node, d)
		if err != nil {
			for _, c := range taps {
				_ = c.Close()
			}
			return nil, err
		}
		taps = append(taps, c)
	}
	return taps, nil
}

// hasHW reports whether macs holds m.
func hasHW(macs []net.HardwareAddr, m net.HardwareAddr) bool {
	for _, x := range macs {
		if bytes.Equal(x, m) {
			return true
		}
	}
	return false
}
