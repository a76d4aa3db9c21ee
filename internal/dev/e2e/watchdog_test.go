//go:build integration

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

var (
	wedgeOnce sync.Once
	wedgeBin  string
	wedgeErr  error
)

// needWedgeBuild builds flatnet with the tag flatnet_debug_wedge (SIGUSR2
// wedges its loop), next to the flatnet binary TestMain built.
func needWedgeBuild(t testing.TB) string {
	t.Helper()
	needFlatnet(t)
	wedgeOnce.Do(func() {
		wedgeBin = filepath.Join(filepath.Dir(flatnetBin), "flatnet-wedge")
		wedgeErr = build(wedgeBin, "-tags", "flatnet_debug_wedge")
	})
	if wedgeErr != nil {
		t.Fatal(wedgeErr)
	}
	return wedgeBin
}

// TestWatchdogStopsWhenWedged: the watchdog's pings come from the loop, so
// a loop that is stuck stops them, and systemd, which kills a unit whose
// pings stop for WatchdogSec (30 s in flatnet.service), restarts flatnet.
// systemd's part is its own (docs/systemd.md); this is flatnet's, by the
// notify protocol systemd speaks: with WATCHDOG_USEC=300000, a ping every
// 150 ms while the loop runs; none once a test build's loop is wedged
// (SIGUSR2), for three times what systemd would allow, while the process
// still runs. A SIGHUP sent meanwhile is never answered: the loop is what
// is stuck.
func TestWatchdogStopsWhenWedged(t *testing.T) {
	bin := needWedgeBuild(t)
	l := lab.NewT(t, lab.Options{})
	if _, err := l.WriteFlatnetConfig(""); err != nil {
		t.Fatal(err)
	}
	n := listenNotify(t, filepath.Join(l.Dir, "notify.sock"))
	const usec = 300000
	fn, err := l.Start(l.Node, "flatnet", "env", "NOTIFY_SOCKET="+n.path, fmt.Sprintf("WATCHDOG_USEC=%d", usec),
		bin, "run", "--config", l.FlatnetConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !fn.Exited() {
			_ = fn.Stop(syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("flatnet log:\n%s", fn.Log())
		}
	})
	n.wait(t, "READY=1", deadline)
	waitFor(t, deadline, "three watchdog pings", func() error {
		if c := n.count("WATCHDOG=1"); c < 3 {
			return fmt.Errorf("%d so far", c)
		}
		return nil
	})

	if err := fn.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitLog(t, fn, "loop wedged on SIGUSR2", deadline)
	// Every ping the loop sent before it wedged is in the socket before
	// the log line: a datagram of the test's own, read after them, marks
	// the moment they are all counted.
	mark := func(m string) int {
		t.Helper()
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.path, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
		n.wait(t, m, deadline)
		return n.count("WATCHDOG=1")
	}
	before := mark("TEST_MARK=wedged")
	if err := fn.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The watchdog's own rule, a window by definition: systemd kills when
	// WATCHDOG_USEC passes without a ping. Three times that.
	time.Sleep(3 * usec * time.Microsecond)
	if after := mark("TEST_MARK=later"); after != before {
		t.Fatalf("%d watchdog pings after the loop wedged", after-before)
	}
	if fn.Exited() {
		t.Fatalf("flatnet exited (status %d): the test needs it wedged, not gone", fn.ExitCode())
	}
	if err := syscall.Kill(fn.PID, 0); err != nil {
		t.Fatalf("flatnet's process: %v", err)
	}
	if strings.Contains(fn.Log(), "configuration reloaded") {
		t.Errorf("a wedged loop reloaded on SIGHUP")
	}
	_ = os.Remove(n.path)
}
