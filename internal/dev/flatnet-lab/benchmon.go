package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"golang.org/x/sys/unix"
)

// errLost is set when the kernel dropped notifications for the monitor
// (ENOBUFS): the counts of that measurement cannot be trusted.
var errLost = errors.New("route notifications were lost (ENOBUFS)")

// routeMon is the benchmark's clock: a netlink socket in the node
// namespace subscribed to IPv4 route changes, which stamps each host
// route's first RTM_NEWROUTE and RTM_DELROUTE with the time it received
// the notification. It is its own socket, read by one goroutine on its
// own OS thread, so no library and no channel stands between the kernel
// and the stamp.
type routeMon struct {
	fd     int
	closed atomic.Bool
	ended  chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after every receive
	adds    map[netip.Addr]time.Time
	dels    map[netip.Addr]time.Time
	last    time.Time // last notification of any kind
	err     error
}

// newRouteMon subscribes to RTMGRP_IPV4_ROUTE in the lab namespace ns.
func newRouteMon(l *lab.Lab, ns string) (*routeMon, error) {
	m := &routeMon{ended: make(chan struct{}), changed: make(chan struct{})}
	m.reset()
	err := l.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		// A cold start of 65,000 routes must fit in the queue even if this
		// reader falls behind for a moment; the memory is used only then.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 512<<20); err != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 64<<20)
		}
		// Wake up now and then to notice Close.
		tv := unix.Timeval{Usec: 200_000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return fmt.Errorf("netlink socket timeout: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_IPV4_ROUTE}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("subscribing to route changes: %w", err)
		}
		m.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	go m.read()
	return m, nil
}

// read receives notifications until Close.
func (m *routeMon) read() {
	defer close(m.ended)
	runtime.LockOSThread()
	buf := make([]byte, 1<<20)
	for !m.closed.Load() {
		n, _, err := unix.Recvfrom(m.fd, buf, 0)
		now := time.Now()
		if err != nil {
			switch {
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			case errors.Is(err, unix.ENOBUFS):
				m.mu.Lock()
				m.err = errLost
				m.mu.Unlock()
			default:
				m.mu.Lock()
				m.err = fmt.Errorf("reading route notifications: %w", err)
				m.mu.Unlock()
				return
			}
			continue
		}
		m.mu.Lock()
		m.parse(buf[:n], now)
		m.last = now
		close(m.changed)
		m.changed = make(chan struct{})
		m.mu.Unlock()
	}
}

// parse records the IPv4 host routes of the main table in b.
func (m *routeMon) parse(b []byte, now time.Time) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return
		}
		msg := b[unix.NLMSG_HDRLEN:l]
		b = b[min(nlmAlign(l), len(b)):]
		if typ != unix.RTM_NEWROUTE && typ != unix.RTM_DELROUTE || len(msg) < unix.SizeofRtMsg {
			continue
		}
		family, dstLen, table := msg[0], msg[1], uint32(msg[4])
		if family != unix.AF_INET || dstLen != 32 {
			continue
		}
		var dst netip.Addr
		for a := msg[unix.SizeofRtMsg:]; len(a) >= 4; {
			al := int(binary.NativeEndian.Uint16(a[0:2]))
			at := binary.NativeEndian.Uint16(a[2:4])
			if al < 4 || al > len(a) {
				break
			}
			v := a[4:al]
			switch {
			case at == unix.RTA_DST && len(v) == 4:
				dst = netip.AddrFrom4([4]byte(v))
			case at == unix.RTA_TABLE && len(v) == 4:
				table = binary.NativeEndian.Uint32(v)
			}
			a = a[min(nlmAlign(al), len(a)):]
		}
		if !dst.IsValid() || table != unix.RT_TABLE_MAIN {
			continue
		}
		seen := m.adds
		if typ == unix.RTM_DELROUTE {
			seen = m.dels
		}
		if _, ok := seen[dst]; !ok {
			seen[dst] = now
		}
	}
}

func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// reset forgets what was seen.
func (m *routeMon) reset() {
	m.mu.Lock()
	m.adds = map[netip.Addr]time.Time{}
	m.dels = map[netip.Addr]time.Time{}
	m.err = nil
	m.mu.Unlock()
}

// wait blocks until cond, called with the monitor locked after every
// notification, is true, or until the deadline.
func (m *routeMon) wait(deadline time.Time, cond func() bool) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		m.mu.Lock()
		ok, err, ch := cond(), m.err, m.changed
		m.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-timer.C:
			m.mu.Lock()
			ok = cond()
			m.mu.Unlock()
			if ok {
				return nil
			}
			return errTimeout
		}
	}
}

var errTimeout = errors.New("timed out")

// waitAdd waits for the route to ip and returns when it was seen.
func (m *routeMon) waitAdd(ip netip.Addr, deadline time.Time) (time.Time, error) {
	var t time.Time
	err := m.wait(deadline, func() bool {
		var ok bool
		t, ok = m.adds[ip]
		return ok
	})
	return t, err
}

// waitAll waits until every address in ips has been added (del false) or
// deleted (del true) and returns the time of the last one. A timeout
// error says how many were seen.
func (m *routeMon) waitAll(ips []netip.Addr, del bool, deadline time.Time) (time.Time, error) {
	seen := func() map[netip.Addr]time.Time {
		if del {
			return m.dels
		}
		return m.adds
	}
	// Counting is enough while waiting: nothing else changes host routes
	// in the node. Membership is checked once the count is reached, and
	// any still missing are waited for by name.
	err := m.wait(deadline, func() bool { return len(seen()) >= len(ips) })
	if err == nil {
		m.mu.Lock()
		var pending []netip.Addr
		for _, ip := range ips {
			if _, ok := seen()[ip]; !ok {
				pending = append(pending, ip)
			}
		}
		m.mu.Unlock()
		err = m.wait(deadline, func() bool {
			for _, ip := range pending {
				if _, ok := seen()[ip]; !ok {
					return false
				}
			}
			return true
		})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var last time.Time
	n := 0
	for _, ip := range ips {
		if t, ok := seen()[ip]; ok {
			n++
			if t.After(last) {
				last = t
			}
		}
	}
	if err != nil {
		verb := "added"
		if del {
			verb = "deleted"
		}
		return last, fmt.Errorf("%d of %d routes %s: %w", n, len(ips), verb, err)
	}
	return last, nil
}

// quiet waits until no notification has come for d (at most until the
// deadline): the tail of a flush has passed.
func (m *routeMon) quiet(d time.Duration, deadline time.Time) {
	for time.Now().Before(deadline) {
		m.mu.Lock()
		last := m.last
		m.mu.Unlock()
		if time.Since(last) >= d {
			return
		}
		time.Sleep(d / 4)
	}
}

// Close stops the monitor.
func (m *routeMon) Close() {
	if m.closed.Swap(true) {
		return
	}
	<-m.ended
	unix.Close(m.fd)
}
