// Package daemon is `flatnet run`. It has three parts, each small:
//
//   - the loop (this file): wake-ups, timers and signals; it runs passes,
//     retries failed ones with a back-off, reloads and stops;
//   - the marks (marks.go): what the watchers' events say must be read
//     again, and the echo of flatnet's own route deletions;
//   - a pass (pass.go): read what is marked, decide (reconcile.Node), act,
//     report to systemd and the log.
//
// The inputs belong to their packages: the state-dir cache to statedir,
// CNI discovery to cni. The loop depends on a Kernel and a Clock, so that
// every part is tested with fakes (daemon_test.go), as well as end to end.
//
// Events carry no state: each one only marks what must be read again and
// wakes the loop.
package daemon

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/sd"
	"github.com/flatnet/flatnet/internal/statedir"
	"github.com/flatnet/flatnet/internal/view"
)

// bg is the context of log calls that have none of their own.
var bg = context.Background()

// subscribeWait bounds how long the first pass waits for the kernel
// subscriptions; they take a millisecond or two.
const subscribeWait = time.Second

// Options configures a [Daemon].
type Options struct {
	Config         config.Config
	ConfigPath     string // what SIGHUP reloads
	ConfigRequired bool   // the path was given explicitly: it must exist
	Log            *slog.Logger
	Level          *slog.LevelVar
	Notifier       *sd.Notifier
	// AfterPass, when set, runs after each pass, on the loop's goroutine
	// (the main package's collector tuning).
	AfterPass func()
}

// Clock is the time the loop runs on: the real one, or a test's.
type Clock interface {
	Now() time.Time
	// NewTimer returns a stopped timer.
	NewTimer() Timer
}

// Timer is a timer of a Clock.
type Timer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
}

// Daemon mirrors host-local allocations into routes until stopped.
type Daemon struct {
	opts Options
	log  *slog.Logger
	p    *pass
	// guards is what the kernel allows of the LAN guards (why it cannot
	// filter a master's egress, why it cannot keep the shim guard's
	// rules; nil when it can), from the probes at start.
	guards    reconcile.GuardKernel
	failures  int       // passes failed in a row
	recheckAt time.Time // when the recheck timer is armed for; zero when stopped
}

// New prepares a daemon; Run starts it.
func New(opts Options) *Daemon {
	if opts.Notifier == nil {
		opts.Notifier = &sd.Notifier{} // outside systemd, every call is a no-op
	}
	return &Daemon{opts: opts, log: opts.Log}
}

// Run runs until ctx is done or SIGTERM/SIGINT, then honours on_stop.
func (d *Daemon) Run(ctx context.Context) error {
	k, err := netlinkx.New()
	if err != nil {
		return err
	}
	defer k.Close()
	m := newMarks()
	w, err := statedir.NewWatcher(m.file)
	if err != nil {
		return fmt.Errorf("starting inotify: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.Run(ctx)
	// The first pass waits, briefly, for the kernel subscriptions: a
	// snapshot taken before them must be taken again once they are in
	// place (Subscribed), which on a node with many routes is a second
	// full read of the kernel for nothing.
	subscribed := make(chan struct{})
	var once sync.Once
	go func() {
		err := netlinkx.Watch(ctx, func(ev netlinkx.Event) {
			if ev.Kind == netlinkx.Subscribed {
				once.Do(func() { close(subscribed) })
			}
			m.kernelEvent(ev)
		})
		once.Do(func() { close(subscribed) })
		if err != nil {
			d.log.Error("kernel notifications unavailable; relying on the resync timer", "err", err)
		}
	}()
	select {
	case <-subscribed:
	case <-time.After(subscribeWait):
	}
	d.guards = reconcile.GuardKernel{Filter: netlinkx.ProbeFilter(), Shim: netlinkx.ProbeShim()}
	if d.guards.Filter == nil || d.guards.Shim == nil {
		go func() {
			if err := netlinkx.WatchFilter(ctx, m.kernelEvent); err != nil {
				d.log.Warn("nftables notifications unavailable; a removed LAN guard rule comes back at the next pass", "err", err)
			}
		}()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	d.p = d.newPass(k, m, w.Set, time.Now)
	return d.loop(ctx, realClock{}, sigs, k)
}

// newPass makes the pass state the loop runs.
func (d *Daemon) newPass(k Kernel, m *marks, watch func([]string) error, now func() time.Time) *pass {
	return &pass{
		cfg: d.opts.Config, log: d.log, k: k, notify: d.opts.Notifier, marks: m, now: now, mid: sd.MachineID(), watch: watch,
		view: view.New(d.opts.Config), node: reconcile.NewNode(), unm: newUnmatched(),
	}
}

// debugWedge: see loop.
var debugWedge <-chan os.Signal

// loop is the daemon's life after the wiring: the first pass, then one
// per wake-up, until a signal or ctx ends it.
//
// The watchdog's ping comes from this loop, so that a loop stuck anywhere
// stops it and systemd (WatchdogSec=) kills and restarts the process.
// debugWedge is how a test proves it: nil in flatnet, so that its case
// never runs; a build with the tag flatnet_debug_wedge (wedge_debug.go)
// sets it, and SIGUSR2 then wedges the loop for good.
func (d *Daemon) loop(ctx context.Context, clk Clock, sigs <-chan os.Signal, k Kernel) error {
	p := d.p
	d.log.Info("flatnet starting", "config", cmp.Or(p.cfg.Path, "(defaults)"), "cni_conf_dir", p.cfg.CNIConfDir, "resync_interval", p.cfg.ResyncInterval)
	d.recordConfig()
	d.chooseGuard(true)

	resync, retry, recheck := clk.NewTimer(), clk.NewTimer(), clk.NewTimer()
	defer resync.Stop()
	defer retry.Stop()
	defer recheck.Stop()
	var watchdog <-chan time.Time
	if iv := sd.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
	}
	d.step(retry, resync, recheck) // sends READY=1 once the kernel is mended, whatever the outcome
	for {
		select {
		case <-ctx.Done():
			return d.stop(k)
		case s := <-sigs:
			if s != syscall.SIGHUP {
				return d.stop(k)
			}
			d.reload()
		case <-p.marks.wake:
		case <-resync.C():
			p.marks.all(p.watched, "resync")
		case <-retry.C():
			p.marks.all(p.watched, "retry")
		case <-recheck.C():
			d.recheckAt = time.Time{}
			p.marks.recountUnknown()
			if at := p.node.RetryAt(); !at.IsZero() && !at.After(clk.Now()) {
				p.marks.kernelDirty("a shim held back may be made again")
			}
		case <-watchdog:
			d.opts.Notifier.Watchdog()
			// all.arp_ignore decides the guard (reconcile.GuardFor) and
			// its change makes no event: read on a tick the loop has
			// anyway, rather than on a timer of its own.
			if p.snap == nil || k.ARPIgnoreAll() == p.snap.ARPIgnoreAll {
				continue
			}
			p.marks.kernelDirty("net.ipv4.conf.all.arp_ignore changed")
		case <-debugWedge:
			d.log.Warn("loop wedged on SIGUSR2 (a build with the tag flatnet_debug_wedge)")
			select {}
		}
		d.step(retry, resync, recheck)
	}
}

// step runs one pass and arms the timers: a failed pass is tried again
// soon, backing off to the resync interval; a full pass starts the resync
// interval afresh (update passes do not: however busy the node, a full
// pass comes at least every resync interval); recheck wakes the loop when
// an unexplained state directory's grace ends or a shim held back may be
// made again, and is armed only when that moment changes, so that passes
// in between do not put it off.
func (d *Daemon) step(retry, resync, recheck Timer) {
	ok, full := d.p.run(d.p.marks.take())
	if d.opts.AfterPass != nil {
		d.opts.AfterPass()
	}
	at := d.p.unm.recheckAt
	if r := d.p.node.RetryAt(); !r.IsZero() && (at.IsZero() || r.Before(at)) {
		at = r
	}
	if !at.Equal(d.recheckAt) {
		d.recheckAt = at
		if at.IsZero() {
			recheck.Stop()
		} else {
			recheck.Reset(max(at.Sub(d.p.now()), 0))
		}
	}
	iv := d.p.cfg.ResyncInterval
	if full {
		resync.Reset(iv)
	}
	if ok {
		d.failures = 0
		retry.Stop()
		return
	}
	d.failures++
	retry.Reset(min(time.Duration(d.failures)*time.Second, iv))
}

// chooseGuard settles the LAN guard for lan_guard and this kernel, and
// logs it: at start, and on a reload only when it changed.
func (d *Daemon) chooseGuard(start bool) {
	g, why := reconcile.ChooseGuard(d.p.cfg.LANGuard, d.guards)
	if g == d.p.guard && !start {
		return
	}
	d.p.guard, d.p.guards = g, d.guards
	level, msg := GuardSummary(g, d.p.cfg.LANGuard, d.guards, why)
	d.log.Log(bg, level, msg, "lan_guard", g.String())
}

// recordConfig tells flatnet check which configuration runs (sd.LoadedConfig).
func (d *Daemon) recordConfig() {
	if err := sd.RecordConfig(d.p.cfg.Digest, d.p.cfg.Path); err != nil {
		d.log.Warn("cannot record the configuration in use; flatnet check cannot tell whether flatnet.toml changed since", "err", err)
	}
}

// reload re-reads the configuration; a bad file changes nothing.
func (d *Daemon) reload() {
	d.opts.Notifier.Reloading()
	defer d.opts.Notifier.Ready()
	cfg, err := config.Load(d.opts.ConfigPath, d.opts.ConfigRequired)
	if err != nil {
		d.log.Error("configuration not reloaded; the running one stays", "err", err)
		return
	}
	d.p.cfg = cfg
	d.p.view.SetConfig(cfg)
	d.opts.Level.Set(cfg.LogLevel)
	d.recordConfig()
	d.chooseGuard(false)
	d.p.marks.all(d.p.watched, "reload")
	d.log.Info("configuration reloaded", "config", cmp.Or(cfg.Path, "(defaults)"))
}

// stop ends the daemon as on_stop says.
func (d *Daemon) stop(k Kernel) error {
	d.opts.Notifier.Stopping()
	if d.p.cfg.OnStop != config.OnStopTeardown {
		d.log.Info("stopping; shims and routes stay for the next start (on_stop = keep)")
		return nil
	}
	d.log.Info("stopping; removing flatnet's routes and shims (on_stop = teardown)")
	var shims []string
	for _, n := range d.p.view.Networks() {
		shims = append(shims, n.Shim)
	}
	_, err := Teardown(k, d.log, d.p.mid, shims...)
	return err
}

// Teardown removes everything flatnet added to the node (see
// reconcile.Teardown; machineID tells the shims it made, adopted names
// shims flatnet used but did not make), logs each removal to log unless it
// is nil, and returns the removals that were done.
func Teardown(k Kernel, log *slog.Logger, machineID string, adopted ...string) ([]reconcile.Op, error) {
	snap, err := k.Snapshot()
	if err != nil {
		return nil, err
	}
	done, err := reconcile.Apply(k, reconcile.Teardown(snap, machineID, adopted...))
	if log != nil {
		for _, op := range done {
			logOp(log, op)
		}
	}
	return done, err
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return realTimer{t}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r realTimer) Stop()                 { r.t.Stop() }
