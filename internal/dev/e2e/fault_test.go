//go:build integration

package e2e

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/dev/testenv"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The fault matrix: each subtest builds its own lab, breaks the node the
// way an operator, a network manager, a late NIC or a crash would, checks
// that the pods are reachable again with real packets and logs the
// recovery time as "recovery: <fault>: <duration>" (measured, never
// asserted; docs/reliability.md lists them). Run one with, for example,
//
//	go test -count=1 -tags integration -run 'TestFault/shim_deleted' -v ./internal/dev/e2e/

// deadline is how long any outcome may take before a test fails: a safety
// net, not a measurement.
const deadline = 10 * time.Second

// faultLab is a lab with pods, flatnet running and every pod reachable.
type faultLab struct {
	l    *lab.Lab
	fn   *lab.Process
	pods []*lab.Pod
	pr   *prober         // pings pods[0] from the node
	w    *lab.RouteWatch // the node's route changes since the pods were reachable
	h    *netlink.Handle // netlink in the node, for faults made without exec's delay
	shim string
}

// newFaultLab builds a lab with npods pods and starts flatnet with the
// extra configuration; it returns once every pod is reachable.
func newFaultLab(t *testing.T, opts lab.Options, config string, npods int) *faultLab {
	t.Helper()
	needFlatnet(t)
	f := &faultLab{l: lab.NewT(t, opts)}
	f.shim = f.l.Master + ".host"
	for i := range npods {
		f.pods = append(f.pods, mustPod(t, f.l, fmt.Sprintf("pod%d", i+1)))
	}
	f.fn = startFlatnet(t, f.l, config)
	for _, p := range f.pods {
		reachable(t, f.l, p, deadline)
	}
	f.h = nodeHandle(t, f.l)
	var err error
	if f.w, err = f.l.WatchRoutes(f.l.Node); err != nil {
		t.Fatal(err)
	}
	if len(f.pods) > 0 {
		f.pr = startProber(t, f.l, f.l.Node, f.pods[0].IP)
	}
	return f
}

// nodeHandle opens a netlink handle whose socket lives in the lab's node.
func nodeHandle(t testing.TB, l *lab.Lab) *netlink.Handle {
	t.Helper()
	var h *netlink.Handle
	err := l.Do(l.Node, func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		t.Fatalf("netlink in the node: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// link returns a device of the node, failing the test when it is missing.
func (f *faultLab) link(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := f.h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s in the node: %v", name, err)
	}
	return l
}

// allReachable checks every pod with packets and flatnet's route.
func (f *faultLab) allReachable(t testing.TB) {
	t.Helper()
	for _, p := range f.pods {
		reachable(t, f.l, p, deadline)
	}
	running(t, f.fn)
}

// hostRoute is a netlink host route to ip.
func hostRoute(ip netip.Addr) *net.IPNet {
	return &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}
}

func TestFault(t *testing.T) {
	t.Run("shim_deleted", faultShimDeleted)
	t.Run("shim_down", faultShimDown)
	t.Run("master_down_up", faultMasterDownUp)
	t.Run("master_replaced", faultMasterReplaced)
	t.Run("master_late", faultMasterLate)
	t.Run("route_deleted", faultRouteDeleted)
	t.Run("filter_flushed", faultFilterFlushed)
	t.Run("foreign_route", faultForeignRoute)
	t.Run("state_dir", faultStateDir)
	t.Run("state_dir_unreadable", faultStateDirUnreadable)
	t.Run("cni_config", faultCNIConfig)
	t.Run("sigkill_restart", faultSIGKILL)
	t.Run("sigterm_keep", faultSIGTERMKeep)
	t.Run("sigterm_teardown", faultSIGTERMTeardown)
	t.Run("sigterm_teardown_adopted", faultSIGTERMTeardownAdopted)
	t.Run("ip_reused", faultIPReused)
	t.Run("change_failed", faultChangeFailed)
	t.Run("change_failed_retried", faultChangeFailedRetried)
	t.Run("churn", faultChurn)
}

// shim deleted (`ip link del`): recreated with the same MAC, routes back.
func faultShimDeleted(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, "", 2)
	shim := f.link(t, f.shim)
	mac := shim.Attrs().HardwareAddr

	t0 := time.Now()
	if err := f.h.LinkDel(shim); err != nil {
		t.Fatal(err)
	}
	recovery(t, f.l, f.w, f.pr, f.pods[0], "shim deleted", t0, deadline)
	f.allReachable(t)
	again := f.link(t, f.shim)
	if again.Attrs().Index == shim.Attrs().Index {
		t.Errorf("the shim has its old ifindex %d: it was not recreated", shim.Attrs().Index)
	}
	if !bytes.Equal(again.Attrs().HardwareAddr, mac) {
		t.Errorf("the shim came back with MAC %s, was %s", again.Attrs().HardwareAddr, mac)
	}
	if n := countLog(f.fn, "shim "+f.shim+" created"); n != 2 {
		t.Errorf("shim created %d times, want 2 (start and after the deletion)", n)
	}
}

// shim set down by hand: set up again; admin-down flushed its IPv4 routes,
// which come back.
func faultShimDown(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, "", 2)
	shim := f.link(t, f.shim)
	t0 := time.Now()
	if err := f.h.LinkSetDown(shim); err != nil {
		t.Fatal(err)
	}
	recovery(t, f.l, f.w, f.pr, f.pods[0], "shim set down", t0, deadline)
	f.allReachable(t)
	if again := f.link(t, f.shim); again.Attrs().Index != shim.Attrs().Index || again.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("shim after set down: index %d (was %d), flags %v", again.Attrs().Index, shim.Attrs().Index, again.Attrs().Flags)
	}
	waitLog(t, f.fn, "shim "+f.shim+" was down; set up", deadline)
}

// master down, then up: flatnet's routes never leave (none is deleted and
// added again: a route set compared before and after could not tell), and
// when the carrier comes back flatnet flushes the shim's neighbour
// entries, so a stale entry left from the outage costs no pod its traffic.
func faultMasterDownUp(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, "", 2)
	p1, p2 := f.pods[0], f.pods[1]
	before := flatnetRoutes(t, f.l)
	master := f.link(t, f.l.Master)
	// The baseline: the node's own traffic on the master, to the gateway.
	gw := startProber(t, f.l, f.l.Node, f.l.Gateway)
	down := time.Now()
	if err := f.h.LinkSetDown(master); err != nil {
		t.Fatal(err)
	}
	// flatnet has read the kernel with the master down: it knows the shim
	// lost its carrier.
	readSince(t, f.l, f.w)
	if err := f.l.Ping(f.l.Node, p1.IP); err == nil {
		t.Logf("note: pod1 answered with the master down")
	}
	// An entry for pod2 with a MAC that is not pod2's, as an outage leaves
	// behind: STALE, so the kernel would use it (and wait seconds before
	// checking it) until someone flushes it.
	bogus := net.HardwareAddr{0x02, 0, 0, 0, 0xbe, 0xef}
	if _, err := f.l.Exec(f.l.Node, "ip", "neigh", "replace", p2.IP.String(), "lladdr", bogus.String(), "dev", f.shim, "nud", "stale"); err != nil {
		t.Fatal(err)
	}
	if !hasNeighbour(t, f.l, f.shim, p2.IP, bogus) {
		t.Fatalf("the stale entry for %s did not take", p2.IP)
	}
	running(t, f.fn)

	t0 := time.Now()
	if err := f.h.LinkSetUp(master); err != nil {
		t.Fatal(err)
	}
	if err := f.l.MasterUp(); err != nil { // the default route, as networking would
		t.Fatal(err)
	}
	flushed := "shim " + f.shim + " has its carrier back; its neighbour entries flushed"
	waitLog(t, f.fn, flushed, deadline)
	// flatnet logs an op once it is done: the entry is gone now.
	if hasNeighbour(t, f.l, f.shim, p2.IP, bogus) {
		t.Errorf("the shim still holds the stale entry %s lladdr %s after flatnet said it flushed its neighbours", p2.IP, bogus)
	}
	recovery(t, f.l, nil, f.pr, p1, "master down, then up", t0, deadline)
	// The node's own traffic to its gateway waits for the kernel's next ARP
	// retry (its neighbour entries went with the carrier too).
	if end, lost := gw.outage(t, "master down, then up (baseline)", t0, deadline); !end.IsZero() {
		t.Logf("recovery: master down, then up (baseline, the node to its gateway): %v (%d echo requests lost)", end.Sub(t0).Round(100*time.Microsecond), lost)
	}
	f.allReachable(t)
	if after := flatnetRoutes(t, f.l); !maps.Equal(before, after) {
		t.Errorf("flatnet's routes before the master went down: %v; after it came up: %v", before, after)
	}
	for _, e := range podRouteEvents(f.w, down, f.pods...) {
		t.Errorf("a pod's route changed while the master went down and up (flatnet's routes must stay as they are): %v", e)
	}
	logOnce(t, f.fn, flushed)
}

// hasNeighbour reports whether the node's neighbour table holds ip on dev
// with MAC mac.
func hasNeighbour(t testing.TB, l *lab.Lab, dev string, ip netip.Addr, mac net.HardwareAddr) bool {
	t.Helper()
	ns, err := l.Neighbours(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.Dev == dev && n.IP == ip && bytes.Equal(n.MAC, mac) {
			return true
		}
	}
	return false
}

// master deleted, later recreated with the same name (new ifindex): the
// shim is rebuilt on the new master.
func faultMasterReplaced(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, "", 2)
	old := f.link(t, f.l.Master)
	if err := f.h.LinkDel(old); err != nil { // takes the shim and the pods' macvlans with it
		t.Fatal(err)
	}
	waitFor(t, deadline, "the shim goes with its master", func() error {
		if ok, err := f.l.LinkExists(f.l.Node, f.shim); ok || err != nil {
			return fmt.Errorf("shim still there (%v)", err)
		}
		return nil
	})
	// flatnet has read the kernel without the master, before it comes back.
	readSince(t, f.l, f.w)
	running(t, f.fn)

	t0 := time.Now()
	if err := f.l.AddMaster(); err != nil {
		t.Fatal(err)
	}
	var shim netlink.Link
	waitFor(t, deadline, "the shim is rebuilt", func() (err error) {
		shim, err = f.h.LinkByName(f.shim)
		return err
	})
	rb := routeBack(t, f.w, f.pods[0].IP, t0, deadline)
	master := f.link(t, f.l.Master)
	if master.Attrs().Index == old.Attrs().Index {
		t.Fatalf("the new master has the old ifindex %d", old.Attrs().Index)
	}
	if shim.Attrs().ParentIndex != master.Attrs().Index {
		t.Errorf("shim's parent is ifindex %d, want the new master's %d", shim.Attrs().ParentIndex, master.Attrs().Index)
	}
	t.Logf("recovery: master replaced (new master to route back): %v", rb.Round(100*time.Microsecond))

	// The pods lost their macvlans with the old master; the runtime gives
	// them new ones on the new master, keeping their addresses.
	for i, p := range f.pods {
		replumb(t, f.l, p, fmt.Sprintf("fnt%d", i))
	}
	t1 := time.Now()
	recovery(t, f.l, nil, f.pr, f.pods[0], "master replaced (pod replumbed to pod answers)", t1, deadline)
	f.allReachable(t)
}

// replumb gives a pod a new macvlan on the node's master with its address,
// as a runtime recreating the sandbox's interface would, and announces it
// with an ARP request from the pod as the macvlan plugin's gratuitous ARP
// does (without it the node's pending neighbour entry for the pod waits
// for the kernel's next ARP retry, up to a second).
func replumb(t testing.TB, l *lab.Lab, p *lab.Pod, tmp string) {
	t.Helper()
	steps := []struct {
		ns   string
		argv []string
	}{
		{l.Node, []string{"ip", "link", "add", tmp, "link", l.Master, "type", "macvlan", "mode", "bridge"}},
		{l.Node, []string{"ip", "link", "set", tmp, "netns", p.NS}},
		{p.NS, []string{"ip", "link", "set", tmp, "name", p.IfName}},
		{p.NS, []string{"ip", "addr", "add", p.IPs[0].String(), "dev", p.IfName}},
		{p.NS, []string{"ip", "link", "set", p.IfName, "up"}},
		{p.NS, []string{"ip", "route", "add", "default", "via", l.Gateway.String()}},
	}
	for _, s := range steps {
		if _, err := l.Exec(s.ns, s.argv...); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _, _ = l.ARPProbe(p.NS, p.IfName, l.NodeIP) }()
}

// master absent when flatnet starts, appearing later: READY at once with a
// waiting status; works once it appears.
func faultMasterLate(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{NoMaster: true})
	if _, err := l.WriteFlatnetConfig(""); err != nil {
		t.Fatal(err)
	}
	n := listenNotify(t, filepath.Join(l.Dir, "notify.sock"))
	start := time.Now()
	fn := launchFlatnet(t, l, "NOTIFY_SOCKET="+n.path)
	ready := n.wait(t, "READY=1", deadline)
	t.Logf("recovery: master absent at start (start to READY=1): %v", ready.Sub(start).Round(100*time.Microsecond))
	waitFor(t, deadline, "STATUS says it waits for the master", func() error {
		if s := n.last("STATUS="); !strings.Contains(s, "waiting for "+l.Master+" to appear") {
			return fmt.Errorf("STATUS=%q", s)
		}
		return nil
	})
	sts, code := status(t, l)
	if len(sts) != 1 || !strings.Contains(sts[0].Waiting, "waiting for "+l.Master) || code != 1 {
		t.Errorf("flatnet status with no master: %+v (exit %d), want waiting for %s (exit 1)", sts, code, l.Master)
	}

	// The sleep is the scenario, not a wait for anything: the master
	// appears "minutes later", scaled down.
	time.Sleep(time.Second)
	running(t, fn)
	t0 := time.Now()
	if err := l.AddMaster(); err != nil {
		t.Fatal(err)
	}
	h := nodeHandle(t, l)
	for {
		if _, err := h.LinkByName(l.Master + ".host"); err == nil {
			break
		}
		if time.Since(t0) > deadline {
			t.Fatalf("no shim %v after the master appeared", deadline)
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("recovery: master absent at start (master appears to shim made): %v", time.Since(t0).Round(100*time.Microsecond))
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	first := lab.SeedRange().RangeStart // host-local's first address
	pr := startProber(t, l, l.Node, first)
	t1 := time.Now()
	p := mustPod(t, l, "pod1")
	if p.IP != first {
		t.Fatalf("the first pod got %s, not %s", p.IP, first)
	}
	recovery(t, l, w, pr, p, "master absent at start (pod added, from CNI ADD)", t1, deadline)
	waitFor(t, deadline, "STATUS counts the pod", func() error {
		if s := n.last("STATUS="); !strings.Contains(s, "1 pod routes via "+l.Master+".host") {
			return fmt.Errorf("STATUS=%q", s)
		}
		return nil
	})
	if c := n.count("READY=1"); c != 1 {
		t.Errorf("READY=1 sent %d times, want once", c)
	}
}

// notifyListener is a stand-in for systemd's notification socket.
type notifyListener struct {
	path string
	conn *net.UnixConn
	msgs chan string
	got  []notifyMsg
}

type notifyMsg struct {
	at  time.Time
	msg string
}

func listenNotify(t testing.TB, path string) *notifyListener {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifyListener{path: path, conn: c, msgs: make(chan string, 256)}
	go func() {
		defer close(n.msgs)
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			for line := range strings.SplitSeq(string(buf[:k]), "\n") {
				n.msgs <- line
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return n
}

// drain takes the messages that came so far.
func (n *notifyListener) drain() {
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				return
			}
			n.got = append(n.got, notifyMsg{time.Now(), m})
		default:
			return
		}
	}
}

// wait returns when a message equal to msg first came.
func (n *notifyListener) wait(t testing.TB, msg string, timeout time.Duration) time.Time {
	t.Helper()
	var at time.Time
	waitFor(t, timeout, "flatnet notifies "+msg, func() error {
		n.drain()
		for _, m := range n.got {
			if m.msg == msg {
				at = m.at
				return nil
			}
		}
		return errors.New("not yet")
	})
	return at
}

// last returns the last message with prefix, "" when none came.
func (n *notifyListener) last(prefix string) string {
	n.drain()
	for _, m := range slices.Backward(n.got) {
		if strings.HasPrefix(m.msg, prefix) {
			return m.msg
		}
	}
	return ""
}

// count counts the messages equal to msg.
func (n *notifyListener) count(msg string) int {
	n.drain()
	c := 0
	for _, m := range n.got {
		if m.msg == msg {
			c++
		}
	}
	return c
}

// a flatnet route deleted by hand or by a network manager: restored.
// faultFilterFlushed: a firewall service reloads with `flush ruleset`
// (Debian's /etc/nftables.conf starts so), which deletes flatnet's tables
// with every other: flatnet hears it from nftables and writes them again,
// once; then the same with only one of its chains deleted, and with its
// tables flushed (`nft flush table` keeps the chains, empty: still
// flatnet's, written again). Under the shim
// guard (the default; dual stack, so the shim has its ingress chain too)
// and under the egress filter.
func faultFilterFlushed(t *testing.T) {
	t.Run("shim", func(t *testing.T) {
		f := newFaultLab(t, dualStack(nil), "", 1)
		probe := nftTableHas(f.l, "arp", `oifname "`+f.shim+`" arp operation request arp saddr ip set 0.0.0.0`)
		ingress := nftTableHas(f.l, "netdev", `hook ingress device "`+f.shim+`"`)
		waitFor(t, deadline, "the shim guard's chains", func() error { return cmp.Or(probe(), ingress()) })
		logs := []string{"ARP rule set for " + f.shim, "ingress chain set on " + f.shim}
		// How often each is logged by then: once at start, then the flush
		// takes both, each deletion one.
		wants := [][]int{{2, 2}, {3, 2}, {3, 3}, {4, 3}, {4, 4}}
		for i, cmd := range [][]string{
			{"nft", "flush", "ruleset"},
			{"nft", "delete", "chain", "arp", "flatnet", f.shim},
			{"nft", "delete", "chain", "netdev", "flatnet", f.shim},
			{"nft", "flush", "table", "arp", "flatnet"},
			{"nft", "flush", "table", "netdev", "flatnet"},
		} {
			t0 := time.Now()
			if _, err := f.l.Exec(f.l.Node, cmd...); err != nil {
				t.Fatal(err)
			}
			waitFor(t, deadline, "the shim guard's chains are back after "+strings.Join(cmd, " "), func() error { return cmp.Or(probe(), ingress()) })
			t.Logf("recovery: %s: chains back within %v", strings.Join(cmd, " "), time.Since(t0).Round(100*time.Microsecond))
			waitFor(t, deadline, "flatnet logs it", func() error {
				for j, msg := range logs {
					if n := countLog(f.fn, msg); n < wants[i][j] {
						return fmt.Errorf("%q logged %d times, want %d", msg, n, wants[i][j])
					}
				}
				return nil
			})
		}
		for _, msg := range logs {
			if n := countLog(f.fn, msg); n != 4 {
				t.Errorf("%q logged %d times, want 4: once at start, once per removal", msg, n)
			}
		}
		if out, err := f.l.Exec(f.l.Node, "ip", "-6", "neigh", "show", "proxy", "dev", f.shim); err != nil || !strings.Contains(out, f.l.Opts.NodeAddr6.Addr().String()) {
			t.Errorf("the shim's proxy entry went with its ingress chain: %q %v", out, err)
		}
	})
	t.Run("filter", func(t *testing.T) {
		f := newFaultLab(t, lab.Options{}, "lan_guard = \"filter\"\n", 1)
		mac := mustMAC(t, f.l, f.l.Node, f.shim)
		waitFor(t, deadline, "the egress filter", nftHas(f.l, "ether saddr "+mac.String()))
		for i, cmd := range [][]string{
			{"nft", "flush", "ruleset"},
			{"nft", "delete", "chain", "netdev", "flatnet", f.l.Master},
		} {
			t0 := time.Now()
			if _, err := f.l.Exec(f.l.Node, cmd...); err != nil {
				t.Fatal(err)
			}
			waitFor(t, deadline, "the egress filter is back after "+strings.Join(cmd, " "), nftHas(f.l, "ether saddr "+mac.String()))
			t.Logf("recovery: %s: filter back within %v", strings.Join(cmd, " "), time.Since(t0).Round(100*time.Microsecond))
			waitFor(t, deadline, "flatnet logs it", func() error {
				if n := countLog(f.fn, "egress filter set"); n < i+2 {
					return fmt.Errorf("egress filter set logged %d times", n)
				}
				return nil
			})
		}
		if n := countLog(f.fn, "egress filter set"); n != 3 {
			t.Errorf("egress filter set %d times, want 3: once at start, once per removal", n)
		}
	})
}

func faultRouteDeleted(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, "", 2)
	t0 := time.Now()
	if err := f.h.RouteDel(&netlink.Route{Dst: hostRoute(f.pods[0].IP), Table: unix.RT_TABLE_MAIN, Scope: netlink.SCOPE_NOWHERE}); err != nil {
		t.Fatal(err)
	}
	recovery(t, f.l, f.w, f.pr, f.pods[0], "route deleted", t0, deadline)
	f.allReachable(t)

	// Every route of flatnet's at once, one by one, as a network manager
	// removing "foreign" routes does.
	t0 = time.Now()
	for ip := range flatnetRoutes(t, f.l) {
		if err := f.h.RouteDel(&netlink.Route{Dst: hostRoute(ip), Table: unix.RT_TABLE_MAIN, Scope: netlink.SCOPE_NOWHERE, Protocol: flatnetProto}); err != nil {
			t.Fatal(err)
		}
	}
	recovery(t, f.l, f.w, f.pr, f.pods[0], "all routes deleted", t0, deadline)
	f.allReachable(t)
	if n := countLog(f.fn, "route "+f.pods[0].IP.String()+"/32 dev "+f.shim+" added"); n != 3 {
		t.Errorf("pod1's route added %d times, want 3", n)
	}
}

// a foreign route (another protocol) to a pod address: reported in the log
// and the status, neither replaced nor deleted; once it goes, flatnet's
// own comes back.
func faultForeignRoute(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, `resync_interval = "1s"`, 2)
	p1, p2 := f.pods[0], f.pods[1]
	shim := f.link(t, f.shim)

	// The operator takes pod1 over: same destination, proto static.
	taken := time.Now()
	foreign := &netlink.Route{Dst: hostRoute(p1.IP), LinkIndex: shim.Attrs().Index, Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_STATIC, Table: unix.RT_TABLE_MAIN}
	if err := f.h.RouteReplace(foreign); err != nil {
		t.Fatal(err)
	}
	// And adds a second route to pod2 beside flatnet's, with a worse metric.
	extra := &netlink.Route{Dst: hostRoute(p2.IP), LinkIndex: shim.Attrs().Index, Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_STATIC, Priority: 100, Table: unix.RT_TABLE_MAIN}
	if err := f.h.RouteAdd(extra); err != nil {
		t.Fatal(err)
	}
	msg1 := "not routing " + p1.IP.String() + " of network default: a route flatnet does not own is in the way"
	msg2 := "not routing " + p2.IP.String() + " of network default: a route flatnet does not own is in the way"
	waitLog(t, f.fn, msg1, deadline)
	waitLog(t, f.fn, msg2, deadline)
	resyncs(t, f.fn, 3)
	hup(t, f.fn)
	resyncs(t, f.fn, 1)
	logOnce(t, f.fn, msg1, msg2)

	sts, _ := status(t, f.l)
	if len(sts) != 1 || !slices.Contains(sts[0].Conflicts, p1.IP) || !slices.Contains(sts[0].Conflicts, p2.IP) {
		t.Errorf("flatnet status: %+v, want conflicts %s and %s", sts, p1.IP, p2.IP)
	}
	rs, err := f.l.Routes(f.l.Node, -1)
	if err != nil {
		t.Fatal(err)
	}
	var p1Routes, p2Routes []lab.Route
	for _, r := range rs {
		switch r.Dst {
		case netip.PrefixFrom(p1.IP, 32):
			p1Routes = append(p1Routes, r)
		case netip.PrefixFrom(p2.IP, 32):
			p2Routes = append(p2Routes, r)
		}
	}
	if len(p1Routes) != 1 || p1Routes[0].Protocol != unix.RTPROT_STATIC {
		t.Errorf("routes to %s: %v, want only the operator's (proto static)", p1.IP, p1Routes)
	}
	if len(p2Routes) != 2 {
		t.Errorf("routes to %s: %v, want flatnet's and the operator's", p2.IP, p2Routes)
	}
	for _, e := range f.w.Events() {
		if e.Deleted && e.Time.After(taken) {
			t.Errorf("a route was deleted after the operator's were added: %v", e)
		}
	}
	for _, p := range f.pods {
		if err := f.l.Ping(f.l.Node, p.IP); err != nil {
			t.Errorf("ping %s with the operator's routes: %v", p.Name, err)
		}
	}

	// The operator removes theirs: flatnet routes pod1 itself again.
	t0 := time.Now()
	if err := f.h.RouteDel(foreign); err != nil {
		t.Fatal(err)
	}
	recovery(t, f.l, f.w, f.pr, p1, "foreign route removed", t0, deadline)
	if err := f.h.RouteDel(extra); err != nil {
		t.Fatal(err)
	}
	f.allReachable(t)
	waitFor(t, deadline, "no conflicts in the status", func() error {
		if sts, _ := status(t, f.l); len(sts) != 1 || len(sts[0].Conflicts) != 0 || sts[0].Routed != 2 {
			return fmt.Errorf("%+v", sts)
		}
		return nil
	})
}

// state dir absent at start, created later; removed and recreated;
// renamed away and back: followed without a restart.
func faultStateDir(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, "", 0)
	dir := f.l.StateDir()
	// flatnet's first pass has read the state dir, absent, and watches the
	// nearest directory above it.
	waitLog(t, f.fn, "msg=reconciled", deadline)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state dir %s exists before the first pod: %v", dir, err)
	}
	first := lab.SeedRange().RangeStart // host-local's first address
	pr := startProber(t, f.l, f.l.Node, first)
	t0 := time.Now()
	p1 := mustPod(t, f.l, "pod1") // host-local creates the directory
	if p1.IP != first {
		t.Fatalf("the first pod got %s, not %s", p1.IP, first)
	}
	f.pods = append(f.pods, p1)
	recovery(t, f.l, f.w, pr, p1, "state dir created after start (CNI ADD to pod answers)", t0, deadline)

	saved := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			saved[e.Name()] = b
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, deadline, "pod1's route goes with the state dir", notRouted(f.l, p1.IP.String()))
	running(t, f.fn)
	t0 = time.Now()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range saved {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recovery(t, f.l, f.w, pr, p1, "state dir removed and recreated", t0, deadline)

	// Renamed away (a backup, say) and back.
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, deadline, "pod1's route goes with the renamed dir", notRouted(f.l, p1.IP.String()))
	t0 = time.Now()
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	recovery(t, f.l, f.w, pr, p1, "state dir renamed away and back", t0, deadline)

	// And host-local keeps working in the recreated directory.
	p2 := mustPod(t, f.l, "pod2")
	f.pods = append(f.pods, p2)
	f.allReachable(t)
}

// a CNI config added, changed or removed while running: networks picked
// up and dropped without a restart.
func faultCNIConfig(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{})
	p1 := mustPod(t, l, "pod1")
	p2 := mustPod(t, l, "pod2")
	orig, err := os.ReadFile(l.ConfList)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(l.ConfList); err != nil {
		t.Fatal(err)
	}
	fn := startFlatnet(t, l, "")
	// The first pass read the CNI dir and the state dirs; a route it
	// wrongly made would be in the kernel by now (a pass logs after acting).
	waitLog(t, fn, "msg=reconciled", deadline)
	if rs := flatnetRoutes(t, l); len(rs) != 0 {
		t.Fatalf("routes with no CNI config: %v", rs)
	}
	pr := startProber(t, l, l.Node, p1.IP)
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}

	// Added.
	t0 := time.Now()
	if err := writeAtomic(l.ConfList, orig); err != nil {
		t.Fatal(err)
	}
	recovery(t, l, w, pr, p1, "CNI config added", t0, deadline)
	reachable(t, l, p2, deadline)

	// Changed: the range shrinks to pod1's address alone.
	narrowed := bytes.Replace(orig, []byte(`"rangeEnd": "192.168.1.254"`), []byte(`"rangeEnd": "`+p1.IP.String()+`"`), 1)
	if bytes.Equal(narrowed, orig) {
		t.Fatalf("no rangeEnd to change in %s", orig)
	}
	t0 = time.Now()
	if err := writeAtomic(l.ConfList, narrowed); err != nil {
		t.Fatal(err)
	}
	t.Logf("recovery: CNI config changed (range narrowed): route gone %v", routeGone(t, w, p2.IP, t0, deadline).Round(10*time.Microsecond))
	reachable(t, l, p1, deadline)
	waitLog(t, fn, "not routing "+p2.IP.String()+" of network default: outside the network's ranges", deadline)
	pr2 := startProber(t, l, l.Node, p2.IP)
	t0 = time.Now()
	if err := writeAtomic(l.ConfList, orig); err != nil {
		t.Fatal(err)
	}
	recovery(t, l, w, pr2, p2, "CNI config changed (range widened again)", t0, deadline)

	// Removed: the network, its routes and its shim go.
	t0 = time.Now()
	if err := os.Remove(l.ConfList); err != nil {
		t.Fatal(err)
	}
	t.Logf("recovery: CNI config removed: route gone %v", routeGone(t, w, p1.IP, t0, deadline).Round(10*time.Microsecond))
	for _, p := range []*lab.Pod{p1, p2} {
		waitFor(t, deadline, p.Name+"'s route goes with the CNI config", notRouted(l, p.IP.String()))
	}
	waitFor(t, deadline, "the shim goes with the last network", func() error {
		if ok, err := l.LinkExists(l.Node, l.Master+".host"); ok || err != nil {
			return fmt.Errorf("shim still there (%v)", err)
		}
		return nil
	})
	if err := l.Ping(l.Node, p1.IP); err == nil {
		t.Errorf("the node still reaches pod1 with its network gone")
	}
	// And back once more.
	t0 = time.Now()
	if err := writeAtomic(l.ConfList, orig); err != nil {
		t.Fatal(err)
	}
	recovery(t, l, w, pr, p1, "CNI config removed and added back", t0, deadline)
	reachable(t, l, p2, deadline)
	running(t, fn)
}

// writeAtomic writes a file by renaming a temporary one over it, as config
// management tools do.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// SIGKILL, then start again: the new process adopts every route; none is
// deleted and added again, no packet is lost.
func faultSIGKILL(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, `resync_interval = "1s"`, 2)
	p1, p2 := f.pods[0], f.pods[1]
	shim := f.link(t, f.shim)
	if err := f.fn.Stop(syscall.SIGKILL); err == nil {
		t.Fatalf("flatnet exited cleanly on SIGKILL")
	}
	killed := time.Now()
	// While it is dead, a pod comes and a pod goes.
	p3 := mustPod(t, f.l, "pod3")
	if err := f.l.DelPod(p2); err != nil {
		t.Fatal(err)
	}
	f.pods = []*lab.Pod{p1, p3}

	t0 := time.Now()
	fn := launchFlatnet(t, f.l)
	f.fn = fn
	rb := routeBack(t, f.w, p3.IP, t0, deadline)
	t.Logf("recovery: SIGKILL, then start (start to the new pod's route): %v", rb.Round(100*time.Microsecond))
	waitFor(t, deadline, "the released pod's route goes", notRouted(f.l, p2.IP.String()))
	resyncs(t, fn, 3)
	f.allReachable(t)

	for _, e := range f.w.Events() {
		if e.Dst == netip.PrefixFrom(p1.IP, 32) {
			t.Errorf("pod1's route changed across the restart: %v", e)
		}
		if e.Deleted && e.Dst != netip.PrefixFrom(p2.IP, 32) {
			t.Errorf("route deleted across the restart: %v", e)
		}
	}
	if again := f.link(t, f.shim); again.Attrs().Index != shim.Attrs().Index {
		t.Errorf("the shim was recreated (ifindex %d, was %d)", again.Attrs().Index, shim.Attrs().Index)
	}
	// Every request sent since the kill has its reply, or a long deadline
	// passed for it.
	lost, sent := f.pr.settle(killed, deadline)
	t.Logf("SIGKILL, then start: %d of %d echo requests to pod1 unanswered", lost, sent)
	if lost > 0 {
		t.Errorf("%d of %d echo requests to pod1 went unanswered across the restart", lost, sent)
	}
	if n := countLog(fn, `msg="shim `); n != 0 {
		t.Errorf("the new process changed the shim: %d shim lines in its log", n)
	}
}

// SIGTERM with on_stop = "keep": routes and shim stay, pods reachable.
func faultSIGTERMKeep(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, `on_stop = "keep"`, 2)
	before := flatnetRoutes(t, f.l)
	stopped := time.Now()
	if err := f.fn.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("flatnet on SIGTERM: %v", err)
	}
	waitLog(t, f.fn, "stopping; shims and routes stay", deadline)
	if after := flatnetRoutes(t, f.l); !maps.Equal(before, after) {
		t.Errorf("routes before SIGTERM %v, after %v", before, after)
	}
	if len(f.w.Deleted()) != 0 {
		t.Errorf("routes deleted on SIGTERM with on_stop = keep: %v", f.w.Deleted())
	}
	for _, p := range f.pods {
		if err := f.l.Ping(f.l.Node, p.IP); err != nil {
			t.Errorf("ping %s with flatnet stopped: %v", p.Name, err)
		}
	}
	lost, sent := f.pr.settle(stopped, deadline)
	if lost > 0 {
		t.Errorf("%d of %d echo requests to pod1 unanswered after SIGTERM with on_stop = keep", lost, sent)
	}
}

// nodeState is what teardown must leave alone: every route flatnet does
// not own and every device but its shim.
func nodeState(t testing.TB, f *faultLab, shim string) (routes []string, links []string) {
	t.Helper()
	rs, err := f.l.Routes(f.l.Node, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Protocol != flatnetProto && r.Dev != shim { // the shim's own fe80::/64 goes with it
			routes = append(routes, r.String())
		}
	}
	ls, err := f.h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Attrs().Name != shim {
			links = append(links, fmt.Sprintf("%d %s %s %s", l.Attrs().Index, l.Attrs().Name, l.Type(), l.Attrs().HardwareAddr))
		}
	}
	slices.Sort(routes)
	slices.Sort(links)
	return routes, links
}

// SIGTERM with on_stop = "teardown": flatnet's routes and shim go,
// nothing else.
func faultSIGTERMTeardown(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, `on_stop = "teardown"`, 2)
	// Things that are not flatnet's: a macvlan of someone else's, a static
	// route through it and one to a pod-like address.
	for _, c := range [][]string{
		{"ip", "link", "add", "eno1.other", "link", f.l.Master, "type", "macvlan", "mode", "bridge"},
		{"ip", "link", "set", "eno1.other", "up"},
		{"ip", "route", "add", "192.168.7.7", "dev", "eno1.other", "proto", "static"},
		{"ip", "route", "add", "192.168.1.250", "dev", "eno1.other", "proto", "boot"},
		{"nft", "add", "table", "netdev", "others"},
	} {
		if _, err := f.l.Exec(f.l.Node, c...); err != nil {
			t.Fatal(err)
		}
	}
	routes, links := nodeState(t, f, f.shim)
	if err := f.fn.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("flatnet on SIGTERM: %v", err)
	}
	if rs := flatnetRoutes(t, f.l); len(rs) != 0 {
		t.Errorf("flatnet's routes after teardown: %v", rs)
	}
	if ok, _ := f.l.LinkExists(f.l.Node, f.shim); ok {
		t.Errorf("shim %s still there after teardown", f.shim)
	}
	if got := leftovers(t, f.l, f.shim); len(got) > 0 {
		t.Errorf("left after teardown: %q", got)
	}
	if _, err := f.l.Exec(f.l.Node, "nft", "list", "table", "netdev", "others"); err != nil {
		t.Errorf("teardown removed a foreign nftables table: %v", err)
	}
	r2, l2 := nodeState(t, f, f.shim)
	if !slices.Equal(routes, r2) {
		t.Errorf("other routes changed by teardown:\nbefore %q\nafter  %q", routes, r2)
	}
	if !slices.Equal(links, l2) {
		t.Errorf("other devices changed by teardown:\nbefore %q\nafter  %q", links, l2)
	}
	if err := f.l.Ping(f.l.Node, f.pods[0].IP); err == nil {
		t.Errorf("the node still reaches pod1 after teardown")
	}
	waitLog(t, f.fn, "removing flatnet's routes and shims", deadline)
}

// SIGTERM with on_stop = "teardown" and a shim the operator made: the
// routes go, the shim stays.
func faultSIGTERMTeardownAdopted(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{})
	p1 := mustPod(t, l, "pod1")
	shim := l.Master + ".host"
	for _, c := range [][]string{
		{"ip", "link", "add", shim, "link", l.Master, "type", "macvlan", "mode", "bridge"},
		{"ip", "link", "set", shim, "up"},
	} {
		if _, err := l.Exec(l.Node, c...); err != nil {
			t.Fatal(err)
		}
	}
	h := nodeHandle(t, l)
	made, err := h.LinkByName(shim)
	if err != nil {
		t.Fatal(err)
	}
	fn := startFlatnet(t, l, `on_stop = "teardown"`)
	reachable(t, l, p1, deadline)
	if used, err := h.LinkByName(shim); err != nil || used.Attrs().Index != made.Attrs().Index {
		t.Fatalf("flatnet did not adopt the operator's shim: %v %v", used, err)
	}
	if err := fn.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("flatnet on SIGTERM: %v", err)
	}
	if rs := flatnetRoutes(t, l); len(rs) != 0 {
		t.Errorf("flatnet's routes after teardown: %v", rs)
	}
	if ok, err := l.LinkExists(l.Node, shim); !ok {
		t.Errorf("teardown removed the operator's shim %s (%v)", shim, err)
	}
	if got := leftovers(t, l, shim); len(got) > 0 {
		t.Errorf("left after teardown: %q", got)
	}
}

// an IP released and at once given to a new pod with a new MAC (a
// one-address range): the node reaches the new pod at once, not after a
// stale neighbour entry times out.
func faultIPReused(t *testing.T) {
	one := lab.SeedRange()
	one.RangeEnd = one.RangeStart
	// The macvlan plugin announces a new pod with a gratuitous ARP, which
	// updates the node's entry by itself; a node that drops gratuitous ARP
	// (a common hardening) relies on flatnet flushing the entry.
	opts := lab.Options{Ranges: []lab.Range{one}, NodeSysctls: map[string]string{"net.ipv4.conf.default.drop_gratuitous_arp": "1"}}
	f := newFaultLab(t, opts, "", 1)
	f.pr.stop()
	old := f.pods[0]
	for i, paused := range []bool{false, true} {
		// The node has just talked to the pod: its neighbour entry holds
		// the pod's MAC.
		if err := f.l.Ping(f.l.Node, old.IP); err != nil {
			t.Fatal(err)
		}
		if paused {
			// flatnet sees the release and the new allocation in one pass.
			if err := f.fn.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.l.DelPod(old); err != nil {
			t.Fatal(err)
		}
		p := mustPod(t, f.l, fmt.Sprintf("new%d", i))
		if p.IP != old.IP || bytes.Equal(p.MAC, old.MAC) {
			t.Fatalf("new pod got %s %s; want %s with a new MAC (old %s)", p.IP, p.MAC, old.IP, old.MAC)
		}
		what := "IP reused by a new pod"
		if paused {
			what += " (one pass sees both)"
			if err := f.fn.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
		t0 := time.Now()
		pr := startProber(t, f.l, f.l.Node, p.IP)
		recovery(t, f.l, nil, pr, p, what, t0, deadline)
		pr.stop()
		out, err := f.l.Exec(f.l.Node, "ip", "neigh", "show", p.IP.String(), "dev", f.shim)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, p.MAC.String()) {
			t.Errorf("neighbour entry for %s: %q, want the new pod's MAC %s", p.IP, out, p.MAC)
		}
		old = p
	}
	running(t, f.fn)
}

// 1,000 allocations and releases interleaved at random (about 25 s here),
// with real pods coming and going among them: flatnet converges to exactly
// the set of files, no route leaked or missing.
func faultChurn(t *testing.T) {
	testenv.SkipShort(t, "about 25 s of churn")
	r := lab.SeedRange()
	r.RangeEnd = netip.MustParseAddr("192.168.3.254")
	f := newFaultLab(t, lab.Options{Ranges: []lab.Range{r}}, "", 1)
	dir := f.l.StateDir()
	// Files go to 192.168.2.1-192.168.3.254, pods to 192.168.1.x.
	var pool []netip.Addr
	for a := netip.MustParseAddr("192.168.2.1"); a.Compare(netip.MustParseAddr("192.168.3.254")) <= 0; a = a.Next() {
		pool = append(pool, a)
	}
	live := map[netip.Addr]bool{}
	var pods []*lab.Pod
	allocs, releases, podOps := 0, 0, 0
	start := time.Now()
	// A count, not a time: a slower machine takes longer over the same work.
	for step := 1; allocs < 1000; step++ {
		// Random pacing is the workload under test, not a wait for anything.
		time.Sleep(time.Duration(rand.N(20)) * time.Millisecond)
		switch {
		case step%50 == 0:
			podOps++
			if len(pods) < 3 && rand.N(2) == 0 || len(pods) == 0 {
				pods = append(pods, mustPod(t, f.l, fmt.Sprintf("churn%d", podOps)))
			} else {
				i := rand.N(len(pods))
				if err := f.l.DelPod(pods[i]); err != nil {
					t.Fatal(err)
				}
				pods = slices.Delete(pods, i, i+1)
			}
		case len(live) == 0 || rand.N(2) == 0 && len(live) < len(pool):
			ip := pool[rand.N(len(pool))]
			if live[ip] {
				continue
			}
			ok, err := writeAlloc(dir, ip, containerID())
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				live[ip] = true
				allocs++
			}
		default:
			ips := slices.Collect(maps.Keys(live))
			ip := ips[rand.N(len(ips))]
			if err := releaseAlloc(dir, ip); err != nil {
				t.Fatal(err)
			}
			delete(live, ip)
			releases++
		}
	}
	t0 := time.Now()
	t.Logf("churn: %d allocations, %d releases, %d pod adds/deletes in %v; %d files left", allocs, releases, podOps, t0.Sub(start).Round(time.Millisecond), len(live))
	want := func() (map[netip.Addr]bool, error) {
		out := map[netip.Addr]bool{}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if ip, err := netip.ParseAddr(e.Name()); err == nil {
				out[ip] = true
			}
		}
		return out, nil
	}
	converged := func() error {
		files, err := want()
		if err != nil {
			return err
		}
		routes := flatnetRoutes(t, f.l)
		var missing, leaked []netip.Addr
		for ip := range files {
			if routes[ip] != f.shim {
				missing = append(missing, ip)
			}
		}
		for ip := range routes {
			if !files[ip] {
				leaked = append(leaked, ip)
			}
		}
		if len(missing)+len(leaked) > 0 {
			return fmt.Errorf("%d files, %d routes; missing %v, leaked %v", len(files), len(routes), missing, leaked)
		}
		return nil
	}
	waitFor(t, deadline, "routes are exactly the files", converged)
	t.Logf("recovery: churn (last change to converged): %v", time.Since(t0).Round(time.Millisecond))
	// A full pass (the one SIGHUP makes) must find nothing to do, and
	// leave the routes as they are.
	pass := hup(t, f.fn)
	if err := converged(); err != nil {
		t.Errorf("after a full resync: %v", err)
	}
	if !strings.Contains(pass, " ops=0 ") {
		t.Errorf("the full pass after SIGHUP changed something: %s", pass)
	}
	f.pods = append(f.pods, pods...)
	f.allReachable(t)
	if n := countLog(f.fn, "level=ERROR"); n != 0 {
		t.Errorf("%d errors logged during churn", n)
	}
}
