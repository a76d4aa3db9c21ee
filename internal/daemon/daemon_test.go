package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/inspect"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/view"
)

// fakeKernel is a node's links and main table in memory: Snapshot copies
// them, ops change them. Ops listed in fail fail instead.
type fakeKernel struct {
	mu        sync.Mutex
	links     []reconcile.Link
	routes    map[netip.Prefix]reconcile.Route
	addrs     []netip.Addr
	snapshots int
	ops       []string
	fail      map[reconcile.OpKind]error
	// arpIgnoreAll is net.ipv4.conf.all.arp_ignore set.
	arpIgnoreAll bool
}

var _ Kernel = (*fakeKernel)(nil)

func newFakeKernel() *fakeKernel {
	return &fakeKernel{
		links: []reconcile.Link{{Index: 2, Name: "eno1", Up: true, MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.0.5/16")}}},
		addrs: []netip.Addr{netip.MustParseAddr("192.168.0.5")}, fail: map[reconcile.OpKind]error{},
		// The master's connected route, as the kernel adds it with the address.
		routes: map[netip.Prefix]reconcile.Route{netip.MustParsePrefix("192.168.0.0/16"): {Dst: netip.MustParsePrefix("192.168.0.0/16"), Dev: "eno1", Protocol: 2}},
	}
}

func (k *fakeKernel) Snapshot() (*reconcile.Snapshot, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.snapshots++
	s := &reconcile.Snapshot{Links: slices.Clone(k.links), Addrs: slices.Clone(k.addrs), ARPIgnoreAll: k.arpIgnoreAll}
	for _, r := range k.routes {
		s.Routes = append(s.Routes, r)
	}
	return s, nil
}

func (k *fakeKernel) ARPIgnoreAll() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.arpIgnoreAll
}

func (k *fakeKernel) Do(op reconcile.Op) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail[op.Kind]; err != nil {
		return err
	}
	k.ops = append(k.ops, op.String())
	switch op.Kind {
	case reconcile.AddShim:
		k.links = append(k.links, reconcile.Link{Index: 7, Name: op.Dev, Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: true, LowerUp: true,
			MTU: op.MTU, MAC: op.MAC, Alias: reconcile.ShimAlias, ARPFilter: true, ProxyNDP: true, ProxyDelay0: true})
	case reconcile.AddRoute, reconcile.ReplaceRoute:
		k.routes[op.Dst] = reconcile.Route{Dst: op.Dst, Dev: op.Dev, Protocol: reconcile.Protocol, Src: op.Src}
	case reconcile.DelRoute:
		delete(k.routes, op.Dst)
	}
	return nil
}

func (k *fakeKernel) DoBatch(ops []reconcile.Op) []error {
	errs := make([]error, len(ops))
	for i, op := range ops {
		errs[i] = k.Do(op)
	}
	return errs
}

func (k *fakeKernel) took() (ops []string, snapshots int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ops, snapshots = k.ops, k.snapshots
	k.ops, k.snapshots = nil, 0
	return ops, snapshots
}

// fakeClock hands out timers that fire only when a test fires them; its
// time moves only when a test advances it.
type fakeClock struct {
	mu     sync.Mutex
	timers []*fakeTimer
	now    time.Duration // since the Unix epoch
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Unix(0, 0).Add(c.now)
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now += d
}

func (c *fakeClock) NewTimer() Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

type fakeTimer struct {
	mu     sync.Mutex
	c      chan time.Time
	armed  time.Duration // 0 when stopped
	resets []time.Duration
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Reset(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.armed = d
	t.resets = append(t.resets, d)
}
func (t *fakeTimer) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.armed = 0
}
func (t *fakeTimer) fire() { t.c <- time.Time{} }
func (t *fakeTimer) state() (time.Duration, []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.armed, slices.Clone(t.resets)
}

// syncBuffer is a log sink safe for the loop's goroutine and the test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rig is a daemon on a fake kernel and clock, with a real CNI directory
// and state directory in a temporary directory: the seed's network.
type rig struct {
	d        *Daemon
	k        *fakeKernel
	clk      *fakeClock
	log      *syncBuffer
	stateDir string
	cniDir   string
	cacheDir string // libcni's cache; its results/ holds the entries
}

const seedConf = `{"cniVersion": "0.4.0", "name": "default", "plugins": [{"type": "macvlan", "master": "eno1",
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "192.168.0.0/16", "rangeStart": "192.168.1.2", "rangeEnd": "192.168.1.254", "gateway": "192.168.0.1"}]]}}]}`

func newRig(t testing.TB) *rig {
	t.Helper()
	root := t.TempDir()
	r := &rig{k: newFakeKernel(), clk: &fakeClock{}, log: &syncBuffer{},
		cniDir: filepath.Join(root, "net.d"), stateDir: filepath.Join(root, "networks", "default"), cacheDir: filepath.Join(root, "cni")}
	for _, d := range []string{r.cniDir, r.stateDir, filepath.Join(r.cacheDir, "results")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.write(t, filepath.Join(r.cniDir, "00-default.conflist"), seedConf)
	cfg := config.Default()
	cfg.CNIConfDir, cfg.StateRoot, cfg.CNICacheDirs = r.cniDir, filepath.Join(root, "networks"), []string{r.cacheDir}
	cfg.LANGuard = "off"
	level := new(slog.LevelVar)
	level.Set(slog.LevelDebug)
	log := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: level}))
	r.d = New(Options{Config: cfg, Log: log, Level: level})
	r.d.guards = reconcile.GuardKernel{Filter: errors.New("no filter in a fake kernel"), Shim: errors.New("no shim guard in a fake kernel")}
	r.d.p = r.d.newPass(r.k, newMarks(), func([]string) error { return nil }, r.clk.Now)
	r.d.p.mid = "test"
	return r
}

func (r *rig) write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// alloc writes an allocation file and marks it, as inotify would.
func (r *rig) alloc(t testing.TB, ip, owner string) {
	t.Helper()
	r.write(t, filepath.Join(r.stateDir, ip), owner+"\r\neth0")
	r.d.p.marks.file(r.stateDir, ip)
}

// step runs one pass of what is marked.
func (r *rig) step() (ok, full bool) { return r.d.p.run(r.d.p.marks.take()) }

// TestUpdatePassIsSmall: after the first (full) pass, an allocation is an
// update pass: no new snapshot of the kernel, one route added, the status
// counts it; a release deletes just that route. A whole-directory mark
// (a new watch, an inotify overflow) makes a full pass that reads the
// directory again and finds what no event told.
func TestUpdatePassIsSmall(t *testing.T) {
	r := newRig(t)
	r.alloc(t, "192.168.1.2", "c1")
	if ok, full := r.step(); !ok || !full {
		t.Fatalf("first pass: ok %v, full %v", ok, full)
	}
	ops, snaps := r.k.took()
	if snaps != 1 || !slices.ContainsFunc(ops, func(s string) bool { return strings.HasPrefix(s, "ip route add 192.168.1.2/32") }) {
		t.Fatalf("first pass: %d snapshots, ops %q", snaps, ops)
	}
	// Links changed (the shim was made): the next pass reads the kernel.
	if ok, full := r.step(); !ok || !full {
		t.Fatalf("the pass after a shim was made: ok %v, full %v", ok, full)
	}
	r.k.took()

	r.alloc(t, "192.168.1.3", "c2")
	if ok, full := r.step(); !ok || full {
		t.Fatalf("an allocation: ok %v, full %v; want an update pass", ok, full)
	}
	ops, snaps = r.k.took()
	if snaps != 0 || !slices.Equal(ops, []string{"ip route add 192.168.1.3/32 dev eno1.host scope link proto 97 src 192.168.0.5"}) {
		t.Errorf("an allocation: %d snapshots, ops %q", snaps, ops)
	}
	if st := r.d.p.node.Status()[0]; st.Routed != 2 || !st.InSync() {
		t.Errorf("status after the allocation: %+v", st)
	}
	if err := os.Remove(filepath.Join(r.stateDir, "192.168.1.3")); err != nil {
		t.Fatal(err)
	}
	r.d.p.marks.file(r.stateDir, "192.168.1.3")
	r.step()
	if ops, snaps = r.k.took(); snaps != 0 || !slices.Equal(ops, []string{"ip route del 192.168.1.3/32 dev eno1.host proto 97", "ip neigh del 192.168.1.3 dev eno1.host"}) {
		t.Errorf("a release: %d snapshots, ops %q", snaps, ops)
	}
	if !strings.Contains(r.log.String(), "route 192.168.1.3/32 dev eno1.host removed for container c2/eth0") {
		t.Errorf("the release is not logged with its last owner:\n%s", r.log)
	}

	// A file written without an event, then the whole directory marked.
	r.write(t, filepath.Join(r.stateDir, "192.168.1.4"), "c4\r\neth0")
	r.d.p.marks.file(r.stateDir, "")
	if ok, full := r.step(); !ok || !full {
		t.Fatalf("a whole directory marked: ok %v, full %v", ok, full)
	}
	if ops, _ := r.k.took(); !slices.ContainsFunc(ops, func(s string) bool { return strings.HasPrefix(s, "ip route add 192.168.1.4/32") }) {
		t.Errorf("the full pass did not route the unannounced allocation: %q", ops)
	}
}

// nadnetEntry is the cache entry libcni (cnitool) left for a pod attached
// to network nadnet, defined nowhere but in that entry: a Multus
// NetworkAttachmentDefinition's way. Its netns is one that exists: an
// attachment whose namespace is gone is stale, and not routed.
const nadnetEntry = `{"kind":"cniCacheV1","containerId":"c9","config":"ewogICJjbmlWZXJzaW9uIjogIjEuMC4wIiwKICAibmFtZSI6ICJuYWRuZXQiLAogICJwbHVnaW5zIjogWwogICAgewogICAgICAidHlwZSI6ICJtYWN2bGFuIiwKICAgICAgIm1hc3RlciI6ICJlbm8xIiwKICAgICAgIm1vZGUiOiAiYnJpZGdlIiwKICAgICAgImlwYW0iOiB7CiAgICAgICAgInR5cGUiOiAiaG9zdC1sb2NhbCIsCiAgICAgICAgInJhbmdlcyI6IFtbeyJzdWJuZXQiOiAiMTkyLjE2OC4wLjAvMTYiLCAicmFuZ2VTdGFydCI6ICIxOTIuMTY4LjMuMSIsICJyYW5nZUVuZCI6ICIxOTIuMTY4LjMuMjU0IiwgImdhdGV3YXkiOiAiMTkyLjE2OC4wLjEifV1dLAogICAgICAgICJyb3V0ZXMiOiBbeyJkc3QiOiAiMC4wLjAuMC8wIn1dCiAgICAgIH0KICAgIH0sCiAgICB7InR5cGUiOiAidHVuaW5nIiwgInN5c2N0bCI6IHsibmV0LmlwdjQuY29uZi5hbGwubG9nX21hcnRpYW5zIjogIjEifX0KICBdCn0K","ifName":"eth0","networkName":"nadnet","netns":"/proc/self/ns/net","result":{"cniVersion":"1.0.0","ips":[{"address":"192.168.3.1/16","gateway":"192.168.0.1"}]}}`

// TestRunTimeNetwork: a network defined only in libcni's cache (nothing
// in the configuration directory) is found when its entry appears: a full
// pass, as the networks changed, then its pod routed. Its state directory
// and first allocation come before the entry (libcni writes it once the
// ADD is done): they are watched and counted, and not an error within
// unmatchedGrace. A cache entry that changes nothing is an update pass.
func TestRunTimeNetwork(t *testing.T) {
	r := newRig(t)
	r.step()
	r.step()
	nadDir := filepath.Join(filepath.Dir(r.stateDir), "nadnet")
	if err := os.MkdirAll(nadDir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.d.p.marks.file(filepath.Dir(r.stateDir), "nadnet") // the state root's event
	if ok, full := r.step(); !ok || full {
		t.Fatalf("a directory in the state root is counted alone: ok %v, full %v", ok, full)
	}
	if !slices.Contains(r.d.p.watched, nadDir) {
		t.Fatalf("the unexplained directory is not watched: %q", r.d.p.watched)
	}
	r.write(t, filepath.Join(nadDir, "192.168.3.1"), "c9\r\neth0")
	r.d.p.marks.file(nadDir, "192.168.3.1")
	if ok, full := r.step(); !ok || full {
		t.Fatalf("an allocation in an unexplained directory: ok %v, full %v", ok, full)
	}
	if want := r.clk.Now().Add(unmatchedGrace); !r.d.p.unm.recheckAt.Equal(want) {
		t.Errorf("recheck at %v, want %v", r.d.p.unm.recheckAt, want)
	}
	r.k.took()

	name := "nadnet-c9-eth0"
	r.write(t, filepath.Join(r.cacheDir, "results", name), nadnetEntry)
	r.d.p.marks.file(filepath.Join(r.cacheDir, "results"), name)
	if ok, full := r.step(); !ok || !full {
		t.Fatalf("a cache entry of a new network: ok %v, full %v", ok, full)
	}
	if ops, _ := r.k.took(); !slices.Contains(ops, "ip route add 192.168.3.1/32 dev eno1.host scope link proto 97 src 192.168.0.5") {
		t.Errorf("the run-time network's pod is not routed: %q", ops)
	}
	var names []string
	for _, n := range r.d.p.view.Networks() {
		names = append(names, n.Name+" "+n.Source)
	}
	if !slices.Contains(names, "nadnet "+filepath.Join(r.cacheDir, "results", name)) {
		t.Errorf("networks %q", names)
	}
	if !r.d.p.unm.recheckAt.IsZero() || r.d.p.unm.has(nadDir) {
		t.Errorf("the explained directory still waits (recheck at %v) or is unknown", r.d.p.unm.recheckAt)
	}
	r.clk.advance(unmatchedGrace)
	r.d.p.marks.recountUnknown()
	r.step()
	if strings.Contains(r.log.String(), "no known network explains") {
		t.Errorf("the first pod of a run-time network was reported unexplained:\n%s", r.log)
	}

	// The same entry written again (a second interface of the pod, say,
	// in a real node): the networks stay, so no full pass.
	r.d.p.marks.file(filepath.Join(r.cacheDir, "results"), name)
	if ok, full := r.step(); !ok || full {
		t.Errorf("an entry that changes nothing: ok %v, full %v", ok, full)
	}
	// An entry libcni could not have written is said by that update pass.
	r.write(t, filepath.Join(r.cacheDir, "results", "junk-c1-eth0"), `{"kind":"cniCacheV1"}`)
	r.d.p.marks.file(filepath.Join(r.cacheDir, "results"), "junk-c1-eth0")
	if ok, full := r.step(); !ok || full || !strings.Contains(r.log.String(), "junk-c1-eth0") {
		t.Errorf("a junk entry: ok %v, full %v, said: %v", ok, full, strings.Contains(r.log.String(), "junk-c1-eth0"))
	}
}

// TestUnexplainedDirectory: a directory of the state root that no
// network explains is watched; once it has held allocations for
// unmatchedGrace the journal says so, once, and the recheck timer wakes
// the loop for that moment, armed when the moment changes and not put off
// by passes in between. A directory named like a network of another
// plugin (a bridge's) is that network's: neither reported nor watched.
func TestUnexplainedDirectory(t *testing.T) {
	r := newRig(t)
	r.write(t, filepath.Join(r.cniDir, "87-podman.conflist"), `{"cniVersion":"0.4.0","name":"podman","plugins":[{"type":"bridge","bridge":"cni-podman0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.88.0.0/16"}]]}}]}`)
	root := filepath.Dir(r.stateDir)
	ghost, podman := filepath.Join(root, "ghost"), filepath.Join(root, "podman")
	for _, d := range []string{ghost, podman} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.write(t, filepath.Join(podman, "10.88.0.2"), "p1\r\neth0")
	r.write(t, filepath.Join(ghost, "192.168.5.9"), "g1\r\neth0")
	resync, retry, recheck := r.clk.NewTimer(), r.clk.NewTimer(), r.clk.NewTimer().(*fakeTimer)
	said := func() int { return strings.Count(r.log.String(), "holds 1 allocation that no known network explains") }

	r.d.step(retry, resync, recheck)
	if !slices.Contains(r.d.p.watched, ghost) || slices.Contains(r.d.p.watched, podman) {
		t.Errorf("watched %q: want ghost and not podman", r.d.p.watched)
	}
	if armed, _ := recheck.state(); armed != unmatchedGrace || said() != 0 {
		t.Fatalf("at first sight: recheck armed %v, said %d times; want %v and 0", armed, said(), unmatchedGrace)
	}
	// Passes in between do not put the recheck off.
	r.clk.advance(unmatchedGrace / 2)
	r.write(t, filepath.Join(ghost, "192.168.5.10"), "g2\r\neth0")
	r.d.p.marks.file(ghost, "192.168.5.10")
	r.d.step(retry, resync, recheck)
	if _, resets := recheck.state(); len(resets) != 1 || said() != 0 {
		t.Fatalf("a pass within the grace: recheck armed %v, said %d times", resets, said())
	}
	r.clk.advance(unmatchedGrace / 2)
	r.d.p.marks.recountUnknown() // what the loop does when recheck fires
	r.d.step(retry, resync, recheck)
	n := strings.Count(r.log.String(), ghost+" holds 2 allocations that no known network explains")
	if armed, _ := recheck.state(); n != 1 || armed != 0 {
		t.Fatalf("grace over: said %d times, recheck armed %v; want once and stopped\n%s", n, armed, r.log)
	}
	if strings.Contains(r.log.String(), podman) {
		t.Errorf("a bridge network's directory was reported:\n%s", r.log)
	}
	r.d.p.marks.recountUnknown()
	r.d.step(retry, resync, recheck)
	if n := strings.Count(r.log.String(), "no known network explains"); n != 1 {
		t.Errorf("said %d times after another pass, want once", n)
	}

	// A bridge known only from libcni's cache (a Multus attachment of
	// another plugin): its entry comes after its directory and explains
	// it, though the networks flatnet mirrors stay the same.
	nad := filepath.Join(root, "bridgenad")
	if err := os.MkdirAll(nad, 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(t, filepath.Join(nad, "10.99.0.2"), "b1\r\nnet1")
	r.d.p.marks.file(root, "bridgenad")
	r.d.step(retry, resync, recheck)
	if !r.d.p.unm.has(nad) {
		t.Fatalf("want the bridge's directory unknown before its entry")
	}
	r.write(t, filepath.Join(r.cacheDir, "results", "bridgenad-b1-net1"), bridgeEntry)
	r.d.p.marks.file(filepath.Join(r.cacheDir, "results"), "bridgenad-b1-net1")
	r.d.step(retry, resync, recheck)
	if r.d.p.unm.has(nad) || slices.Contains(r.d.p.watched, nad) {
		t.Errorf("the bridge's entry did not explain its directory: watched %q", r.d.p.watched)
	}
	r.clk.advance(unmatchedGrace)
	r.d.p.marks.recountUnknown()
	r.d.step(retry, resync, recheck)
	if strings.Contains(r.log.String(), nad) {
		t.Errorf("the bridge's directory was reported:\n%s", r.log)
	}
}

// bridgeEntry is libcni's cache entry of a bridge network's attachment.
const bridgeEntry = `{"kind":"cniCacheV1","containerId":"b1","config":"eyJjbmlWZXJzaW9uIjogIjEuMC4wIiwgIm5hbWUiOiAiYnJpZGdlbmFkIiwgInBsdWdpbnMiOiBbeyJ0eXBlIjogImJyaWRnZSIsICJicmlkZ2UiOiAiYnItbmFkIiwgImlwYW0iOiB7InR5cGUiOiAiaG9zdC1sb2NhbCIsICJyYW5nZXMiOiBbW3sic3VibmV0IjogIjEwLjk5LjAuMC8xNiJ9XV19fV19","ifName":"net1","networkName":"bridgenad","netns":"/run/netns/podb","result":{"cniVersion":"1.0.0","ips":[{"address":"10.99.0.2/16"}]}}`

// TestOwnDeletionEchoes: the echo of a deletion flatnet made is dropped;
// any other deletion of one of its routes marks the kernel, also when an
// expected echo never came before the kernel was read again.
func TestOwnDeletionEchoes(t *testing.T) {
	m := newMarks()
	m.take()
	p := netip.MustParsePrefix("192.168.1.2/32")
	gone := netlinkx.Event{Kind: netlinkx.OwnRouteDeleted, Dst: p}

	// A pass deletes the route: its echo is expected and dropped.
	m.expect([]netip.Prefix{p})
	m.kernelEvent(gone)
	if m.take().kernel {
		t.Errorf("our own deletion's echo marked the kernel")
	}
	// A pass deletes a route that had already gone without a word (its
	// shim went down): no echo comes. The next pass reads the kernel...
	m.expect([]netip.Prefix{p})
	m.kernelDirty("test")
	if !m.take().kernel {
		t.Fatalf("the kernel is not marked")
	}
	// ... and a later deletion by someone else is not taken for the echo.
	m.kernelEvent(gone)
	if !m.take().kernel {
		t.Errorf("a route deleted by someone else was taken for our echo")
	}
}

// TestMarks: host-local's bookkeeping files wake nothing; a pod's macvlan
// passing through the node's namespace is not a link that matters; the CNI
// directory's events mark discovery.
func TestMarks(t *testing.T) {
	m := newMarks()
	m.take()
	m.interest("/etc/cni/net.d", map[string]string{"/var/lib/cni/results": "/var/lib/cni"}, map[string]bool{"eno1": true, "eno1.host": true}, nil)
	m.file("/var/lib/cni/networks/default", "last_reserved_ip.0")
	m.file("/var/lib/cni/networks/default", "lock")
	m.kernelEvent(netlinkx.Event{Kind: netlinkx.LinkChanged, Link: "macvlan7"})
	select {
	case <-m.wake:
		t.Errorf("woken by events that matter nothing")
	default:
	}
	if got := m.take(); got.full() || len(got.names) > 0 {
		t.Errorf("marked: %+v", got)
	}
	m.file("/etc/cni/net.d", "10-x.conflist")
	m.kernelEvent(netlinkx.Event{Kind: netlinkx.LinkChanged, Link: "eno1"})
	m.file("/var/lib/cni/networks/default", "192.168.1.2")
	got := m.take()
	if !got.cni || !got.kernel || !got.names["/var/lib/cni/networks/default"]["192.168.1.2"] {
		t.Errorf("marked: %+v", got)
	}
}

// TestLoopRetriesAndResyncs: the loop, on a fake clock. A pass whose ops
// fail is tried again 1 s, then 2 s later (a full pass each time), backing
// off up to the resync interval; once it succeeds the retry stops. Lost
// kernel notifications make a full pass that reads the kernel anew and
// says so. The resync timer makes a full pass; update passes do not
// start it afresh.
func TestLoopRetriesAndResyncs(t *testing.T) {
	r := newRig(t)
	r.d.p.cfg.ResyncInterval = 3 * time.Second
	r.k.fail[reconcile.AddRoute] = errors.New("no route for you")
	r.write(t, filepath.Join(r.stateDir, "192.168.1.2"), "c1\r\neth0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.d.loop(ctx, r.clk, make(chan os.Signal), r.k) }()

	resync, retry := r.clk.timer(t, 0), r.clk.timer(t, 1)
	// Every full pass restarts the resync interval: counting those
	// restarts tells when the pass a fired timer caused is done.
	fullPasses := func() int { _, resets := resync.state(); return len(resets) }
	waitState(t, "a retry 1 s after the failed first pass", func() error {
		if armed, _ := retry.state(); armed != time.Second {
			return fmt.Errorf("retry armed %v", armed)
		}
		return nil
	})
	fireRetry := func(what string, want time.Duration, cond func() error) {
		t.Helper()
		n := fullPasses()
		retry.fire()
		waitState(t, what, func() error {
			if fullPasses() == n {
				return errors.New("no full pass yet")
			}
			if armed, _ := retry.state(); armed != want {
				return fmt.Errorf("retry armed %v", armed)
			}
			return cond()
		})
	}
	for _, want := range []time.Duration{2 * time.Second, 3 * time.Second, 3 * time.Second} {
		fireRetry(fmt.Sprintf("backing off to %v (at most the resync interval)", want), want, func() error { return nil })
	}
	r.k.took() // counts from here
	r.k.mu.Lock()
	delete(r.k.fail, reconcile.AddRoute)
	r.k.mu.Unlock()
	fireRetry("the route, and the retry stopped", 0, func() error {
		if !strings.Contains(r.log.String(), "route 192.168.1.2/32 dev eno1.host added") {
			return errors.New("no route added yet")
		}
		return nil
	})
	if _, snaps := r.k.took(); snaps == 0 {
		t.Errorf("a retry pass did not read the kernel")
	}

	_, resetsBefore := resync.state()
	r.alloc(t, "192.168.1.3", "c3")
	waitState(t, "the update pass routes the new pod", func() error {
		if !strings.Contains(r.log.String(), "route 192.168.1.3/32 dev eno1.host added") {
			return errors.New("not yet")
		}
		return nil
	})
	if _, resets := resync.state(); len(resets) != len(resetsBefore) {
		t.Errorf("an update pass restarted the resync interval: %v -> %v", resetsBefore, resets)
	}

	r.d.p.marks.kernelEvent(netlinkx.Event{Kind: netlinkx.Lost})
	waitState(t, "lost notifications: a full pass that says so", func() error {
		if !strings.Contains(r.log.String(), "kernel notifications were lost; resyncing") {
			return errors.New("not said")
		}
		if _, snaps := r.k.took(); snaps == 0 {
			return errors.New("kernel not read again")
		}
		return nil
	})
	r.k.took()
	resync.fire()
	waitState(t, "the resync timer makes a full pass", func() error {
		if _, snaps := r.k.took(); snaps == 0 {
			return errors.New("kernel not read again")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("loop: %v", err)
	}
}

// TestLoopReload: SIGHUP reloads the configuration; an invalid file is
// refused and the running configuration stays.
func TestLoopReload(t *testing.T) {
	r := newRig(t)
	path := filepath.Join(t.TempDir(), "flatnet.toml")
	r.write(t, path, fmt.Sprintf("cni_conf_dir = %q\nstate_root = %q\nlan_guard = \"off\"\nresync_interval = \"7m\"\n", r.cniDir, filepath.Dir(r.stateDir)))
	r.d.opts.ConfigPath, r.d.opts.ConfigRequired = path, true
	sigs := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.d.loop(ctx, r.clk, sigs, r.k) }()
	sigs <- syscall.SIGHUP
	resync := r.clk.timer(t, 0)
	waitState(t, "the resync interval of the new file", func() error {
		if _, resets := resync.state(); !slices.Contains(resets, 7*time.Minute) {
			return fmt.Errorf("resync resets %v", resets)
		}
		return nil
	})
	r.write(t, path, "bogus_key = 1\n")
	sigs <- syscall.SIGHUP
	waitState(t, "the bad file refused", func() error {
		if !strings.Contains(r.log.String(), "configuration not reloaded; the running one stays") {
			return errors.New("not refused")
		}
		return nil
	})
	cancel()
	<-done
	if r.d.p.cfg.ResyncInterval != 7*time.Minute {
		t.Errorf("the running configuration changed: resync %v", r.d.p.cfg.ResyncInterval)
	}
}

// timer returns the clock's i-th timer, waiting for the loop to make it.
func (c *fakeClock) timer(t *testing.T, i int) *fakeTimer {
	t.Helper()
	var out *fakeTimer
	waitState(t, fmt.Sprintf("timer %d", i), func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.timers) <= i {
			return errors.New("not made yet")
		}
		out = c.timers[i]
		return nil
	})
	return out
}

// waitState polls cond until it holds, with a generous safety deadline.
func waitState(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCarrierBack: a shim is reported when a snapshot shows its carrier
// back after one without it, not when it is new, recreated or unchanged.
func TestCarrierBack(t *testing.T) {
	p := &pass{}
	nets := []reconcile.Network{{Name: "default", Master: "eno1", Shim: "eno1.host"}}
	snap := func(index int, lowerUp bool) *reconcile.Snapshot {
		return &reconcile.Snapshot{Links: []reconcile.Link{{Index: index, Name: "eno1.host", Up: true, LowerUp: lowerUp}}}
	}
	for i, c := range []struct {
		snap *reconcile.Snapshot
		back bool
	}{
		{snap(7, false), false},        // first look
		{snap(7, true), true},          // the master came back
		{snap(7, true), false},         // unchanged
		{snap(7, false), false},        // the master went down
		{snap(9, true), false},         // recreated: a new device has no entries
		{&reconcile.Snapshot{}, false}, // gone
		{snap(9, true), false},         // and back, new again
		{snap(9, false), false},        // down
		{snap(9, true), true},          // up
	} {
		if got := p.carrierBack(nets, c.snap)["eno1.host"]; got != c.back {
			t.Errorf("step %d: carrier back %v, want %v", i, got, c.back)
		}
	}
}

// TestStatusAgreesWithDaemon: flatnet status and check (inspect.Assemble,
// a fresh view.View with the daemon's Memory from its runtime directory)
// see the networks the daemon keeps from history, which a fresh read of
// the node cannot find: those of a CNI file that stopped parsing, and one
// known only from libcni's cache whose entry went while its state
// directory still holds allocations. Without the memory they would not.
func TestStatusAgreesWithDaemon(t *testing.T) {
	runtime := t.TempDir()
	t.Setenv("RUNTIME_DIRECTORY", runtime)
	r := newRig(t)
	r.alloc(t, "192.168.1.2", "c1")
	nadDir := filepath.Join(filepath.Dir(r.stateDir), "nadnet")
	if err := os.MkdirAll(nadDir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(t, filepath.Join(nadDir, "192.168.3.1"), "c9\r\neth0")
	entry := filepath.Join(r.cacheDir, "results", "nadnet-c9-eth0")
	r.write(t, entry, nadnetEntry)
	r.step()
	r.step()

	// The file breaks and the entry goes (the pod's DEL ran halfway).
	r.write(t, filepath.Join(r.cniDir, "00-default.conflist"), `{"cniVersion": "0.4.0", "name": "default", "plugins": [`)
	if err := os.Remove(entry); err != nil {
		t.Fatal(err)
	}
	r.d.p.marks.all(r.d.p.watched, "test")
	if ok, full := r.step(); !ok || !full {
		t.Fatalf("the pass after the changes: ok %v, full %v", ok, full)
	}
	networks := func(nets []reconcile.Network) []string {
		var out []string
		for _, n := range nets {
			out = append(out, fmt.Sprintf("%s %s %s %v", n.Name, n.Source, n.StateDir, n.Ranges))
		}
		slices.Sort(out)
		return out
	}
	daemon := networks(r.d.p.view.Networks())
	if len(daemon) != 2 {
		t.Fatalf("the daemon does not keep both networks: %q", daemon)
	}
	o, err := inspect.Assemble(r.d.p.cfg, r.k.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if got := networks(o.Networks); !o.Memory || !slices.Equal(got, daemon) {
		t.Errorf("status sees\n%q (memory read: %v, %v)\nthe daemon\n%q", got, o.Memory, o.MemoryErr, daemon)
	}
	if len(o.CNIProblems) != 1 {
		t.Errorf("status does not report the broken file: %v", o.CNIProblems)
	}

	// The control: without the daemon's memory, a fresh look differs.
	t.Setenv("RUNTIME_DIRECTORY", t.TempDir())
	if o, err = inspect.Assemble(r.d.p.cfg, r.k.Snapshot); err != nil {
		t.Fatal(err)
	}
	if got := networks(o.Networks); len(got) != 0 || o.Memory {
		t.Errorf("a look without the daemon's memory sees %q (memory read: %v)", got, o.Memory)
	}

	// A memory file that is not one: said, and the look goes on.
	if err := os.WriteFile(filepath.Join(runtime, view.MemoryFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RUNTIME_DIRECTORY", runtime)
	if o, err = inspect.Assemble(r.d.p.cfg, r.k.Snapshot); err != nil || o.MemoryErr == nil || !strings.Contains(o.MemoryErr.Error(), filepath.Join(runtime, view.MemoryFile)) {
		t.Errorf("a broken memory file: err %v, MemoryErr %v", err, o.MemoryErr)
	}
}
