//go:build integration

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// flatnetProto is the rtnetlink protocol number of flatnet's routes
// (`proto flatnet` in `ip route` once rt_protos.d names it).
const flatnetProto = 97

var (
	// flatnetBin is the flatnet binary TestMain built.
	flatnetBin string
	// buildErr is why it could not be built.
	buildErr error
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// ^C or a kill removes the labs instead of leaving namespaces behind; a
	// run killed harder is cleaned up by the next one (lab.RemoveStale).
	lab.HandleInterrupt()
	if os.Geteuid() == 0 {
		_, _ = lab.RemoveStale()
	}
	dir, err := os.MkdirTemp("", "flatnet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	flatnetBin = filepath.Join(dir, "flatnet")
	buildErr = build(flatnetBin)
	code := m.Run()
	if err := lab.CloseAll(); err != nil {
		fmt.Fprintln(os.Stderr, "removing labs:", err)
	}
	return code
}

// build compiles cmd/flatnet, with the build flags given.
func build(out string, flags ...string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if root := os.Getenv("GOROOT"); root != "" {
			goTool = filepath.Join(root, "bin", "go")
		} else {
			return fmt.Errorf("no go tool to build flatnet: %w", err)
		}
	}
	cmd := exec.Command(goTool, append(append([]string{"build"}, flags...), "-o", out, "github.com/flatnet/flatnet/cmd/flatnet")...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build github.com/flatnet/flatnet/cmd/flatnet: %w\n%s", err, strings.TrimSpace(buf.String()))
	}
	return nil
}

// needFlatnet fails the test when the flatnet binary could not be built.
func needFlatnet(t testing.TB) {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("the flatnet binary is needed and could not be built:\n%v", buildErr)
	}
}

// startFlatnet writes the lab's flatnet.toml (plus extraConfig) and starts
// `flatnet run` in the node namespace. At the end of the test it is stopped
// with SIGTERM if still running, and its log is shown if the test failed.
func startFlatnet(t testing.TB, l *lab.Lab, extraConfig string) *lab.Process {
	t.Helper()
	needFlatnet(t)
	if _, err := l.WriteFlatnetConfig(extraConfig); err != nil {
		t.Fatalf("writing flatnet.toml: %v", err)
	}
	p, err := l.StartFlatnet(flatnetBin)
	if err != nil {
		t.Fatalf("starting flatnet: %v", err)
	}
	stopOnCleanup(t, p)
	return p
}

// stopOnCleanup stops flatnet with SIGTERM when the test ends, checking it
// exits cleanly, and shows its log when the test failed.
func stopOnCleanup(t testing.TB, p *lab.Process) {
	t.Logf("flatnet started (pid %d), log %s", p.PID, p.LogPath)
	t.Cleanup(func() {
		if !p.Exited() {
			if err := p.Stop(syscall.SIGTERM); err != nil {
				t.Errorf("flatnet (pid %d) on SIGTERM: %v", p.PID, err)
			}
		}
		if t.Failed() {
			t.Logf("flatnet log (%s):\n%s", p.LogPath, p.Log())
		}
	})
}

// waitFor polls cond until it returns nil, failing the test with cond's
// last error if that has not happened within timeout. Timeouts are
// generous safety nets, never a measurement.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// routed is a waitFor condition: the node has a flatnet route to ip.
func routed(l *lab.Lab, ip string) func() error {
	return func() error {
		rs, err := l.Routes(l.Node, flatnetProto)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Dst.IsSingleIP() && r.Dst.Addr().String() == ip {
				return nil
			}
		}
		return fmt.Errorf("no proto %d route to %s; routes: %v", flatnetProto, ip, rs)
	}
}

// notRouted is a waitFor condition: the node has no route to ip/32.
func notRouted(l *lab.Lab, ip string) func() error {
	return func() error {
		rs, err := l.Routes(l.Node, -1)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Dst.IsSingleIP() && r.Dst.Addr().String() == ip {
				return fmt.Errorf("route still there: %v", r)
			}
		}
		return nil
	}
}

// mustPod adds a pod and starts its web server.
func mustPod(t testing.TB, l *lab.Lab, name string) *lab.Pod {
	t.Helper()
	p, err := l.AddPod(name)
	if err != nil {
		t.Fatalf("adding pod %s: %v", name, err)
	}
	if _, err := l.StartPodHTTP(p); err != nil {
		t.Fatalf("web server in pod %s: %v", name, err)
	}
	t.Logf("pod %s: %s (container %.12s…)", name, p.IP, p.ContainerID)
	return p
}
