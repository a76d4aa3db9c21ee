package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/dev/testenv"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/inspect"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// observation is the seed's node as Observe would see it: pods .2, .3 and
// .4 allocated; .2 routed, .3 behind a hand-made route via eno1, .4 not
// routed, .9 routed though released.
func observation(shimUp bool) *inspect.Observation {
	mac, _ := net.ParseMAC("02:68:e4:f9:d5:ec")
	snap := &reconcile.Snapshot{
		Links: []reconcile.Link{
			{Index: 2, Name: "eno1", Up: true, MTU: 1500},
			{Index: 3, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: shimUp, MTU: 1500, MAC: mac, Alias: reconcile.ShimAlias, ARPFilter: true, ProxyNDP: true},
		},
		Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.5")},
		Routes: []reconcile.Route{
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eno1", Protocol: 3},
			{Dst: netip.MustParsePrefix("192.168.1.2/32"), Dev: "eno1.host", Protocol: reconcile.Protocol},
			{Dst: netip.MustParsePrefix("192.168.1.3/32"), Dev: "eno1", Protocol: 4},
			{Dst: netip.MustParsePrefix("192.168.1.9/32"), Dev: "eno1.host", Protocol: reconcile.Protocol},
		},
	}
	r := hostlocal.Range{Subnet: netip.MustParsePrefix("192.168.0.0/16"), Start: netip.MustParseAddr("192.168.1.2"), End: netip.MustParseAddr("192.168.1.254"), Gateway: netip.MustParseAddr("192.168.0.1")}
	nets := []reconcile.Network{{Name: "default", Master: "eno1", Shim: "eno1.host", StateDir: "/var/lib/cni/networks/default", Ranges: []hostlocal.Range{r}, Source: "00-default.conflist"}}
	allocs := map[netip.Addr]hostlocal.Owner{}
	for _, ip := range []string{"192.168.1.2", "192.168.1.3", "192.168.1.4"} {
		allocs[netip.MustParseAddr(ip)] = hostlocal.Owner{ContainerID: "c" + ip}
	}
	plan := reconcile.Compute(reconcile.Input{Networks: nets, Snap: snap, MachineID: "m",
		States: map[string]reconcile.DirState{"/var/lib/cni/networks/default": {Allocs: allocs}}})
	return &inspect.Observation{Networks: nets, Plan: plan, Snap: snap}
}

func TestStatusJSON(t *testing.T) {
	out := buildStatus(observation(true))
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Networks []map[string]any `json:"networks"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	n := doc.Networks[0]
	for key, want := range map[string]any{
		"name": "default", "master": "eno1", "shim": "eno1.host", "shim_up": true, "allocated": 3.0, "routed": 1.0,
		"missing": []any{"192.168.1.4"}, "stale": []any{"192.168.1.9"}, "conflicts": []any{"192.168.1.3"},
		"conflict_routes": []any{"192.168.1.3/32 dev eno1 proto 4"},
		"shim_mac":        "02:68:e4:f9:d5:ec", "shim_mode": "bridge", "shim_state": "up", "shim_owner": "flatnet", "in_sync": false,
	} {
		got, _ := json.Marshal(n[key])
		w, _ := json.Marshal(want)
		if string(got) != string(w) {
			t.Errorf("%s = %s, want %s", key, got, w)
		}
	}
}

func TestStatusTable(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, buildStatus(observation(false)), config.Default(), palette{})
	got := b.String()
	for _, want := range []string{
		"NETWORK  MASTER  SHIM       SHIM STATE  MODE    MAC                ALLOCATED  ROUTED  MISSING  STALE  FOREIGN  STATUS",
		"default  eno1    eno1.host  down        bridge  02:68:e4:f9:d5:ec  3          1       1        1      1        shim down",
		"default: no route yet: 192.168.1.4",
		"default: stale routes: 192.168.1.9",
		"default: routes flatnet does not own, left alone: 192.168.1.3/32 dev eno1 proto 4",
		"flatnet check names the causes and their fixes.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\x1b[") {
		t.Error("colour without a terminal")
	}
	b.Reset()
	printStatus(&b, buildStatus(observation(true)), config.Default(), palette{on: true})
	if !strings.Contains(b.String(), "\x1b[1;31mdrift\x1b[0m") {
		t.Errorf("no colour on a terminal:\n%q", b.String())
	}
}

func TestStatusNoNetworks(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, statusJSON{Networks: []netJSON{}}, config.Default(), palette{})
	if !strings.Contains(b.String(), "no network to mirror") {
		t.Errorf("got %q", b.String())
	}
}

// TestColours: colour on a terminal (a pseudo-terminal of the test's own,
// so this runs without one), never on a buffer, a file or a pipe, never
// with NO_COLOR set or TERM=dumb.
func TestColours(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	if colours(&bytes.Buffer{}).on {
		t.Error("colour for a buffer")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if colours(f).on {
		t.Error("colour for a regular file")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if colours(w).on {
		t.Error("colour for a pipe")
	}
	tty, _ := testenv.PTY(t)
	if !colours(tty).on {
		t.Error("no colour on a terminal")
	}
	t.Setenv("NO_COLOR", "1")
	if colours(tty).on {
		t.Error("colour on a terminal despite NO_COLOR=1")
	}
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "dumb")
	if colours(tty).on {
		t.Error("colour on a terminal with TERM=dumb")
	}
}
