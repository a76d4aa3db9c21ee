//go:build integration

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// The operator's tools against real faults: each test breaks a lab node in
// one way, proves with real packets that the fault is real, reads
// `flatnet check` and `flatnet status` as an operator would, applies the
// fix check gives (verbatim, where it is a command) and proves it works.

// chkResult is one line of `flatnet check --json`.
type chkResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}

// chkReport is `flatnet check --json`.
type chkReport struct {
	Checks []chkResult `json:"checks"`
	OK     int         `json:"ok"`
	Warn   int         `json:"warn"`
	Fail   int         `json:"fail"`
}

// runFlatnet runs the flatnet binary in the lab's node namespace with the
// lab's configuration and returns its stdout and exit code.
func runFlatnet(t testing.TB, l *lab.Lab, args ...string) (string, int) {
	t.Helper()
	stdout, _, code := runFlatnetOut(t, l, args...)
	return stdout, code
}

// runFlatnetOut is runFlatnet returning stderr too.
func runFlatnetOut(t testing.TB, l *lab.Lab, args ...string) (string, string, int) {
	t.Helper()
	needFlatnet(t)
	argv := append([]string{"netns", "exec", l.Node, flatnetBin}, args...)
	if !slices.Contains(args, "--config") {
		if _, err := os.Stat(l.FlatnetConfigPath()); err != nil {
			if _, err := l.WriteFlatnetConfig(""); err != nil {
				t.Fatal(err)
			}
		}
		argv = append(argv, "--config", l.FlatnetConfigPath())
	}
	cmd := exec.Command("ip", argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("flatnet %s: %v", strings.Join(args, " "), err)
	}
	if stderr.Len() > 0 {
		t.Logf("flatnet %s (stderr): %s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

// runCheck runs `flatnet check --json` and logs the human output too.
func runCheck(t testing.TB, l *lab.Lab) (chkReport, int) {
	t.Helper()
	human, _ := runFlatnet(t, l, "check")
	t.Logf("flatnet check:\n%s", human)
	out, code := runFlatnet(t, l, "check", "--json")
	var r chkReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("flatnet check --json: %v\n%s", err, out)
	}
	if want := 0; r.Fail > 0 {
		want = 1
		if code != want {
			t.Errorf("flatnet check exited %d with %d failures, want %d", code, r.Fail, want)
		}
	} else if code != 0 {
		t.Errorf("flatnet check exited %d with no failure", code)
	}
	return r, code
}

// findCheck returns the result called name with status, if any.
func findCheck(r chkReport, name, status string) (chkResult, bool) {
	for _, c := range r.Checks {
		if c.Name == name && c.Status == status {
			return c, true
		}
	}
	return chkResult{}, false
}

// mustCheck fails the test unless the report has name with status and
// its detail holds every one of words.
func mustCheck(t testing.TB, r chkReport, name, status string, words ...string) chkResult {
	t.Helper()
	c, ok := findCheck(r, name, status)
	if !ok {
		t.Fatalf("flatnet check has no %s %q", status, name)
	}
	for _, w := range words {
		if !strings.Contains(c.Detail, w) {
			t.Errorf("%s %q: detail %q lacks %q", status, name, c.Detail, w)
		}
	}
	if status != "ok" && c.Fix == "" {
		t.Errorf("%s %q has no fix", status, name)
	}
	return c
}

// onlyProblems fails the test if a check other than those named is not ok.
func onlyProblems(t testing.TB, r chkReport, names ...string) {
	t.Helper()
	for _, c := range r.Checks {
		if c.Status != "ok" && !contains(names, c.Name) {
			t.Errorf("unexpected %s %q: %s — fix: %s", c.Status, c.Name, c.Detail, c.Fix)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// applyFix runs, in the node, the command a fix starts with (up to the
// explanation), as an operator would paste it.
func applyFix(t testing.TB, l *lab.Lab, fix string) {
	t.Helper()
	cmd := fix
	for _, sep := range []string{" (", " — ", ";", ", and"} {
		if i := strings.Index(cmd, sep); i >= 0 {
			cmd = cmd[:i]
		}
	}
	argv := strings.Fields(cmd)
	if len(argv) == 0 || (argv[0] != "sysctl" && argv[0] != "ip") {
		t.Fatalf("fix %q does not start with a command", fix)
	}
	t.Logf("applying the fix: %s", strings.Join(argv, " "))
	if _, err := l.Exec(l.Node, argv...); err != nil {
		t.Fatal(err)
	}
}

// podPingsNode is whether a pod can open a conversation with the node:
// its neighbour cache is emptied first, so it must resolve the node anew.
func podPingsNode(t testing.TB, l *lab.Lab, p *lab.Pod) error {
	t.Helper()
	if _, err := l.Exec(p.NS, "ip", "neigh", "flush", "all"); err != nil {
		t.Fatal(err)
	}
	return l.Ping(p.NS, l.NodeIP)
}

// TestCheckHealthyNode is the seed's node with flatnet running: every
// check ok, status in sync, both exit 0. No false alarm.
func TestCheckHealthyNode(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	p1 := mustPod(t, l, "pod1")
	p2 := mustPod(t, l, "pod2")
	startFlatnet(t, l, "")
	for _, p := range []*lab.Pod{p1, p2} {
		waitFor(t, 15*time.Second, "flatnet routes "+p.Name, routed(l, p.IP.String()))
		if err := podPingsNode(t, l, p); err != nil {
			t.Fatalf("%s cannot reach the node on a healthy lab: %v", p.Name, err)
		}
	}

	r, code := runCheck(t, l)
	if code != 0 || r.Warn != 0 || r.Fail != 0 {
		t.Errorf("healthy node: exit %d, %d warnings, %d failures", code, r.Warn, r.Fail)
	}
	onlyProblems(t, r)
	for _, name := range []string{"config", "cni", "cni 00-default.conflist", "network default", "macvlan", "master eno1", "shim eno1.host",
		"arp_ignore eno1.host", "rp_filter default", "routes default", "foreign routes default", "allocations default", "networkd", "NetworkManager", "daemon"} {
		mustCheck(t, r, name, "ok")
	}
	mustCheck(t, r, "routes default", "ok", "2 of 2 allocations routed through eno1.host")
	mustCheck(t, r, "daemon", "ok", "flatnet run is running")

	human, code := runFlatnet(t, l, "status")
	t.Logf("flatnet status:\n%s", human)
	if code != 0 || !strings.Contains(human, "in sync") || strings.Contains(human, "\x1b[") {
		t.Errorf("flatnet status exited %d:\n%q", code, human)
	}
	out, code := runFlatnet(t, l, "status", "--json")
	if code != 0 {
		t.Errorf("flatnet status --json exited %d", code)
	}
	checkStatusShape(t, out)
	var st struct {
		Networks []struct {
			Name, Master, Shim string
			ShimUp             bool `json:"shim_up"`
			Allocated, Routed  int
			Missing, Stale     []string
			ShimMAC            string `json:"shim_mac"`
			ShimMode           string `json:"shim_mode"`
		} `json:"networks"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	mac, err := l.MAC(l.Node, "eno1.host")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Networks) != 1 {
		t.Fatalf("status --json: %s", out)
	}
	n := st.Networks[0]
	if n.Name != "default" || n.Master != "eno1" || n.Shim != "eno1.host" || !n.ShimUp || n.Allocated != 2 || n.Routed != 2 ||
		len(n.Missing) != 0 || len(n.Stale) != 0 || n.ShimMAC != mac.String() || n.ShimMode != "bridge" {
		t.Errorf("status --json: %+v", n)
	}
}

// checkStatusShape asserts the exact shape PRODUCT.md gives for `flatnet
// status --json`: {"networks":[{"name","master","shim","shim_up",
// "allocated","routed","missing":[ip…],"stale":[ip…]}]}.
func checkStatusShape(t testing.TB, out string) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	nets, ok := doc["networks"].([]any)
	if !ok {
		t.Fatalf("status --json: no networks list: %s", out)
	}
	for _, n := range nets {
		m := n.(map[string]any)
		for key, kind := range map[string]string{"name": "string", "master": "string", "shim": "string", "shim_up": "bool",
			"allocated": "number", "routed": "number", "missing": "list", "stale": "list"} {
			v, ok := m[key]
			if !ok {
				t.Errorf("status --json: network without %q", key)
				continue
			}
			var good bool
			switch kind {
			case "string":
				_, good = v.(string)
			case "bool":
				_, good = v.(bool)
			case "number":
				_, good = v.(float64)
			case "list":
				var l []any
				l, good = v.([]any)
				for _, ip := range l {
					s, _ := ip.(string)
					if _, err := netip.ParseAddr(s); err != nil {
						good = false
					}
				}
			}
			if !good {
				t.Errorf("status --json: %q is %T, want a %s", key, v, kind)
			}
		}
	}
}

// TestCheckSeedFailedAttempt is the seed's own failed attempt: pods in
// 192.168.1.0/24 with the LAN's gateway 192.168.0.1. host-local refuses
// it; check says so and gives the seed's working configuration as the fix.
func TestCheckSeedFailedAttempt(t *testing.T) {
	l := lab.NewT(t, lab.Options{Ranges: []lab.Range{{
		Subnet:     netip.MustParsePrefix("192.168.1.0/24"),
		RangeStart: netip.MustParseAddr("192.168.1.2"),
		RangeEnd:   netip.MustParseAddr("192.168.1.254"),
		Gateway:    netip.MustParseAddr("192.168.0.1"),
	}}})
	if _, err := l.AddPod("pod1"); err == nil {
		t.Fatal("host-local accepted a gateway outside the subnet; the lab does not reproduce the seed")
	}
	r, code := runCheck(t, l)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	c := mustCheck(t, r, "cni 00-default.conflist", "fail", "gateway 192.168.0.1 is outside subnet 192.168.1.0/24")
	seed := lab.SeedRange()
	want := `"subnet": "` + seed.Subnet.String() + `", "rangeStart": "` + seed.RangeStart.String() + `", "rangeEnd": "` + seed.RangeEnd.String() + `", "gateway": "` + seed.Gateway.String() + `"`
	if !strings.Contains(c.Fix, want) {
		t.Errorf("fix %q does not give the seed's working range %s", c.Fix, want)
	}
	onlyProblems(t, r, "cni 00-default.conflist", "daemon")
}

// TestCheckModePrivate: pods in macvlan private mode, which the shim can
// never reach.
func TestCheckModePrivate(t *testing.T) {
	l := lab.NewT(t, lab.Options{Mode: "private"})
	p := mustPod(t, l, "pod1")
	fl := startFlatnet(t, l, "")
	// flatnet makes nothing for such a network: it says why and waits.
	waitFor(t, 15*time.Second, "flatnet names the mode", func() error {
		if !strings.Contains(fl.Log(), "macvlan mode private") {
			return fmt.Errorf("not logged yet")
		}
		return nil
	})
	if routed(l, p.IP.String())() == nil {
		t.Error("flatnet routed a pod of a private-mode network")
	}
	if err := l.Ping(l.Node, p.IP); err == nil {
		t.Fatal("the node reached a private-mode pod; the fault is not real")
	}
	r, _ := runCheck(t, l)
	c := mustCheck(t, r, "cni 00-default.conflist", "fail", `mode "private"`)
	if !strings.Contains(c.Fix, `"mode": "bridge"`) {
		t.Errorf("fix: %s", c.Fix)
	}
	onlyProblems(t, r, "cni 00-default.conflist")
}

// TestCheckARPIgnore: net.ipv4.conf.all.arp_ignore=1 (as kube-proxy's
// strictARP and LVS setups set it) stops pods from reaching the node.
// The fix check gives, run as it is, makes them reach it again.
func TestCheckARPIgnore(t *testing.T) {
	l := lab.NewT(t, lab.Options{NodeSysctls: map[string]string{"net/ipv4/conf/all/arp_ignore": "1"}})
	p := mustPod(t, l, "pod1")
	fn := startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "flatnet routes pod1", routed(l, p.IP.String()))
	if err := podPingsNode(t, l, p); err == nil {
		t.Fatal("the pod reached the node with arp_ignore=1; the fault is not real")
	}
	r, _ := runCheck(t, l)
	c := mustCheck(t, r, "arp_ignore eno1.host", "fail", "arp_ignore 1", "all 1")
	onlyProblems(t, r, "arp_ignore eno1.host")

	if !strings.Contains(c.Fix, "systemctl reload flatnet") {
		t.Errorf("the fix does not say that a reload puts the shim guard back: %s", c.Fix)
	}
	applyFix(t, l, c.Fix)
	if err := podPingsNode(t, l, p); err != nil {
		t.Errorf("after the fix the pod still cannot reach the node: %v", err)
	}
	hup(t, fn) // the fix's systemctl reload flatnet
	waitLog(t, fn, "LAN guard: the shim guard again", deadline)
	r, _ = runCheck(t, l)
	onlyProblems(t, r)
}

// TestCheckStrictRPFilterRouted: pods in their own subnet reach the node
// through their gateway, arriving on the master, where strict rp_filter
// drops them. The fix check gives, run as it is, lets them in.
func TestCheckStrictRPFilterRouted(t *testing.T) {
	l := lab.NewT(t, lab.Options{
		Ranges: []lab.Range{{
			Subnet:     netip.MustParsePrefix("192.168.1.0/24"),
			RangeStart: netip.MustParseAddr("192.168.1.2"),
			RangeEnd:   netip.MustParseAddr("192.168.1.254"),
			Gateway:    netip.MustParseAddr("192.168.1.1"),
		}},
		NodeSysctls: map[string]string{"net/ipv4/conf/all/rp_filter": "1"},
	})
	// The LAN's router gets an address in the pods' subnet and routes.
	for _, kv := range [][2]string{{"net/ipv4/ip_forward", "1"}, {"net/ipv4/conf/all/send_redirects", "0"}, {"net/ipv4/conf/" + l.Bridge + "/send_redirects", "0"}} {
		if err := l.Sysctl(l.LAN, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Exec(l.LAN, "ip", "addr", "add", "192.168.1.1/24", "dev", l.Bridge); err != nil {
		t.Fatal(err)
	}
	p := mustPod(t, l, "pod1")
	startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "flatnet routes pod1", routed(l, p.IP.String()))
	if err := podPingsNode(t, l, p); err == nil {
		t.Fatal("the pod reached the node through its gateway despite strict rp_filter; the fault is not real")
	}
	r, _ := runCheck(t, l)
	c := mustCheck(t, r, "rp_filter default", "fail", "through their gateway", "strict rp_filter")
	mustCheck(t, r, "cni 00-default.conflist", "warn", "does not hold eno1's address")
	onlyProblems(t, r, "rp_filter default", "cni 00-default.conflist")

	applyFix(t, l, c.Fix)
	if err := podPingsNode(t, l, p); err != nil {
		t.Errorf("after the fix the pod still cannot reach the node: %v", err)
	}
	r, _ = runCheck(t, l)
	mustCheck(t, r, "rp_filter default", "ok")
}

// TestCheckDriftWhileStopped: flatnet stopped (routes kept), then a pod
// goes, another comes, a foreign route takes a pod's address and a leaked
// allocation predates the boot. check and status name each one; the
// foreign route's fix plus a restart brings everything back.
func TestCheckDriftWhileStopped(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	p1 := mustPod(t, l, "pod1")
	p2 := mustPod(t, l, "pod2")
	fn := startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "flatnet routes pod2", routed(l, p2.IP.String()))
	if err := fn.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	if err := l.DelPod(p2); err != nil {
		t.Fatal(err)
	}
	p3 := mustPod(t, l, "pod3")
	for _, cmd := range [][]string{
		{"ip", "route", "del", p1.IP.String() + "/32", "dev", "eno1.host", "proto", "97"},
		{"ip", "route", "add", p1.IP.String() + "/32", "dev", "eno1", "proto", "static"},
	} {
		if _, err := l.Exec(l.Node, cmd...); err != nil {
			t.Fatal(err)
		}
	}
	leaked := filepath.Join(l.StateDir(), "192.168.1.200")
	if err := os.WriteFile(leaked, []byte("0123456789abcdef\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-10 * 365 * 24 * time.Hour)
	if err := os.Chtimes(leaked, old, old); err != nil {
		t.Fatal(err)
	}
	if err := l.Ping(l.Node, p1.IP); err == nil {
		t.Fatal("the node reached pod1 through a route via eno1; the fault is not real")
	}

	r, code := runCheck(t, l)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	mustCheck(t, r, "routes default", "fail", p3.IP.String(), "192.168.1.200")
	mustCheck(t, r, "routes default", "warn", p2.IP.String())
	foreign := mustCheck(t, r, "foreign routes default", "fail", p1.IP.String()+"/32 dev eno1 proto static")
	mustCheck(t, r, "allocations default", "warn", "1 allocation", "older than the last boot", "192.168.1.200")
	if c, ok := findCheck(r, "daemon", "ok"); ok {
		t.Errorf("daemon ok with flatnet stopped: %s", c.Detail)
	}
	onlyProblems(t, r, "routes default", "foreign routes default", "allocations default", "daemon")

	human, code := runFlatnet(t, l, "status")
	t.Logf("flatnet status:\n%s", human)
	if code != 1 {
		t.Errorf("status exited %d on drift, want 1", code)
	}
	for _, want := range []string{"drift", "no route yet: " + p3.IP.String(), "stale routes: " + p2.IP.String(), p1.IP.String() + "/32 dev eno1 proto 4", "flatnet check"} {
		if !strings.Contains(human, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	out, _ := runFlatnet(t, l, "status", "--json")
	checkStatusShape(t, out)

	applyFix(t, l, foreign.Fix)
	if err := os.Remove(leaked); err != nil {
		t.Fatal(err)
	}
	startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "flatnet routes pod1 again", routed(l, p1.IP.String()))
	waitFor(t, 15*time.Second, "flatnet routes pod3", routed(l, p3.IP.String()))
	waitFor(t, 15*time.Second, "pod2's route goes", notRouted(l, p2.IP.String()))
	if err := l.Ping(l.Node, p1.IP); err != nil {
		t.Errorf("after the fix, ping pod1: %v", err)
	}
	r, code = runCheck(t, l)
	if code != 0 {
		t.Errorf("after the fixes: exit %d", code)
	}
	onlyProblems(t, r)
	if _, code := runFlatnet(t, l, "status"); code != 0 {
		t.Errorf("after the fixes, status exited %d", code)
	}
}

// TestCheckNoMaster: the node's NIC is not there (yet).
func TestCheckNoMaster(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoMaster: true})
	startFlatnet(t, l, "")
	r, code := runCheck(t, l)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	mustCheck(t, r, "master eno1", "fail", "eno1 does not exist")
	mustCheck(t, r, "cni 00-default.conflist", "fail", "master eno1 does not exist")
	mustCheck(t, r, "routes default", "fail", "waiting for eno1")
	out, code := runFlatnet(t, l, "status")
	t.Logf("flatnet status:\n%s", out)
	if code != 1 || !strings.Contains(out, "waiting for eno1 to appear") {
		t.Errorf("status exited %d", code)
	}
}

// TestTeardownSaysWhatItRemoved: teardown removes flatnet's routes and
// shim, says so, and says there is nothing left the second time.
func TestTeardownSaysWhatItRemoved(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	p1 := mustPod(t, l, "pod1")
	p2 := mustPod(t, l, "pod2")
	fn := startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "flatnet routes pod2", routed(l, p2.IP.String()))
	if err := fn.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out, code := runFlatnet(t, l, "teardown")
	t.Logf("flatnet teardown:\n%s", out)
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{
		"removed route " + p1.IP.String() + "/32 dev eno1.host",
		"removed route " + p2.IP.String() + "/32 dev eno1.host",
		"removed shim eno1.host",
		"removed 2 routes and 1 shim",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("teardown does not say %q", want)
		}
	}
	if ok, _ := l.LinkExists(l.Node, "eno1.host"); ok {
		t.Error("the shim is still there")
	}
	out, code = runFlatnet(t, l, "teardown")
	t.Logf("flatnet teardown, again:\n%s", out)
	if code != 0 || !strings.Contains(out, "nothing to remove") {
		t.Errorf("second teardown: exit %d", code)
	}

	// A hand-made shim, as in the seed, is left alone and said to be.
	for _, cmd := range [][]string{
		{"ip", "link", "add", "eno1.host", "link", "eno1", "type", "macvlan", "mode", "bridge"},
		{"ip", "link", "set", "eno1.host", "up"},
	} {
		if _, err := l.Exec(l.Node, cmd...); err != nil {
			t.Fatal(err)
		}
	}
	out, code = runFlatnet(t, l, "teardown")
	t.Logf("flatnet teardown with a hand-made shim:\n%s", out)
	if code != 0 || !strings.Contains(out, "left eno1.host in place") || !strings.Contains(out, "nothing to remove") {
		t.Errorf("teardown with a hand-made shim: exit %d", code)
	}
	if ok, _ := l.LinkExists(l.Node, "eno1.host"); !ok {
		t.Error("teardown removed a shim flatnet did not make")
	}
}

// TestCheckHealthyDualStack: pods with an IPv4 and an IPv6 address, flatnet
// running: no false alarm, and the IPv6 neighbour proxying is checked.
func TestCheckHealthyDualStack(t *testing.T) {
	v6 := lab.Range{Subnet: netip.MustParsePrefix("fd00::/64"), RangeStart: netip.MustParseAddr("fd00::1:2"), RangeEnd: netip.MustParseAddr("fd00::1:ff")}
	l := lab.NewT(t, lab.Options{Ranges: []lab.Range{lab.SeedRange(), v6}})
	p := mustPod(t, l, "pod1")
	startFlatnet(t, l, "")
	for _, a := range p.IPs {
		waitFor(t, 15*time.Second, "flatnet routes "+a.Addr().String(), routed(l, a.Addr().String()))
	}
	r, code := runCheck(t, l)
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	onlyProblems(t, r)
	mustCheck(t, r, "ndp eno1.host", "ok", "proxy_ndp")
}
