package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// textLog is a logger whose lines, without their time, land in buf.
func textLog(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(g []string, a slog.Attr) slog.Attr {
		if len(g) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
}

// TestLogOp: each change is one line an operator reads, with the fields
// journalctl filters on.
func TestLogOp(t *testing.T) {
	dst := netip.MustParsePrefix("192.168.1.2/32")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for _, tt := range []struct {
		op   reconcile.Op
		want string
	}{
		{reconcile.Op{Kind: reconcile.AddRoute, Dev: "eno1.host", Dst: dst, Network: "default", Owner: hostlocal.Owner{ContainerID: "0123456789abcdef", IfName: "eth0"}},
			`level=INFO msg="route 192.168.1.2/32 dev eno1.host added for container 01234567…/eth0" dev=eno1.host network=default ip=192.168.1.2 container=0123456789abcdef ifname=eth0`},
		{reconcile.Op{Kind: reconcile.DelRoute, Dev: "eno1.host", Dst: dst, Owner: hostlocal.Owner{ContainerID: "abcdefgh"}},
			`level=INFO msg="route 192.168.1.2/32 dev eno1.host removed for container abcdefgh" dev=eno1.host ip=192.168.1.2 container=abcdefgh`},
		{reconcile.Op{Kind: reconcile.ReplaceRoute, Dev: "eno1.host", Dst: dst},
			`level=INFO msg="route 192.168.1.2/32 dev eno1.host replaced" dev=eno1.host ip=192.168.1.2`},
		{reconcile.Op{Kind: reconcile.AddShim, Dev: "eno1.host", Master: "eno1", MAC: mac, Network: "default"},
			`level=INFO msg="shim eno1.host created on eno1 (macvlan bridge, 02:00:00:00:00:01)" dev=eno1.host network=default master=eno1 mac=02:00:00:00:00:01`},
		{reconcile.Op{Kind: reconcile.DelShim, Dev: "eno1.host"}, `level=INFO msg="shim eno1.host removed" dev=eno1.host`},
		{reconcile.Op{Kind: reconcile.SetUp, Dev: "eno1.host"}, `level=INFO msg="shim eno1.host was down; set up" dev=eno1.host`},
		{reconcile.Op{Kind: reconcile.SetMTU, Dev: "eno1.host", MTU: 9000}, `level=INFO msg="shim eno1.host MTU set to 9000, the master's" dev=eno1.host`},
		{reconcile.Op{Kind: reconcile.SetFilter}, `level=INFO msg="LAN guard's netdev chains removed (nftables table netdev flatnet)"`},
		{reconcile.Op{Kind: reconcile.SetFilter, Shims: []string{"eno1.host"}},
			`level=INFO msg="ingress chain set on eno1.host: its IPv6 proxy answers only pods routed through it, never the LAN" dev=eno1.host`},
		{reconcile.Op{Kind: reconcile.SetProbe}, `level=INFO msg="LAN guard's ARP rules removed (nftables table arp flatnet)"`},
		{reconcile.Op{Kind: reconcile.SetProbe, Shims: []string{"eno1.host", "eno2.host"}},
			`level=INFO msg="ARP rule set for eno1.host, eno2.host: the ARP requests leave as probes, naming no address of the node" dev=eno1.host`},
		{reconcile.Op{Kind: reconcile.SetFilter, Drops: []reconcile.Drop{{Master: "eno1", MAC: "02:00:00:00:00:01"}, {Master: "eno2", MAC: "02:00:00:00:00:02"}}},
			`level=INFO msg="egress filter set: frames from 02:00:00:00:00:01 on eno1, 02:00:00:00:00:02 on eno2 never reach the LAN" dev=eno1`},
		{reconcile.Op{Kind: reconcile.FlushNeigh, Dev: "eno1.host", Dst: dst}, `level=DEBUG msg="neighbour entry for 192.168.1.2 on eno1.host flushed" dev=eno1.host ip=192.168.1.2`},
	} {
		var buf bytes.Buffer
		logOp(textLog(&buf), tt.op)
		if got := strings.TrimSpace(buf.String()); got != tt.want {
			t.Errorf("logOp(%v):\n got %s\nwant %s", tt.op, got, tt.want)
		}
	}
}

// TestStatusLine: the STATUS= line, network by network.
func TestStatusLine(t *testing.T) {
	cfg := config.Config{CNIConfDir: "/etc/cni/net.d"}
	if got := statusLine(nil, cfg); got != "no macvlan network in /etc/cni/net.d" {
		t.Errorf("no network: %q", got)
	}
	got := statusLine([]reconcile.NetSummary{
		{Name: "a", Master: "eno1", Shim: "eno1.host", Routed: 2},
		{Name: "b", Waiting: "waiting for eno2 to appear", Routed: 5},
		{Name: "c", Master: "eno3", Shim: "eno3.host", Routed: 1, NotRouted: 1, Held: true},
	}, cfg)
	want := "a: 2 pod routes via eno1.host (master eno1); b: waiting for eno2 to appear; c: 1 pod routes via eno3.host (master eno3), 1 not routed, state dir unreadable"
	if got != want {
		t.Errorf("statusLine:\n got %s\nwant %s", got, want)
	}
}

// TestGuardSummary: what each guard says, and how loudly.
func TestGuardSummary(t *testing.T) {
	noFilter := errors.New("no netdev egress")
	noShim := errors.New("no arp family")
	neither := reconcile.GuardKernel{Filter: noFilter, Shim: noShim}
	for _, tt := range []struct {
		g       reconcile.Guard
		setting string
		err     reconcile.GuardKernel
		why     string
		level   slog.Level
		has     []string
		hasNot  []string
	}{
		{reconcile.GuardShim, "auto", reconcile.GuardKernel{}, "", slog.LevelInfo, []string{"probes", "no hook sits on the NICs' own traffic"}, nil},
		{reconcile.GuardFilter, "auto", reconcile.GuardKernel{Shim: noShim}, "", slog.LevelInfo, []string{"nftables egress filter", "shim guard", "not available: no arp family"}, nil},
		{reconcile.GuardFilter, "filter", reconcile.GuardKernel{}, "", slog.LevelInfo, []string{"nftables egress filter"}, []string{"not available"}},
		// lan_guard filter chose it: the shim guard was not asked for.
		{reconcile.GuardFilter, "filter", reconcile.GuardKernel{Shim: noShim}, "", slog.LevelInfo, []string{"nftables egress filter"}, []string{"not available"}},
		{reconcile.GuardFilter, "auto", reconcile.GuardKernel{}, "", slog.LevelInfo, []string{"nftables egress filter"}, []string{"not available"}},
		{reconcile.GuardAddress, "auto", neither, "", slog.LevelWarn, []string{"LAN guard: the shims send their ARP requests from 192.0.0.8", "no egress filter: no netdev egress", "no shim guard: no arp family"}, nil},
		{reconcile.GuardAddress, "address", neither, "", slog.LevelInfo, []string{"192.0.0.8"}, []string{"no egress filter"}},
		{reconcile.GuardAddress, "auto", reconcile.GuardKernel{}, "", slog.LevelInfo, []string{"192.0.0.8"}, []string{"no egress filter"}},
		{reconcile.GuardOff, "off", reconcile.GuardKernel{}, "", slog.LevelWarn, []string{"LAN guard off"}, []string{"; LAN guard off"}},
		{reconcile.GuardOff, "filter", neither, "lan_guard filter cannot work here", slog.LevelWarn, []string{"lan_guard filter cannot work here; LAN guard off"}, nil},
	} {
		level, msg := GuardSummary(tt.g, tt.setting, tt.err, tt.why)
		if level != tt.level {
			t.Errorf("GuardSummary(%v, %q, %v): level %v", tt.g, tt.setting, tt.err, level)
		}
		for _, s := range tt.has {
			if !strings.Contains(msg, s) {
				t.Errorf("GuardSummary(%v, %q, %v) = %q, lacks %q", tt.g, tt.setting, tt.err, msg, s)
			}
		}
		for _, s := range tt.hasNot {
			if strings.Contains(msg, s) {
				t.Errorf("GuardSummary(%v, %q, %v) = %q, has %q", tt.g, tt.setting, tt.err, msg, s)
			}
		}
	}
}

// TestLogLimit: logBurst lines of one cause per window, the others
// counted and summed up once the window is over; a cause that dropped
// nothing has no summary; causes count apart.
func TestLogLimit(t *testing.T) {
	var l logLimit
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range logBurst + 3 {
		if got, want := l.allow("a", "the a lines", slog.LevelInfo, t0.Add(time.Duration(i)*time.Second)), i < logBurst; got != want {
			t.Fatalf("line %d of a: allowed %v", i+1, got)
		}
	}
	if !l.allow("b", "the b lines", slog.LevelWarn, t0) {
		t.Fatal("a line of another cause was held back")
	}
	if s := l.summaries(t0.Add(logWindow - time.Nanosecond)); len(s) != 0 {
		t.Fatalf("summaries before the window ended: %v", s)
	}
	s := l.summaries(t0.Add(logWindow))
	if len(s) != 1 || s[0].Msg != "3 lines more of the a lines in the last 1m0s, not logged one by one (flatnet status and flatnet check list what holds now)" || s[0].Level != slog.LevelInfo {
		t.Fatalf("summaries: %+v", s)
	}
	if s := l.summaries(t0.Add(2 * logWindow)); len(s) != 0 {
		t.Fatalf("summaries said twice, or of a cause that dropped nothing: %+v", s)
	}
	// A new window: the burst again; the level of the summary is the
	// highest of the window's lines.
	t1 := t0.Add(3 * logWindow)
	for i := range logBurst + 1 {
		level := slog.LevelInfo
		if i == logBurst-1 {
			level = slog.LevelError
		}
		if got := l.allow("a", "the a lines", level, t1); got != (i < logBurst) {
			t.Fatalf("second window, line %d: allowed %v", i+1, got)
		}
	}
	// The next line after the window ended opens a new one and ends the
	// old, whose summary waits for summaries.
	if !l.allow("a", "the a lines", slog.LevelInfo, t1.Add(logWindow)) {
		t.Fatal("the first line of a new window was held back")
	}
	if s := l.summaries(t1.Add(logWindow)); len(s) != 1 || !strings.HasPrefix(s[0].Msg, "1 line more of the a lines") || s[0].Level != slog.LevelError {
		t.Fatalf("summaries: %+v", s)
	}
}

// TestFindingCause: findings are limited per kind and place.
func TestFindingCause(t *testing.T) {
	for _, tt := range []struct {
		f         reconcile.Finding
		key, what string
	}{
		{reconcile.Finding{Kind: reconcile.FindCNI, Dir: "/var/lib/cni/results/x"}, fmt.Sprintf("%d|/var/lib/cni/results", reconcile.FindCNI), "the messages about files in /var/lib/cni/results"},
		{reconcile.Finding{Kind: reconcile.FindReject, Network: "default", Dir: "/x/y"}, "1|default", "the messages of this kind about network default"},
		{reconcile.Finding{Kind: reconcile.FindUnmatched, Dir: "/var/lib/cni/networks/x"}, "", "the messages of this kind about /var/lib/cni/networks"},
		{reconcile.Finding{Kind: reconcile.FindReject}, "1", "the messages of this kind"},
	} {
		key, what := findingCause(tt.f)
		if tt.key != "" && key != tt.key || what != tt.what {
			t.Errorf("findingCause(%+v) = %q, %q; want %q, %q", tt.f, key, what, tt.key, tt.what)
		}
	}
}

// TestMarksDetail: what each event marks, the first reason for a full
// pass, echoes counted one by one, and what a full pass takes after it
// set its watches.
func TestMarksDetail(t *testing.T) {
	m := newMarks()
	if got := m.take(); !got.full() || got.why != "start" {
		t.Fatalf("the first take: %+v", got)
	}
	if got := m.take(); got.full() || got.why != "" {
		t.Fatalf("nothing marked: %+v", got)
	}
	// Each of them alone makes a full pass.
	for name, mark := range map[string]func(){
		"cni":    func() { m.interest("/etc/cni/net.d", nil, nil, nil); m.file("/etc/cni/net.d", "x.conflist") },
		"caches": func() { m.interest("", map[string]string{"/c/results": "/c"}, nil, nil); m.file("/c/results", "") },
		"kernel": func() { m.kernelDirty("test") },
		"dir":    func() { m.file("/var/lib/cni/networks/default", "") },
	} {
		m.take()
		mark()
		if got := m.take(); !got.full() || got.why == "" {
			t.Errorf("%s: %+v", name, got)
		}
	}
	// Entries of a cache or a state directory alone: an update pass.
	m.interest("", map[string]string{"/c/results": "/c"}, nil, map[string]bool{"/s/odd": true})
	m.file("/c/results", "n-c-eth0")
	m.file("/c/results", "n-d-eth0")
	m.file("/s/default", "192.168.1.2")
	m.file("/s/default", "192.168.1.3")
	m.file("/s/odd", "") // a directory no network explains: counted, not read
	got := m.take()
	if got.full() || got.why != "" || len(got.cache["/c"]) != 2 || len(got.names["/s/default"]) != 2 || got.names["/s/odd"] == nil || len(got.dirs) != 0 {
		t.Fatalf("entries: %+v", got)
	}
	// The first reason stays.
	m.kernelDirty("first")
	m.kernelDirty("second")
	if got := m.take(); got.why != "first" {
		t.Errorf("why %q", got.why)
	}
	// With no link of interest yet, every link event matters.
	m.interest("", nil, nil, nil)
	m.kernelEvent(netlinkx.Event{Kind: netlinkx.LinkChanged, Link: "eno7"})
	if !m.take().kernel {
		t.Errorf("a link event before any link of interest was set")
	}
	// Two deletions expected, two echoes dropped, the third deletion is
	// someone else's.
	p := netip.MustParsePrefix("192.168.1.2/32")
	m.expect([]netip.Prefix{p, p})
	for i := range 3 {
		m.kernelEvent(netlinkx.Event{Kind: netlinkx.OwnRouteDeleted, Dst: p})
		if got := m.take().kernel; got != (i == 2) {
			t.Errorf("deletion %d: kernel marked %v", i+1, got)
		}
	}

	// takeFiles: the marks made since take join the pass; the reason goes
	// once nothing asks for a full pass any more.
	m.take()
	m.file("/var/lib/cni/networks/default", "")
	t0 := m.take()
	m.interest("/etc/cni/net.d", map[string]string{"/c/results": "/c"}, nil, nil)
	m.file("/s/default", "192.168.1.4")
	m.file("/c/results", "n-e-eth0")
	m.file("/etc/cni/net.d", "y.conflist")
	m.file("/s/new", "")
	m.takeFiles(&t0)
	if !t0.names["/s/default"]["192.168.1.4"] || !t0.cache["/c"]["n-e-eth0"] || !t0.cni || !t0.dirs["/s/new"] || !t0.dirs["/var/lib/cni/networks/default"] {
		t.Errorf("takeFiles: %+v", t0)
	}
	if got := m.take(); got.full() || got.why != "" || len(got.names) != 0 {
		t.Errorf("after takeFiles: %+v", got)
	}
	// Without a take first (a pass that took nothing yet).
	var empty marked
	m.file("/s/default", "192.168.1.5")
	m.takeFiles(&empty)
	if !empty.names["/s/default"]["192.168.1.5"] {
		t.Errorf("takeFiles into an empty mark: %+v", empty)
	}
	// A kernel mark keeps its reason through takeFiles and takeDirs.
	m.kernelDirty("kept")
	m.file("/s/other", "")
	t1 := marked{names: map[string]map[string]bool{}, dirs: map[string]bool{}, cache: map[string]map[string]bool{}}
	m.takeDirs(&t1)
	if !t1.dirs["/s/other"] {
		t.Errorf("takeDirs: %+v", t1)
	}
	m.takeFiles(&t1)
	if got := m.take(); !got.kernel || got.why != "kept" {
		t.Errorf("the kernel's mark: %+v", got)
	}
}
