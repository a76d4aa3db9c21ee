//go:build integration

package lab

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/testenv"
)

// These tests build labs: root, iproute2 and the CNI plugins needed
// (go test -tags integration).

// TestTwoNodesOneLANSecondNICAndNetwork: a lab joining another's LAN is a
// second node on it; a second NIC on a second bridge carries a second
// network; closing the joining lab leaves the other's LAN alone.
func TestTwoNodesOneLANSecondNICAndNetwork(t *testing.T) {
	a := NewT(t, Options{})
	b := NewT(t, Options{JoinLAN: a, NodeAddr: netip.MustParsePrefix("192.168.0.6/16"), NodeAddr6: netip.MustParsePrefix("fd00::6/64")})
	if b.LAN != a.LAN || b.Gateway != a.Gateway || b.Opts.LANPort == a.Opts.LANPort {
		t.Fatalf("b: LAN %s gateway %s port %s; a: %s %s %s", b.LAN, b.Gateway, b.Opts.LANPort, a.LAN, a.Gateway, a.Opts.LANPort)
	}
	for _, ip := range []string{"192.168.0.5", "fd00::5"} {
		if err := b.Ping(b.Node, netip.MustParseAddr(ip)); err != nil {
			t.Errorf("node b pings node a: %v", err)
		}
	}
	if _, err := b.Exec(b.LAN, "true"); err != nil {
		t.Errorf("b cannot act in the LAN it joined: %v", err)
	}
	if _, err := b.Exec(a.Node, "true"); err == nil {
		t.Error("b acted in a's node")
	}
	if nss := b.Namespaces(); len(nss) != 1 || nss[0] != b.Node {
		t.Errorf("b's namespaces: %v", nss)
	}

	if err := a.AddNIC(NIC{Name: "eno2", Bridge: "br1",
		Addrs:       []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24")},
		BridgeAddrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(a.Node, netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Errorf("node a pings br1 through eno2: %v", err)
	}
	storage := Range{Subnet: netip.MustParsePrefix("10.0.0.0/24"), RangeStart: netip.MustParseAddr("10.0.0.100"), RangeEnd: netip.MustParseAddr("10.0.0.150")}
	if err := a.AddNetwork(NetworkOptions{Name: "storage", Master: "eno2", Ranges: []Range{storage}}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddNetwork(NetworkOptions{Name: "storage", Ranges: []Range{storage}}); err == nil {
		t.Error("a network was added twice")
	}
	var conf map[string]any
	b2, err := os.ReadFile(a.NetworkConfList("storage"))
	if err != nil || json.Unmarshal(b2, &conf) != nil || conf["name"] != "storage" || !strings.Contains(string(b2), `"master": "eno2"`) {
		t.Errorf("storage conflist %s: %v\n%s", a.NetworkConfList("storage"), err, b2)
	}
	p, err := a.AddPodTo("storage", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Network != "storage" || !storage.Subnet.Contains(p.IP) {
		t.Errorf("storage pod: network %q, %v", p.Network, p.IPs)
	}
	if _, err := os.Stat(filepath.Join(a.NetworkStateDir("storage"), p.IP.String())); err != nil {
		t.Errorf("no allocation file: %v", err)
	}
	if err := a.Ping(a.LAN, p.IP); err != nil {
		t.Errorf("the LAN pings the storage pod on br1: %v", err)
	}
	if err := a.RemoveConfList("storage"); err != nil {
		t.Fatal(err)
	}
	if err := a.DelPod(p); err != nil {
		t.Errorf("DEL of a pod whose network's conflist is gone: %v", err)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(NetnsDir, a.LAN)); err != nil {
		t.Errorf("closing b removed a's LAN: %v", err)
	}
	if _, err := os.Stat(filepath.Join(NetnsDir, b.Node)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b's node left: %v", err)
	}
	// The kernel dismantles a deleted namespace, and the veth pairs in it,
	// in the background.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := a.LinkExists(a.LAN, b.Opts.LANPort)
		if err == nil && !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("b's LAN port %s left in the LAN: %v", b.Opts.LANPort, err)
			break
		}
		waitABit()
	}
}

// TestMachineID: a process started with Options.MachineID reads it as
// /etc/machine-id; the host's file is untouched.
func TestMachineID(t *testing.T) {
	before, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		testenv.Skip(t, "no /etc/machine-id here to bind-mount over: %v", err)
	}
	l := NewT(t, Options{MachineID: "0123456789abcdef0123456789abcdef"})
	wrap, err := l.machineIDWrap()
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.start(l.Node, "mid", wrap, "cat", "/etc/machine-id")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("%v: %s", err, p.Log())
	}
	if got := strings.TrimSpace(p.Log()); got != l.Opts.MachineID {
		t.Errorf("the process read %q", got)
	}
	after, err := os.ReadFile("/etc/machine-id")
	if err != nil || string(after) != string(before) {
		t.Errorf("the host's /etc/machine-id changed: %q -> %q (%v)", before, after, err)
	}

	// Options.NoMachineID: the process reads nothing from either file.
	l = NewT(t, Options{NoMachineID: true})
	if wrap, err = l.machineIDWrap(); err != nil {
		t.Fatal(err)
	}
	p, err = l.start(l.Node, "nomid", wrap, "sh", "-c", `cat /etc/machine-id; ! test -e `+productUUID+` || cat `+productUUID+`; echo end`)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("%v: %s", err, p.Log())
	}
	if got := strings.TrimSpace(p.Log()); got != "end" {
		t.Errorf("a process without a machine id read %q", got)
	}
	after, err = os.ReadFile("/etc/machine-id")
	if err != nil || string(after) != string(before) {
		t.Errorf("the host's /etc/machine-id changed: %q -> %q (%v)", before, after, err)
	}
}
