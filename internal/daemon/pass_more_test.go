package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/view"
)

// dmWarnings are the lines of log at WARN or ERROR.
func dmWarnings(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return out
}

// TestHealthyPassesQuiet: on a healthy node (a readable CNI directory,
// state root and runtime directory) the passes log no warning or error,
// and the view's memory reaches the runtime directory; the operator's
// journal must hold only what needs them. A CNI directory that cannot be
// read is said, once per burst, and an unwritable runtime directory too.
func TestHealthyPassesQuiet(t *testing.T) {
	runtimeDir := t.TempDir()
	t.Setenv("RUNTIME_DIRECTORY", runtimeDir)
	r := newRig(t)
	r.alloc(t, "192.168.1.2", "c1")
	r.settle(t)
	r.d.p.marks.all(r.d.p.watched, "test")
	r.step()
	if w := dmWarnings(r.log.String()); len(w) != 0 {
		t.Errorf("a healthy node's passes warn:\n%s", strings.Join(w, "\n"))
	}
	if _, err := os.Stat(filepath.Join(runtimeDir, view.MemoryFile)); err != nil {
		t.Errorf("the memory is not recorded: %v", err)
	}

	// The CNI directory turns into a file: unreadable, said.
	if err := os.RemoveAll(r.cniDir); err != nil {
		t.Fatal(err)
	}
	r.write(t, r.cniDir, "not a directory")
	r.d.p.marks.file(r.cniDir, "")
	r.step()
	if c := strings.Count(r.log.String(), "cannot read the CNI config directory; keeping the networks found before"); c != 1 {
		t.Errorf("an unreadable CNI directory said %d times, want once:\n%s", c, r.log)
	}

	// A runtime directory that cannot be written: said, at each pass
	// whose memory is not recorded yet.
	t.Setenv("RUNTIME_DIRECTORY", filepath.Join(t.TempDir(), "missing", "dir"))
	r2 := newRig(t)
	r2.alloc(t, "192.168.1.2", "c1")
	r2.settle(t)
	if c := strings.Count(r2.log.String(), "cannot record the networks kept from before for flatnet status"); c != 2 {
		t.Errorf("an unwritable runtime directory said %d times in two passes, want 2:\n%s", c, r2.log)
	}
}

// TestFilterChangeSaid: a change of flatnet's nftables table by another
// process is said with who made it, and only then.
func TestFilterChangeSaid(t *testing.T) {
	r := newRig(t)
	r.settle(t)
	if strings.Contains(r.log.String(), "nftables table was changed") {
		t.Fatalf("a change of the table said with none made:\n%s", r.log)
	}
	r.d.p.marks.kernelEvent(netlinkx.Event{Kind: netlinkx.FilterChanged, By: "nft (pid 42)"})
	if _, full := r.step(); !full {
		t.Errorf("a changed table made no full pass")
	}
	if !strings.Contains(r.log.String(), "flatnet's nftables table was changed by nft (pid 42); looking again") {
		t.Errorf("the change is not said:\n%s", r.log)
	}
}

// dmGCKernel is a fake kernel that notes the collector's GOGC each time
// the pass reads it.
type dmGCKernel struct {
	*fakeKernel
	gcPercents []int
}

func (k *dmGCKernel) Snapshot() (*reconcile.Snapshot, error) {
	old := debug.SetGCPercent(-1)
	debug.SetGCPercent(old)
	k.gcPercents = append(k.gcPercents, old)
	return k.fakeKernel.Snapshot()
}

// TestFirstPassGC: the first pass, which builds the whole state at once,
// runs with the collector at startGCPercent and gives the setting back
// after; later full passes run with the process's own.
func TestFirstPassGC(t *testing.T) {
	r := newRig(t)
	k := &dmGCKernel{fakeKernel: r.k}
	r.d.p.k = k
	own := debug.SetGCPercent(-1)
	debug.SetGCPercent(own)
	r.alloc(t, "192.168.1.2", "c1")
	r.step()
	if after := debug.SetGCPercent(own); after != own {
		t.Errorf("GOGC after the first pass %d, want %d back", after, own)
	}
	r.step()
	if want := []int{startGCPercent, own}; !slices.Equal(k.gcPercents, want) {
		t.Errorf("GOGC seen by the first and second passes %v, want %v", k.gcPercents, want)
	}
}

// TestBigPass: a full pass that makes maxLoggedOps changes or more logs
// the first maxLoggedOps one by one and counts the rest in one line, and
// hands the heap back to the system; a smaller one does neither. Either
// ends with one collection.
func TestBigPass(t *testing.T) {
	for _, tt := range []struct {
		n    int  // allocations found by the pass
		more int  // the changes counted, not listed
		free bool // the heap handed back
	}{
		{maxLoggedOps - 1, 0, false},
		{maxLoggedOps, 0, true},
		{maxLoggedOps + 3, 3, true},
	} {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			r := newRig(t)
			r.write(t, filepath.Join(r.cniDir, "00-default.conflist"), strings.Replace(seedConf, `"rangeEnd": "192.168.1.254"`, `"rangeEnd": "192.168.9.254"`, 1))
			r.settle(t)
			a := netip.MustParseAddr("192.168.1.2")
			for i := range tt.n {
				r.write(t, filepath.Join(r.stateDir, a.String()), fmt.Sprintf("c%d\r\neth0", i))
				a = a.Next()
			}
			r.d.p.marks.file(r.stateDir, "") // the whole directory, as after an overflow
			before := r.log.String()
			var collected []bool
			defer func(c func(bool)) { collect = c }(collect)
			collect = func(handBack bool) { collected = append(collected, handBack) }
			if _, full := r.step(); !full {
				t.Fatal("not a full pass")
			}
			if ops, _ := r.k.took(); len(ops) != tt.n {
				t.Fatalf("the pass made %d changes, want %d", len(ops), tt.n)
			}
			log := strings.TrimPrefix(r.log.String(), before)
			if c, want := strings.Count(log, "dev eno1.host added for container"), min(tt.n, maxLoggedOps); c != want {
				t.Errorf("%d changes listed, want %d", c, want)
			}
			more := fmt.Sprintf("and %d more changes of the same kinds, not listed one by one", tt.more)
			if got := strings.Count(log, "more changes of the same kinds"); tt.more == 0 && got != 0 || tt.more > 0 && (got != 1 || !strings.Contains(log, more)) {
				t.Errorf("the rest counted %d times; want %q", got, more)
			}
			if want := []bool{tt.free}; !slices.Equal(collected, want) {
				t.Errorf("collections (heap handed back) %v, want %v", collected, want)
			}
		})
	}
}

// TestNextPassWhy: the pass after one that failed says so in its debug
// line ("failed changes"), the one after a pass that changed links says
// that; the operator reads why a full pass ran.
func TestNextPassWhy(t *testing.T) {
	for _, tt := range []struct {
		fail bool
		want string
	}{
		{false, "links changed"},
		{true, "failed changes"},
	} {
		r := newRig(t)
		r.alloc(t, "192.168.1.2", "c1")
		if tt.fail {
			r.k.fail[reconcile.AddRoute] = errors.New("no route for you")
		}
		if ok, _ := r.step(); ok == tt.fail {
			t.Fatalf("fail %v: the first pass ok %v", tt.fail, ok)
		}
		if m := r.d.p.marks.take(); !m.kernel || m.why != tt.want {
			t.Errorf("fail %v: the next pass: kernel %v, why %q; want %q", tt.fail, m.kernel, m.why, tt.want)
		}
	}
}

// TestDefaultRouteDevEvents: the events of the default route's device
// wake a pass when some network takes its master from the default route
// (a CNI network or a [[network]] table without a master), which the
// device may no longer be; else they are a link flatnet has no interest
// in. The default route here goes through a macvlan on eno1, so that the
// networks' master (eno1, its lower device) is not that device. The
// networks' state directories are watched.
func TestDefaultRouteDevEvents(t *testing.T) {
	noMaster := strings.Replace(seedConf, `"master": "eno1",`, "", 1)
	for _, tt := range []struct {
		name   string
		conf   string
		tables []config.Network
		wake   bool
	}{
		{"a CNI network without master", noMaster, nil, true},
		{"a table without master", seedConf, []config.Network{{Name: "default"}}, true},
		{"every network has a master", seedConf, []config.Network{{Name: "default", Master: "eno1"}}, false},
		{"no table, the CNI network has a master", seedConf, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.write(t, filepath.Join(r.cniDir, "00-default.conflist"), tt.conf)
			r.d.p.cfg.Networks = tt.tables
			r.d.p.view.SetConfig(r.d.p.cfg)
			r.k.links = append(r.k.links, reconcile.Link{Index: 3, Name: "mv0", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: true, LowerUp: true, MTU: 1500})
			def := netip.MustParsePrefix("0.0.0.0/0")
			r.k.routes[def] = reconcile.Route{Dst: def, Dev: "mv0", Protocol: 2}
			r.alloc(t, "192.168.1.2", "c1")
			r.settle(t)
			if got := r.routes(); !slices.Equal(got, []string{"192.168.1.2/32"}) {
				t.Fatalf("routes %q", got)
			}
			if !slices.Contains(r.d.p.watched, r.stateDir) || slices.Contains(r.d.p.watched, ".") {
				t.Errorf("watched %q: want the state directory", r.d.p.watched)
			}
			r.d.p.marks.kernelEvent(netlinkx.Event{Kind: netlinkx.LinkChanged, Link: "mv0"})
			if got := r.d.p.marks.take().kernel; got != tt.wake {
				t.Errorf("an event of the default route's device marks the kernel: %v, want %v", got, tt.wake)
			}
		})
	}
}

// TestTableStateDirExplained: a [[network]] table whose state_dir is a
// directory of the state root not named like any network explains that
// directory: its pods are routed and never reported as allocations no
// network explains.
func TestTableStateDirExplained(t *testing.T) {
	r := newRig(t)
	custom := filepath.Join(filepath.Dir(r.stateDir), "custom")
	if err := os.MkdirAll(custom, 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(t, filepath.Join(custom, "192.168.1.9"), "c9\r\neth0")
	r.d.p.cfg.Networks = []config.Network{{Name: "default", StateDir: custom}}
	r.d.p.view.SetConfig(r.d.p.cfg)
	r.settle(t)
	if got := r.routes(); !slices.Equal(got, []string{"192.168.1.9/32"}) {
		t.Fatalf("routes %q", got)
	}
	r.clk.advance(unmatchedGrace)
	r.d.p.marks.all(r.d.p.watched, "test")
	r.step()
	if r.d.p.unm.has(custom) || strings.Contains(r.log.String(), "no known network explains") {
		t.Errorf("the table's state directory is taken for unexplained:\n%s", r.log)
	}
}

// TestOwnAdditionsNotEchoes: the routes a pass adds, one alone or a run
// of them at once, are not taken for deletions to come: when someone else
// deletes one, the next pass puts it back.
func TestOwnAdditionsNotEchoes(t *testing.T) {
	for _, ips := range [][]string{{"192.168.1.3"}, {"192.168.1.3", "192.168.1.4"}} {
		r := newRig(t)
		r.settle(t)
		for _, ip := range ips {
			r.alloc(t, ip, "c-"+ip)
		}
		if ok, full := r.step(); !ok || full {
			t.Fatalf("%v: the allocations: ok %v, full %v", ips, ok, full)
		}
		if got := r.routes(); len(got) != len(ips) {
			t.Fatalf("%v: routes %q", ips, got)
		}
		r.d.p.marks.kernelEvent(netlinkx.Event{Kind: netlinkx.OwnRouteDeleted, Dst: netip.MustParsePrefix(ips[0] + "/32")})
		if !r.d.p.marks.take().kernel {
			t.Errorf("%v: someone else's deletion of a route just added is taken for an echo", ips)
		}
	}
}

// TestTeardownLogs: Teardown logs each removal when given a log, and
// runs without one.
func TestTeardownLogs(t *testing.T) {
	for _, withLog := range []bool{true, false} {
		r := newRig(t)
		r.alloc(t, "192.168.1.2", "c1")
		r.settle(t)
		before := r.log.String()
		log := r.d.log
		if !withLog {
			log = nil
		}
		done, err := Teardown(r.k, log, "test")
		if err != nil || len(done) == 0 {
			t.Fatalf("log %v: Teardown: %v, done %v", withLog, err, done)
		}
		said := strings.TrimPrefix(r.log.String(), before)
		if got := strings.Contains(said, "shim eno1.host removed") && strings.Contains(said, "route 192.168.1.2/32 dev eno1.host removed"); got != withLog {
			t.Errorf("log %v: removals logged %v:\n%s", withLog, got, said)
		}
		if got := r.routes(); len(got) != 0 {
			t.Errorf("log %v: routes after Teardown %q", withLog, got)
		}
	}
}

// TestLoopRecheckAndARPIgnore: the recheck timer with no shim held counts
// the unexplained directories again in an update pass, without reading
// the kernel; the watchdog's tick notices a change of all.arp_ignore,
// which makes no event, and reads the kernel again.
func TestLoopRecheckAndARPIgnore(t *testing.T) {
	r := newRig(t)
	notify := filepath.Join(t.TempDir(), "notify")
	listenPings(t, notify)
	t.Setenv("NOTIFY_SOCKET", notify)
	t.Setenv("WATCHDOG_USEC", "2000")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.d.loop(ctx, r.clk, make(chan os.Signal), r.k) }()
	passes := func() int { return strings.Count(r.log.String(), "msg=reconciled") }
	waitState(t, "the first pass", func() error {
		if passes() < 1 {
			return errors.New("not yet")
		}
		return nil
	})
	r.alloc(t, "192.168.1.2", "c1") // the pass the new shim asks for
	waitState(t, "the pass after the shim was made", func() error {
		if passes() < 2 {
			return errors.New("not yet")
		}
		return nil
	})
	recheck := r.clk.timer(t, 2)
	n := passes()
	recheck.fire()
	waitState(t, "the recheck's pass", func() error {
		if passes() == n {
			return errors.New("not yet")
		}
		return nil
	})
	if log := r.log.String(); strings.Contains(log, "a shim held back may be made again") || !strings.Contains(log[strings.LastIndex(log, "msg=reconciled"):], "full=false") {
		t.Errorf("a recheck with no shim held read the kernel:\n%s", log)
	}
	r.k.mu.Lock()
	r.k.arpIgnoreAll = true
	r.k.mu.Unlock()
	waitState(t, "the pass for all.arp_ignore", func() error {
		if !strings.Contains(r.log.String(), `why="net.ipv4.conf.all.arp_ignore changed"`) {
			return errors.New("not yet")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("loop: %v", err)
	}
}

// TestUnmatchedGraceApart: each unexplained directory has its own grace:
// one still within it does not keep a later one, whose grace is over,
// from being reported, and the recheck is armed for the end of the
// first one's.
func TestUnmatchedGraceApart(t *testing.T) {
	t0 := time.Unix(1000, 0)
	u, dirs := unmatchedDirs(t, t0, "a", "b")
	a, b := dirs[0], dirs[1]
	// a's first allocation comes half a grace later.
	t1 := t0.Add(unmatchedGrace / 2)
	if err := os.WriteFile(filepath.Join(a, "10.0.0.3"), []byte("c2\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	u.recount(a, t1)
	t2 := t0.Add(unmatchedGrace)
	u.recount(a, t2)
	if len(u.findings) != 1 || u.findings[0].Dir != b {
		t.Errorf("b's grace over, a's not: findings %v, want b's", u.findings)
	}
	if want := t1.Add(unmatchedGrace); !u.recheckAt.Equal(want) {
		t.Errorf("recheck at %v, want %v (the end of a's grace)", u.recheckAt, want)
	}
}

// dmDropShim removes the shim from the fake kernel, as another tool or
// a master that goes would, and marks the kernel.
func (r *rig) dmDropShim() {
	r.k.mu.Lock()
	r.k.links = slices.DeleteFunc(r.k.links, func(l reconcile.Link) bool { return l.Name == "eno1.host" })
	r.k.mu.Unlock()
	r.d.p.marks.kernelDirty("test")
}

// TestHeldShimRecheck: a shim removed again and again is held; the
// recheck timer is armed for the moment it may be made again, so that
// the loop wakes then without waiting for the resync.
func TestHeldShimRecheck(t *testing.T) {
	r := newRig(t)
	resync, retry, recheck := r.clk.NewTimer(), r.clk.NewTimer(), r.clk.NewTimer().(*fakeTimer)
	r.alloc(t, "192.168.1.2", "c1")
	for i := 0; r.d.p.node.RetryAt().IsZero(); i++ {
		if i > 10 {
			t.Fatalf("the shim is not held after %d removals:\n%s", i, r.log)
		}
		r.d.step(retry, resync, recheck)
		r.dmDropShim()
		r.d.step(retry, resync, recheck)
	}
	want := r.d.p.node.RetryAt().Sub(r.clk.Now())
	if armed, _ := recheck.state(); want <= 0 || armed != want {
		t.Errorf("recheck armed %v, want %v (when the held shim may be made again)", armed, want)
	}
}

// dmJunkEntry writes a cache entry libcni could not have written into
// the results directory of cacheDir.
func dmJunkEntry(t *testing.T, r *rig, cacheDir, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(cacheDir, "results"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(t, filepath.Join(cacheDir, "results", name), `{"kind":"cniCacheV1"}`)
}

// TestFreshFindingsLogged: the findings new in a pass are logged with
// their network, whatever findings come before them: one statedir said
// already (a state directory that cannot be read), or more of one cause
// than the journal takes in a window.
func TestFreshFindingsLogged(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prepare func(t *testing.T, r *rig)
		rejects int // reject lines logged, each with its network
	}{
		{"after a state directory that cannot be read", func(t *testing.T, r *rig) {
			if err := os.RemoveAll(r.stateDir); err != nil {
				t.Fatal(err)
			}
			r.write(t, r.stateDir, "not a directory")
		}, 0},
		{"after more rejects than a burst", func(t *testing.T, r *rig) {
			for i := range logBurst + 2 {
				r.write(t, filepath.Join(r.stateDir, fmt.Sprintf("192.168.5.%d", i+1)), fmt.Sprintf("r%d\r\neth0", i))
			}
		}, logBurst},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			tt.prepare(t, r)
			// Another cache directory, whose entry sorts after those of
			// the first.
			other := filepath.Join(filepath.Dir(r.cacheDir), "zcache")
			r.d.p.cfg.CNICacheDirs = append(r.d.p.cfg.CNICacheDirs, other)
			r.d.p.view.SetConfig(r.d.p.cfg)
			dmJunkEntry(t, r, other, "junk-c1-eth0")
			r.step()
			log := r.log.String()
			if !strings.Contains(log, filepath.Join(other, "results", "junk-c1-eth0")) {
				t.Errorf("the junk entry's finding is not logged:\n%s", log)
			}
			if c := strings.Count(log, "network=default ip=192.168.5."); c != tt.rejects {
				t.Errorf("%d rejected addresses logged with their network, want %d:\n%s", c, tt.rejects, log)
			}
		})
	}
}

// TestBadEntriesLimited: the unusable entries of one state directory are
// one cause for the journal: a burst of them is logged, each with its
// file, and the note that there are more than are listed, about the
// directory, is logged too.
func TestBadEntriesLimited(t *testing.T) {
	r := newRig(t)
	a := netip.MustParseAddr("192.168.1.2")
	for range 101 {
		if err := os.Mkdir(filepath.Join(r.stateDir, a.String()), 0o755); err != nil {
			t.Fatal(err)
		}
		a = a.Next()
	}
	r.step()
	log := r.log.String()
	var ignoring, more []string
	for _, l := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(l, "msg=\"ignoring "):
			ignoring = append(ignoring, l)
		case strings.Contains(l, "unusable entries in"):
			more = append(more, l)
		}
	}
	if len(ignoring) != logBurst {
		t.Errorf("%d unusable entries logged, want %d:\n%s", len(ignoring), logBurst, log)
	}
	for _, l := range ignoring {
		if !strings.Contains(l, "file=192.168.1.") {
			t.Errorf("an unusable entry logged without its file: %s", l)
		}
	}
	if len(more) != 1 || strings.Contains(more[0], "file=") {
		t.Errorf("the directory's note: %q, want one line without a file", more)
	}
}
