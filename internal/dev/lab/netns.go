package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread that is inside the lab namespace ns, then puts
// the thread back. Sockets fn creates stay in ns for their whole life and
// may be used from any goroutine afterwards; goroutines fn starts are NOT
// in ns. If the thread cannot be put back, it is thrown away.
func (l *Lab) Do(ns string, fn func() error) error {
	if err := l.checkNS(ns); err != nil {
		return err
	}
	return do(ns, fn)
}

// do is Do without the lab's check.
func do(ns string, fn func() error) error {
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime ends it with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Exec runs a command in a lab namespace (`ip netns exec NS argv…`, so it
// sees that namespace's /sys too) and returns its combined output; the
// error includes the output.
func (l *Lab) Exec(ns string, argv ...string) (string, error) {
	if err := l.checkNS(ns); err != nil {
		return "", err
	}
	if len(argv) == 0 {
		return "", errors.New("Exec: no command")
	}
	out, err := run(context.Background(), append([]string{"ip", "netns", "exec", ns}, argv...)...)
	if err != nil {
		return out, fmt.Errorf("%s (in %s): %w: %s", strings.Join(argv, " "), ns, err, strings.TrimSpace(out))
	}
	return out, nil
}

// sysctlPath turns "net.ipv4.ip_forward" into "net/ipv4/ip_forward"; a key
// with a slash is taken as a path already (needed for interface names with
// dots: "net/ipv4/conf/eno1.host/arp_filter").
func sysctlPath(key string) string {
	if strings.Contains(key, "/") {
		return strings.TrimPrefix(key, "/proc/sys/")
	}
	return strings.ReplaceAll(key, ".", "/")
}

// Sysctl sets a sysctl of a lab namespace, for example
// Sysctl(l.Node, "net/ipv4/conf/eno1.host/arp_filter", "1").
func (l *Lab) Sysctl(ns, key, value string) error {
	p := filepath.Join("/proc/sys", sysctlPath(key))
	if !strings.HasPrefix(p, "/proc/sys/net/") {
		return fmt.Errorf("sysctl %s: only net.* sysctls are per namespace", key)
	}
	return l.Do(ns, func() error {
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, ns, err)
		}
		return nil
	})
}

// ReadSysctl reads a sysctl of a lab namespace.
func (l *Lab) ReadSysctl(ns, key string) (string, error) {
	p := filepath.Join("/proc/sys", sysctlPath(key))
	if !strings.HasPrefix(p, "/proc/sys/net/") {
		return "", fmt.Errorf("sysctl %s: only net.* sysctls are per namespace", key)
	}
	var v []byte
	err := l.Do(ns, func() (err error) {
		v, err = os.ReadFile(p)
		return err
	})
	return strings.TrimSpace(string(v)), err
}

// Ping sends up to two echo requests from a lab namespace to ip and
// succeeds when one is answered within about a second of the last.
func (l *Lab) Ping(ns string, ip netip.Addr) error {
	_, err := l.Exec(ns, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", ip.String())
	return err
}

// Listen opens a listener whose socket lives in a lab namespace.
func (l *Lab) Listen(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := l.Do(ns, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Dial connects from a socket created in a lab namespace. Only IP literals
// are dialled (no name lookups happen in the namespace).
func (l *Lab) Dial(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if _, err := netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("Dial in %s: %q is not an IP address", ns, host)
		}
	}
	var c net.Conn
	err := l.Do(ns, func() (err error) {
		d := net.Dialer{}
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPServer is an HTTP server whose socket is in a lab namespace.
type HTTPServer struct {
	// Addr is the address it listens on.
	Addr   string
	srv    *http.Server
	closer *closer
	lab    *Lab
}

// Close stops the server.
func (s *HTTPServer) Close() error {
	s.lab.dropCloser(s.closer)
	return s.srv.Close()
}

// StartHTTP serves h on addr (":80") from a socket in a lab namespace. The
// lab closes it on Close.
func (l *Lab) StartHTTP(ns, addr string, h http.Handler) (*HTTPServer, error) {
	ln, err := l.Listen(ns, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &HTTPServer{Addr: ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, lab: l}
	s.closer = l.addCloser("http server in "+ns, s.srv.Close)
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// PodPage is the page StartPodHTTP serves for a pod.
func PodPage(p *Pod) string {
	return fmt.Sprintf("hello from pod %s (%s)\n", p.Name, p.IP)
}

// StartPodHTTP serves PodPage on port 80 of the pod, like the seed's nginx.
func (l *Lab) StartPodHTTP(p *Pod) (*HTTPServer, error) {
	page := PodPage(p)
	return l.StartHTTP(p.NS, ":80", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, page)
	}))
}

// HTTPGet fetches url (with an IP literal host) from a lab namespace, like
// curl there, and returns the body; a status other than 200 is an error.
func (l *Lab) HTTPGet(ns, url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tr := &http.Transport{
		Proxy:             nil, // never a proxy from the environment
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return l.Dial(ctx, ns, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s from %s: %w", url, ns, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return string(body), fmt.Errorf("GET %s from %s: %w", url, ns, err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s from %s: %s", url, ns, resp.Status)
	}
	return string(body), nil
}

// handle opens a netlink handle in a lab namespace.
func (l *Lab) handle(ns string) (*netlink.Handle, error) {
	if err := l.checkNS(ns); err != nil {
		return nil, err
	}
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return netlink.NewHandleAt(h)
}

// MAC returns the MAC address of a device in a lab namespace.
func (l *Lab) MAC(ns, dev string) (net.HardwareAddr, error) {
	h, err := l.handle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	link, err := h.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", dev, ns, err)
	}
	return link.Attrs().HardwareAddr, nil
}

// LinkExists reports whether a device exists in a lab namespace.
func (l *Lab) LinkExists(ns, dev string) (bool, error) {
	h, err := l.handle(ns)
	if err != nil {
		return false, err
	}
	defer h.Close()
	_, err = h.LinkByName(dev)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	return err == nil, err
}

// Route is a route of a lab namespace's main table.
type Route struct {
	Dst      netip.Prefix  // destination
	Dev      string        // output device's name
	Protocol int           // rtnetlink protocol (flatnet's: 97)
	Scope    netlink.Scope // scope (link for flatnet's)
}

// String formats a route roughly like `ip route`.
func (r Route) String() string {
	return fmt.Sprintf("%s dev %s proto %d scope %s", r.Dst, r.Dev, r.Protocol, r.Scope)
}

// Routes lists the IPv4 and IPv6 routes of the main table of a lab
// namespace that have destination prefixes, with protocol proto (any when
// proto < 0).
func (l *Lab) Routes(ns string, proto int) ([]Route, error) {
	h, err := l.handle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var filter netlink.Route
	var mask uint64 = netlink.RT_FILTER_TABLE
	filter.Table = 254
	if proto >= 0 {
		filter.Protocol = netlink.RouteProtocol(proto)
		mask |= netlink.RT_FILTER_PROTOCOL
	}
	rs, err := h.RouteListFiltered(netlink.FAMILY_ALL, &filter, mask)
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	var out []Route
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		pfx, ok := ipNetPrefix(r.Dst)
		if !ok {
			continue
		}
		name, ok := names[r.LinkIndex]
		if !ok {
			name = fmt.Sprintf("if%d", r.LinkIndex)
			if link, err := h.LinkByIndex(r.LinkIndex); err == nil {
				name = link.Attrs().Name
			}
			names[r.LinkIndex] = name
		}
		out = append(out, Route{Dst: pfx, Dev: name, Protocol: int(r.Protocol), Scope: r.Scope})
	}
	return out, nil
}

// ipNetPrefix converts a *net.IPNet.
func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// addCloser records something Close must close.
func (l *Lab) addCloser(name string, fn func() error) *closer {
	c := &closer{name: name, fn: fn}
	l.mu.Lock()
	l.closers[c] = true
	l.mu.Unlock()
	return c
}

// dropCloser forgets a closer closed by its owner.
func (l *Lab) dropCloser(c *closer) {
	l.mu.Lock()
	delete(l.closers, c)
	l.mu.Unlock()
}
