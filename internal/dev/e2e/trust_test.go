//go:build integration

package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// The trust model (docs/security.md): root's files define the node;
// libcni's cache (filled from what tenants write: a Multus
// NetworkAttachmentDefinition) and the state directories are tenant input,
// which can only ask for routes that nothing root-owned and no part of the
// node's own routing answers for. Each test here is a way in that a tenant
// had, tried as a tenant would, with real pods made by the CNI plugins
// through cnitool (Multus's own path into libcni).

// nadNet writes a conflist of network name into a directory flatnet is not
// told about (a NetworkAttachmentDefinition, handed to libcni by Multus)
// and returns that directory.
func nadNet(t *testing.T, l *lab.Lab, dir, conf string) string {
	t.Helper()
	d := filepath.Join(l.Dir, dir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "net.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// attach attaches a new namespace named ns to network through cnitool and
// returns the namespace and the pod's addresses.
func attach(t *testing.T, l *lab.Lab, cnitool, confDir, network, ns string) (string, []netip.Prefix) {
	t.Helper()
	name, err := l.NewNamespace(ns)
	if err != nil {
		t.Fatal(err)
	}
	out, err := l.Cnitool(cnitool, confDir, "add", network, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = l.Cnitool(cnitool, confDir, "del", network, name) })
	ips, err := lab.ResultIPs(out)
	if err != nil || len(ips) == 0 {
		t.Fatalf("cnitool add %s: %v %v", network, ips, err)
	}
	t.Logf("cnitool attached %s to %s: %v", ns, network, ips)
	return name, ips
}

// noFlatnetRoute fails the test if the node has a route of flatnet's to
// an address inside p.
func noFlatnetRoute(t *testing.T, l *lab.Lab, p netip.Prefix) {
	t.Helper()
	rs, err := l.Routes(l.Node, flatnetProto)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if p.Contains(r.Dst.Addr()) {
			t.Errorf("flatnet routes %v, inside %v", r, p)
		}
	}
}

// TestTrustNetworkName: a NetworkAttachmentDefinition named like the
// node's primary network (flannel's cbr0, here a bridge with a real pod)
// does not take it over. At 85ac8cc the cache-only cbr0 got
// state_root/cbr0, the bridge's own directory: flatnet routed the bridge
// pod's address through the macvlan shim and the node lost its pod.
func TestTrustNetworkName(t *testing.T) {
	cnitool := needCnitool(t)
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPod(t, l, "pod1")
	fn := startFlatnet(t, l, "")
	waitFor(t, deadline, "pod1 routed", routed(l, p.IP.String()))

	bridge := `{"cniVersion": "0.4.0", "name": "cbr0", "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": true,
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24", "gateway": "10.244.1.1"}]]}}]}`
	if err := os.WriteFile(filepath.Join(l.CNIConfDir, "10-cbr0.conflist"), []byte(bridge), 0o644); err != nil {
		t.Fatal(err)
	}
	_, bips := attach(t, l, cnitool, l.CNIConfDir, "cbr0", "bridgepod")
	bpod := bips[0].Addr()
	waitFor(t, deadline, "the node pings the bridge pod", freshPings(l, l.Node, bpod))

	nad := nadNet(t, l, "nad", `{"cniVersion": "1.0.0", "name": "cbr0", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "bridge",
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/16"}]]}}]}`)
	_, nips := attach(t, l, cnitool, nad, "cbr0", "tenantpod")
	waitLog(t, fn, `1 attachment of macvlan cached under a name that 10-cbr0.conflist gives a bridge network`, deadline)
	readSince(t, l, w)
	noFlatnetRoute(t, l, netip.MustParsePrefix("10.244.0.0/16"))
	waitFor(t, deadline, "the node still pings the bridge pod", freshPings(l, l.Node, bpod))
	t.Logf("the tenant's pod got %v; no route of flatnet's to it or to the bridge pod %s", nips, bpod)

	sts, _ := status(t, l)
	for _, s := range sts {
		if s.Name == "cbr0" {
			t.Errorf("flatnet status mirrors cbr0: %+v", s)
		}
	}
	r, _ := runCheck(t, l)
	found := false
	for _, c := range r.Checks {
		if strings.HasPrefix(c.Name, "cni cache cbr0-") && c.Status == "warn" && strings.Contains(c.Detail, "gives a bridge network") && c.Fix != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("flatnet check has no warning about the cbr0 attachment")
	}
	waitFor(t, deadline, "pod1 still routed", routed(l, p.IP.String()))
}

// TestTrustSecondDefinition: two NetworkAttachmentDefinitions with one
// network name (two namespaces' tenants): the first seen holds until its
// last attachment is gone. At 85ac8cc the newest attachment's
// configuration won and the first tenant's pod lost its route.
func TestTrustSecondDefinition(t *testing.T) {
	cnitool := needCnitool(t)
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	fn := startFlatnet(t, l, "")
	waitFor(t, deadline, "the shim", func() error { _, err := l.MAC(l.Node, l.Master+".host"); return err })

	conf := func(start, end string) string {
		return `{"cniVersion": "1.0.0", "name": "shared", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "bridge",
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "192.168.0.0/16", "rangeStart": "` + start + `", "rangeEnd": "` + end + `", "gateway": "192.168.0.1"}]]}}]}`
	}
	first := nadNet(t, l, "nad-a", conf("192.168.3.1", "192.168.3.50"))
	second := nadNet(t, l, "nad-b", conf("192.168.4.1", "192.168.4.50"))
	nsA, ipsA := attach(t, l, cnitool, first, "shared", "tenanta")
	a := ipsA[0].Addr()
	waitFor(t, deadline, "the first tenant's pod routed", routedVia(l, a, l.Master+".host"))
	waitFor(t, deadline, "the node pings it", freshPings(l, l.Node, a))

	t0 := time.Now()
	_, ipsB := attach(t, l, cnitool, second, "shared", "tenantb")
	b := ipsB[0].Addr()
	waitLog(t, fn, "the first configuration seen holds until its last attachment is gone", deadline)
	readSince(t, l, w)
	noFlatnetRoute(t, l, netip.PrefixFrom(b, 32))
	for _, e := range w.Events() {
		if e.Deleted && e.Dst == netip.PrefixFrom(a, 32) && !e.Time.Before(t0) {
			t.Errorf("the first tenant's route was deleted: %+v", e)
		}
	}
	waitFor(t, deadline, "the node still pings the first tenant's pod", freshPings(l, l.Node, a))
	waitFor(t, deadline, "and the pod the node", freshPings(l, nsA, l.NodeIP))
}

// TestTrustNodeGateway: an allocation of the node's own default gateway
// (a range that holds it, a declared gateway that is another address) is
// never routed to the shim. At 85ac8cc flatnet routed it, and the node
// lost its gateway.
func TestTrustNodeGateway(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoIPv6: true, Ranges: []lab.Range{{
		Subnet:     netip.MustParsePrefix("192.168.0.0/16"),
		RangeStart: netip.MustParseAddr("192.168.0.1"), RangeEnd: netip.MustParseAddr("192.168.0.100"),
		Gateway: netip.MustParseAddr("192.168.0.254"),
	}}})
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	fn := startFlatnet(t, l, "")
	if ok, err := writeAlloc(l.StateDir(), l.Gateway, containerID()); !ok || err != nil {
		t.Fatalf("allocation of %s: %v %v", l.Gateway, ok, err)
	}
	p := mustPod(t, l, "pod1") // host-local skips the address taken
	waitFor(t, deadline, "pod1 routed", routed(l, p.IP.String()))
	waitLog(t, fn, "not routing "+l.Gateway.String()+" of network default: the next hop of the node's route default via "+l.Gateway.String()+" dev "+l.Master, deadline)
	readSince(t, l, w)
	noFlatnetRoute(t, l, netip.PrefixFrom(l.Gateway, 32))
	waitFor(t, deadline, "the node pings its gateway", freshPings(l, l.Node, l.Gateway))
	r, _ := runCheck(t, l)
	mustCheck(t, r, "allocations default", "warn", l.Gateway.String(), "next hop")
}

// TestTrustMacvlanMaster: a network whose master is a macvlan, the shim's
// own predictable name among them (the kernel accepts a macvlan on a
// macvlan and puts it on the lower device), shares the lower device's
// shim. At 85ac8cc flatnet made and removed "eno1.host.host" hundreds of
// times a minute.
func TestTrustMacvlanMaster(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	shim := l.Master + ".host"
	fn := startFlatnet(t, l, `resync_interval = "1s"`)
	waitFor(t, deadline, "the shim", func() error { _, err := l.MAC(l.Node, shim); return err })
	if err := l.AddNetwork(lab.NetworkOptions{Name: "onshim", Master: shim, Ranges: []lab.Range{{
		Subnet:     netip.MustParsePrefix("192.168.0.0/16"),
		RangeStart: netip.MustParseAddr("192.168.6.1"), RangeEnd: netip.MustParseAddr("192.168.6.50"),
		Gateway: netip.MustParseAddr("192.168.0.1"),
	}}}); err != nil {
		t.Fatal(err)
	}
	p, err := l.AddPodTo("onshim", "pod1")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, deadline, "its pod routed through the shared shim", routedVia(l, p.IP, shim))
	waitFor(t, deadline, "the node pings it", freshPings(l, l.Node, p.IP))
	waitLog(t, fn, "network onshim ("+filepath.Base(l.NetworkConfList("onshim"))+"): its master "+shim+" is a macvlan on "+l.Master, deadline)
	resyncs(t, fn, 3)
	readSince(t, l, w)
	if n := countLog(fn, "shim "+shim+" created"); n != 1 {
		t.Errorf("shim %s created %d times, want once", shim, n)
	}
	if n := countLog(fn, ".host.host"); n != 0 {
		t.Errorf("a shim on the shim was made (%d lines)", n)
	}
}

// TestTrustShimHeld: whatever keeps removing a shim, flatnet makes it at
// most a few times a minute, then holds it and says why, once.
func TestTrustShimHeld(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	shim := l.Master + ".host"
	fn := startFlatnet(t, l, "")
	for i := range 4 {
		waitFor(t, deadline, fmt.Sprintf("the shim, made %d times", i+1), func() error { _, err := l.MAC(l.Node, shim); return err })
		if _, err := l.Exec(l.Node, "ip", "link", "del", shim); err != nil {
			t.Fatal(err)
		}
	}
	waitLog(t, fn, "shim "+shim+" was made 4 times in the last 1m0s: flatnet holds it until", deadline)
	readSince(t, l, w)
	if ok, err := l.LinkExists(l.Node, shim); ok || err != nil {
		t.Errorf("the shim was made again while held (%v)", err)
	}
	readSince(t, l, w)
	logOnce(t, fn, "was made 4 times in the last")
	if n := countLog(fn, "shim "+shim+" created"); n != 4 {
		t.Errorf("shim made %d times, want 4", n)
	}
	r, _ := runCheck(t, l)
	t.Logf("check while held: %d fail, %d warn", r.Fail, r.Warn)
}

// TestTrustOnlyOwn: flatnet changes and deletes only what it made: a route
// with its protocol on a device it does not manage, a macvlan and a bridge
// that carry its alias but were not made by it, another party's chain in
// flatnet's nftables table stay, through passes and through flatnet
// teardown. At 85ac8cc all of them were deleted.
func TestTrustOnlyOwn(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPod(t, l, "pod1")
	fn := startFlatnet(t, l, "")
	waitFor(t, deadline, "pod1 routed", routed(l, p.IP.String()))
	// An allocation whose address a foreign route of protocol 97 holds
	// (the route first: it takes the address).
	taken := netip.MustParseAddr("192.168.1.77")
	for _, c := range [][]string{
		{"ip", "route", "add", "10.9.9.9/32", "dev", l.Master, "proto", "97"},
		{"ip", "route", "add", taken.String() + "/32", "dev", l.Master, "proto", "97"},
		{"ip", "link", "add", "fake.host", "link", l.Master, "type", "macvlan", "mode", "bridge"},
		{"ip", "link", "set", "fake.host", "alias", "flatnet shim"},
		{"ip", "link", "add", "fakebr", "type", "bridge"},
		{"ip", "link", "set", "fakebr", "alias", "flatnet shim"},
		// Another party's chain in flatnet's own nftables table (the
		// shim guard's arp table, which an IPv4 node has).
		{"nft", "add", "chain", "arp", "flatnet", "theirs"},
		{"nft", "add", "rule", "arp", "flatnet", "theirs", "counter"},
	} {
		if _, err := l.Exec(l.Node, c...); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := writeAlloc(l.StateDir(), taken, containerID()); !ok || err != nil {
		t.Fatal(ok, err)
	}
	waitLog(t, fn, `chain \"theirs\" in flatnet's table arp flatnet was not made by flatnet`, deadline)
	waitLog(t, fn, "not routing "+taken.String()+" of network default: a route flatnet does not own is in the way ("+taken.String()+"/32 dev "+l.Master+" proto 97)", deadline)
	readSince(t, l, w)
	theirs := func(when string) {
		t.Helper()
		if out, err := l.Exec(l.Node, "nft", "list", "chain", "arp", "flatnet", "theirs"); err != nil || !strings.Contains(out, "counter") {
			t.Errorf("%s: the other party's chain in table arp flatnet went: %q %v", when, out, err)
		}
		for _, dev := range []string{"fake.host", "fakebr"} {
			if ok, err := l.LinkExists(l.Node, dev); !ok || err != nil {
				t.Errorf("%s: %s was deleted (%v)", when, dev, err)
			}
		}
		out, err := l.Exec(l.Node, "ip", "route", "show", "proto", "97", "dev", l.Master)
		if err != nil || !strings.Contains(out, "10.9.9.9") || !strings.Contains(out, taken.String()) {
			t.Errorf("%s: the foreign routes of protocol 97 went: %q %v", when, out, err)
		}
	}
	theirs("after passes")

	if err := fn.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out, code := runFlatnet(t, l, "teardown")
	t.Logf("flatnet teardown (exit %d):\n%s", code, out)
	if code != 0 || !strings.Contains(out, "removed shim "+l.Master+".host") {
		t.Errorf("teardown (exit %d) did not remove flatnet's own shim", code)
	}
	for _, want := range []string{"left fake.host in place", "left fakebr in place", "left route 10.9.9.9/32 dev " + l.Master, "theirs"} {
		if !strings.Contains(out, want) {
			t.Errorf("teardown does not say %q", want)
		}
	}
	theirs("after teardown")
	rs, err := l.Routes(l.Node, flatnetProto)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Dev != l.Master {
			t.Errorf("after teardown, a route of flatnet's: %v", r)
		}
	}
}

// TestTrustDirectoryOwner: a state directory that another user made first,
// under a world-writable dataDir (as /run/lock is), is not read, as sshd's
// StrictModes would not: its network is held and the finding names the
// path and the fix. At 85ac8cc the allocation "nobody" wrote was routed.
func TestTrustDirectoryOwner(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	// The lab's directory lets others through (o+x), as /run does; the
	// dataDir is world-writable and sticky, as /run/lock is.
	if err := os.Chmod(l.Dir, 0o711); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(l.Dir, "lock")
	if err := os.Mkdir(lock, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lock, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	conf := `{"cniVersion": "0.3.1", "name": "locked", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "bridge",
 "ipam": {"type": "host-local", "dataDir": "` + lock + `", "ranges": [[{"subnet": "192.168.0.0/16", "rangeStart": "192.168.7.1", "rangeEnd": "192.168.7.50", "gateway": "192.168.0.1"}]]}}]}`
	if err := os.WriteFile(filepath.Join(l.CNIConfDir, "20-locked.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// "nobody" makes the network's directory first and writes an
	// allocation in it.
	dir := filepath.Join(lock, "locked")
	evil := netip.MustParseAddr("192.168.7.7")
	cmd := exec.Command("sh", "-c", `mkdir "$0" && printf 'c0ffee\r\neth0' > "$0/$1"`, dir, evil.String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %v: %s", err, out)
	}
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPod(t, l, "pod1")
	fn := startFlatnet(t, l, "")
	waitFor(t, deadline, "pod1 routed", routed(l, p.IP.String()))
	waitLog(t, fn, dir+" is owned by uid 65534: others than root can write it, so flatnet does not read it (chown root "+dir, deadline)
	readSince(t, l, w)
	noFlatnetRoute(t, l, netip.PrefixFrom(evil, 32))
	sts, _ := status(t, l)
	for _, s := range sts {
		if s.Name == "locked" && s.Routed != 0 {
			t.Errorf("status of locked: %+v", s)
		}
	}
	out, _ := runFlatnet(t, l, "check")
	if !strings.Contains(out, "owned by uid 65534") || !strings.Contains(out, "chown root:root "+dir) {
		t.Errorf("flatnet check does not name the directory and the fix:\n%s", out)
	}
}

// TestTrustVolume: what anyone who can write a state directory makes
// flatnet do stays bounded: 3,000 create/delete cycles of bad names give a
// few journal lines (at 85ac8cc, 2,985); 2,000 empty directories no
// network explains cost no full pass each and keep no inotify watch (at
// 85ac8cc, a full pass each, recounting all, and 2,003 watches).
func TestTrustVolume(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	p := mustPod(t, l, "pod1")
	fn := startFlatnet(t, l, "")
	waitFor(t, deadline, "pod1 routed", routed(l, p.IP.String()))
	watches0 := inotifyWatches(t, fn)
	cpu0 := cpuTime(t, fn)

	dir := l.StateDir()
	for i := range 3000 {
		path := filepath.Join(dir, fmt.Sprintf("bad-%d", i%7))
		if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	// A good allocation after the flood: once it is routed, flatnet has
	// read every event before it.
	if ok, err := writeAlloc(dir, netip.MustParseAddr("192.168.1.99"), containerID()); !ok || err != nil {
		t.Fatal(ok, err)
	}
	waitFor(t, deadline, "the allocation after the flood routed", routed(l, "192.168.1.99"))
	if n := countLog(fn, "ignoring bad-"); n > logBurst {
		t.Errorf("3,000 create/delete cycles of bad names: %d journal lines, want at most %d", n, logBurst)
	} else {
		t.Logf("3,000 create/delete cycles of bad names: %d journal lines", n)
	}

	fulls := countLog(fn, "full=true")
	root := l.StateRoot
	for i := range 2000 {
		if err := os.Mkdir(filepath.Join(root, fmt.Sprintf("empty%04d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := writeAlloc(dir, netip.MustParseAddr("192.168.1.98"), containerID()); !ok || err != nil {
		t.Fatal(ok, err)
	}
	waitFor(t, deadline, "the allocation after the directories routed", routed(l, "192.168.1.98"))
	if n := countLog(fn, "full=true") - fulls; n > 2 {
		t.Errorf("2,000 empty directories made %d full passes", n)
	}
	// Once their grace is over, the empty directories keep no watch.
	waitFor(t, 3*deadline, "the empty directories' watches dropped", func() error {
		if n := inotifyWatches(t, fn); n > watches0+2 {
			return fmt.Errorf("%d inotify watches, %d before", n, watches0)
		}
		return nil
	})
	t.Logf("inotify watches: %d before, %d after; flatnet's CPU over the test: %v", watches0, inotifyWatches(t, fn), cpuTime(t, fn)-cpu0)
}

// inotifyWatches counts the watches of p's inotify instances.
func inotifyWatches(t testing.TB, p *lab.Process) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", p.PID, fd.Name()))
		if err != nil {
			continue
		}
		n += strings.Count(string(b), "inotify wd:")
	}
	return n
}

// cpuTime is the user and system time p has used.
func cpuTime(t testing.TB, p *lab.Process) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100
}
