//go:build integration

package lab

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests build labs: root, iproute2 and the CNI plugins needed
// (go test -tags integration).

func TestLabRefusesForeignNamespaces(t *testing.T) {
	l := NewT(t, Options{})
	if _, err := l.Exec("", "true"); err == nil {
		t.Error("Exec in the host's namespace was allowed")
	}
	if _, err := l.Exec("fnlab-1-1-node", "true"); err == nil {
		t.Error("Exec in another lab's namespace was allowed")
	}
	if err := l.Sysctl(l.Node, "kernel.hostname", "x"); err == nil {
		t.Error("a non-net sysctl was allowed")
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	Require(t)
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.AddPod("pod1")
	if err != nil {
		t.Fatal(err)
	}
	proc, err := l.Start(l.Node, "sleeper", "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartPodHTTP(p); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WatchRoutes(l.Node); err != nil {
		t.Fatal(err)
	}
	nss := l.Namespaces()
	if len(nss) != 3 {
		t.Fatalf("namespaces %v", nss)
	}
	dir := l.Dir
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, ns := range nss {
		if _, err := os.Stat(filepath.Join(NetnsDir, ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left: %v", ns, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab dir left: %v", err)
	}
	if !proc.Exited() {
		t.Errorf("process %d still running", proc.PID)
	}
	if _, err := l.AddPod("pod2"); !errors.Is(err, ErrClosed) {
		t.Errorf("AddPod after Close: %v", err)
	}
}

func TestOneAddressRange(t *testing.T) {
	r := SeedRange()
	r.RangeEnd = r.RangeStart
	l := NewT(t, Options{Ranges: []Range{r}})
	p, err := l.AddPod("pod1")
	if err != nil {
		t.Fatal(err)
	}
	if p.IP != r.RangeStart {
		t.Errorf("pod got %s", p.IP)
	}
	if _, err := l.AddPod("pod2"); err == nil {
		t.Error("a second pod got an address from a one-address range")
	} else {
		t.Logf("second pod: %v", err)
	}
	if _, err := os.Stat(filepath.Join(NetnsDir, l.prefix+"pod2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed pod's namespace left: %v", err)
	}
	if err := l.DelPod(p); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddPod("pod3"); err != nil {
		t.Errorf("address not free again after DEL: %v", err)
	}
}

func TestNoDataDir(t *testing.T) {
	_, statErr := os.Stat("/var/lib/cni")
	l := NewT(t, Options{NoDataDir: true})
	p, err := l.AddPod("pod1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.StateRoot, "default", p.IP.String())); err != nil {
		t.Errorf("host-local's default dataDir is not StateRoot: %v", err)
	}
	if _, err := os.Stat("/var/lib/cni"); errors.Is(statErr, os.ErrNotExist) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("/var/lib/cni appeared on the host")
	}
	if err := l.DelPod(p); err != nil {
		t.Fatal(err)
	}
	if files, _ := l.StateFiles(); strings.Contains(strings.Join(files, " "), p.IP.String()) {
		t.Errorf("state after DEL: %v", files)
	}
}

func TestRouteWatchAndProcess(t *testing.T) {
	l := NewT(t, Options{})
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"add", "del"} {
		if _, err := l.Exec(l.Node, "ip", "route", c, "192.168.1.9", "dev", l.Master, "proto", "97"); err != nil {
			t.Fatal(err)
		}
	}
	deadlineEvents := func() []RouteEvent {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); waitABit() {
			if ev := w.Events(); len(ev) >= 2 {
				return ev
			}
		}
		return w.Events()
	}
	ev := deadlineEvents()
	if len(ev) != 2 || ev[0].Deleted || !ev[1].Deleted || len(w.Deleted()) != 1 {
		t.Fatalf("events %v", ev)
	}
	if got := ev[1].String(); got != "Deleted 192.168.1.9 dev eno1 table 254 proto 97" {
		t.Errorf("event line %q", got)
	}
	_ = w.Close()

	p, err := l.Start(l.Node, "echo", "sh", "-c", "ip -o link show eno1; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err == nil || p.ExitCode() != 3 {
		t.Errorf("exit: %v %d", err, p.ExitCode())
	}
	if !strings.Contains(p.Log(), "eno1") {
		t.Errorf("log %q", p.Log())
	}
}

// waitABit is the pause between two looks of a poll; the polls have
// deadlines of their own.
func waitABit() { time.Sleep(10 * time.Millisecond) }

func TestNoMasterThenAddMaster(t *testing.T) {
	l := NewT(t, Options{NoMaster: true})
	if ok, _ := l.LinkExists(l.Node, l.Master); ok {
		t.Fatal("NoMaster lab has a master")
	}
	if _, err := l.AddPod("early"); err == nil {
		t.Error("a pod was added without a master")
	}
	if err := l.AddMaster(); err != nil {
		t.Fatal(err)
	}
	p, err := l.AddPod("pod1")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ping(l.LAN, p.IP); err != nil {
		t.Error(err)
	}
	if err := l.MasterDown(); err != nil {
		t.Fatal(err)
	}
	if err := l.MasterUp(); err != nil {
		t.Fatal(err)
	}
	if err := l.Ping(l.Node, l.Gateway); err != nil {
		t.Errorf("after master down/up: %v", err)
	}
}
