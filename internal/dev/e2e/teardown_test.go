//go:build integration

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// leftovers lists what of flatnet's is still in the lab's node: routes
// with its protocol, links with its alias, links holding the shim's own
// address, IPv6 proxy entries on the given shims, its nftables table.
func leftovers(t testing.TB, l *lab.Lab, shims ...string) []string {
	t.Helper()
	var out []string
	if rs := flatnetRoutes(t, l); len(rs) > 0 {
		out = append(out, fmt.Sprintf("%d routes with proto 97", len(rs)))
	}
	links, err := l.Exec(l.Node, "ip", "-d", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(links, "alias flatnet shim") {
		out = append(out, "a link with alias \"flatnet shim\"")
	}
	addrs, err := l.Exec(l.Node, "ip", "-4", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(addrs, "192.0.0.8/32") {
		out = append(out, "a link holding 192.0.0.8/32")
	}
	for _, s := range shims {
		if ok, _ := l.LinkExists(l.Node, s); !ok {
			continue
		}
		px, err := l.Exec(l.Node, "ip", "-6", "neigh", "show", "proxy", "dev", s)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(px) != "" {
			out = append(out, "proxy entries on "+s+": "+strings.TrimSpace(px))
		}
	}
	for _, family := range []string{"netdev", "arp"} {
		if _, err := l.Exec(l.Node, "nft", "list", "table", family, "flatnet"); err == nil {
			out = append(out, "nftables table "+family+" flatnet")
		}
	}
	return out
}

// TestTeardownWithoutAConfig: removal never depends on the configuration.
// flatnet ran on a dual-stack node with a shim of its own and one made by
// hand; with the configuration then missing, a directory, or invalid
// (one stray key), `flatnet teardown` still removes everything flatnet
// added, says the configuration was ignored and why, exits 0, and leaves
// the hand-made shim and a foreign nftables table alone.
func TestTeardownWithoutAConfig(t *testing.T) {
	needFlatnet(t)
	for _, tt := range []struct {
		name, guard string
		config      func(t *testing.T, l *lab.Lab) // breaks the configuration
		ignored     string                         // what teardown says of it
	}{
		{"invalid", "", func(t *testing.T, l *lab.Lab) {
			appendFile(t, l.FlatnetConfigPath(), "bogus_key = 1\n")
		}, "unknown key \"bogus_key\""},
		{"missing, shims with their own address", "address", func(t *testing.T, l *lab.Lab) {
			if err := os.Remove(l.FlatnetConfigPath()); err != nil {
				t.Fatal(err)
			}
		}, "no such file"},
		{"a directory", "", func(t *testing.T, l *lab.Lab) {
			if err := os.Remove(l.FlatnetConfigPath()); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(l.FlatnetConfigPath(), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lab.NewT(t, dualStack(nil))
			// A second network on a hand-made shim of a second NIC.
			if err := l.AddNIC(storageNIC()); err != nil {
				t.Fatal(err)
			}
			if err := l.AddNetwork(lab.NetworkOptions{Name: "storage", Master: "eno2", Ranges: []lab.Range{storageRange()}}); err != nil {
				t.Fatal(err)
			}
			for _, c := range [][]string{
				{"ip", "link", "add", "eno2.host", "link", "eno2", "type", "macvlan", "mode", "bridge"},
				{"ip", "link", "set", "eno2.host", "up"},
				{"nft", "add", "table", "inet", "operators"},
			} {
				if _, err := l.Exec(l.Node, c...); err != nil {
					t.Fatal(err)
				}
			}
			pods := []*lab.Pod{mustPod(t, l, "pod1")}
			s1, err := l.AddPodTo("storage", "s1")
			if err != nil {
				t.Fatal(err)
			}
			pods = append(pods, s1)
			extra := ""
			if tt.guard != "" {
				extra = fmt.Sprintf("lan_guard = %q\n", tt.guard)
			}
			fn := startFlatnet(t, l, extra)
			for _, p := range pods {
				for _, a := range p.IPs {
					waitFor(t, 15*time.Second, "flatnet routes "+a.Addr().String(), routed(l, a.Addr().String()))
				}
			}
			if got := leftovers(t, l, "eno1.host", "eno2.host"); len(got) < 3 {
				t.Fatalf("before teardown, flatnet's marks should be there: %q", got)
			}
			if err := fn.Stop(syscall.SIGKILL); err == nil {
				t.Fatal("flatnet exited cleanly on SIGKILL")
			}
			tt.config(t, l)
			out, stderr, code := runFlatnetOut(t, l, "teardown", "--config", l.FlatnetConfigPath())
			t.Logf("flatnet teardown:\n%s", out)
			if code != 0 {
				t.Errorf("teardown exited %d", code)
			}
			if !strings.Contains(stderr, "configuration ignored") || !strings.Contains(stderr, tt.ignored) {
				t.Errorf("teardown does not say the configuration was ignored and why (%q): %q", tt.ignored, stderr)
			}
			if got := leftovers(t, l, "eno1.host", "eno2.host"); len(got) > 0 {
				t.Errorf("left after teardown: %q", got)
			}
			if ok, _ := l.LinkExists(l.Node, "eno2.host"); !ok {
				t.Errorf("teardown removed the hand-made shim eno2.host")
			}
			if !strings.Contains(out, "left eno2.host in place") {
				t.Errorf("teardown does not say it left the hand-made shim")
			}
			if _, err := l.Exec(l.Node, "nft", "list", "table", "inet", "operators"); err != nil {
				t.Errorf("teardown removed a foreign nftables table: %v", err)
			}
		})
	}
}

// appendFile appends s to the file at path.
func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTeardownWarnsWhenFlatnetRuns: `flatnet teardown` while `flatnet run`
// runs in the same network namespace says so on stderr, naming that
// process's pid and telling the operator to stop it first; a flatnet
// running in another node's namespace is not named, and once the local one
// is stopped the warning goes. The warning is right: the running flatnet
// puts back what teardown removed.
func TestTeardownWarnsWhenFlatnetRuns(t *testing.T) {
	a := lab.NewT(t, lab.Options{})
	b := lab.NewT(t, lab.Options{JoinLAN: a, NodeAddr: netip.MustParsePrefix("192.168.0.6/16"), NodeAddr6: netip.MustParsePrefix("fd00::6/64"),
		MachineID: "0123456789abcdef0123456789abcdef"})
	p1 := mustPod(t, a, "pod1")
	fnA := startFlatnet(t, a, "")
	fnB := startFlatnet(t, b, "")
	waitFor(t, deadline, "flatnet routes pod1", routed(a, p1.IP.String()))
	waitFor(t, deadline, "the other node's flatnet has its shim", func() error {
		_, err := b.MAC(b.Node, b.Master+".host")
		return err
	})
	running(t, fnB)

	w, err := a.WatchRoutes(a.Node)
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runFlatnetOut(t, a, "teardown")
	t.Logf("flatnet teardown with flatnet running (pid %d here, %d in the other node):\nstdout:\n%sstderr:\n%s", fnA.PID, fnB.PID, out, stderr)
	if code != 0 {
		t.Errorf("teardown exited %d", code)
	}
	m := regexp.MustCompile(`flatnet run \(pid ([0-9, ]+)\) is running here`).FindStringSubmatch(stderr)
	switch {
	case m == nil:
		t.Errorf("teardown does not say that flatnet run is running: %q", stderr)
	case m[1] != strconv.Itoa(fnA.PID):
		t.Errorf("teardown names pid %s, want only %d, the flatnet of this node (%d runs in another node's namespace)", m[1], fnA.PID, fnB.PID)
	}
	if !strings.Contains(stderr, "stop it first") {
		t.Errorf("teardown does not say to stop flatnet first: %q", stderr)
	}
	if !strings.Contains(out, "removed route "+p1.IP.String()+"/32") {
		t.Errorf("teardown did not remove pod1's route: %q", out)
	}
	// What the warning is about: the running flatnet puts it back.
	routeBack(t, w, p1.IP, time.Time{}, deadline)
	waitFor(t, deadline, "flatnet puts pod1's route back", routed(a, p1.IP.String()))
	running(t, fnA)

	if err := fnA.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = runFlatnetOut(t, a, "teardown")
	t.Logf("flatnet teardown with flatnet stopped:\nstdout:\n%sstderr:\n%s", out, stderr)
	if code != 0 || strings.Contains(stderr, "is running here") {
		t.Errorf("teardown with flatnet stopped: exit %d, stderr %q", code, stderr)
	}
	if rs := flatnetRoutes(t, a); len(rs) != 0 {
		t.Errorf("flatnet's routes after teardown with flatnet stopped: %v", rs)
	}
}
