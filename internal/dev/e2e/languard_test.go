//go:build integration

package e2e

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"golang.org/x/sys/unix"
)

// The LAN guard (docs/lan-guard.md). When the node first reaches a pod, its
// shim asks for the pod's MAC with a broadcast ARP request that also
// leaves through the NIC; unguarded, it says "tell <node address>" from the
// shim's MAC, every Linux host on the LAN that knows the node moves it to
// the shim's MAC, and with rp_filter 1 or 2 the node drops what they send
// it. These tests make the LAN ping the node every 10 ms while the node
// reaches new pods, count the lost echo requests, and capture every frame
// the node sends onto the LAN.

// lanProbeEvery is how often the LAN pings the node.
const lanProbeEvery = 10 * time.Millisecond

// rpFilter returns node sysctls setting rp_filter to v in "all" and
// "default" (so the NIC and the shim get it too).
func rpFilter(v string) map[string]string {
	return map[string]string{"net.ipv4.conf.all.rp_filter": v, "net.ipv4.conf.default.rp_filter": v}
}

// lanView is what the LAN saw of one node while it reached new pods.
type lanView struct {
	from       *lab.Lab // the LAN host's lab, and its namespace
	ns         string
	lost, sent int
	frames     []lab.Frame // every frame the node sent onto the LAN
	nic, shim  net.HardwareAddr
	nodeAddrs  []netip.Addr
}

// claims are the frames from the shim's MAC that name one of the node's
// addresses as ARP sender or target, or advertise one of them.
func (v lanView) claims() []lab.Frame {
	var out []lab.Frame
	for _, f := range v.frames {
		if !bytes.Equal(f.Src, v.shim) {
			continue
		}
		if slices.Contains(v.nodeAddrs, f.ARPSender) || slices.Contains(v.nodeAddrs, f.ARPTarget) ||
			(f.ICMP6Type == 136 && slices.Contains(v.nodeAddrs, f.NDTarget)) {
			out = append(out, f)
		}
	}
	return out
}

// fromShim are the frames with the shim's source MAC.
func (v lanView) fromShim() []lab.Frame {
	var out []lab.Frame
	for _, f := range v.frames {
		if bytes.Equal(f.Src, v.shim) {
			out = append(out, f)
		}
	}
	return out
}

// watchLAN starts capturing what node l sends onto the LAN (on the LAN end
// of its NIC's cable) and a LAN host pinging the node every lanProbeEvery:
// namespace ns of lab from, through its device dev. That host resolves the
// node first, and takes every ARP request as news (locktime 0, where the
// kernel's default ignores news of an entry less than a second old), so
// an entry moved by one of the shim's requests would show. The returned
// function stops both and reports.
func watchLAN(t *testing.T, l *lab.Lab, from *lab.Lab, ns, dev string) func() lanView {
	t.Helper()
	if err := from.Sysctl(ns, "net/ipv4/neigh/"+dev+"/locktime", "0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, ns+" pings the node", pings(from, ns, l.NodeIP))
	capture, err := l.StartCapture(l.LAN, l.Opts.LANPort)
	if err != nil {
		t.Fatal(err)
	}
	pr := startProberEvery(t, from, ns, l.NodeIP, lanProbeEvery)
	return func() lanView {
		t.Helper()
		// The measurement needs a few dozen requests: however fast the
		// node made its pods, the LAN keeps pinging until it sent 50.
		waitFor(t, deadline, "the LAN sends 50 echo requests to the node", func() error {
			if n := pr.count(); n < 50 {
				return fmt.Errorf("%d sent", n)
			}
			return nil
		})
		lost, sent := pr.settle(time.Time{}, deadline)
		_ = capture.Close()
		// What the node sent: frames the LAN's port received.
		frames := capture.Frames(func(f lab.Frame) bool { return !f.Out })
		v := lanView{from: from, ns: ns, lost: lost, sent: sent, frames: frames,
			nic: mustMAC(t, l, l.Node, l.Master), shim: mustMAC(t, l, l.Node, l.Master+".host"),
			nodeAddrs: []netip.Addr{l.NodeIP}}
		if !l.Opts.NoIPv6 {
			v.nodeAddrs = append(v.nodeAddrs, l.Opts.NodeAddr6.Addr())
		}
		// The capture must have seen the node: its echo replies at least.
		if !slices.ContainsFunc(frames, func(f lab.Frame) bool { return bytes.Equal(f.Src, v.nic) }) {
			t.Fatalf("the capture on %s saw no frame from the node's NIC: it did not work", l.Opts.LANPort)
		}
		return v
	}
}

// reachNewPods makes n pods with the real plugins, one after another; after
// each is routed, the node reaches it (its first packet to it resolves it
// anew, which is what sends the shim's ARP request or solicitation).
func reachNewPods(t *testing.T, l *lab.Lab, prefix string, n int) []*lab.Pod {
	pods, _ := reachNewPodsTimed(t, l, prefix, n)
	return pods
}

// reachNewPodsTimed is reachNewPods, returning also the round trips of the
// node's first ping to each new pod's IPv6 address: both sides'
// neighbour resolution, the pod's of the node answered by the shim's
// proxy entry.
func reachNewPodsTimed(t *testing.T, l *lab.Lab, prefix string, n int) ([]*lab.Pod, []time.Duration) {
	t.Helper()
	var pods []*lab.Pod
	var first6 []time.Duration
	for i := 1; i <= n; i++ {
		p := mustPod(t, l, fmt.Sprintf("%s%d", prefix, i))
		for _, a := range p.IPs {
			waitFor(t, 15*time.Second, "flatnet routes "+a.Addr().String(), routedVia(l, a.Addr(), l.Master+".host"))
			if a.Addr().Is6() {
				if rtt, err := pingRTT(l, l.Node, a.Addr()); err == nil {
					first6 = append(first6, rtt)
				} else {
					t.Logf("the node's first ping to %s: %v", a.Addr(), err)
				}
			}
			waitFor(t, 15*time.Second, "the node pings "+a.Addr().String(), pings(l, l.Node, a.Addr()))
		}
		pods = append(pods, p)
	}
	return pods, first6
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// pingRTT is the round trip of ONE ping from ns to ip (3 s to answer).
func pingRTT(l *lab.Lab, ns string, ip netip.Addr) (time.Duration, error) {
	out, err := l.Exec(ns, "ping", "-n", "-c", "1", "-W", "3", ip.String())
	if err != nil {
		return 0, err
	}
	m := pingTime.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no time in %q", out)
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// wantLANUnharmed checks what the LAN saw under guard ("filter", "shim" or
// "address"): no echo request lost, nothing from the shim that names a
// node address; with the filter not one frame from the shim; with the shim
// guard, every ARP request from the shim a probe (sender 0.0.0.0), no ARP
// reply and no neighbour advertisement from it, and its solicitations
// from its link-local address (or duplicate address detection of it)
// only, for no node address; then that the LAN's neighbour entries for
// the node hold the NIC's MAC.
func wantLANUnharmed(t *testing.T, v lanView, guard string) {
	t.Helper()
	ns := v.ns
	t.Logf("the LAN (%s) lost %d of %d echo requests to the node while it reached new pods; the node sent %d frames onto the LAN, %d from the shim",
		ns, v.lost, v.sent, len(v.frames), len(v.fromShim()))
	if v.lost != 0 {
		t.Errorf("the LAN lost %d of %d echo requests to the node", v.lost, v.sent)
	}
	if c := v.claims(); len(c) > 0 {
		t.Errorf("%d frames from the shim (%s) name a node address, first: %v", len(c), v.shim, c[0])
	}
	switch guard {
	case "filter":
		if fs := v.fromShim(); len(fs) > 0 {
			t.Errorf("%d frames from the shim (%s) reached the LAN, first: %v", len(fs), v.shim, fs[0])
		}
	case "shim":
		probes := 0
		for _, f := range v.fromShim() {
			switch {
			case f.Type == unix.ETH_P_ARP && f.ARPOp == 1 && f.ARPSender == netip.IPv4Unspecified():
				probes++
			case f.Type == unix.ETH_P_ARP:
				t.Errorf("an ARP frame from the shim that is no probe reached the LAN: %v", f)
			case f.ICMP6Type == 136:
				t.Errorf("a neighbour advertisement from the shim reached the LAN: %v", f)
			case f.ICMP6Type == 135 && (slices.Contains(v.nodeAddrs, f.NDTarget) || !f.IP6Src.IsLinkLocalUnicast() && f.IP6Src != netip.IPv6Unspecified()):
				// Its own solicitations for pods, from its link-local
				// address, and duplicate address detection of that, are
				// all the shim may ask.
				t.Errorf("a solicitation from the shim from %s for %s reached the LAN: %v", f.IP6Src, f.NDTarget, f)
			}
		}
		if probes == 0 {
			t.Errorf("no ARP probe from the shim on the LAN while the node reached new pods: the capture cannot see what the shim sends")
		}
	}
	table, err := v.from.Neighbours(ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range table {
		if slices.Contains(v.nodeAddrs, n.IP) && n.MAC != nil && !bytes.Equal(n.MAC, v.nic) {
			t.Errorf("%s holds %v for the node, not the NIC's MAC %s", ns, n, v.nic)
		}
	}
}

// noHookOnTheNIC checks that nothing of the node's nftables ruleset hooks
// the NIC's egress (or any device's): what every frame the node sends
// through it would pay.
func noHookOnTheNIC(t *testing.T, l *lab.Lab) {
	t.Helper()
	out, err := l.Exec(l.Node, "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "hook egress") {
		t.Errorf("a chain hooks a device's egress:\n%s", out)
	}
	if !strings.Contains(out, "table arp flatnet") {
		t.Errorf("no table arp flatnet, the shim guard's:\n%s", out)
	}
}

// onlyTheNICAnswers sends one neighbour solicitation for the node's IPv6
// address from the LAN's link-local address (as the LAN's router does
// when it forwards to the node) and checks that only the NIC answers:
// nothing from the shim, early or late.
func onlyTheNICAnswers(t *testing.T, l *lab.Lab) {
	t.Helper()
	node6, nic := l.Opts.NodeAddr6.Addr(), mustMAC(t, l, l.Node, l.Master)
	nas, err := l.NDPProbe(l.LAN, l.Bridge, node6)
	if err != nil {
		t.Fatal(err)
	}
	if len(nas) == 0 {
		t.Fatalf("no answer to the LAN's solicitation for %s", node6)
	}
	for _, na := range nas {
		if !bytes.Equal(na.MAC, nic) {
			t.Errorf("the LAN's solicitation for %s from its link-local address got an answer that is not the NIC's: %v", node6, na)
		}
	}
}

// TestLANGuard: the LAN pings the node every 10 ms while the node reaches
// new pods (made by the real plugins), with each rp_filter the
// distributions ship, and loses nothing; no frame from the shim's MAC
// names a node address on the LAN. Under the shim guard (this kernel's
// under lan_guard = "auto"): the shim's ARP requests reach the LAN as
// probes only, its IPv6 proxy answers no LAN host (not the LAN's kernel
// resolving the node, not a solicitation from the LAN's link-local
// address), the node's first IPv6 packet to each new pod comes back at
// once, and no chain hooks the NIC's egress. Then the same with the egress
// filter, where nothing from the shim reaches the LAN at all; and with the
// shim's own ARP sender address (lan_guard = "address", what a kernel with
// neither gets); and, to prove the measurement can see the fault,
// unguarded with strict rp_filter, where the LAN must lose the node.
func TestLANGuard(t *testing.T) {
	needFlatnet(t)
	tests := []struct {
		name    string
		sysctls map[string]string
		nicOnly string // rp_filter set on the NIC alone, after it exists
		guard   string // lan_guard; "" is the default, auto
		dual    bool
		pods    int
	}{
		{name: "shim/rp_filter=1", sysctls: rpFilter("1"), dual: true, pods: 10},
		{name: "shim/rp_filter=2", sysctls: rpFilter("2"), dual: true, pods: 10},
		{name: "shim/rp_filter=0", sysctls: rpFilter("0"), pods: 5},
		{name: "shim/rp_filter=1 default only", sysctls: map[string]string{"net.ipv4.conf.default.rp_filter": "1"}, pods: 5},
		{name: "shim/rp_filter=2 default only", sysctls: map[string]string{"net.ipv4.conf.default.rp_filter": "2"}, pods: 5},
		{name: "shim/rp_filter=1 NIC only", nicOnly: "1", pods: 5},
		{name: "shim/rp_filter=2 NIC only", nicOnly: "2", pods: 5},
		{name: "filter/rp_filter=1", sysctls: rpFilter("1"), guard: "filter", dual: true, pods: 5},
		{name: "filter/rp_filter=2", sysctls: rpFilter("2"), guard: "filter", pods: 5},
		{name: "address/rp_filter=1", sysctls: rpFilter("1"), guard: "address", pods: 5},
		{name: "address/rp_filter=2", sysctls: rpFilter("2"), guard: "address", pods: 5},
		{name: "address/rp_filter=2 default only", sysctls: map[string]string{"net.ipv4.conf.default.rp_filter": "2"}, guard: "address", pods: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := lab.Options{NodeSysctls: tt.sysctls, NoIPv6: !tt.dual}
			if tt.dual {
				o = dualStack(tt.sysctls)
			}
			l := lab.NewT(t, o)
			if tt.nicOnly != "" {
				if err := l.Sysctl(l.Node, "net/ipv4/conf/"+l.Master+"/rp_filter", tt.nicOnly); err != nil {
					t.Fatal(err)
				}
			}
			extra, guard := "", cmp.Or(tt.guard, "shim")
			if tt.guard != "" {
				extra = fmt.Sprintf("lan_guard = %q\n", tt.guard)
			}
			fn := startFlatnet(t, l, extra)
			waitFor(t, 15*time.Second, "the shim", func() error { _, err := l.MAC(l.Node, l.Master+".host"); return err })
			switch guard {
			case "shim":
				logOnce(t, fn, "LAN guard: the shims' ARP requests leave as probes")
			case "filter":
				logOnce(t, fn, "LAN guard: an nftables egress filter")
			default:
				logOnce(t, fn, "LAN guard: the shims send their ARP requests from 192.0.0.8")
			}
			if tt.dual {
				// The proxy entry is in place before the pods come: with
				// the shim guard, only once the shim's ingress chain is.
				waitFor(t, 15*time.Second, "the shim's proxy entry", func() error {
					out, err := l.Exec(l.Node, "ip", "-6", "neigh", "show", "proxy", "dev", l.Master+".host")
					if err == nil && !strings.Contains(out, l.Opts.NodeAddr6.Addr().String()) {
						err = fmt.Errorf("no proxy entry: %q", out)
					}
					return err
				})
			}
			stop := watchLAN(t, l, l, l.LAN, l.Bridge)
			pods, first6 := reachNewPodsTimed(t, l, "pod", tt.pods)
			v := stop()
			wantLANUnharmed(t, v, guard)
			if guard == "shim" {
				noHookOnTheNIC(t, l)
			}
			if guard != "address" && tt.dual {
				// IPv6: the LAN resolves the node afresh, and only the
				// NIC answers: the shim's proxy answer is dropped on the
				// way out (filter), or the LAN's solicitation on its way in
				// (shim); the same for a solicitation from a link-local
				// address.
				checkNeighbours(t, l, l.LAN, nodeWants(t, l, "the node"), 2)
				onlyTheNICAnswers(t, l)
				// The node's first packet to a new pod is back at once:
				// the pod's solicitation for the node is answered without
				// proxy_delay (up to 0.8 s, random, for each: their median
				// would be about 0.4 s), and the first pod's is not held
				// for a second while the shim's link-local address, the
				// source of its solicitations, is tentative (accept_dad 0):
				// every one, not only most, under 400 ms.
				slices.Sort(first6)
				t.Logf("the node's first IPv6 ping to %d new pods: %v", len(first6), first6)
				if len(first6) < tt.pods/2 || first6[len(first6)-1] > 400*time.Millisecond {
					t.Errorf("the node's first IPv6 ping to new pods took %v: not at once", first6)
				}
			}
			if guard == "shim" && tt.dual {
				// The shim's ingress chain dropped the LAN's solicitations.
				out, err := l.Exec(l.Node, "nft", "list", "chain", "netdev", "flatnet", l.Master+".host")
				if err != nil || !regexp.MustCompile(`oif missing counter packets [1-9]`).MatchString(out) {
					t.Errorf("the shim's ingress chain dropped no solicitation from the LAN (%v):\n%s", err, out)
				}
			}
			// Pods still reach the node, resolving it afresh.
			for _, p := range pods {
				for _, a := range p.IPs {
					node := l.NodeIP
					if a.Addr().Is6() {
						node = l.Opts.NodeAddr6.Addr()
					}
					waitFor(t, 15*time.Second, p.Name+" pings the node at "+node.String(), freshPings(l, p.NS, node))
				}
			}
		})
	}
}

// TestLANGuardOffLosesTheNode is the control of TestLANGuard: with
// lan_guard = "off" and strict rp_filter, the same measurement must see the
// LAN lose the node (else it could not see the fault at all) and a frame
// from the shim naming the node's address.
func TestLANGuardOffLosesTheNode(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{NodeSysctls: rpFilter("1"), NoIPv6: true})
	fn := startFlatnet(t, l, "lan_guard = \"off\"\n")
	waitFor(t, 15*time.Second, "the shim", func() error { _, err := l.MAC(l.Node, l.Master+".host"); return err })
	logOnce(t, fn, "LAN guard off")
	stop := watchLAN(t, l, l, l.LAN, l.Bridge)
	reachNewPods(t, l, "pod", 3)
	v := stop()
	t.Logf("unguarded: the LAN lost %d of %d echo requests; %d frames from the shim named a node address", v.lost, v.sent, len(v.claims()))
	if v.lost == 0 {
		t.Errorf("unguarded with rp_filter 1, the LAN lost no echo request: the measurement cannot see the fault")
	}
	if len(v.claims()) == 0 {
		t.Errorf("unguarded, no frame from the shim named the node's address: the capture cannot see the fault")
	}
}

// TestLANGuardThreeNodes: three nodes on one LAN, each with its flatnet and
// strict rp_filter, under the default guard. Node b pings node a every
// 10 ms while a's pods come and go, and loses nothing; nothing from a's
// shim names a node address on the LAN; b keeps a's NIC's MAC for a.
func TestLANGuardThreeNodes(t *testing.T) {
	needFlatnet(t)
	specs := []struct {
		v4, v6 string
		r4, r6 lab.Range
	}{
		{"192.168.0.5/16", "fd00::5/64", v4Range("192.168.1.2", "192.168.1.62"), v6Range("fd00::1:2", "fd00::1:ff")},
		{"192.168.0.6/16", "fd00::6/64", v4Range("192.168.1.66", "192.168.1.126"), v6Range("fd00::2:2", "fd00::2:ff")},
		{"192.168.0.7/16", "fd00::7/64", v4Range("192.168.1.130", "192.168.1.190"), v6Range("fd00::3:2", "fd00::3:ff")},
	}
	var nodes []*lab.Lab
	for i, s := range specs {
		o := lab.Options{
			NodeAddr: netip.MustParsePrefix(s.v4), NodeAddr6: netip.MustParsePrefix(s.v6),
			Ranges: []lab.Range{s.r4, s.r6}, NodeSysctls: rpFilter("1"),
			MachineID: strings.Repeat(fmt.Sprintf("%x", 10+i), 32),
		}
		if i > 0 {
			o.JoinLAN = nodes[0]
		}
		l := lab.NewT(t, o)
		startFlatnet(t, l, "")
		waitFor(t, 15*time.Second, "the shim of node "+fmt.Sprint(i), func() error { _, err := l.MAC(l.Node, l.Master+".host"); return err })
		nodes = append(nodes, l)
	}
	a, b := nodes[0], nodes[1]
	// Every node has pods its node reaches, so every shim has spoken.
	for i, n := range nodes[1:] {
		reachNewPods(t, n, fmt.Sprintf("n%d-", i+1), 1)
	}
	stop := watchLAN(t, a, b, b.Node, b.Master)
	pods := reachNewPods(t, a, "a", 6)
	for _, p := range pods[:3] {
		if err := a.DelPod(p); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, "the route to "+p.IP.String()+" goes", notRouted(a, p.IP.String()))
	}
	reachNewPods(t, a, "a-again", 3)
	v := stop()
	wantLANUnharmed(t, v, "shim")
	noHookOnTheNIC(t, a)
}

// TestLANGuardAdoptedShim: a shim made by hand, as in the seed, before
// flatnet starts: flatnet adopts it and guards it like its own (its ARP
// requests made probes), so the LAN loses nothing; flatnet teardown
// removes the guard's table and leaves the shim.
func TestLANGuardAdoptedShim(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{NodeSysctls: rpFilter("1"), NoIPv6: true})
	shim := l.Master + ".host"
	if _, err := l.Exec(l.Node, "ip", "link", "add", shim, "link", l.Master, "type", "macvlan", "mode", "bridge"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(l.Node, "ip", "link", "set", shim, "up"); err != nil {
		t.Fatal(err)
	}
	fn := startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "the hand-made shim's ARP requests are made probes", nftTableHas(l, "arp", `oifname "`+shim+`" arp operation request arp saddr ip set 0.0.0.0`))
	stop := watchLAN(t, l, l, l.LAN, l.Bridge)
	reachNewPods(t, l, "pod", 5)
	wantLANUnharmed(t, stop(), "shim")

	if err := fn.Stop(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out, code := runFlatnet(t, l, "teardown")
	if code != 0 || !strings.Contains(out, "removed LAN guard: nftables table arp flatnet") || !strings.Contains(out, "left "+shim+" in place") {
		t.Errorf("teardown (exit %d):\n%s", code, out)
	}
	if err := nftTableHas(l, "arp", "")(); err == nil {
		t.Errorf("flatnet's nftables table arp flatnet is still there after teardown")
	}
	if ok, err := l.LinkExists(l.Node, shim); err != nil || !ok {
		t.Errorf("teardown removed the hand-made shim (exists %v, %v)", ok, err)
	}
}

// TestLANGuardFilterAdoptedShim: the same with the egress filter: the
// hand-made shim's MAC is filtered, teardown removes the filter.
func TestLANGuardFilterAdoptedShim(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{NodeSysctls: rpFilter("1"), NoIPv6: true})
	shim := l.Master + ".host"
	if _, err := l.Exec(l.Node, "ip", "link", "add", shim, "link", l.Master, "type", "macvlan", "mode", "bridge"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(l.Node, "ip", "link", "set", shim, "up"); err != nil {
		t.Fatal(err)
	}
	handMAC := mustMAC(t, l, l.Node, shim)
	fn := startFlatnet(t, l, "lan_guard = \"filter\"\n")
	waitFor(t, 15*time.Second, "the egress filter drops the hand-made shim's frames", nftHas(l, "ether saddr "+handMAC.String()))
	stop := watchLAN(t, l, l, l.LAN, l.Bridge)
	reachNewPods(t, l, "pod", 3)
	wantLANUnharmed(t, stop(), "filter")

	if err := fn.Stop(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out, code := runFlatnet(t, l, "teardown")
	if code != 0 || !strings.Contains(out, "removed LAN guard: nftables table netdev flatnet") || !strings.Contains(out, "left "+shim+" in place") {
		t.Errorf("teardown (exit %d):\n%s", code, out)
	}
	if err := nftHas(l, "")(); err == nil {
		t.Errorf("flatnet's nftables table is still there after teardown")
	}
}

// nftHas is a waitFor condition: flatnet's nftables table netdev flatnet
// in the node exists and its listing contains want.
func nftHas(l *lab.Lab, want string) func() error {
	return nftTableHas(l, "netdev", want)
}

// nftTableHas is a waitFor condition: flatnet's nftables table of the
// family in the node exists and its listing contains want.
func nftTableHas(l *lab.Lab, family, want string) func() error {
	return func() error {
		out, err := l.Exec(l.Node, "nft", "list", "table", family, "flatnet")
		if err != nil {
			return err
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("no %q in:\n%s", want, out)
		}
		return nil
	}
}
