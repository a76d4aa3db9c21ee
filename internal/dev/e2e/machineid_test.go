//go:build integration

package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/sd"
)

// TestNoMachineID: on a node whose image has no machine id (an empty
// /etc/machine-id and no firmware UUID), the shim's MAC derives from the
// master's permanent address, and from its current one when the kernel
// reports none (reconcile.ShimSeed), so that it is still stable across
// reboots; a restart keeps the shim. The master's addresses are read with
// ip(8), not through flatnet's own netlink code. Where the lab's master
// has no permanent address (no virtual device of a minimal kernel has
// one), netlinkx's TestLinkOfPermanentAddress covers that reading.
func TestNoMachineID(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{NoMachineID: true})
	p := mustPod(t, l, "pod1")
	fn := startFlatnet(t, l, "")
	waitFor(t, 15*time.Second, "flatnet routes "+p.Name, routed(l, p.IP.String()))
	if err := l.Ping(l.Node, p.IP); err != nil {
		t.Fatalf("the node pings the pod: %v", err)
	}

	out, err := l.Exec(l.Node, "ip", "-j", "link", "show", "dev", l.Master)
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		Address  string `json:"address"`
		PermAddr string `json:"permaddr"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show dev %s: %q: %v", l.Master, out, err)
	}
	master := reconcile.Link{}
	if master.MAC, err = net.ParseMAC(links[0].Address); err != nil {
		t.Fatal(err)
	}
	if links[0].PermAddr != "" {
		if master.PermMAC, err = net.ParseMAC(links[0].PermAddr); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("the kernel reports no permanent address for %s: the shim's MAC derives from its current one", l.Master)
	}
	shim := l.Master + ".host"
	want := reconcile.ShimMAC(reconcile.ShimSeed("", master), shim)
	if got := mustMAC(t, l, l.Node, shim); !bytes.Equal(got, want) {
		t.Fatalf("shim %s has MAC %s, want %s (from %q)", shim, got, want, reconcile.ShimSeed("", master))
	}
	if id := sd.MachineID(); id != "" && bytes.Equal(want, reconcile.ShimMAC(id, shim)) {
		t.Fatalf("the shim's MAC is the one this machine's id gives: the lab did not hide it")
	}

	// A restart takes the shim for its own (its MAC is the one it derives)
	// and keeps it: no link event deletes it.
	idx := ifIndex(t, l, shim)
	if err := fn.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	startFlatnet(t, l, "")
	readSince(t, l, w)
	if now := ifIndex(t, l, shim); now != idx {
		t.Fatalf("after a restart, shim %s has index %d (was %d): flatnet did not take it for its own", shim, now, idx)
	}
	if err := l.Ping(l.Node, p.IP); err != nil {
		t.Fatalf("after a restart, the node pings the pod: %v", err)
	}
}

// ifIndex is dev's interface index in the lab's node.
func ifIndex(t testing.TB, l *lab.Lab, dev string) int {
	t.Helper()
	out, err := l.Exec(l.Node, "ip", "-j", "link", "show", "dev", dev)
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		Index int `json:"ifindex"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show dev %s: %q: %v", dev, out, err)
	}
	return links[0].Index
}
