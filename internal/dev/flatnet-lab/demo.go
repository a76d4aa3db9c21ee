package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"golang.org/x/sys/unix"
)

// flatnetProto is the rtnetlink protocol of flatnet's routes.
const flatnetProto = 97

// narrator prints the demo: headings, commands and their output, verdicts.
type narrator struct {
	w        io.Writer
	color    bool
	n        int // step number
	failures []string
}

// isTerminal reports whether w is a terminal that takes colour.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (d *narrator) paint(code, s string) string {
	if !d.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (d *narrator) step(format string, args ...any) {
	d.n++
	fmt.Fprintf(d.w, "\n%s\n", d.paint("1", fmt.Sprintf("%d. %s", d.n, fmt.Sprintf(format, args...))))
}

func (d *narrator) say(format string, args ...any) {
	fmt.Fprintf(d.w, "   %s\n", fmt.Sprintf(format, args...))
}

// show prints a command as typed in a namespace ("node# ip route") and its
// output.
func (d *narrator) show(where string, cmd string, out string) {
	fmt.Fprintf(d.w, "   %s %s\n", d.paint("36", where+"#"), cmd)
	out = strings.TrimRight(out, "\n")
	if out != "" {
		fmt.Fprintf(d.w, "%s\n", indentBy(out, "     "))
	}
}

func (d *narrator) ok(format string, args ...any) {
	fmt.Fprintf(d.w, "   %s %s\n", d.paint("32", "ok:"), fmt.Sprintf(format, args...))
}

// expected marks a failure the story expects.
func (d *narrator) expected(format string, args ...any) {
	fmt.Fprintf(d.w, "   %s %s\n", d.paint("33", "fails, as expected:"), fmt.Sprintf(format, args...))
}

func (d *narrator) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.failures = append(d.failures, msg)
	fmt.Fprintf(d.w, "   %s %s\n", d.paint("1;31", "FAILED:"), msg)
}

func indentBy(s, p string) string { return p + strings.ReplaceAll(s, "\n", "\n"+p) }

// demo runs the seed's story in a lab, with flatnet or with the manual fix.
func demo(w io.Writer, flatnet string, manual bool, logf func(string, ...any)) int {
	d := &narrator{w: w, color: isTerminal(w)}
	if why := lab.Missing(); why != "" {
		fmt.Fprintf(w, "flatnet-lab demo: cannot build a lab here: %s\n", why)
		return 1
	}
	if !manual {
		abs, err := filepath.Abs(flatnet)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			fmt.Fprintf(w, "flatnet-lab demo: no flatnet binary at %s (%v)\n  build it: go build -o bin/flatnet ./cmd/flatnet\n  or show the seed's manual fix: flatnet-lab demo --manual\n", flatnet, err)
			return 1
		}
		flatnet = abs
	}
	lab.HandleInterrupt() // ^C removes the lab and exits

	d.step("Build the lab: a LAN (bridge br0) and a node plugged into it")
	start := time.Now()
	v6 := lab.Range{Subnet: netip.MustParsePrefix("fd00::/64"),
		RangeStart: netip.MustParseAddr("fd00::1:2"), RangeEnd: netip.MustParseAddr("fd00::1:ff")}
	l, err := lab.New(lab.Options{Logf: logf, Ranges: []lab.Range{lab.SeedRange(), v6}})
	if err != nil {
		d.fail("building the lab: %v", err)
		return 1
	}
	defer func() {
		if l != nil {
			_ = l.Close()
		}
	}()
	d.say("LAN namespace %s: br0 %s and %s, the LAN's gateway", l.LAN, l.Opts.GatewayAddr, l.Opts.GatewayAddr6)
	d.say("node namespace %s: %s %s and %s, default route via %s (built in %v)", l.Node, l.Master, l.Opts.NodeAddr, l.Opts.NodeAddr6, l.Gateway, time.Since(start).Round(time.Millisecond))
	d.cmd(l, l.Node, "node", "ip", "-br", "addr", "show", l.Master)

	d.step("Create 2 dual-stack pods with the real CNI plugins (macvlan on %s, host-local IPAM, an IPv4 and an IPv6 range)", l.Master)
	d.say("the conflist, %s:", l.ConfList)
	fmt.Fprintln(w, indentBy(strings.TrimRight(string(l.ConfListJSON()), "\n"), "     "))
	var pods []*lab.Pod
	for _, name := range []string{"pod1", "pod2"} {
		t0 := time.Now()
		p, err := l.AddPod(name)
		if err != nil {
			d.fail("CNI ADD %s: %v", name, err)
			return d.finish(l)
		}
		if _, err := l.StartPodHTTP(p); err != nil {
			d.fail("web server in %s: %v", name, err)
		}
		d.say("%s: CNI ADD (container %.12s…) gave %s in %v; it serves http://%s/", name, p.ContainerID, prefixList(p.IPs), time.Since(t0).Round(time.Millisecond), p.IP)
		pods = append(pods, p)
	}
	p1, p2 := pods[0], pods[1]
	p1v6 := addr6(p1)
	d.stateDir(l)

	d.step("The node cannot reach its pods")
	d.say("the kernel never passes traffic between a macvlan child (the pods' eth0) and its parent (%s):", l.Master)
	d.say("the node's ARP for a pod goes out to the LAN, which never sends it back to the node")
	d.expectFail(l, "node", l.Node, p1.IP)
	d.expectFail(l, "node", l.Node, p1v6)
	if body, err := d.get(l, l.Node, "node", p1); err == nil {
		d.fail("the node fetched %q from pod1 without a shim: the lab does not reproduce the seed", body)
	} else {
		d.expected("no HTTP either")
	}
	d.expectFail(l, "pod1", p1.NS, l.NodeIP)
	d.say("the LAN reaches the pods and the node alike:")
	d.ping(l, "lan", l.LAN, p1.IP)

	shim := l.Master + ".host"
	var fn *lab.Process
	if manual {
		d.step("Apply the seed's manual fix in the node")
		for _, argv := range [][]string{
			{"ip", "link", "add", shim, "link", l.Master, "type", "macvlan", "mode", "bridge"},
			{"ip", "link", "set", shim, "up"},
			{"ip", "route", "add", p1.IP.String(), "dev", shim},
			{"ip", "route", "add", p2.IP.String(), "dev", shim},
		} {
			if !d.cmd(l, l.Node, "node", argv...) {
				d.fail("the manual fix did not apply")
			}
		}
	} else {
		d.step("Start flatnet in the node")
		cfg, err := l.WriteFlatnetConfig("")
		if err != nil {
			d.fail("writing %s: %v", cfg, err)
			return d.finish(l)
		}
		d.say("%s:", cfg)
		fmt.Fprintln(w, indentBy(strings.TrimRight(l.FlatnetConfig(""), "\n"), "     "))
		fn, err = l.StartFlatnet(flatnet)
		if err != nil {
			d.fail("%v", err)
			return d.finish(l)
		}
		d.show("node", flatnet+" run --config "+cfg, fmt.Sprintf("(pid %d, log %s)", fn.PID, fn.LogPath))
		t0 := time.Now()
		all := func() bool {
			for _, p := range pods {
				for _, a := range p.IPs {
					if !d.routed(l, a.Addr()) {
						return false
					}
				}
			}
			return true
		}
		if err := waitUntil(10*time.Second, fn, all); err != nil {
			d.fail("flatnet did not route both pods: %v", err)
			d.say("flatnet's log:\n%s", indentBy(fn.Log(), "     "))
		} else {
			d.ok("both pods routed %v after start", time.Since(t0).Round(time.Millisecond))
		}
	}

	d.step("The shim and the routes")
	d.cmd(l, l.Node, "node", "ip", "-d", "link", "show", shim)
	d.cmd(l, l.Node, "node", "ip", "route")
	d.cmd(l, l.Node, "node", "ip", "-6", "route", "show", "dev", shim)
	if !manual {
		d.say("and the shim answers pods' neighbour solicitations for the node's IPv6 address:")
		d.cmd(l, l.Node, "node", "ip", "-6", "neigh", "show", "proxy")
	}

	d.step("The node and its pods talk")
	for _, p := range pods {
		d.ping(l, "node", l.Node, p.IP)
	}
	if body, err := d.get(l, l.Node, "node", p1); err != nil || body != lab.PodPage(p1) {
		d.fail("GET http://%s/ from the node: %q %v", p1.IP, body, err)
	} else {
		d.ok("HTTP from the node to pod1")
	}
	d.ping(l, "pod1", p1.NS, l.NodeIP)
	if manual {
		d.say("over IPv6, the manual fix has no route to the pod, and the shim does not answer")
		d.say("the pod's neighbour solicitations for %s:", l.Opts.NodeAddr6.Addr())
		d.expectFail(l, "node", l.Node, p1v6)
	} else {
		d.ping(l, "node", l.Node, p1v6)
		d.ping(l, "pod1", p1.NS, l.Opts.NodeAddr6.Addr())
	}

	d.step("What the LAN sees of the node: who has %s?", l.NodeIP)
	nodeMAC, _ := l.MAC(l.Node, l.Master)
	shimMAC, _ := l.MAC(l.Node, shim)
	d.say("%s is %s, %s is %s", l.Master, nodeMAC, shim, shimMAC)
	macs, err := l.ARPProbe(l.LAN, l.Bridge, l.NodeIP)
	switch {
	case err != nil:
		d.fail("ARP probe: %v", err)
	case manual:
		d.say("one ARP request from br0, %d answer(s): %s", len(macs), macList(macs, nodeMAC, shimMAC, l.Master, shim))
		if len(macs) > 1 {
			d.say("ARP flux: the bare shim answers for the node's address too, so the LAN may send the")
			d.say("node's traffic to the shim's MAC. flatnet sets arp_filter=1 on its shim; by hand:")
			key := "net/ipv4/conf/" + shim + "/arp_filter"
			if err := l.Sysctl(l.Node, key, "1"); err != nil {
				d.fail("%v", err)
			}
			d.show("node", "sysctl -w "+strings.ReplaceAll(key, "/", ".")+"=1", "")
			macs, err = l.ARPProbe(l.LAN, l.Bridge, l.NodeIP)
			if err != nil {
				d.fail("ARP probe: %v", err)
			}
		}
		d.arpVerdict(macs, nodeMAC, shimMAC, l.Master, shim)
	default:
		d.arpVerdict(macs, nodeMAC, shimMAC, l.Master, shim)
		d.ndp(l, nodeMAC, shimMAC, shim)
	}

	d.step("pod2 goes: CNI DEL releases its address")
	if err := l.DelPod(p2); err != nil {
		d.fail("CNI DEL pod2: %v", err)
	} else {
		d.ok("CNI DEL pod2 and its namespace removed")
	}
	d.stateDir(l)
	if manual {
		d.say("by hand, its route has to go too:")
		d.cmd(l, l.Node, "node", "ip", "route", "del", p2.IP.String(), "dev", shim)
	} else if err := waitUntil(10*time.Second, fn, func() bool { return !d.routed(l, p2.IP) && !d.routed(l, addr6(p2)) }); err != nil {
		d.fail("pod2's routes are still there: %v", err)
	} else {
		d.ok("flatnet removed the routes to %s", prefixList(p2.IPs))
	}
	d.cmd(l, l.Node, "node", "ip", "route")
	d.ping(l, "node", l.Node, p1.IP)

	if fn != nil {
		d.step("Stop flatnet")
		if fn.Exited() {
			d.fail("flatnet had already exited (status %d)", fn.ExitCode())
		} else if err := fn.Stop(syscall.SIGTERM); err != nil {
			d.fail("flatnet on SIGTERM: %v", err)
		} else {
			d.ok("flatnet exited 0 on SIGTERM")
		}
		d.say("the end of its log:\n%s", indentBy(lastLines(fn.Log(), 8), "     "))
		d.cmd(l, l.Node, "node", "ip", "route")
	}
	return d.finish(l)
}

// finish removes the lab and reports.
func (d *narrator) finish(l *lab.Lab) int {
	d.step("Remove everything")
	nss := l.Namespaces()
	if err := l.Close(); err != nil {
		d.fail("removing the lab: %v", err)
	} else {
		d.ok("removed %s and %s", strings.Join(nss, ", "), l.Dir)
	}
	fmt.Fprintln(d.w)
	if len(d.failures) > 0 {
		fmt.Fprintf(d.w, "%s\n", d.paint("1;31", fmt.Sprintf("%d step(s) failed:", len(d.failures))))
		for _, f := range d.failures {
			fmt.Fprintf(d.w, "  - %s\n", f)
		}
		return 1
	}
	fmt.Fprintln(d.w, d.paint("1;32", "all steps behaved as expected"))
	return 0
}

// cmd runs and shows a command in a namespace; it reports success.
func (d *narrator) cmd(l *lab.Lab, ns, where string, argv ...string) bool {
	out, err := l.Exec(ns, argv...)
	d.show(where, strings.Join(argv, " "), out)
	if err != nil {
		d.fail("%s: %v", strings.Join(argv, " "), err)
		return false
	}
	return true
}

// get fetches the pod's page from a namespace with curl, as in the seed, or
// in-process when there is no curl.
func (d *narrator) get(l *lab.Lab, ns, where string, p *lab.Pod) (string, error) {
	url := "http://" + p.IP.String() + "/"
	if _, err := exec.LookPath("curl"); err != nil {
		body, err := l.HTTPGet(ns, url)
		if err != nil {
			d.show(where, "GET "+url, err.Error())
		} else {
			d.show(where, "GET "+url, body)
		}
		return body, err
	}
	out, err := l.Exec(ns, "curl", "-sS", "-m", "3", "--noproxy", "*", url)
	d.show(where, "curl -sS -m 3 --noproxy '*' "+url, out)
	return out, err
}

// pingArgs is what the demo shows for a ping.
func pingArgs(ip netip.Addr) []string {
	return []string{"ping", "-c", "2", "-i", "0.2", "-W", "1", ip.String()}
}

// ping shows a ping that must succeed. It is tried up to three times: a
// first IPv6 packet to the node waits for the shim's proxy answer, which
// comes up to 0.8 s late on purpose.
func (d *narrator) ping(l *lab.Lab, where, ns string, ip netip.Addr) {
	argv := pingArgs(ip)
	out, err := l.Exec(ns, argv...)
	for try := 1; err != nil && try < 3; try++ {
		out, err = l.Exec(ns, argv...)
	}
	d.show(where, strings.Join(argv, " "), pingSummary(out))
	if err != nil {
		d.fail("%s cannot ping %s", where, ip)
		return
	}
	d.ok("%s pings %s", where, ip)
}

// expectFail shows a ping that must fail.
func (d *narrator) expectFail(l *lab.Lab, where, ns string, ip netip.Addr) {
	argv := pingArgs(ip)
	out, err := l.Exec(ns, argv...)
	d.show(where, strings.Join(argv, " "), pingSummary(out))
	if err == nil {
		d.fail("%s pinged %s: the lab does not reproduce the seed", where, ip)
		return
	}
	d.expected("%s cannot ping %s", where, ip)
}

// pingSummary keeps ping's interesting lines.
func pingSummary(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "bytes from") || strings.Contains(line, "Unreachable") ||
			strings.Contains(line, "packets transmitted") {
			keep = append(keep, strings.TrimSpace(line))
		}
	}
	return strings.Join(keep, "\n")
}

// stateDir shows host-local's directory.
func (d *narrator) stateDir(l *lab.Lab) {
	files, err := l.StateFiles()
	if err != nil {
		d.fail("reading %s: %v", l.StateDir(), err)
		return
	}
	var b strings.Builder
	for _, f := range files {
		content, _ := os.ReadFile(filepath.Join(l.StateDir(), f))
		fmt.Fprintf(&b, "%-20s %q\n", f, content)
	}
	d.show("node", "ls "+l.StateDir(), b.String())
}

// routed reports whether the node has a flatnet route to ip.
func (d *narrator) routed(l *lab.Lab, ip netip.Addr) bool {
	rs, err := l.Routes(l.Node, flatnetProto)
	if err != nil {
		return false
	}
	for _, r := range rs {
		if r.Dst == netip.PrefixFrom(ip, ip.BitLen()) {
			return true
		}
	}
	return false
}

// waitUntil polls cond, giving up after timeout or when fn (if any) exits.
func waitUntil(timeout time.Duration, fn *lab.Process, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if fn != nil && fn.Exited() {
			return fmt.Errorf("flatnet exited with status %d", fn.ExitCode())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// arpVerdict judges the LAN's ARP view: exactly one answer, the NIC's.
func (d *narrator) arpVerdict(macs []net.HardwareAddr, nodeMAC, shimMAC net.HardwareAddr, master, shim string) {
	desc := macList(macs, nodeMAC, shimMAC, master, shim)
	if len(macs) == 1 && bytes.Equal(macs[0], nodeMAC) {
		d.ok("exactly one answer, from %s", desc)
		return
	}
	d.fail("who-has answered by %s, want exactly one from %s (%s)", desc, master, nodeMAC)
}

// macList names the MACs of an ARP probe.
func macList(macs []net.HardwareAddr, nodeMAC, shimMAC net.HardwareAddr, master, shim string) string {
	if len(macs) == 0 {
		return "nobody"
	}
	var s []string
	for _, m := range macs {
		name := "?"
		switch {
		case bytes.Equal(m, nodeMAC):
			name = master
		case bytes.Equal(m, shimMAC):
			name = shim
		}
		s = append(s, fmt.Sprintf("%s (%s)", m, name))
	}
	return strings.Join(s, ", ")
}

// ndp shows what the LAN hears when it solicits the node's IPv6 address:
// the NIC's answer at once, the shim's proxy answer late and without the
// Override flag; the LAN's neighbour table keeps the NIC's MAC.
func (d *narrator) ndp(l *lab.Lab, nodeMAC, shimMAC net.HardwareAddr, shim string) {
	node6 := l.Opts.NodeAddr6.Addr()
	d.say("and who has %s? (a neighbour solicitation from br0)", node6)
	nas, err := l.NDPProbe(l.LAN, l.Bridge, node6)
	if err != nil {
		d.fail("NDP probe: %v", err)
		return
	}
	var start time.Time
	for i, na := range nas {
		if i == 0 {
			start = na.Time
		}
		flags := "Override set"
		if !na.Override {
			flags = "Override clear"
		}
		d.say("  +%4dms %s (%s)", na.Time.Sub(start).Milliseconds(), macList([]net.HardwareAddr{na.MAC}, nodeMAC, shimMAC, l.Master, shim), flags)
	}
	if len(nas) == 0 || !bytes.Equal(nas[0].MAC, nodeMAC) || !nas[0].Override {
		d.fail("the first answer is not %s's with Override", l.Master)
		return
	}
	for _, na := range nas[1:] {
		if na.Override {
			d.fail("a later answer overrides: %v", na)
			return
		}
	}
	if len(nas) > 1 {
		d.say("the proxy answers late and does not override: RFC 4861 7.2.5 keeps the NIC's MAC")
	}
	_ = l.FlushNeighbour(l.LAN, node6)
	if err := l.Ping(l.LAN, node6); err != nil {
		d.fail("the LAN cannot ping %s: %v", node6, err)
		return
	}
	d.cmd(l, l.LAN, "lan", "ip", "-6", "neigh", "show", node6.String())
	if ns, err := l.Neighbours(l.LAN); err == nil {
		for _, n := range ns {
			if n.IP == node6 && !bytes.Equal(n.MAC, nodeMAC) {
				d.fail("the LAN holds %s for %s", n.MAC, node6)
				return
			}
		}
	}
	d.ok("the LAN's neighbour table holds %s's MAC for %s", l.Master, node6)
}

// addr6 is a pod's IPv6 address.
func addr6(p *lab.Pod) netip.Addr {
	for _, a := range p.IPs {
		if a.Addr().Is6() {
			return a.Addr()
		}
	}
	return netip.Addr{}
}

// prefixList joins a pod's addresses.
func prefixList(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " and ")
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
