package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/sd"
	"github.com/flatnet/flatnet/internal/statedir"
	"github.com/flatnet/flatnet/internal/view"
)

// Kernel is what a pass needs of the kernel: one snapshot, and ops one by
// one or, for runs of routes, many at once. netlinkx.Kernel is the real
// one.
type Kernel interface {
	Snapshot() (*reconcile.Snapshot, error)
	// ARPIgnoreAll is the snapshot's ARPIgnoreAll read alone, for the
	// loop to notice a change, which makes no event.
	ARPIgnoreAll() bool
	reconcile.Kernel
	reconcile.Batcher
}

// Notifier is what a pass tells the service manager.
type Notifier interface {
	Status(string)
	Ready()
}

// maxLoggedOps is how many changes one pass logs one by one; past it a
// line counts the rest. journald drops a burst beyond 10,000 lines in 30 s
// anyway, and a start-up with 65,000 pods must not spend seconds logging.
const maxLoggedOps = 1000

// pass is the state one pass works on, owned by the loop's goroutine:
// the inputs (the state-dir cache, CNI discovery), the node as decided
// (reconcile.Node), the last snapshot. A pass reads what was marked,
// decides, acts and reports.
//
// An event that only names entries of state directories is an update
// pass: those files are read, their addresses decided again (Node.SyncUpdate)
// and their routes changed, at a cost that does not grow with the number
// of pods. Anything else (a kernel notification, the CNI directory, a whole
// directory, the resync timer, a reload, a retry) is a full pass: the
// kernel read anew, every network resolved and every address decided
// (Node.Sync).
type pass struct {
	cfg config.Config
	// guard is the LAN guard chosen for lan_guard and the kernel's guards
	// (ChooseGuard); a pass runs the one reconcile.GuardFor gives, said in
	// guardWhy while that is another.
	guard    reconcile.Guard
	guards   reconcile.GuardKernel
	guardWhy string
	log      *slog.Logger
	k        Kernel
	notify   Notifier
	marks    *marks
	now      func() time.Time
	mid      string
	// watch sets the directories watched (statedir.Watcher.Set).
	watch func(dirs []string) error

	// view is the node's inputs (CNI files and caches, state
	// directories), kept across passes.
	view *view.View
	// unm follows the state root's directories that no network explains;
	// explained are the directories that networks do (their state
	// directories, and those named like a network of any plugin).
	unm       *unmatched
	explained map[string]bool
	node      *reconcile.Node
	limit     logLimit // how much of one cause the journal gets
	snap      *reconcile.Snapshot
	watched   []string
	carrier   map[string]shimCarrier // the shims as the last snapshot showed them
	ready     bool                   // READY=1 sent
	ops       int                    // the changes the current pass made, for the debug line
	memory    []byte                 // the view's Memory as last recorded
}

// shimCarrier is a shim's ifindex and carrier in a snapshot.
type shimCarrier struct {
	index   int
	lowerUp bool
}

// run makes one pass over what m says. It reports whether everything
// succeeded (else it should be tried again) and whether it was a full pass.
func (p *pass) run(m marked) (ok, full bool) {
	start := p.now()
	if m.lost {
		p.log.Warn("kernel notifications were lost; resyncing")
	}
	if m.by != "" {
		p.log.Info("flatnet's nftables table was changed by " + m.by + "; looking again")
	}
	full = m.full() || p.snap == nil
	p.ops = 0
	if full {
		ok = p.full(m)
	} else {
		ok, full = p.update(&m)
	}
	p.log.Debug("reconciled", "took", p.now().Sub(start), "full", full, "why", m.why, "ops", p.ops, "networks", len(p.view.Networks()))
	return ok, full
}

// update is the event path: only entries of state directories or of
// libcni's caches changed. A directory never read whole, or unreadable,
// makes it a full pass, as do cache entries that change the networks.
func (p *pass) update(m *marked) (ok, full bool) {
	var changed []netip.Addr
	var gone map[netip.Addr]hostlocal.Owner
	if len(m.cache) > 0 {
		// A cache entry that only brings or takes a pod's addresses costs
		// O(1); one that changes what a network is, a full pass.
		var redefine, findings bool
		changed, gone, redefine, findings = p.view.ApplyCaches(m.cache)
		if redefine {
			m.why = "a network's definition changed in libcni's cache"
			return p.full(*m), true
		}
		if findings {
			p.node.SetFound(p.findings())
		}
	}
	p.countUnexplained(m)
	if len(m.dirs) > 0 {
		m.why = "a directory newly watched"
		return p.full(*m), true
	}
	for dir := range m.names {
		if !p.view.KnownDir(dir) {
			m.dirs[dir] = true
			m.why = "entries of " + dir + ", not read whole yet"
			return p.full(*m), true
		}
	}
	for dir, names := range m.names {
		ips, notes := p.view.ReadEntries(dir, names)
		p.logNotes(notes)
		changed = append(changed, ips...)
	}
	if len(changed) == 0 {
		p.report(nil) // host-local's create-then-write (the empty file first), or a cache entry
		return true, false
	}
	reused, released := p.view.TakeChanges()
	for ip, o := range gone {
		if _, ok := released[ip]; !ok {
			if released == nil {
				released = map[netip.Addr]hostlocal.Owner{}
			}
			released[ip] = o
		}
	}
	done, err := p.node.SyncUpdate(changed, reused, released, p.kernel())
	p.report(done)
	if err != nil {
		p.log.Error("some changes failed; will retry", "err", err)
		return false, false
	}
	return true, false
}

// countUnexplained takes what m says of the state root's entries and of
// the directories no network explains, which are only counted, one
// directory at a time, and removes it from m.
func (p *pass) countUnexplained(m *marked) {
	now := p.now()
	unm := m.recount
	root := filepath.Clean(p.cfg.StateRoot)
	if names, ok := m.names[root]; ok {
		delete(m.names, root)
		m.why = "entries of " + root
		for name := range names {
			dir := filepath.Join(root, name)
			p.unm.entry(dir, p.explained[dir], now)
		}
		unm = true
	}
	for dir := range m.names {
		if p.unm.has(dir) {
			delete(m.names, dir)
			p.unm.recount(dir, now)
			unm = true
		}
	}
	if !unm {
		return
	}
	p.unm.settle(now)
	p.node.SetFound(p.findings())
	p.follow(p.view.Networks(), p.snap, m)
	for dir := range m.dirs {
		if p.unm.has(dir) {
			delete(m.dirs, dir) // a new watch's: counted already
		}
	}
}

// startGCPercent is the collector's GOGC during the first pass.
const startGCPercent = 400

// collect runs the collector at the end of a full pass, and hands the
// free memory back to the system too when handBack; a variable for tests.
//
// A full pass leaves megabytes of garbage on a big node (every state file
// and the kernel's routes read anew). Collected at once, while the loop is
// busy anyway, it does not bring collections into the passes of the pods
// that come next: the first pod of a new network costs a full pass, and
// its sisters follow it (in the bench, the collection such a pass's garbage
// brought ran among the 300 cache entries timed at 10,000 routes).
var collect = func(handBack bool) {
	if handBack {
		debug.FreeOSMemory()
		return
	}
	runtime.GC()
}

// full is the safety net: everything read and decided again.
func (p *pass) full(m marked) bool {
	if p.snap == nil {
		// The first pass builds the whole state at once, and on a node
		// with tens of thousands of pods the collector would run many
		// times over a heap that only grows; it runs less often, and the
		// garbage is handed back at the end (FreeOSMemory below).
		defer debug.SetGCPercent(debug.SetGCPercent(startGCPercent))
	}
	// The configuration's own directories are watched before they are
	// read, so that nothing written in between goes unseen; what their
	// new watches announce is read by this pass, not another.
	p.follow(p.view.Networks(), p.snap, &m)
	p.marks.takeFiles(&m)
	a, err := p.view.Full(view.Changes{Conf: m.cni, Caches: m.caches, Cache: m.cache, Dirs: m.dirs, Names: m.names}, p.k.Snapshot,
		func(nets []reconcile.Network, snap *reconcile.Snapshot) {
			p.unm.reset(p.unexplained(nets), p.now())
			p.follow(nets, snap, &m) // watches the new directories before they are read or counted
		})
	p.logConf(a)
	if err != nil {
		p.log.Error("reading the kernel's state failed", "err", err)
		p.marks.kernelDirty("the kernel's state unread")
		return false
	}
	p.snap = a.Snap
	p.logNotes(a.StateNotes)
	p.recordMemory()
	p.unm.countAll(p.now())
	for dir := range m.dirs {
		if p.unm.has(dir) {
			delete(m.dirs, dir)
		}
	}

	reused, released := p.view.TakeChanges()
	done, err := p.node.Sync(reconcile.Input{
		Networks: a.Networks, States: a.States, Results: p.view.Results(), Snap: a.Snap, MachineID: p.mid, Guard: p.passGuard(a.Snap), Found: p.findings(),
		Reused: reused, Released: released, CarrierBack: p.carrierBack(a.Networks, a.Snap), Now: p.now(),
	}, p.kernel())
	p.report(done)
	// A start-up with thousands of pods leaves a heap many times the
	// daemon's steady size: handed back now rather than at the next
	// collection, minutes later.
	collect(len(done) >= maxLoggedOps)
	if err != nil {
		p.log.Error("some changes failed; will retry", "err", err)
	}
	if err != nil || slices.ContainsFunc(done, func(op reconcile.Op) bool { return op.Kind.ChangesLinks() }) {
		// Links changed (their notifications wake the loop), or ops failed
		// (the retry timer does; a failed delete sends no echo): the next
		// pass reads the kernel again.
		why := "links changed"
		if err != nil {
			why = "failed changes"
		}
		p.marks.kernelDirty(why)
	}
	return err == nil
}

// passGuard is the LAN guard of a full pass (reconcile.GuardFor), said
// when it turns from the chosen one and when it turns back.
func (p *pass) passGuard(snap *reconcile.Snapshot) reconcile.Guard {
	g, why := reconcile.GuardFor(p.guard, p.cfg.LANGuard, p.guards, snap)
	switch {
	case why == p.guardWhy:
	case why != "":
		p.log.Warn("LAN guard: "+why, "lan_guard", g.String())
	default:
		p.log.Info(fmt.Sprintf("LAN guard: the %s guard again", g), "lan_guard", g.String())
	}
	p.guardWhy = why
	return g
}

// follow points the watches and the link interest at what the networks
// need: the CNI directory, every state directory, the masters and shims
// (and the default route's device when a master comes from it).
func (p *pass) follow(nets []reconcile.Network, snap *reconcile.Snapshot, m *marked) {
	// The state root too: a directory appearing there (a network the
	// node does not know) makes a full pass, which looks at it; and the
	// directories there no network explains, whose allocations are
	// counted again when they change.
	dirs := []string{filepath.Clean(p.cfg.CNIConfDir), filepath.Clean(p.cfg.StateRoot)}
	dirs = append(dirs, p.unm.watched(p.now())...)
	results := map[string]string{}
	for _, c := range p.cfg.CNICacheDirs {
		r := cni.ResultsDir(c)
		results[r] = c
		dirs = append(dirs, r)
	}
	links := map[string]bool{}
	fromDefault := false
	for _, n := range nets {
		if n.StateDir != "" {
			dirs = append(dirs, filepath.Clean(n.StateDir))
		}
		links[n.Master], links[n.Shim] = true, true
	}
	for _, n := range p.cfg.Networks {
		fromDefault = fromDefault || n.Master == ""
	}
	for _, n := range p.view.CNINetworks() {
		fromDefault = fromDefault || n.Master == ""
	}
	if fromDefault && snap != nil {
		links[snap.DefaultRouteDev()] = true
	}
	unknown := make(map[string]bool, len(p.unm.dirs))
	for d := range p.unm.dirs {
		unknown[d] = true
	}
	p.marks.interest(dirs[0], results, links, unknown)
	if slices.Equal(dirs, p.watched) {
		return
	}
	if err := p.watch(dirs); err != nil {
		p.log.Warn("cannot watch a directory; relying on the resync timer for it", "err", err)
	}
	p.watched = dirs
	// New watches announce their directories: read them now, not in
	// another pass.
	p.marks.takeDirs(m)
}

// logConf logs what reading the CNI configuration directory found.
func (p *pass) logConf(a view.Assembly) {
	now := p.now()
	if a.ConfErr != nil && p.limit.allow("confdir", "the messages about "+p.cfg.CNIConfDir, slog.LevelError, now) {
		p.log.Error("cannot read the CNI config directory; keeping the networks found before", "dir", p.cfg.CNIConfDir, "err", a.ConfErr)
	}
	for _, n := range a.ConfNotes {
		if p.limit.allow("conf|"+n.File, "the messages about "+n.File, n.Level, now) {
			p.log.Log(bg, n.Level, n.Msg, "file", n.File)
		}
	}
}

// recordMemory hands the view's Memory to flatnet status and check through
// the runtime directory, when it changed.
func (p *pass) recordMemory() {
	b := p.view.Memory().Marshal()
	if bytes.Equal(b, p.memory) {
		return
	}
	if err := sd.RecordRuntimeFile(view.MemoryFile, b); err != nil {
		p.log.Warn("cannot record the networks kept from before for flatnet status", "err", err)
		return
	}
	p.memory = b
}

// unexplained lists the directories of the state root that no network
// explains: neither a state directory of nets nor named like a network of
// the CNI configuration or of libcni's caches, whatever its plugins (a
// bridge or flannel network's allocations are no concern of flatnet's).
func (p *pass) unexplained(nets []reconcile.Network) []string {
	root := filepath.Clean(p.cfg.StateRoot)
	known := make(map[string]bool, len(nets)+len(p.view.Names()))
	for _, n := range nets {
		if n.StateDir != "" {
			known[filepath.Clean(n.StateDir)] = true
		}
	}
	for _, name := range p.view.Names() {
		known[filepath.Join(root, name)] = true
	}
	p.explained = known
	dirs, err := statedir.Unexplained(root, known)
	if err != nil {
		p.log.Warn("cannot list the state root", "dir", p.cfg.StateRoot, "err", err)
	}
	return dirs
}

// findings are the findings the pass adds to the node's own: what
// Resolve said of the networks, what was wrong with the CNI files and
// caches, and the unexplained directories that hold allocations.
func (p *pass) findings() []reconcile.Finding {
	return slices.Concat(p.view.Findings(), p.unm.findings)
}

// carrierBack returns the networks' shims that had no carrier in the
// previous snapshot and have it in snap (their master went down and came
// back), and remembers what snap shows.
func (p *pass) carrierBack(nets []reconcile.Network, snap *reconcile.Snapshot) map[string]bool {
	var back map[string]bool
	seen := make(map[string]shimCarrier, len(nets))
	for _, n := range nets {
		l, ok := snap.Link(n.Shim)
		if !ok {
			continue
		}
		if was, known := p.carrier[n.Shim]; known && was.index == l.Index && !was.lowerUp && l.LowerUp {
			if back == nil {
				back = map[string]bool{}
			}
			back[n.Shim] = true
		}
		seen[n.Shim] = shimCarrier{index: l.Index, lowerUp: l.LowerUp}
	}
	p.carrier = seen
	return back
}

// kernel is the pass's kernel for Node.Sync: p.k, with the routes flatnet
// deletes noted just before it deletes them, so that their echoes wake no
// pass (marks.expect).
func (p *pass) kernel() expecting { return expecting{p.k, p.marks} }

// expecting is a Kernel that notes the routes it deletes in marks first.
type expecting struct {
	Kernel
	marks *marks
}

// Do carries out op, a deletion noted first.
func (e expecting) Do(op reconcile.Op) error {
	if op.Kind == reconcile.DelRoute {
		e.marks.expect([]netip.Prefix{op.Dst})
	}
	return e.Kernel.Do(op)
}

// DoBatch carries out a run of route ops, their deletions noted first.
func (e expecting) DoBatch(ops []reconcile.Op) []error {
	var dels []netip.Prefix
	for _, op := range ops {
		if op.Kind == reconcile.DelRoute {
			dels = append(dels, op.Dst)
		}
	}
	e.marks.expect(dels)
	return e.Kernel.DoBatch(ops)
}

// report tells systemd first (STATUS=, and READY=1 after the first pass),
// then logs one line per change done and the findings new since the last
// pass. The node is as right as this pass can make it before the log
// lines, which take longer than the changes on a node starting with
// thousands of pods.
func (p *pass) report(done []reconcile.Op) {
	p.ops += len(done)
	p.notify.Status(statusLine(p.node.Summary(), p.cfg))
	if !p.ready {
		p.notify.Ready()
		p.ready = true
	}
	for i, op := range done {
		if i == maxLoggedOps {
			n := len(done) - maxLoggedOps
			p.log.Info(fmt.Sprintf("and %d more changes of the same kinds, not listed one by one", n), "count", n)
			break
		}
		logOp(p.log, op)
	}
	now := p.now()
	for _, sum := range p.limit.summaries(now) {
		p.log.Log(bg, sum.Level, sum.Msg)
	}
	for _, f := range p.node.TakeFresh() {
		if f.Kind == reconcile.FindHeld {
			continue // statedir.Cache said it, with the error, once
		}
		if key, what := findingCause(f); !p.limit.allow(key, what, f.Level, now) {
			continue
		}
		var attrs []any
		if f.Network != "" {
			attrs = append(attrs, "network", f.Network)
		}
		if f.IP.IsValid() {
			attrs = append(attrs, "ip", f.IP.String())
		}
		p.log.Log(bg, f.Level, f.Msg, attrs...)
	}
}

func (p *pass) logNotes(notes []statedir.Note) {
	now := p.now()
	for _, n := range notes {
		key, what := "entries|"+n.Dir, "the messages about the entries of "+n.Dir
		if n.File == "" {
			key = "dir|" + n.Dir + "|" + n.Msg // about the directory: once per change anyway
		}
		if !p.limit.allow(key, what, n.Level, now) {
			continue
		}
		attrs := []any{"dir", n.Dir}
		if n.File != "" {
			attrs = append(attrs, "file", n.File)
		}
		p.log.Log(bg, n.Level, n.Msg, attrs...)
	}
}
