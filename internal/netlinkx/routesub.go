package netlinkx

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Route notifications are read here rather than through
// vishvananda/netlink's RouteSubscribe, for two reasons. Every route
// flatnet adds comes back as an RTM_NEWROUTE to every subscriber, and a
// start with 65,000 pods would parse 65,000 echoes of its own into full
// netlink.Route values only to drop them; and the echoes take room in the
// socket's buffer, which a burst can overflow. A classic BPF filter on the
// socket drops them in the kernel: an RTM_NEWROUTE whose rtm_protocol is
// flatnet's never reaches the socket. Deletions of flatnet's routes do
// (someone else may have made them), and so does everything else.

// ownAddEcho is the socket filter: drop RTM_NEWROUTE with protocol
// reconcile.Protocol, keep the rest. A route notification is one message
// per datagram, so the offsets are those of the first message.
var ownAddEcho = []unix.SockFilter{
	// A = nlmsghdr.nlmsg_type (16 bits at offset 4, host order: the kernel
	// loads BPF half-words big-endian, so compare with the swapped value)
	{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 4},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: uint32(htons(unix.RTM_NEWROUTE))},
	// A = rtmsg.rtm_protocol (byte 5 of struct rtmsg, after the header)
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: unix.NLMSG_HDRLEN + 5},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: reconcile.Protocol},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0}, // drop
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
}

// htons is v as the kernel's BPF loads it from host-order memory.
func htons(v uint16) uint16 {
	b := [2]byte{}
	binary.NativeEndian.PutUint16(b[:], v)
	return uint16(b[0])<<8 | uint16(b[1])
}

// routeUpdate is what flatnet needs of a route notification.
type routeUpdate struct {
	typ      uint16
	table    uint32
	protocol uint8
	dst      netip.Prefix
}

// subscribeRoutes subscribes to IPv4 and IPv6 route notifications, with
// the echo of flatnet's own additions filtered out in the kernel, and
// delivers them on ch until the socket fails (ENOBUFS: some were lost) or
// done is closed; either way ch is closed.
func subscribeRoutes(ch chan<- routeUpdate, done <-chan struct{}, rcvbuf int) error {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE)
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(ownAddEcho)), Filter: &ownAddEcho[0]}
	if err := unix.SetsockoptSockFprog(s.GetFd(), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		s.Close()
		return fmt.Errorf("filtering route notifications: %w", err)
	}
	if err := s.SetReceiveBufferSize(rcvbuf, false); err != nil {
		s.Close()
		return err
	}
	go func() {
		<-done
		s.Close()
	}()
	go func() {
		defer close(ch)
		for {
			msgs, from, err := s.Receive()
			if err != nil {
				return
			}
			if from.Pid != nl.PidKernel {
				continue
			}
			for _, m := range msgs {
				if (m.Header.Type != unix.RTM_NEWROUTE && m.Header.Type != unix.RTM_DELROUTE) || len(m.Data) < unix.SizeofRtMsg {
					continue
				}
				ch <- parseRouteUpdate(m.Header.Type, m.Data)
			}
		}
	}()
	return nil
}

// parseRouteUpdate reads the table, protocol and destination of a route
// message (after its netlink header).
func parseRouteUpdate(typ uint16, data []byte) routeUpdate {
	msg := nl.DeserializeRtMsg(data)
	u := routeUpdate{typ: typ, table: uint32(msg.Table), protocol: msg.Protocol}
	bits := int(msg.Dst_len)
	u.dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if msg.Family == unix.AF_INET6 {
		u.dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	attrs, err := nl.ParseRouteAttr(data[unix.SizeofRtMsg:])
	if err != nil {
		return u
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			if len(a.Value) >= 4 {
				u.table = binary.NativeEndian.Uint32(a.Value)
			}
		case unix.RTA_DST:
			if ip, ok := netip.AddrFromSlice(a.Value); ok {
				u.dst = netip.PrefixFrom(ip.Unmap(), bits)
			}
		}
	}
	return u
}
