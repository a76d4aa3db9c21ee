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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

var (
	cnitoolOnce sync.Once
	cnitoolBin  string
	cnitoolErr  error
)

// needCnitool builds the CNI project's cnitool, pinned in
// internal/dev/tools.mod, once per run, next to the flatnet binary (TestMain
// removes that directory).
func needCnitool(t testing.TB) string {
	t.Helper()
	cnitoolOnce.Do(func() {
		cnitoolBin = filepath.Join(filepath.Dir(flatnetBin), "cnitool")
		root := moduleRoot()
		cmd := exec.Command("go", "build", "-modfile="+filepath.Join(root, "internal/dev/tools.mod"), "-o", cnitoolBin, "github.com/containernetworking/cni/cnitool")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			cnitoolErr = fmt.Errorf("building cnitool: %w\n%s", err, out)
		}
	})
	if cnitoolErr != nil {
		t.Fatal(cnitoolErr)
	}
	return cnitoolBin
}

// moduleRoot is the directory of go.mod, from the test's directory.
func moduleRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return wd
}

// nadConf is a network defined only where flatnet does not look, as a
// NetworkAttachmentDefinition is: Multus hands it to libcni straight.
const nadConf = `{"cniVersion": "1.0.0", "name": "nadnet", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "bridge",
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "192.168.0.0/16", "rangeStart": "192.168.3.1", "rangeEnd": "192.168.3.254", "gateway": "192.168.0.1"}]],
 "routes": [{"dst": "0.0.0.0/0"}]}}]}`

// TestRunTimeNetwork: a pod attached the way Multus attaches one (cnitool,
// from a conflist in a directory flatnet is not told about, so the network
// exists only in libcni's cache) is found with no flatnet configuration at
// all: routed, reached both ways, in flatnet status; cnitool del takes its
// route away. host-local writes the allocation before libcni writes the
// entry that explains it: that first pod is never reported unexplained.
func TestRunTimeNetwork(t *testing.T) {
	needFlatnet(t)
	cnitool := needCnitool(t)
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	nadDir := filepath.Join(l.Dir, "nad")
	if err := os.MkdirAll(nadDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nadDir, "nadnet.conflist"), []byte(nadConf), 0o644); err != nil {
		t.Fatal(err)
	}
	fn := startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "the shim", func() error { _, err := l.MAC(l.Node, l.Master+".host"); return err })

	ns, err := l.NewNamespace("nadpod")
	if err != nil {
		t.Fatal(err)
	}
	out, err := l.Cnitool(cnitool, nadDir, "add", "nadnet", ns)
	if err != nil {
		t.Fatal(err)
	}
	ips, err := lab.ResultIPs(out)
	if err != nil || len(ips) != 1 {
		t.Fatalf("cnitool add: %v %v", ips, err)
	}
	pod := ips[0].Addr()
	entries, _ := filepath.Glob(filepath.Join(l.CacheDir(), "results", "nadnet-*"))
	t.Logf("cnitool attached %s; libcni cached %v", pod, entries)
	if len(entries) != 1 {
		t.Fatalf("libcni's cache holds %v, want one entry of nadnet", entries)
	}

	waitFor(t, 15*time.Second, "flatnet routes the run-time network's pod", routedVia(l, pod, l.Master+".host"))
	waitFor(t, 15*time.Second, "the node pings the pod", freshPings(l, l.Node, pod))
	waitFor(t, 15*time.Second, "the pod pings the node", freshPings(l, ns, l.NodeIP))
	startNodeHTTP(t, l, "node\n")
	if body, err := l.HTTPGet(ns, "http://"+l.NodeIP.String()+":8080/"); err != nil || body != "node\n" {
		t.Errorf("the pod fetches the node's page: %q, %v", body, err)
	}
	logOnce(t, fn, "route "+pod.String()+"/32 dev "+l.Master+".host added for container cnitool-")

	sts, code := status(t, l)
	found := false
	for _, s := range sts {
		if s.Name == "nadnet" {
			found = true
			if s.Routed != 1 || !strings.Contains(s.Source, "results/nadnet-") {
				t.Errorf("status of nadnet: %+v", s)
			}
		}
	}
	if !found || code != 0 {
		t.Errorf("flatnet status (exit %d) has no nadnet in sync: %+v", code, sts)
	}

	// host-local wrote the allocation before libcni wrote the entry that
	// explains it: no error for that. An allocation no network explains,
	// written after, is reported once its grace is over, so the journal
	// is read once that one shows.
	ghost := filepath.Join(l.StateRoot, "ghost")
	if err := os.MkdirAll(ghost, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ghost, "192.168.5.9"), []byte(containerID()+"\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLog(t, fn, ghost+" holds 1 allocation that no known network explains", 15*time.Second)
	if n := countLog(fn, filepath.Join(l.StateRoot, "nadnet")+" holds"); n != 0 {
		t.Errorf("the run-time network's first pod was reported unexplained %d times", n)
	}

	if _, err := l.Cnitool(cnitool, nadDir, "del", "nadnet", ns); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "cnitool del takes the route", notRouted(l, pod.String()))
}

// bridgeConf is podman's default network with its CNI backend: a bridge
// with host-local, whose allocations sit under the same state root.
const bridgeConf = `{"cniVersion": "0.4.0", "name": "podman", "plugins": [{"type": "bridge", "bridge": "cni-podman0",
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]]}}]}`

// TestUnmatchedStateDir: allocations in a state directory that no known
// network explains (a network defined where flatnet cannot see it, here
// host-local's files alone) are never silent: flatnet status lists the
// directory and exits 1, flatnet check fails with the fix, the journal
// says it once, also when the allocation comes after the directory (as
// host-local makes them) and after flatnet looked at it; a [[network]]
// table then explains it and routes the pod, and overrides nothing else:
// the discovered network stays mirrored. A network of another plugin (a
// bridge, with a real pod) is explained by its name: never reported.
func TestUnmatchedStateDir(t *testing.T) {
	cnitool := needCnitool(t)
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	p := mustPod(t, l, "pod1")
	fn := startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "pod1 routed", routed(l, p.IP.String()))

	if err := os.WriteFile(filepath.Join(l.CNIConfDir, "87-podman.conflist"), []byte(bridgeConf), 0o644); err != nil {
		t.Fatal(err)
	}
	bns, err := l.NewNamespace("bridgepod")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Cnitool(cnitool, l.CNIConfDir, "add", "podman", bns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = l.Cnitool(cnitool, l.CNIConfDir, "del", "podman", bns) })
	podman := filepath.Join(l.StateRoot, "podman")
	if n, _ := filepath.Glob(filepath.Join(podman, "10.88.*")); len(n) != 1 {
		t.Fatalf("the bridge plugin's host-local left %v in %s", n, podman)
	}

	// The directory first; flatnet looks at it (a pass for the state
	// root's entry) while it is empty; the allocation after.
	passes := func() int { return countLog(fn, "why=\"entries of "+l.StateRoot) }
	before := passes()
	ghost := filepath.Join(l.StateRoot, "ghost")
	if err := os.MkdirAll(ghost, 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "a pass for the new directory", func() error {
		if passes() == before {
			return errors.New("none yet")
		}
		return nil
	})
	addr := netip.MustParseAddr("192.168.5.9")
	if err := os.WriteFile(filepath.Join(ghost, addr.String()), []byte(containerID()+"\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLog(t, fn, ghost+" holds 1 allocation that no known network explains", 15*time.Second)
	if n := countLog(fn, podman+" holds"); n != 0 {
		t.Errorf("the bridge network's directory was reported %d times", n)
	}

	stdout, code := runFlatnet(t, l, "status", "--json")
	var doc struct {
		Unmatched []struct {
			Dir       string `json:"dir"`
			Allocated int    `json:"allocated"`
		} `json:"unmatched"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if code != 1 || len(doc.Unmatched) != 1 || doc.Unmatched[0].Dir != ghost || doc.Unmatched[0].Allocated != 1 {
		t.Errorf("flatnet status --json (exit %d): unmatched %+v", code, doc.Unmatched)
	}
	r, code := runCheck(t, l)
	mustCheck(t, r, "unmatched ghost", "fail", ghost, "no network ghost")
	if code != 1 {
		t.Errorf("flatnet check exited %d with an unmatched state dir", code)
	}
	for _, c := range r.Checks {
		if strings.Contains(c.Name+c.Detail, podman) && c.Status != "ok" {
			t.Errorf("flatnet check on the bridge network's directory: %+v", c)
		}
	}

	// A table explains it; the discovered network stays.
	if _, err := l.WriteFlatnetConfig(fmt.Sprintf("[[network]]\nname = \"ghost\"\nmaster = %q\nranges = [\"192.168.5.0/24\"]\n", l.Master)); err != nil {
		t.Fatal(err)
	}
	hup(t, fn)
	waitFor(t, 15*time.Second, "the table's network routed", routed(l, addr.String()))
	waitFor(t, 15*time.Second, "the discovered network still routed", routed(l, p.IP.String()))
	stdout, code = runFlatnet(t, l, "status", "--json")
	if code != 0 || !bytes.Contains([]byte(stdout), []byte(`"unmatched": []`)) {
		t.Errorf("after the table, flatnet status (exit %d):\n%s", code, stdout)
	}
}

// TestTableOverridesDiscovered: a [[network]] table named like a
// discovered network overrides what discovery found, here its ranges: a
// pod outside the table's ranges loses its route, and says why; without
// the table the discovered ranges apply again.
func TestTableOverridesDiscovered(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	p := mustPod(t, l, "pod1") // 192.168.1.2, in the conflist's pool
	fn := startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "pod1 routed", routed(l, p.IP.String()))

	if _, err := l.WriteFlatnetConfig("[[network]]\nname = \"default\"\nranges = [\"192.168.1.128/25\"]\n"); err != nil {
		t.Fatal(err)
	}
	hup(t, fn)
	waitFor(t, 15*time.Second, "pod1's route goes: the table's ranges leave it out", notRouted(l, p.IP.String()))
	waitLog(t, fn, "not routing "+p.IP.String()+" of network default", 15*time.Second)

	if _, err := l.WriteFlatnetConfig(""); err != nil {
		t.Fatal(err)
	}
	hup(t, fn)
	waitFor(t, 15*time.Second, "pod1 routed again without the table", routed(l, p.IP.String()))
}
