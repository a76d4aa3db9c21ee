package netlinkx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/flatnet/flatnet/internal/reconcile"
	"golang.org/x/sys/unix"
)

// batchSize is how many route requests go out in one sendmsg(2) before
// the answers are read.
const batchSize = 256

// batchSeq numbers batch requests; any start will do, it only has to
// match requests with their answers. Each batch takes a run of batchSize.
var batchSeq atomic.Uint32

// DoBatch carries out route ops (add, replace, delete) many at a time:
// one request per op as `ip -batch` sends them, but batchSize of them per
// system call. Only the last request of a batch asks for an
// acknowledgement: the kernel answers the others only when they fail, and
// handles a batch's requests in order, so once the last one is answered
// every failure of the batch has been read. A node starting with
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
	var (
		buf   = k.sbuf[:0]
		idx   []int  // the index in ops of each request in buf
		first uint32 // the sequence number of the first
		last  int    // where the last request starts in buf
	)
	defer func() { k.sbuf = buf[:0] }()
	flush := func() {
		if len(idx) == 0 {
			return
		}
		setAck(buf[last:], true)
		if k.rbuf == nil {
			k.rbuf = make([]byte, 1<<16)
		}
		if err := k.sendBatch(buf, first, idx, errs, ops, k.rbuf); err != nil {
			// The socket is unusable: close it and let Do take the rest.
			unix.Close(k.batchFD)
			k.batchFD = 0
			for _, i := range idx {
				if errs[i] == nil {
					errs[i] = err
				}
			}
		}
		buf, idx = buf[:0], idx[:0]
	}
	for i, op := range ops {
		if !op.Kind.IsRoute() {
			errs[i] = k.Do(op)
			continue
		}
		oif, err := k.linkIndex(op.Dev)
		if err != nil {
			if op.Kind == reconcile.DelRoute && isNotFound(err) {
				continue // gone with its device
			}
			errs[i] = err
			continue
		}
		if len(idx) == 0 {
			first = batchSeq.Add(batchSize) - batchSize + 1
		}
		last = len(buf)
		buf, _ = appendRoute(buf, op, oif, first+uint32(len(idx)))
		setAck(buf[last:], false)
		idx = append(idx, i)
		if len(idx) == batchSize {
			flush()
		}
	}
	flush()
	return errs
}

// setAck sets or clears NLM_F_ACK in the request that starts msg.
func setAck(msg []byte, ack bool) {
	flags := binary.NativeEndian.Uint16(msg[6:])
	if ack {
		flags |= unix.NLM_F_ACK
	} else {
		flags &^= unix.NLM_F_ACK
	}
	binary.NativeEndian.PutUint16(msg[6:], flags)
}

// openBatchSocket opens the rtnetlink socket batches go through:
// answers without a copy of the request (NETLINK_CAP_ACK) and a receive
// buffer for a whole batch of them, should every request fail.
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

// sendBatch sends buf, whose requests are numbered from first and stand
// for ops[idx[0]], ops[idx[1]], …, reads the answers into rbuf until the
// last request's, and records each failure in errs.
func (k *Kernel) sendBatch(buf []byte, first uint32, idx []int, errs []error, ops []reconcile.Op, rbuf []byte) error {
	if err := unix.Sendto(k.batchFD, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending routes: %w", err)
	}
	lastSeq := first + uint32(len(idx)) - 1
	for {
		n, _, err := unix.Recvfrom(k.batchFD, rbuf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading acknowledgements: %w", err)
		}
		done := false
		for b := rbuf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				break
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			seq := binary.NativeEndian.Uint32(b[8:])
			if j := seq - first; typ == unix.NLMSG_ERROR && j < uint32(len(idx)) && l >= unix.NLMSG_HDRLEN+4 {
				i := idx[j]
				if code := int32(binary.NativeEndian.Uint32(b[16:])); code != 0 {
					e := unix.Errno(-code)
					if !(ops[i].Kind == reconcile.DelRoute && (errors.Is(e, unix.ESRCH) || errors.Is(e, unix.ENOENT))) {
						errs[i] = os.NewSyscallError("rtnetlink", e)
					}
				}
				done = done || seq == lastSeq
			}
			b = b[min((l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):]
		}
		if done {
			return nil
		}
	}
}

// appendRoute appends a route op, encoded as vishvananda/netlink's
// Handle.RouteAdd, RouteReplace and RouteDel would encode it (its nl
// package is the reference of TestAppendRouteIsNetlinks, byte for byte):
// RTM_NEWROUTE (exclusive, or replace) or RTM_DELROUTE, main table,
// flatnet's protocol, scope link (any, for deletes: RT_SCOPE_NOWHERE, the
// wildcard `ip route del` sends too), destination, output device oif and,
// when set, preferred source. It is the one encoder of route ops (Do sends
// single ones through DoBatch), and it appends to the batch's buffer
// without allocating: a start with 65,000 routes encodes 65,000 of them.
// It reports false for an op that is not a route op.
func appendRoute(b []byte, op reconcile.Op, oif int, seq uint32) ([]byte, bool) {
	var typ, flags uint16
	scope := uint8(unix.RT_SCOPE_LINK)
	switch op.Kind {
	case reconcile.AddRoute:
		typ, flags = unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL
	case reconcile.ReplaceRoute:
		typ, flags = unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE
	case reconcile.DelRoute:
		typ, scope = unix.RTM_DELROUTE, unix.RT_SCOPE_NOWHERE
	default:
		return b, false
	}
	dst := op.Dst.Addr()
	family, alen := uint8(unix.AF_INET), 4
	if !dst.Is4() {
		family, alen = unix.AF_INET6, 16
	}
	src := op.Src.IsValid() && op.Kind != reconcile.DelRoute
	size := unix.NLMSG_HDRLEN + unix.SizeofRtMsg + rtaSpace(alen) + rtaSpace(4)
	if src {
		size += rtaSpace(op.Src.BitLen() / 8)
	}
	start := len(b)
	b = append(b, make([]byte, size)...)
	m := b[start:]
	ne := binary.NativeEndian
	ne.PutUint32(m[0:], uint32(size))
	ne.PutUint16(m[4:], typ)
	ne.PutUint16(m[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	ne.PutUint32(m[8:], seq)
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
	r := m[unix.NLMSG_HDRLEN:]
	r[0], r[1], r[4], r[5], r[6] = family, uint8(op.Dst.Bits()), unix.RT_TABLE_MAIN, reconcile.Protocol, scope
	if op.Kind != reconcile.DelRoute {
		r[7] = unix.RTN_UNICAST
	}
	at := unix.NLMSG_HDRLEN + unix.SizeofRtMsg
	attr := func(typ uint16, v []byte) {
		ne.PutUint16(m[at:], uint16(unix.SizeofRtAttr+len(v)))
		ne.PutUint16(m[at+2:], typ)
		copy(m[at+unix.SizeofRtAttr:], v)
		at += rtaSpace(len(v))
	}
	d16 := dst.As16()
	attr(unix.RTA_DST, d16[16-alen:])
	var o [4]byte
	ne.PutUint32(o[:], uint32(oif))
	attr(unix.RTA_OIF, o[:])
	if src {
		s16 := op.Src.As16()
		attr(unix.RTA_PREFSRC, s16[16-op.Src.BitLen()/8:])
	}
	return b, true
}

// rtaSpace is the room an attribute of n bytes takes, aligned.
func rtaSpace(n int) int {
	return (unix.SizeofRtAttr + n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
}
