package daemon

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// settle runs the first pass and the one its new shim asks for.
func (r *rig) settle(t testing.TB) {
	t.Helper()
	r.step()
	r.step()
	r.k.took()
}

// routes are the destinations of flatnet's routes in the fake kernel.
func (r *rig) routes() []string {
	r.k.mu.Lock()
	defer r.k.mu.Unlock()
	var out []string
	for p, rt := range r.k.routes {
		if rt.Protocol == reconcile.Protocol {
			out = append(out, p.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestFullPassRereads: after the start, a full pass reads again what was
// marked: the CNI directory (a range narrowed unroutes what it left out),
// the caches (a network that appears in them), the names of a state
// directory marked one by one.
func TestFullPassRereads(t *testing.T) {
	r := newRig(t)
	r.alloc(t, "192.168.1.2", "c1")
	r.alloc(t, "192.168.1.200", "c2")
	r.settle(t)
	if got := r.routes(); !slices.Equal(got, []string{"192.168.1.2/32", "192.168.1.200/32"}) {
		t.Fatalf("routes %q", got)
	}
	// Names marked, and the kernel: a full pass reads the names.
	r.alloc(t, "192.168.1.3", "c3")
	r.d.p.marks.kernelDirty("test")
	if _, full := r.step(); !full {
		t.Fatal("not a full pass")
	}
	if got := r.routes(); !slices.Contains(got, "192.168.1.3/32") {
		t.Fatalf("a full pass with names marked did not read them: %q", got)
	}
	// The CNI configuration narrowed.
	r.write(t, filepath.Join(r.cniDir, "00-default.conflist"), strings.Replace(seedConf, `"rangeEnd": "192.168.1.254"`, `"rangeEnd": "192.168.1.100"`, 1))
	r.d.p.marks.file(r.cniDir, "00-default.conflist")
	r.step()
	if got := r.routes(); slices.Contains(got, "192.168.1.200/32") {
		t.Fatalf("the CNI configuration was not read again: %q", got)
	}
	// A network that appears in the cache, the cache directory marked
	// whole.
	r.write(t, filepath.Join(r.cacheDir, "results", "nadnet-c9-eth0"), nadnetEntry)
	nad := filepath.Join(filepath.Dir(r.stateDir), "nadnet")
	if err := os.MkdirAll(nad, 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(t, filepath.Join(nad, "192.168.3.1"), "c9\r\neth0")
	r.d.p.marks.file(filepath.Join(r.cacheDir, "results"), "")
	r.step()
	if got := r.routes(); !slices.Contains(got, "192.168.3.1/32") {
		t.Fatalf("the caches were not read again: %q", got)
	}
}

// staticEntry is a cache entry of a static-IPAM macvlan network named
// "astatic", which sorts before "default" and keeps no state directory.
func staticEntry(addr string) string {
	conf := `{"cniVersion": "1.0.0", "name": "astatic", "plugins": [{"type": "macvlan", "master": "eno1", "ipam": {"type": "static", "addresses": [{"address": "` + addr + `/16"}]}}]}`
	return fmt.Sprintf(`{"kind":"cniCacheV1","containerId":"s1","config":%q,"ifName":"eth0","networkName":"astatic","netns":"/proc/self/ns/net","result":{"cniVersion":"1.0.0","ips":[{"address":"%s/16"}]}}`,
		b64(conf), addr)
}

// TestStaticBeforeHostLocal: a network that keeps no state directory
// (static IPAM, known from the cache) does not stop the pass from reading
// the state directories of the networks after it.
func TestStaticBeforeHostLocal(t *testing.T) {
	r := newRig(t)
	r.write(t, filepath.Join(r.cacheDir, "results", "astatic-s1-eth0"), staticEntry("192.168.7.7"))
	r.alloc(t, "192.168.1.2", "c1")
	r.settle(t)
	if got := r.routes(); !slices.Equal(got, []string{"192.168.1.2/32", "192.168.7.7/32"}) {
		t.Fatalf("routes %q, want the static pod's and default's", got)
	}
}

// TestFailedPassSaysAndRereads: a pass whose changes fail says so and asks
// the next pass to read the kernel again.
func TestFailedPassSaysAndRereads(t *testing.T) {
	r := newRig(t)
	r.alloc(t, "192.168.1.2", "c1")
	r.k.fail[reconcile.AddRoute] = errors.New("no route for you")
	if ok, _ := r.step(); ok {
		t.Fatal("a failed pass is ok")
	}
	if !strings.Contains(r.log.String(), "some changes failed; will retry") {
		t.Errorf("not said:\n%s", r.log)
	}
	if m := r.d.p.marks.take(); !m.kernel || m.why != "links changed" && m.why != "failed changes" {
		t.Errorf("the next pass: %+v", m)
	}
	// An update pass that fails says so too.
	delete(r.k.fail, reconcile.AddRoute)
	r.settle(t)
	r.k.fail[reconcile.AddRoute] = errors.New("no route for you")
	r.alloc(t, "192.168.1.3", "c3")
	before := strings.Count(r.log.String(), "some changes failed; will retry")
	if ok, full := r.step(); ok || full {
		t.Fatalf("a failed update pass: ok %v, full %v", ok, full)
	}
	if strings.Count(r.log.String(), "some changes failed; will retry") != before+1 {
		t.Errorf("the failed update pass is not said")
	}
}

// TestOwnDeletionsExpected: the route deletions a pass makes are expected
// as echoes; nothing else is.
func TestOwnDeletionsExpected(t *testing.T) {
	r := newRig(t)
	r.alloc(t, "192.168.1.2", "c1")
	r.settle(t)
	if len(r.d.p.marks.expectDel) != 0 {
		t.Fatalf("additions expected as deletions: %v", r.d.p.marks.expectDel)
	}
	if err := os.Remove(filepath.Join(r.stateDir, "192.168.1.2")); err != nil {
		t.Fatal(err)
	}
	r.d.p.marks.file(r.stateDir, "192.168.1.2")
	r.step()
	p := netip.MustParsePrefix("192.168.1.2/32")
	r.d.p.marks.kernelEvent(netlinkx.Event{Kind: netlinkx.OwnRouteDeleted, Dst: p})
	if r.d.p.marks.take().kernel {
		t.Error("the echo of our own deletion marked the kernel")
	}
}

// TestDefaultRouteMaster: a network without a master uses the NIC of the
// default route, whose events then matter.
func TestDefaultRouteMaster(t *testing.T) {
	r := newRig(t)
	r.write(t, filepath.Join(r.cniDir, "00-default.conflist"), strings.Replace(seedConf, `"master": "eno1",`, "", 1))
	def := netip.MustParsePrefix("0.0.0.0/0")
	r.k.routes[def] = reconcile.Route{Dst: def, Dev: "eno1", Protocol: 2}
	r.alloc(t, "192.168.1.2", "c1")
	r.settle(t)
	if !r.d.p.marks.links["eno1"] {
		t.Errorf("links of interest %v", r.d.p.marks.links)
	}
	if got := r.routes(); !slices.Equal(got, []string{"192.168.1.2/32"}) {
		t.Errorf("routes %q", got)
	}
}

// TestWatchFails: a directory that cannot be watched is said, and the
// daemon goes on.
func TestWatchFails(t *testing.T) {
	r := newRig(t)
	r.d.p.watch = func([]string) error { return errors.New("no inotify for you") }
	r.alloc(t, "192.168.1.2", "c1")
	r.settle(t)
	if !strings.Contains(r.log.String(), "cannot watch a directory; relying on the resync timer for it") {
		t.Errorf("not said:\n%s", r.log)
	}
	if got := r.routes(); !slices.Equal(got, []string{"192.168.1.2/32"}) {
		t.Errorf("routes %q", got)
	}
}

// TestManyChangesLogged: past maxLoggedOps changes in one pass, one line
// says how many more there were.
func TestManyChangesLogged(t *testing.T) {
	r := newRig(t)
	r.write(t, filepath.Join(r.cniDir, "00-default.conflist"), strings.Replace(seedConf, `"rangeEnd": "192.168.1.254"`, `"rangeEnd": "192.168.9.254"`, 1))
	n := 0
	for a := netip.MustParseAddr("192.168.1.2"); n < maxLoggedOps+5; a = a.Next() {
		r.write(t, filepath.Join(r.stateDir, a.String()), fmt.Sprintf("c%d\r\neth0", n))
		n++
	}
	r.step()
	log := r.log.String()
	// The shim, its configuration... and the routes: the pass made
	// maxLoggedOps+5 routes and a few other changes.
	if c := strings.Count(log, "dev eno1.host added for container"); c >= maxLoggedOps+5 || c < maxLoggedOps-10 {
		t.Errorf("%d routes logged one by one", c)
	}
	if !strings.Contains(log, "more changes of the same kinds, not listed one by one") {
		t.Errorf("the rest is not counted")
	}
	if strings.Count(log, "more changes of the same kinds") != 1 {
		t.Errorf("said more than once")
	}
}

// TestCarrierBackTwoNetworks: a shim whose carrier came back is found
// whatever the network before it in the list.
func TestCarrierBackTwoNetworks(t *testing.T) {
	r := newRig(t)
	nets := []reconcile.Network{{Name: "a", Shim: "gone.host"}, {Name: "b", Shim: "eno1.host"}}
	down := &reconcile.Snapshot{Links: []reconcile.Link{{Index: 7, Name: "eno1.host"}}}
	up := &reconcile.Snapshot{Links: []reconcile.Link{{Index: 7, Name: "eno1.host", LowerUp: true}}}
	r.d.p.carrierBack(nets, down)
	if back := r.d.p.carrierBack(nets, up); !back["eno1.host"] {
		t.Errorf("carrier back: %v", back)
	}
}

// b64 is s in base64, as libcni keeps a configuration in its cache.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestLoopDetails: a reload that leaves the guard as it was does not say
// it again, and one that changes it does; the configuration in use is
// recorded for flatnet check, and a record that fails is said; the
// watchdog's pings make no pass; a stop with on_stop "keep" changes
// nothing, with "teardown" it removes flatnet's routes and shims.
func TestLoopDetails(t *testing.T) {
	for _, onStop := range []string{"keep", "teardown"} {
		t.Run(onStop, func(t *testing.T) {
			r := newRig(t)
			r.alloc(t, "192.168.1.2", "c1")
			path := filepath.Join(t.TempDir(), "flatnet.toml")
			conf := fmt.Sprintf("cni_conf_dir = %q\nstate_root = %q\ncni_cache_dirs = [%q]\nlan_guard = \"off\"\non_stop = %q\n", r.cniDir, filepath.Dir(r.stateDir), r.cacheDir, onStop)
			r.write(t, path, conf)
			r.d.opts.ConfigPath, r.d.opts.ConfigRequired = path, true
			r.d.p.cfg.OnStop = onStop
			// RUNTIME_DIRECTORY that cannot be written: said, not fatal.
			t.Setenv("RUNTIME_DIRECTORY", filepath.Join(t.TempDir(), "missing", "dir"))
			notify := filepath.Join(t.TempDir(), "notify")
			pings := listenPings(t, notify)
			t.Setenv("NOTIFY_SOCKET", notify)
			t.Setenv("WATCHDOG_USEC", "2000")
			sigs := make(chan os.Signal, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.d.loop(ctx, r.clk, sigs, r.k) }()
			waitState(t, "routed", func() error {
				if got := r.routes(); len(got) != 1 {
					return fmt.Errorf("routes %q", got)
				}
				return nil
			})
			passes := func() int { return strings.Count(r.log.String(), "msg=reconciled") }
			before := passes()
			waitState(t, "ten watchdog pings", func() error {
				if n := pings(); n < 10 {
					return fmt.Errorf("%d pings", n)
				}
				return nil
			})
			sigs <- syscall.SIGHUP
			waitState(t, "the reload", func() error {
				if !strings.Contains(r.log.String(), "configuration reloaded") {
					return errors.New("not yet")
				}
				return nil
			})
			r.write(t, path, strings.Replace(conf, `lan_guard = "off"`, `lan_guard = "address"`, 1))
			sigs <- syscall.SIGHUP
			waitState(t, "the second reload", func() error {
				if strings.Count(r.log.String(), "configuration reloaded") < 2 {
					return errors.New("not yet")
				}
				return nil
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			log := r.log.String()
			if n := passes() - before; n > 2 {
				t.Errorf("%d passes beside the two reloads: the watchdog's pings made passes", n)
			}
			if c := strings.Count(log, "LAN guard off"); c != 1 {
				t.Errorf("LAN guard off said %d times, want once (a reload that changes nothing says nothing)", c)
			}
			if !strings.Contains(log, "LAN guard: the shims send their ARP requests from") {
				t.Errorf("the changed guard is not said")
			}
			if strings.Count(log, "cannot record the configuration in use") != 3 {
				t.Errorf("the failed record is not said at the start and each reload:\n%s", log)
			}
			tore := onStop == "teardown"
			if got := r.routes(); (len(got) == 0) != tore {
				t.Errorf("on_stop %s: routes after the stop %q", onStop, got)
			}
		})
	}
}

// listenPings counts the WATCHDOG=1 datagrams sent to a notify socket at
// path.
func listenPings(t *testing.T, path string) func() int {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var mu sync.Mutex
	n := 0
	go func() {
		buf := make([]byte, 512)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			if strings.Contains(string(buf[:k]), "WATCHDOG=1") {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}
	}()
	return func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// unmatchedDirs makes the unexplained directories named, the second
// holding one allocation, and counts them all at t0.
func unmatchedDirs(t *testing.T, t0 time.Time, names ...string) (*unmatched, []string) {
	t.Helper()
	root := t.TempDir()
	var dirs []string
	for _, n := range names {
		d := filepath.Join(root, n)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	if err := os.WriteFile(filepath.Join(dirs[1], "10.0.0.2"), []byte("c1\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := newUnmatched()
	u.reset(dirs, t0)
	u.countAll(t0)
	return u, dirs
}

// TestUnmatchedDirs: the unexplained directories, counted one at a time:
// one that holds allocations for unmatchedGrace is a finding whatever the
// empty ones before it; an explained one, or one that is no directory,
// is forgotten; watched are those that hold allocations or are new.
func TestUnmatchedDirs(t *testing.T) {
	t0 := time.Unix(1000, 0)
	u, dirs := unmatchedDirs(t, t0, "a", "b", "c")
	a, b, c := dirs[0], dirs[1], dirs[2]
	if len(u.findings) != 0 || !u.recheckAt.Equal(t0.Add(unmatchedGrace)) {
		t.Fatalf("within the grace: findings %v, recheck %v", u.findings, u.recheckAt)
	}
	if got := u.watched(t0); !slices.Equal(got, []string{a, b, c}) {
		t.Errorf("watched while new: %q", got)
	}
	t1 := t0.Add(unmatchedGrace)
	u.countAll(t1)
	if len(u.findings) != 1 || u.findings[0].Dir != b {
		t.Fatalf("after the grace: findings %v", u.findings)
	}
	if got := u.watched(t1); !slices.Equal(got, []string{b}) {
		t.Errorf("watched after the grace: %q, want the one holding allocations", got)
	}
	// a is explained now, c is no longer a directory: both forgotten.
	u.entry(a, true, t1)
	if err := os.Remove(c); err != nil {
		t.Fatal(err)
	}
	u.entry(c, false, t1)
	if u.has(a) || u.has(c) || !u.has(b) {
		t.Errorf("dirs %v", u.dirs)
	}
	// b's allocation goes: recounted, no finding.
	if err := os.Remove(filepath.Join(b, "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	u.recount(b, t1)
	if len(u.findings) != 0 {
		t.Errorf("an empty directory is a finding: %v", u.findings)
	}
	u.recount(filepath.Join(filepath.Dir(a), "unknown"), t1) // not one of them: nothing
}

// TestGuardFollowsARPIgnoreAll: under lan_guard "auto" with both guards
// at hand, the shim guard runs while all.arp_ignore is 0; once it is set,
// a full pass takes the egress filter, which lets the shim's requests
// teach pods the node's MAC, and says why; once it is 0 again, the shim
// guard is back, said once.
func TestGuardFollowsARPIgnoreAll(t *testing.T) {
	r := newRig(t)
	r.d.p.cfg.LANGuard = "auto"
	r.d.guards = reconcile.GuardKernel{}
	r.d.chooseGuard(true)
	r.alloc(t, "192.168.1.2", "c1")
	r.step()
	ops, _ := r.k.took()
	if !slices.ContainsFunc(ops, func(s string) bool { return strings.Contains(s, "table arp flatnet") }) {
		t.Fatalf("the first pass under the shim guard: ops %q, no ARP rule", ops)
	}
	r.step()
	r.k.took()

	set := func(on bool) []string {
		r.k.mu.Lock()
		r.k.arpIgnoreAll = on
		r.k.mu.Unlock()
		r.d.p.marks.kernelDirty("test")
		r.step()
		ops, _ := r.k.took()
		return ops
	}
	const warn = "level=WARN msg=\"LAN guard: net.ipv4.conf.all.arp_ignore is set"
	ops = set(true)
	if !slices.ContainsFunc(ops, func(s string) bool { return strings.Contains(s, `hook egress device "eno1"`) }) {
		t.Errorf("all.arp_ignore set: ops %q, no egress filter on eno1", ops)
	}
	if c := strings.Count(r.log.String(), warn); c != 1 {
		t.Errorf("the egress filter in place of the shim guard said %d times, want once:\n%s", c, r.log.String())
	}
	set(true)
	if c := strings.Count(r.log.String(), warn); c != 1 {
		t.Errorf("a second pass with all.arp_ignore set said it again (%d times)", c)
	}
	ops = set(false)
	if !slices.ContainsFunc(ops, func(s string) bool { return strings.Contains(s, "table arp flatnet") }) {
		t.Errorf("all.arp_ignore 0 again: ops %q, no ARP rule", ops)
	}
	if !strings.Contains(r.log.String(), `msg="LAN guard: the shim guard again" lan_guard=shim`) {
		t.Errorf("the shim guard's return is not said:\n%s", r.log.String())
	}
}
