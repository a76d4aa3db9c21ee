//go:build integration

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"golang.org/x/sys/unix"
)

// state dir unreadable: flatnet holds the routes it has for the network
// (it cannot tell which allocations went), says so once however many passes
// meet it, and follows the directory again once it can read it. The
// directory is swapped atomically (renameat2 RENAME_EXCHANGE) with a
// regular file, which root cannot list either: no moment in between shows
// the directory absent, which would mean "no allocations" and cost the
// routes rightly.
func faultStateDirUnreadable(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, `resync_interval = "1s"`, 2)
	dir := f.l.StateDir()
	swap := dir + ".swap"
	if err := os.WriteFile(swap, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exchange := func() {
		t.Helper()
		if err := unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, swap, unix.RENAME_EXCHANGE); err != nil {
			t.Fatalf("exchanging %s and %s: %v", dir, swap, err)
		}
	}
	held := "cannot read state dir " + dir + "; holding its routes"
	before := flatnetRoutes(t, f.l)
	t0 := time.Now()
	exchange()
	// Passes meet the unreadable directory: the resync timer's, and the
	// one after a reload.
	resyncs(t, f.fn, 3)
	hup(t, f.fn)
	resyncs(t, f.fn, 1)
	for _, e := range podRouteEvents(f.w, t0, f.pods...) {
		t.Errorf("a pod's route changed while its state dir was unreadable: %v", e)
	}
	if after := flatnetRoutes(t, f.l); !maps.Equal(after, before) {
		t.Errorf("flatnet's routes before the state dir became unreadable: %v; while it was: %v", before, after)
	}
	logOnce(t, f.fn, held)
	f.allReachable(t)

	// Readable again: said once, and followed again, both ways.
	exchange()
	waitLog(t, f.fn, "state dir "+dir+" readable again", deadline)
	p3 := mustPod(t, f.l, "pod3")
	reachable(t, f.l, p3, deadline)
	if err := f.l.DelPod(f.pods[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, deadline, "pod2's route goes once its state dir is read again", notRouted(f.l, f.pods[1].IP.String()))
	f.pods = []*lab.Pod{f.pods[0], p3}
	f.allReachable(t)
	logOnce(t, f.fn, held, "state dir "+dir+" readable again")
}

// a change that fails: a foreign macvlan on the master holds the MAC the
// shim must have, so the shim cannot come up (EADDRINUSE), and flatnet,
// which never removes a device it did not make, fails and says it will
// retry. Once the operator removes the device, flatnet makes the shim and
// the routes, without waiting for the resync timer (an hour here).
func faultChangeFailed(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{})
	p1 := mustPod(t, l, "pod1")
	// A first run shows the shim's MAC (the machine id's), and its
	// teardown leaves the node without a shim.
	fn := startFlatnet(t, l, `on_stop = "teardown"`)
	reachable(t, l, p1, deadline)
	shim := l.Master + ".host"
	mac := mustMAC(t, l, l.Node, shim)
	if err := fn.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.LinkExists(l.Node, shim); ok {
		t.Fatalf("the shim is still there after teardown")
	}
	for _, c := range [][]string{
		{"ip", "link", "add", "eno1.vm", "link", l.Master, "address", mac.String(), "type", "macvlan", "mode", "bridge"},
		{"ip", "link", "set", "eno1.vm", "up"},
	} {
		if _, err := l.Exec(l.Node, c...); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := l.WriteFlatnetConfig(`resync_interval = "1h"`); err != nil {
		t.Fatal(err)
	}
	fn = launchFlatnet(t, l)
	waitLog(t, fn, "will retry", deadline)
	if !strings.Contains(fn.Log(), "address already in use") {
		t.Errorf("the failure does not say why")
	}
	if err := routed(l, p1.IP.String())(); err == nil {
		t.Errorf("pod1 routed while its shim cannot come up")
	}
	if ok, err := l.LinkExists(l.Node, "eno1.vm"); !ok {
		t.Fatalf("flatnet removed the device in its way, which it did not make (%v)", err)
	}
	running(t, fn)

	if _, err := l.Exec(l.Node, "ip", "link", "del", "eno1.vm"); err != nil {
		t.Fatal(err)
	}
	reachable(t, l, p1, 3*deadline)
	// Not the resync timer's work (an hour away): the debug line of the
	// pass that routed the pod says why it ran.
	notResync(t, fn, fmt.Sprintf("route %s/32 dev %s added", p1.IP, shim))
	if got := mustMAC(t, l, l.Node, shim); !bytes.Equal(got, mac) {
		t.Errorf("the shim came up with MAC %s, want %s", got, mac)
	}
	running(t, fn)
}

// a change that fails, and whose cause goes without any event flatnet
// follows: /proc/sys is read-only for flatnet (as in a container), so it
// cannot configure the shim it makes. It says it will retry, and does, from
// its retry timer alone; once /proc/sys is writable again (a remount, which
// makes no notification), a retry makes the shim and the routes, with the
// resync timer an hour away. flatnet runs in a mount namespace of its own,
// made for it, in which /proc/sys is a read-only bind mount; the node's
// and the host's stay as they are.
func faultChangeFailedRetried(t *testing.T) {
	needFlatnet(t)
	// No IPv6 on new devices: the shim's link-local address would come
	// with events of its own (duplicate address detection) a second later.
	l := lab.NewT(t, lab.Options{NoIPv6: true, NodeSysctls: map[string]string{"net.ipv6.conf.default.disable_ipv6": "1"}})
	p1 := mustPod(t, l, "pod1")
	if _, err := l.WriteFlatnetConfig(`resync_interval = "1h"`); err != nil {
		t.Fatal(err)
	}
	fn, err := l.Start(l.Node, "flatnet", "unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$@"`,
		"sh", flatnetBin, "run", "--config", l.FlatnetConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, fn)
	waitLog(t, fn, "will retry", deadline)
	if !strings.Contains(fn.Log(), "read-only file system") {
		t.Errorf("the failure does not say why")
	}
	// The shim is made and used meanwhile, unconfigured.
	arpFilter := func() error {
		if v, err := l.ReadSysctl(l.Node, "net/ipv4/conf/"+l.Master+".host/arp_filter"); err != nil || v != "1" {
			return fmt.Errorf("the shim's arp_filter is %q (%v)", v, err)
		}
		return nil
	}
	if arpFilter() == nil {
		t.Fatalf("the shim was configured with /proc/sys read-only")
	}
	running(t, fn)
	// The shim is up and has its carrier, whose event the kernel may send
	// up to a second late; then a pass that read the kernel since proves
	// flatnet has had every event its own changes made. From here on only
	// its retry timer wakes it.
	h := nodeHandle(t, l)
	waitFor(t, deadline, "the shim is up, with its carrier", func() error {
		sh, err := h.LinkByName(l.Master + ".host")
		if err != nil {
			return err
		}
		if sh.Attrs().RawFlags&unix.IFF_LOWER_UP == 0 {
			return fmt.Errorf("flags %v", sh.Attrs().Flags)
		}
		return nil
	})
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	readSince(t, l, w)
	// The marker's own changes echo back as route events, each a pass that
	// could mend the shim once /proc/sys is writable: a retry pass that
	// still failed, a second or more later, is past them.
	retries := retryPasses(fn.Log())
	waitFor(t, 6*deadline, "a retry that fails again", func() error {
		if retryPasses(fn.Log()) == retries {
			return errors.New("no retry pass yet")
		}
		return nil
	})

	if out, err := exec.Command("nsenter", "--target", strconv.Itoa(fn.PID), "--mount",
		"mount", "-o", "remount,bind,rw", "/proc/sys").CombinedOutput(); err != nil {
		t.Fatalf("making /proc/sys writable for flatnet again: %v: %s", err, out)
	}
	// Nothing flatnet follows has changed: only a retry can do it. The back-
	// off is a second per failure so far, hence the longer safety deadline.
	waitFor(t, 6*deadline, "a retry configures the shim", arpFilter)
	notResync(t, fn, "shim "+l.Master+".host configured")
	reachable(t, l, p1, deadline)
	running(t, fn)
}

// retryPasses counts the passes in log that ran for a retry (why "retry",
// or "failed changes", the first reason a failed pass leaves for the next).
func retryPasses(log string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "msg=reconciled") && (strings.Contains(l, "why=retry") || strings.Contains(l, `why="failed changes"`)) {
			n++
		}
	}
	return n
}

// notResync fails the test when the pass that logged change ran for the
// resync timer: with resync_interval "1h", only a retry (why "retry", or
// "failed changes", the first reason a failed pass leaves for the next)
// can have made it.
func notResync(t testing.TB, p *lab.Process, change string) {
	t.Helper()
	pass := passAfter(t, p, change)
	if !strings.Contains(pass, "why=retry") && !strings.Contains(pass, `why="failed changes"`) {
		t.Errorf("%q was made by a pass that did not run for a retry: %s", change, pass)
	}
}
