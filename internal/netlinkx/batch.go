package netlinkx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// batchSize is how many route requests go out in one sendmsg(2) before
// their acknowledgements are read.
const batchSize = 128

// DoBatch carries out route ops (add, replace, delete) many at a time:
// one request per op as `ip -batch` sends them, but batchSize of them per
// system call, their acknowledgements read afterwards. A node starting with
// thousands of pods then costs the kernel's own work per route and little
// else. It returns one error per op, nil for those done. Ops of other kinds
// go through Do.
func (k *Kernel) DoBatch(ops []reconcile.Op) []error {
	errs := make([]error, len(ops))
	if k.batchFD == 0 {
		fd, err := openBatchSocket()
		if err != nil {
			for i := range ops {
				errs[i] = err
			}
			return errs
		}
		k.batchFD = fd
	}
	var buf []byte
	seqOf := map[uint32]int{} // sequence number -> index in ops
	flush := func() {
		if len(seqOf) == 0 {
			return
		}
		if err := k.sendBatch(buf, seqOf, errs, ops); err != nil {
			// The socket is unusable: close it and let Do take the rest.
			unix.Close(k.batchFD)
			k.batchFD = 0
			for _, i := range seqOf {
				if errs[i] == nil {
					errs[i] = err
				}
			}
		}
		buf, seqOf = buf[:0], map[uint32]int{}
	}
	for i, op := range ops {
		if !op.Kind.IsRoute() {
			errs[i] = k.Do(op)
			continue
		}
		idx, err := k.linkIndex(op.Dev)
		if err != nil {
			if op.Kind == reconcile.DelRoute && isNotFound(err) {
				continue // gone with its device
			}
			errs[i] = err
			continue
		}
		req, _ := routeRequest(op, idx)
		seqOf[req.Seq] = i
		buf = append(buf, req.Serialize()...)
		if len(seqOf) == batchSize {
			flush()
		}
	}
	flush()
	return errs
}

// openBatchSocket opens the rtnetlink socket batches go through:
// acknowledgements without a copy of the request (NETLINK_CAP_ACK) and a
// receive buffer for a whole batch of them.
func openBatchSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return 0, err
	}
	return fd, nil
}

// sendBatch sends buf and records each acknowledgement's verdict in errs.
func (k *Kernel) sendBatch(buf []byte, seqOf map[uint32]int, errs []error, ops []reconcile.Op) error {
	if err := unix.Sendto(k.batchFD, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending routes: %w", err)
	}
	rbuf := make([]byte, 1<<16)
	for acked := 0; acked < len(seqOf); {
		n, _, err := unix.Recvfrom(k.batchFD, rbuf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading acknowledgements: %w", err)
		}
		for b := rbuf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				break
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			i, mine := seqOf[binary.NativeEndian.Uint32(b[8:])]
			if typ == unix.NLMSG_ERROR && mine && l >= unix.NLMSG_HDRLEN+4 {
				acked++
				if code := int32(binary.NativeEndian.Uint32(b[16:])); code != 0 {
					e := unix.Errno(-code)
					if !(ops[i].Kind == reconcile.DelRoute && (errors.Is(e, unix.ESRCH) || errors.Is(e, unix.ENOENT))) {
						errs[i] = os.NewSyscallError("rtnetlink", e)
					}
				}
			}
			b = b[min((l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):]
		}
	}
	return nil
}

// routeRequest encodes a route op with vishvananda/netlink's nl package,
// as its Handle.RouteAdd, RouteReplace and RouteDel would: RTM_NEWROUTE
// (exclusive, or replace) or RTM_DELROUTE, main table, flatnet's protocol,
// scope link (any, for deletes: RT_SCOPE_NOWHERE, the wildcard `ip route
// del` sends too), destination, output device oif and, when set, preferred
// source. It is the one encoder of route ops: Do sends single ones through
// DoBatch. It reports false for an op that is not a route op.
func routeRequest(op reconcile.Op, oif int) (*nl.NetlinkRequest, bool) {
	var req *nl.NetlinkRequest
	var msg *nl.RtMsg
	switch op.Kind {
	case reconcile.AddRoute:
		req, msg = nl.NewNetlinkRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK), nl.NewRtMsg()
		msg.Scope = unix.RT_SCOPE_LINK
	case reconcile.ReplaceRoute:
		req, msg = nl.NewNetlinkRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK), nl.NewRtMsg()
		msg.Scope = unix.RT_SCOPE_LINK
	case reconcile.DelRoute:
		req, msg = nl.NewNetlinkRequest(unix.RTM_DELROUTE, unix.NLM_F_ACK), nl.NewRtDelMsg()
	default:
		return nil, false
	}
	dst := op.Dst.Addr()
	msg.Family = unix.AF_INET
	if !dst.Is4() {
		msg.Family = unix.AF_INET6
	}
	msg.Dst_len = uint8(op.Dst.Bits())
	msg.Protocol = reconcile.Protocol
	msg.Table = unix.RT_TABLE_MAIN
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.RTA_DST, dst.AsSlice()))
	req.AddData(nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(oif))))
	if op.Src.IsValid() && op.Kind != reconcile.DelRoute {
		req.AddData(nl.NewRtAttr(unix.RTA_PREFSRC, op.Src.AsSlice()))
	}
	return req, true
}
