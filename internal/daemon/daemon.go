// Package daemon is `flatnet run`: it wires the wake-up sources (fsnotify
// on the state and CNI config directories, netlink notifications, SIGHUP,
// the resync timer) to the one reconciler, which reads the truth, asks
// package reconcile what to do, does it and reports it to the log and to
// systemd.
//
// Events carry no state: each one only marks what must be read again and
// wakes the loop, and a burst of them costs a few reconciles, not one each.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/sd"
	"github.com/flatnet/flatnet/internal/statedir"
)

// Options configures a [Daemon].
type Options struct {
	Config         config.Config
	ConfigPath     string // what SIGHUP reloads
	ConfigRequired bool   // the path was given explicitly: it must exist
	Log            *slog.Logger
	Level          *slog.LevelVar
	Notifier       *sd.Notifier
}

// maxBadListed is how many unusable state-dir entries are logged by name
// per directory; beyond it only their number is, so that a directory full
// of junk costs bounded memory and log.
const maxBadListed = 100

// maxLoggedOps is how many changes one pass logs one by one; past it a
// line counts the rest. journald drops a burst beyond 10,000 lines in 30 s
// anyway, and a start-up with 65,000 pods must not spend seconds logging.
const maxLoggedOps = 1000

// A full pass follows quick ones once pods have stopped coming for
// fullDelay, and at most maxFullDelay after the first of them.
const (
	fullDelay    = 50 * time.Millisecond
	maxFullDelay = time.Second
)

// Daemon mirrors host-local allocations into routes until stopped.
type Daemon struct {
	opts Options
	cfg  config.Config
	log  *slog.Logger
	k    *netlinkx.Kernel
	w    *statedir.Watcher
	mid  string
	// filterErr is why the kernel cannot filter a master's egress (nil
	// when it can); guard is what lan_guard makes of it.
	filterErr error
	guard     reconcile.Guard

	kick  chan struct{}
	ready bool // READY=1 sent
	// owedSince is when a quick pass first changed something the full
	// pass has not yet looked at; zero when none is owed. fullSoon fires
	// the full pass.
	owedSince time.Time
	fullSoon  *time.Timer

	mu       sync.Mutex // guards the fields events write
	names    map[string]map[string]bool
	fullDirs map[string]bool
	cniDirty bool
	cniDir   string          // the CNI config dir as watched, cleaned
	links    map[string]bool // masters and shims: link events that matter
	// kernelDirty asks for a new kernel snapshot. Without it a pass works
	// from the last snapshot plus the changes it made itself: a pod coming
	// or going then costs one file read and one route op, not a dump of
	// every link and route.
	kernelDirty bool
	// expectDel counts the deletions of our routes we made, whose
	// notifications are only our echo.
	expectDel map[netip.Prefix]int

	// Owned by the reconcile loop.
	snap      *reconcile.Snapshot
	cniByFile map[string][]cni.Network
	cniNets   []cni.Network
	dirs      map[string]*dirCache
	watched   []string
	reused    map[netip.Addr]bool            // this pass: addresses given to another container
	carrier   map[string]shimCarrier         // the shims as the last snapshot showed them
	released  map[netip.Addr]hostlocal.Owner // this pass: addresses released, with their last owner
	reported  map[string]bool
	failures  int
}

// shimCarrier is a shim's ifindex and carrier in a snapshot.
type shimCarrier struct {
	index   int
	lowerUp bool
}

type dirCache struct {
	allocs   map[netip.Addr]hostlocal.Owner
	err      error
	bad      map[string]string
	badExtra int // unusable entries beyond those in bad; only > 0 matters
}

// stoppedTimer is a timer that has not been started.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// New prepares a daemon; Run starts it.
func New(opts Options) *Daemon {
	return &Daemon{
		opts: opts, cfg: opts.Config, log: opts.Log,
		kick:      make(chan struct{}, 1),
		names:     map[string]map[string]bool{},
		fullDirs:  map[string]bool{},
		cniDirty:  true,
		expectDel: map[netip.Prefix]int{},
		fullSoon:  stoppedTimer(),
		dirs:      map[string]*dirCache{},
		cniByFile: map[string][]cni.Network{},
		reported:  map[string]bool{},
	}
}

func (d *Daemon) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// onFile is the watcher's callback.
func (d *Daemon) onFile(dir, name string) {
	if _, err := hostlocal.ParseName(name); errors.Is(err, hostlocal.ErrNotAllocation) && d.isStateDir(dir) {
		// host-local rewrites last_reserved_ip.N on every allocation: the
		// allocation's own event is the one that matters.
		return
	}
	d.mu.Lock()
	switch {
	case dir == d.cniDir:
		d.cniDirty = true
	case name == "":
		d.fullDirs[dir] = true
	default:
		if d.names[dir] == nil {
			d.names[dir] = map[string]bool{}
		}
		d.names[dir][name] = true
	}
	d.mu.Unlock()
	d.wake()
}

// isStateDir reports whether dir is watched as a state dir, not as the CNI
// config dir.
func (d *Daemon) isStateDir(dir string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return dir != d.cniDir
}

// onKernel is the netlink watcher's callback.
func (d *Daemon) onKernel(ev netlinkx.Event) {
	d.mu.Lock()
	switch ev.Kind {
	case netlinkx.LinkChanged:
		if !d.links[ev.Link] && len(d.links) > 0 {
			d.mu.Unlock()
			return // a pod's macvlan passing through on its way to its netns
		}
	case netlinkx.OwnRouteDeleted:
		if n := d.expectDel[ev.Dst]; n > 0 {
			if n == 1 {
				delete(d.expectDel, ev.Dst)
			} else {
				d.expectDel[ev.Dst] = n - 1
			}
			d.mu.Unlock()
			return // our own deletion coming back
		}
	case netlinkx.Lost:
		d.log.Warn("kernel notifications were lost; resyncing")
	}
	d.kernelDirty = true
	d.mu.Unlock()
	d.wake()
}

// markAll asks for everything to be read again.
func (d *Daemon) markAll() {
	d.mu.Lock()
	for dir := range d.dirs {
		d.fullDirs[dir] = true
	}
	d.cniDirty = true
	d.kernelDirty = true
	d.mu.Unlock()
}

// Run runs until ctx is done or SIGTERM/SIGINT, then honours on_stop.
func (d *Daemon) Run(ctx context.Context) error {
	var err error
	if d.k, err = netlinkx.New(); err != nil {
		return err
	}
	defer d.k.Close()
	d.mid = machineID()
	if d.w, err = statedir.NewWatcher(d.onFile); err != nil {
		return fmt.Errorf("starting inotify: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.w.Run(ctx)
	go func() {
		if err := netlinkx.Watch(ctx, d.onKernel); err != nil {
			d.log.Error("kernel notifications unavailable; relying on the resync timer", "err", err)
		}
	}()
	d.filterErr = netlinkx.ProbeFilter()
	if d.filterErr == nil {
		go func() {
			if err := netlinkx.WatchFilter(ctx, d.onKernel); err != nil {
				d.log.Warn("nftables notifications unavailable; a removed egress filter comes back at the next pass", "err", err)
			}
		}()
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	d.log.Info("flatnet starting", "config", cmp.Or(d.cfg.Path, "(defaults)"), "cni_conf_dir", d.cfg.CNIConfDir, "resync_interval", d.cfg.ResyncInterval)
	d.chooseGuard()
	d.reconcile() // sends READY=1 once the kernel is mended, whatever the outcome
	if !d.ready {
		d.opts.Notifier.Ready()
		d.ready = true
	}

	resync := time.NewTicker(d.cfg.ResyncInterval)
	defer resync.Stop()
	var watchdog <-chan time.Time
	if iv := sd.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer d.fullSoon.Stop()
	for {
		select {
		case <-ctx.Done():
			return d.stop()
		case s := <-sigs:
			if s != syscall.SIGHUP {
				return d.stop()
			}
			d.reload(resync)
		case <-d.kick:
		case <-resync.C:
			d.markAll()
		case <-watchdog:
			d.opts.Notifier.Watchdog()
			continue
		case <-retry.C:
			d.markAll()
		case <-d.fullSoon.C:
			// The quick passes' full pass: nothing to mark, it is owed.
		}
		if !d.reconcile() {
			// Something failed: try again soon, backing off to the resync.
			d.failures++
			retry.Reset(min(time.Duration(d.failures)*time.Second, d.cfg.ResyncInterval))
		} else {
			d.failures = 0
		}
	}
}

// reload re-reads the configuration; a bad file changes nothing.
func (d *Daemon) reload(resync *time.Ticker) {
	d.opts.Notifier.Reloading()
	defer d.opts.Notifier.Ready()
	cfg, err := config.Load(d.opts.ConfigPath, d.opts.ConfigRequired)
	if err != nil {
		d.log.Error("configuration not reloaded; the running one stays", "err", err)
		return
	}
	d.cfg = cfg
	d.opts.Level.Set(cfg.LogLevel)
	resync.Reset(cfg.ResyncInterval)
	d.chooseGuard()
	d.markAll()
	d.log.Info("configuration reloaded", "config", cmp.Or(cfg.Path, "(defaults)"))
}

// chooseGuard settles the LAN guard for lan_guard and this kernel, and
// logs it when it changed: once at start, again only on a reload that
// changes it.
func (d *Daemon) chooseGuard() {
	g, why := reconcile.ChooseGuard(d.cfg.LANGuard, d.filterErr == nil)
	if g == d.guard && d.ready {
		return
	}
	d.guard = g
	level, msg := GuardSummary(g, d.cfg.LANGuard, d.filterErr, why)
	d.log.Log(context.Background(), level, msg, "lan_guard", g.String())
}

// GuardSummary says, for the log and flatnet check, what guard g protects
// and what is lost: setting is lan_guard, filterErr why the kernel cannot
// filter (nil when it can), why what ChooseGuard said of it.
func GuardSummary(g reconcile.Guard, setting string, filterErr error, why string) (slog.Level, string) {
	switch g {
	case reconcile.GuardFilter:
		return slog.LevelInfo, "LAN guard: an nftables egress filter on each master drops the shim's own frames (table netdev flatnet), so the LAN never hears a shim, and the shim answers pods' IPv6 neighbour solicitations at once"
	case reconcile.GuardAddress:
		msg := fmt.Sprintf("LAN guard: the shims send their ARP requests from %s (arp_announce 2), so the LAN keeps the NIC's MAC for the node", reconcile.SenderAddr.Addr())
		if setting == "auto" && filterErr != nil {
			msg += fmt.Sprintf("; no egress filter: %v. Lost without it: a pod's first IPv6 packet to the node waits up to 0.8 s for the shim's proxy answer, the shim's IPv6 neighbour messages reach the LAN, and pods with rp_filter 1 or 2 and no route to %s through their macvlan interface answer the node only after they spoke to it", filterErr, reconcile.SenderAddr.Addr())
			return slog.LevelWarn, msg
		}
		return slog.LevelInfo, msg
	}
	msg := "LAN guard off: when the node first reaches a pod, the shim's ARP request tells the LAN the shim's MAC for the node's address, and with rp_filter 1 or 2 the node drops what the LAN then sends it, for seconds"
	if why != "" {
		msg = why + "; " + msg
	}
	return slog.LevelWarn, msg
}

// stop ends the daemon as on_stop says.
func (d *Daemon) stop() error {
	d.opts.Notifier.Stopping()
	if d.cfg.OnStop != "teardown" {
		d.log.Info("stopping; shims and routes stay for the next start (on_stop = keep)")
		return nil
	}
	d.log.Info("stopping; removing flatnet's routes and shims (on_stop = teardown)")
	var shims []string
	if d.snap != nil {
		nets, _ := reconcile.Resolve(d.cfg, d.cniNets, d.snap)
		for _, n := range nets {
			shims = append(shims, n.Shim)
		}
	}
	_, err := Teardown(d.k, d.log, shims...)
	return err
}

// Teardown removes everything flatnet added to the node (see
// reconcile.Teardown; adopted names shims flatnet used but did not make),
// logs each removal to log unless it is nil, and returns the removals that
// were done.
func Teardown(k *netlinkx.Kernel, log *slog.Logger, adopted ...string) ([]reconcile.Op, error) {
	snap, err := k.Snapshot()
	if err != nil {
		return nil, err
	}
	done, err := reconcile.Apply(k, reconcile.Teardown(snap, adopted...))
	if log != nil {
		for _, op := range done {
			logOp(log, op)
		}
	}
	return done, err
}

// apply carries out ops, first noting the deletions of our routes whose
// notifications will be our own echo.
func (d *Daemon) apply(ops []reconcile.Op) ([]reconcile.Op, error) {
	d.mu.Lock()
	for _, op := range ops {
		if op.Kind == reconcile.DelRoute {
			d.expectDel[op.Dst]++
		}
	}
	d.mu.Unlock()
	return reconcile.Apply(d.k, ops)
}

// takeDirty returns and clears what events marked.
func (d *Daemon) takeDirty() (names map[string]map[string]bool, full map[string]bool, cniDirty bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	names, full, cniDirty = d.names, d.fullDirs, d.cniDirty
	d.names, d.fullDirs, d.cniDirty = map[string]map[string]bool{}, map[string]bool{}, false
	return names, full, cniDirty
}

// reconcile makes one pass: read, decide, act, report. It returns false
// when something failed and should be retried.
func (d *Daemon) reconcile() bool {
	start := time.Now()
	names, full, cniDirty := d.takeDirty()
	ok := true
	if cniDirty {
		d.discover()
	}
	fresh := d.needSnapshot()
	if fresh {
		snap, err := d.k.Snapshot()
		if err != nil {
			d.log.Error("reading the kernel's state failed", "err", err)
			d.mu.Lock()
			d.kernelDirty = true
			d.mu.Unlock()
			return false
		}
		d.snap = snap
	}
	snap := d.snap
	nets, finds := reconcile.Resolve(d.cfg, d.cniNets, snap)
	var carrierBack map[string]bool
	if fresh {
		carrierBack = d.carrierBack(nets, snap)
	}

	dirs := []string{filepath.Clean(d.cfg.CNIConfDir)}
	links := map[string]bool{}
	for _, n := range nets {
		dirs = append(dirs, filepath.Clean(n.StateDir))
		links[n.Master], links[n.Shim] = true, true
	}
	if d.defaultRouteMaster() {
		links[snap.DefaultRouteDev()] = true
	}
	d.mu.Lock()
	d.links, d.cniDir = links, dirs[0]
	d.mu.Unlock()
	if !slices.Equal(dirs, d.watched) {
		if err := d.w.Set(dirs); err != nil {
			d.log.Warn("cannot watch a directory; relying on the resync timer for it", "err", err)
		}
		d.watched = dirs
		// New watches announce their directories: read them now, not in
		// another pass.
		d.mu.Lock()
		for k := range d.fullDirs {
			full[k] = true
		}
		d.fullDirs = map[string]bool{}
		d.mu.Unlock()
	}

	states := map[string]reconcile.DirState{}
	changed := false // an allocation came, went or changed owner, by name
	for _, n := range nets {
		dir := filepath.Clean(n.StateDir)
		c := d.dirs[dir]
		if c == nil || full[dir] || c.err != nil {
			c = d.readDir(dir, c)
		} else {
			for name := range names[dir] {
				changed = d.readOne(dir, c, name) || changed
			}
		}
		states[n.StateDir] = reconcile.DirState{Allocs: c.allocs, Err: c.err}
	}
	for dir := range d.dirs {
		if !slices.Contains(dirs, dir) {
			delete(d.dirs, dir)
		}
	}

	if !fresh && len(full) == 0 && !cniDirty && len(names) > 0 {
		// Only pods came or went: route them first, then re-plan the node.
		var ips []netip.Addr
		for _, dir := range names {
			for name := range dir {
				if ip, err := hostlocal.ParseName(name); err == nil {
					ips = append(ips, ip)
				}
			}
		}
		in := reconcile.Input{Networks: nets, States: states, Snap: snap, Reused: d.reused, Released: d.released}
		if ops := reconcile.Quick(in, ips); len(ops) > 0 {
			done, err := d.apply(ops)
			snap.Record(done)
			for _, op := range done {
				logOp(d.log, op)
			}
			if err != nil {
				d.log.Warn("some changes failed; the full pass tries again", "err", err)
				changed = true
			}
			d.reused, d.released = nil, nil // done; the full pass plans them no more
		}
		// The full pass (statuses, findings, anything Quick leaves) costs
		// the whole node: it follows once pods stop coming for a moment
		// (fullDelay; at most maxFullDelay after the first change), and not
		// at all for events that changed nothing (host-local's
		// create-then-write makes every other one such).
		if changed && d.owedSince.IsZero() {
			d.owedSince = time.Now()
		}
		if !d.owedSince.IsZero() && time.Since(d.owedSince) < maxFullDelay {
			d.fullSoon.Reset(fullDelay)
			return true
		}
		if d.owedSince.IsZero() {
			return true
		}
	}
	d.owedSince = time.Time{}
	d.fullSoon.Stop()

	plan := reconcile.Compute(reconcile.Input{Networks: nets, States: states, Snap: snap, MachineID: d.mid, Reused: d.reused, Released: d.released, CarrierBack: carrierBack, Guard: d.guard})
	d.reused, d.released = nil, nil
	done, err := d.apply(plan.Ops)
	snap.Record(done)
	// The node is as right as this pass can make it: tell systemd before
	// writing one log line per change, which takes longer than the changes
	// on a node starting with thousands of pods.
	d.opts.Notifier.Status(statusLine(plan.Settle(done), d.cfg))
	if !d.ready {
		d.opts.Notifier.Ready()
		d.ready = true
	}
	linkOps := false
	for i, op := range done {
		if i < maxLoggedOps {
			logOp(d.log, op)
		}
		linkOps = linkOps || op.Kind.ChangesLinks()
	}
	if n := len(done) - maxLoggedOps; n > 0 {
		d.log.Info(fmt.Sprintf("and %d more changes of the same kinds, not listed one by one", n), "count", n)
	}
	if len(done) >= maxLoggedOps {
		// A start-up with thousands of pods leaves a heap many times the
		// daemon's steady size; hand it back now rather than at the next
		// collection, minutes later.
		debug.FreeOSMemory()
	}
	if err != nil {
		d.log.Error("some changes failed; will retry", "err", err)
		ok = false
	}
	if err != nil || linkOps {
		// Failed deletes send no echo: forget them, and look again.
		d.mu.Lock()
		d.kernelDirty = true
		d.expectDel = map[netip.Prefix]int{}
		d.mu.Unlock()
	}
	d.log.Debug("reconciled", "took", time.Since(start), "ops", len(plan.Ops), "done", len(done), "networks", len(nets))
	d.report(append(finds, plan.Findings...))
	return ok
}

// carrierBack returns the networks' shims that had no carrier in the
// previous snapshot and have it in snap (their master went down and came
// back), and remembers what snap shows.
func (d *Daemon) carrierBack(nets []reconcile.Network, snap *reconcile.Snapshot) map[string]bool {
	var back map[string]bool
	seen := make(map[string]shimCarrier, len(nets))
	for _, n := range nets {
		l, ok := snap.Link(n.Shim)
		if !ok {
			continue
		}
		if was, known := d.carrier[n.Shim]; known && was.index == l.Index && !was.lowerUp && l.LowerUp {
			if back == nil {
				back = map[string]bool{}
			}
			back[n.Shim] = true
		}
		seen[n.Shim] = shimCarrier{index: l.Index, lowerUp: l.LowerUp}
	}
	d.carrier = seen
	return back
}

// needSnapshot reports whether this pass must read the kernel again, and
// if so forgets the echoes of our route deletions still expected: the new
// snapshot shows those deletions already, and an echo that never comes (the
// route had gone without a notification, with its device or its source
// address) must not swallow a later deletion by someone else.
func (d *Daemon) needSnapshot() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	fresh := d.kernelDirty || d.snap == nil
	d.kernelDirty = false
	if fresh {
		clear(d.expectDel)
	}
	return fresh
}

// defaultRouteMaster reports whether some network takes its master from
// the default route, so that the default route's device matters.
func (d *Daemon) defaultRouteMaster() bool {
	for _, n := range d.cfg.Networks {
		if n.Master == "" {
			return true
		}
	}
	for _, n := range d.cniNets {
		if n.Master == "" {
			return true
		}
	}
	return false
}

// discover re-reads the CNI config directory. A file that stops parsing
// keeps the networks it had: a half-written edit must not cost routes.
func (d *Daemon) discover() {
	files, err := cni.ReadDir(d.cfg.CNIConfDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Error("cannot read the CNI config directory; keeping the networks found before", "dir", d.cfg.CNIConfDir, "err", err)
		return
	}
	byFile := map[string][]cni.Network{}
	var all []cni.Network
	var finds []reconcile.Finding
	seen := map[string]bool{}
	for _, f := range files {
		if len(f.Data) == 0 && f.Err == nil {
			// Being written (created, not yet filled): its write event
			// brings us back; until then it keeps what it had.
			byFile[f.Name] = d.cniByFile[f.Name]
			for _, n := range byFile[f.Name] {
				if !seen[n.Name] {
					seen[n.Name] = true
					all = append(all, n)
				}
			}
			continue
		}
		nets, probs := cni.Discover([]cni.File{f})
		if len(probs) > 0 && len(nets) == 0 && len(d.cniByFile[f.Name]) > 0 {
			nets = d.cniByFile[f.Name]
			for _, p := range probs {
				finds = append(finds, reconcile.Finding{Key: "cni:" + p.Error(), Level: slog.LevelWarn,
					Msg: fmt.Sprintf("CNI config %s: %v (keeping the networks it defined before)", f.Name, p.Err)})
			}
		} else {
			for _, p := range probs {
				finds = append(finds, reconcile.Finding{Key: "cni:" + p.Error(), Level: slog.LevelWarn,
					Msg: fmt.Sprintf("CNI config %s skipped: %v", f.Name, p.Err)})
			}
		}
		if len(probs) == 0 && len(nets) == 0 {
			finds = append(finds, reconcile.Finding{Key: "cni:none:" + f.Name, Level: slog.LevelInfo,
				Msg: fmt.Sprintf("CNI config %s skipped: no macvlan plugin with host-local IPAM in it", f.Name)})
		}
		byFile[f.Name] = nets
		for _, n := range nets {
			if seen[n.Name] {
				continue
			}
			seen[n.Name] = true
			all = append(all, n)
		}
	}
	d.cniByFile, d.cniNets = byFile, all
	d.reportPrefix("cni:", finds)
}

// readDir reads a whole state directory.
func (d *Daemon) readDir(dir string, old *dirCache) *dirCache {
	allocs, bad, more, err := statedir.ReadLimit(dir, maxBadListed)
	c := &dirCache{allocs: allocs, err: err, bad: map[string]string{}}
	if err != nil {
		if old != nil && old.err == nil {
			d.log.Error("cannot read state dir; holding its routes", "dir", dir, "err", err)
		}
		if old != nil {
			c.allocs = old.allocs
		}
		d.dirs[dir] = c
		return c
	}
	if old != nil && old.err != nil {
		d.log.Info("state dir readable again", "dir", dir)
	}
	if old != nil {
		for ip, o := range old.allocs {
			d.ownerChange(ip, o, allocs[ip])
		}
	}
	var seen map[string]string
	if old != nil {
		seen = old.bad
	}
	for _, b := range bad {
		d.noteBad(dir, c, seen, b.Name, b.Reason)
	}
	c.badExtra += more
	if c.badExtra > 0 && (old == nil || old.badExtra == 0) {
		d.logMoreBad(dir)
	}
	d.dirs[dir] = c
	return c
}

// noteBad records an unusable entry and logs it unless seen already had it.
func (d *Daemon) noteBad(dir string, c *dirCache, seen map[string]string, name, reason string) {
	if _, listed := c.bad[name]; !listed && len(c.bad) >= maxBadListed {
		if c.badExtra++; c.badExtra == 1 {
			d.logMoreBad(dir)
		}
		return
	}
	if seen[name] != reason {
		d.log.Warn(fmt.Sprintf("ignoring %s in %s: %s", name, dir, reason), "dir", dir, "file", name)
	}
	c.bad[name] = reason
}

// logMoreBad says, once while it lasts, that a directory has more
// unusable entries than are logged by name.
func (d *Daemon) logMoreBad(dir string) {
	d.log.Warn(fmt.Sprintf("more than %d unusable entries in %s; the others are not logged (flatnet check shows them)", maxBadListed, dir), "dir", dir)
}

// readOne refreshes one entry of a state directory.
func (d *Daemon) readOne(dir string, c *dirCache, name string) (changed bool) {
	ip, owner, reason := statedir.ReadOne(dir, name)
	if known, err := hostlocal.ParseName(name); err == nil {
		old, had := c.allocs[known]
		changed = had != ip.IsValid() || old != owner
	}
	changed = changed || c.bad[name] != reason
	switch {
	case reason != "":
		if c.bad[name] != reason {
			d.noteBad(dir, c, c.bad, name, reason)
		}
		if ip, err := hostlocal.ParseName(name); err == nil {
			delete(c.allocs, ip)
		}
	case ip.IsValid():
		delete(c.bad, name)
		d.ownerChange(ip, c.allocs[ip], owner)
		c.allocs[ip] = owner
	default:
		delete(c.bad, name)
		if ip, err := hostlocal.ParseName(name); err == nil {
			d.ownerChange(ip, c.allocs[ip], hostlocal.Owner{})
			delete(c.allocs, ip)
		}
	}
	return changed
}

// ownerChange notes what a change of an address's owner means for this
// pass: released (for the log line), or reused by another container (its
// neighbour entry must go).
func (d *Daemon) ownerChange(ip netip.Addr, old, now hostlocal.Owner) {
	switch {
	case old.ContainerID == "" || old == now:
	case now.ContainerID == "":
		if d.released == nil {
			d.released = map[netip.Addr]hostlocal.Owner{}
		}
		d.released[ip] = old
	case now.ContainerID != old.ContainerID:
		if d.reused == nil {
			d.reused = map[netip.Addr]bool{}
		}
		d.reused[ip] = true
	}
}

// report logs each finding once while it persists.
func (d *Daemon) report(finds []reconcile.Finding) {
	now := map[string]bool{}
	for _, f := range finds {
		now[f.Key] = true
		if d.reported[f.Key] {
			continue
		}
		var attrs []any
		if f.Network != "" {
			attrs = append(attrs, "network", f.Network)
		}
		if f.IP.IsValid() {
			attrs = append(attrs, "ip", f.IP.String())
		}
		d.log.Log(context.Background(), f.Level, f.Msg, attrs...)
	}
	for k := range d.reported {
		if !strings.HasPrefix(k, "cni:") && !now[k] {
			delete(d.reported, k)
		}
	}
	for k := range now {
		d.reported[k] = true
	}
}

// reportPrefix is report for the findings of one source (keys with prefix):
// those of its keys no longer found are forgotten.
func (d *Daemon) reportPrefix(prefix string, finds []reconcile.Finding) {
	for k := range d.reported {
		if strings.HasPrefix(k, prefix) {
			found := false
			for _, f := range finds {
				found = found || f.Key == k
			}
			if !found {
				delete(d.reported, k)
			}
		}
	}
	for _, f := range finds {
		if !d.reported[f.Key] {
			d.log.Log(context.Background(), f.Level, f.Msg)
			d.reported[f.Key] = true
		}
	}
}

// logOp logs one change, as an operator reads it.
func logOp(log *slog.Logger, op reconcile.Op) {
	attrs := []any{"dev", op.Dev}
	if op.Network != "" {
		attrs = append(attrs, "network", op.Network)
	}
	switch op.Kind {
	case reconcile.AddRoute, reconcile.ReplaceRoute, reconcile.DelRoute:
		attrs = append(attrs, "ip", op.Dst.Addr().String())
		who := ""
		if op.Owner.ContainerID != "" {
			attrs = append(attrs, "container", op.Owner.ContainerID)
			who = " for container " + short(op.Owner.ContainerID)
			if op.Owner.IfName != "" {
				attrs = append(attrs, "ifname", op.Owner.IfName)
				who += "/" + op.Owner.IfName
			}
		}
		verb := map[reconcile.OpKind]string{reconcile.AddRoute: "added", reconcile.ReplaceRoute: "replaced", reconcile.DelRoute: "removed"}[op.Kind]
		log.Info(fmt.Sprintf("route %s dev %s %s%s", op.Dst, op.Dev, verb, who), attrs...)
	case reconcile.AddShim:
		log.Info(fmt.Sprintf("shim %s created on %s (macvlan bridge, %s)", op.Dev, op.Master, op.MAC), append(attrs, "master", op.Master, "mac", op.MAC.String())...)
	case reconcile.DelShim:
		log.Info(fmt.Sprintf("shim %s removed", op.Dev), attrs...)
	case reconcile.SetUp:
		log.Info(fmt.Sprintf("shim %s was down; set up", op.Dev), attrs...)
	case reconcile.SetMTU:
		log.Info(fmt.Sprintf("shim %s MTU set to %d, the master's", op.Dev, op.MTU), attrs...)
	case reconcile.ConfigureShim:
		log.Info(fmt.Sprintf("shim %s configured: arp_filter 1 so the LAN never sees it answer for the node, arp_ignore 0 and proxy_ndp 1 so pods do%s", op.Dev, map[reconcile.Guard]string{
			reconcile.GuardFilter:  ", proxy_delay 0 so they get the answer at once",
			reconcile.GuardAddress: ", arp_announce 2 so its requests name its own address",
		}[op.Guard]), attrs...)
	case reconcile.AddSender:
		log.Info(fmt.Sprintf("shim %s given %s: its ARP requests name that address, never the node's", op.Dev, reconcile.SenderAddr), attrs...)
	case reconcile.DelSender:
		log.Info(fmt.Sprintf("%s removed from shim %s", reconcile.SenderAddr, op.Dev), attrs...)
	case reconcile.SetFilter:
		if len(op.Drops) == 0 {
			log.Info("egress filter removed (nftables table netdev flatnet)")
			break
		}
		var parts []string
		for _, d := range op.Drops {
			parts = append(parts, d.MAC+" on "+d.Master)
		}
		log.Info("egress filter set: frames from "+strings.Join(parts, ", ")+" never reach the LAN", "dev", op.Drops[0].Master)
	case reconcile.AddProxy:
		log.Info(fmt.Sprintf("shim %s answers pods' neighbour solicitations for %s (proxy)", op.Dev, op.Dst.Addr()), append(attrs, "ip", op.Dst.Addr().String())...)
	case reconcile.DelProxy:
		log.Info(fmt.Sprintf("proxy for %s on %s removed", op.Dst.Addr(), op.Dev), append(attrs, "ip", op.Dst.Addr().String())...)
	case reconcile.FlushNeighs:
		log.Info(fmt.Sprintf("shim %s has its carrier back; its neighbour entries flushed so pods are reached at once, not at the next ARP retry", op.Dev), attrs...)
	case reconcile.FlushNeigh:
		log.Debug(fmt.Sprintf("neighbour entry for %s on %s flushed", op.Dst.Addr(), op.Dev), append(attrs, "ip", op.Dst.Addr().String())...)
	}
}

// short abbreviates a container id the way operators read them.
func short(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}

// statusLine is the STATUS= line: a few words per network.
func statusLine(sts []reconcile.NetStatus, cfg config.Config) string {
	if len(sts) == 0 {
		return fmt.Sprintf("no macvlan + host-local network in %s", cfg.CNIConfDir)
	}
	var parts []string
	for _, s := range sts {
		switch {
		case s.Waiting != "":
			parts = append(parts, fmt.Sprintf("%s: %s", s.Name, s.Waiting))
		default:
			p := fmt.Sprintf("%s: %d pod routes via %s (master %s)", s.Name, s.Routed, s.Shim, s.Master)
			if n := len(s.Missing) + len(s.Conflicts); n > 0 {
				p += fmt.Sprintf(", %d not routed", n)
			}
			if s.Held {
				p += ", state dir unreadable"
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}

// machineID is /etc/machine-id, the seed of the shims' MAC addresses. A
// node without one (rare: containers, odd images) falls back to the DMI
// product UUID, then to the boot id, which lasts only until reboot.
func machineID() string {
	for _, p := range []string{"/etc/machine-id", "/sys/class/dmi/id/product_uuid", "/proc/sys/kernel/random/boot_id"} {
		if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}
