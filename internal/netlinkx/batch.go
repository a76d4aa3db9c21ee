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
// their acknowledgements are read.
const batchSize = 128

// batchSeq numbers batch requests; any start will do, it only has to
// match requests with their acknowledgements.
var batchSeq atomic.Uint32

// DoBatch carries out route ops (add, replace, delete) many at a time:
// one request per op as `ip -batch` sends them, but batchSize of them per
// system call, their acknowledgements read afterwards. A node starting with
// thousands of pods then costs the kernel's own work per route and little
// else. It returns one error per op, nil for those done. Ops of other kinds,
// or on a device whose index is not known, go through Do.
func (k *Kernel) DoBatch(ops []reconcile.Op) []error {
	errs := make([]error, len(ops))
	if k.batchFD == 0 {
		fd, err := openBatchSocket()
		if err != nil {
			for i, op := range ops {
				errs[i] = k.Do(op)
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
		msg, ok := k.routeMessage(op, batchSeq.Add(1))
		if !ok {
			errs[i] = k.Do(op)
			continue
		}
		seqOf[binary.NativeEndian.Uint32(msg[8:])] = i
		buf = append(buf, msg...)
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

// routeMessage encodes a route op as Kernel.route and the netlink library
// would: RTM_NEWROUTE (exclusive, or replace) or RTM_DELROUTE, main table,
// flatnet's protocol, scope link (any, for deletes), destination, output
// device and, when set, preferred source. It reports false for ops it does
// not encode.
func (k *Kernel) routeMessage(op reconcile.Op, seq uint32) ([]byte, bool) {
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
		return nil, false
	}
	idx, ok := k.index[op.Dev]
	if !ok {
		return nil, false
	}
	dst := op.Dst.Addr()
	family := uint8(unix.AF_INET)
	if !dst.Is4() {
		family = unix.AF_INET6
	}
	m := make([]byte, unix.NLMSG_HDRLEN, 80)
	binary.NativeEndian.PutUint16(m[4:], typ)
	binary.NativeEndian.PutUint16(m[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(m[8:], seq)
	// struct rtmsg
	m = append(m, family, uint8(op.Dst.Bits()), 0, 0, unix.RT_TABLE_MAIN, reconcile.Protocol, scope, unix.RTN_UNICAST, 0, 0, 0, 0)
	attr := func(t uint16, v []byte) {
		var h [4]byte
		binary.NativeEndian.PutUint16(h[0:], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(h[2:], t)
		m = append(m, h[:]...)
		m = append(m, v...)
		for len(m)%4 != 0 {
			m = append(m, 0)
		}
	}
	attr(unix.RTA_DST, dst.AsSlice())
	var oif [4]byte
	binary.NativeEndian.PutUint32(oif[:], uint32(idx))
	attr(unix.RTA_OIF, oif[:])
	if op.Src.IsValid() && op.Kind != reconcile.DelRoute {
		attr(unix.RTA_PREFSRC, op.Src.AsSlice())
	}
	binary.NativeEndian.PutUint32(m[0:], uint32(len(m)))
	return m, true
}
