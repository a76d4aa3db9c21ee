// Package view assembles what the reconciler decides on from what is on
// the node: the CNI configuration directory, libcni's caches, the state
// directories and the kernel's snapshot. It is the one place those inputs
// are read and combined, so that the daemon and the tools agree:
//
//   - the daemon keeps one View across passes, reads what its wake-ups
//     name (Full, or ApplyCaches and ReadEntries on the event path) and
//     hands Memory to the tools through its runtime directory;
//   - flatnet status, check and teardown build one fresh (New, Restore
//     with the daemon's Memory when it runs, Full), and so see the
//     networks the daemon keeps from history: those of a configuration
//     file that stopped parsing (cni.LastGood) and those known only from
//     libcni's cache whose last entry went while their state directory
//     still holds allocations (cni.Discovery.Keep).
//
// A View does file I/O (through cni and statedir) but no netlink: the
// snapshot is the caller's.
package view

import (
	"cmp"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/statedir"
)

// View is the node's inputs as flatnet decides on them, kept up to date
// read by read. It is not safe for concurrent use.
type View struct {
	cfg config.Config

	// The CNI networks: confNets from the configuration directory (disc
	// keeps each file's last good ones; confProblems what is wrong with
	// the files as they are), caches libcni's cache entries; cniNets the
	// two combined (cni.Combine) and disco what else Combine found. names
	// are the names of every network of both sources, whatever its
	// plugins (cni.Names; confNames the directory's).
	disc         *cni.LastGood
	caches       *cni.CacheSet
	confFiles    []cni.File
	confErr      error
	confProblems []cni.Problem
	confNets     []cni.Network
	confNames    []string
	claims       []cni.Claim
	names        []string
	cniNets      []cni.Network
	disco        cni.Discovery
	// index keeps what Combine made of each cached attachment, so that an
	// entry's change is taken in O(1) (cni.Index); results are the
	// addresses of the followed attachments, by network, kept by delta
	// (reconcile.Input.Results).
	index   *cni.Index
	results map[string]map[netip.Addr]reconcile.Lease
	// cacheGen is caches.ProblemsChanged() when cniFound was made.
	cacheGen uint64
	cniFound []reconcile.Finding

	// The resolved networks and what Resolve said of them, and the state
	// directories' allocations.
	nets   []reconcile.Network
	found  []reconcile.Finding
	states *statedir.Cache
}

// New returns a View that has read nothing yet.
func New(cfg config.Config) *View {
	return &View{cfg: cfg, disc: cni.NewLastGood(), caches: cni.NewCacheSet(), states: statedir.NewCache(),
		results: map[string]map[netip.Addr]reconcile.Lease{}}
}

// SetConfig takes a reloaded configuration; the next Full reads with it.
func (v *View) SetConfig(cfg config.Config) { v.cfg = cfg }

// Config is the configuration the view reads with.
func (v *View) Config() config.Config { return v.cfg }

// Changes say what a Full assembly reads again; what they do not name is
// taken as the View last read it. A View that never read something reads
// it whatever they say.
type Changes struct {
	Conf   bool                       // the CNI configuration directory
	Caches bool                       // libcni's caches, whole
	Cache  map[string]map[string]bool // entries of cache directories, by directory
	Dirs   map[string]bool            // state directories to read whole
	Names  map[string]map[string]bool // entries of state directories, by directory
}

// Fresh are the Changes of a View built for one look: everything.
var Fresh = Changes{Conf: true, Caches: true}

// Assembly is what one Full made of the node.
type Assembly struct {
	Snap     *reconcile.Snapshot
	Networks []reconcile.Network
	// States are the state directories' allocations, by StateDir, for
	// reconcile.Input.States.
	States map[string]reconcile.DirState
	// ConfErr is why the configuration directory could not be read (its
	// networks are those read before); ConfNotes and StateNotes are what
	// the reads found that the operator should hear of, once.
	ConfErr    error
	ConfNotes  []cni.Note
	StateNotes []statedir.Note
}

// Full reads what ch names, combines the CNI sources, takes a snapshot
// with snapshot, resolves the networks against it, calls before (when not
// nil) with the networks whose state directories are about to be read and
// the snapshot (the daemon watches them first, so that nothing written in
// between goes unseen) and reads those directories.
func (v *View) Full(ch Changes, snapshot func() (*reconcile.Snapshot, error), before func([]reconcile.Network, *reconcile.Snapshot)) (Assembly, error) {
	var a Assembly
	if ch.Conf || v.confNets == nil {
		a.ConfNotes, a.ConfErr = v.readConf()
	}
	if ch.Caches || v.cniNets == nil {
		v.caches.ReadAll(v.cfg.CNICacheDirs)
	} else {
		for dir, ns := range ch.Cache {
			v.caches.ReadNames(dir, slices.Sorted(maps.Keys(ns)))
		}
	}
	v.combine()
	snap, err := snapshot()
	if err != nil {
		return a, err
	}
	a.Snap = snap
	v.nets, v.found = reconcile.Resolve(v.cfg, v.disco, snap)
	a.Networks = v.nets
	if before != nil {
		before(v.nets, snap)
	}
	a.States, a.StateNotes = v.readStates(ch)
	return a, nil
}

// readConf reads the CNI configuration directory again. A file that stops
// parsing keeps the networks it had (cni.LastGood); a directory that cannot
// be read keeps them all.
func (v *View) readConf() ([]cni.Note, error) {
	files, err := cni.ReadDir(v.cfg.CNIConfDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		v.confErr = err
		if v.confNets == nil {
			v.confNets = []cni.Network{}
		}
		return nil, err
	}
	v.confFiles, v.confErr = files, err
	nets, notes := v.disc.Update(files)
	_, v.confProblems = cni.Discover(files)
	if nets == nil {
		nets = []cni.Network{}
	}
	v.confNets = nets
	v.confNames = cni.Names(files, nil)
	v.claims = v.disc.Claims()
	return notes, nil
}

// combine merges the configuration directory's networks and the cache's
// (cni.Combine). A network known only from the cache whose last entry went
// stays while its state directory holds allocations, so nothing allocated
// becomes unexplained because a cache entry went first.
func (v *View) combine() {
	entries := v.caches.Entries()
	d := cni.Combine(v.confNets, v.claims, entries)
	v.names = slices.Concat(v.confNames, cni.Names(nil, entries))
	d.Networks = append(d.Networks, d.Keep(v.cniNets, v.holds)...)
	v.cniNets, v.disco = d.Networks, d
	v.index = cni.NewIndex(v.confNets, v.claims, entries)
	v.results = reconcile.Results(d)
	v.cacheFindings()
}

// holds reports whether n's state directory holds allocations: as last
// read, or, for one never read (a fresh View, or a network that was not
// resolved), as it is now.
func (v *View) holds(n cni.Network) bool {
	dir := filepath.Join(cmp.Or(n.DataDir, v.cfg.StateRoot), n.Name)
	if st, ok := v.states.State(dir); ok {
		return len(st.Allocs) > 0
	}
	allocs, _, err := statedir.Read(dir)
	return err == nil && len(allocs) > 0
}

// cacheFindings are what is wrong with libcni's cache files, and between
// them and the networks (cni.Combine's problems).
func (v *View) cacheFindings() {
	v.cacheGen = v.caches.ProblemsChanged()
	v.cniFound = v.cniFound[:0]
	for _, pr := range v.CacheProblems() {
		v.cniFound = append(v.cniFound, reconcile.Finding{Kind: reconcile.FindCNI, Level: slog.LevelWarn, Dir: pr.File, Msg: "CNI: " + pr.Error()})
	}
}

// readStates reads the networks' state directories: whole when ch names
// them or they were never read, else the entries ch names. Directories no
// network has any more are forgotten.
func (v *View) readStates(ch Changes) (map[string]reconcile.DirState, []statedir.Note) {
	states := map[string]reconcile.DirState{}
	keep := map[string]bool{}
	var notes []statedir.Note
	for _, n := range v.nets {
		if n.StateDir == "" {
			continue // its IPAM keeps nothing on the node
		}
		dir := filepath.Clean(n.StateDir)
		keep[dir] = true
		if ch.Dirs[dir] || !v.states.Known(dir) {
			notes = append(notes, v.states.ReadAll(dir)...)
		} else if names := ch.Names[dir]; len(names) > 0 {
			_, ns := v.states.ReadNames(dir, names)
			notes = append(notes, ns...)
		}
		states[n.StateDir], _ = v.states.State(dir)
	}
	v.states.Keep(keep)
	for _, n := range v.nets {
		if v.results[n.Name] == nil {
			v.results[n.Name] = map[netip.Addr]reconcile.Lease{} // ApplyCaches' changes must reach the reconciler's own map
		}
	}
	return states, notes
}

// ApplyCaches reads the cache entries names, by cache directory: the
// event path. It returns the addresses whose lease came or went, those
// gone with their last owners, and redefine when an entry changes what a
// network is (then only a Full will do, and nothing was applied).
// findings reports that the cache's findings changed.
func (v *View) ApplyCaches(names map[string]map[string]bool) (changed []netip.Addr, gone map[netip.Addr]hostlocal.Owner, redefine, findings bool) {
	for _, dir := range slices.Sorted(maps.Keys(names)) {
		for _, c := range v.caches.ReadNames(dir, slices.Sorted(maps.Keys(names[dir]))) {
			chs, redefine := v.index.Apply(c)
			if redefine {
				return nil, nil, true, false
			}
			for _, ch := range chs {
				res := v.results[ch.Network]
				if res == nil {
					res = map[netip.Addr]reconcile.Lease{}
					v.results[ch.Network] = res
				}
				if ch.Old != nil {
					for _, ip := range reconcile.RemoveLeases(res, *ch.Old) {
						if gone == nil {
							gone = map[netip.Addr]hostlocal.Owner{}
						}
						gone[ip] = hostlocal.Owner{ContainerID: ch.Old.ContainerID, IfName: ch.Old.IfName}
						changed = append(changed, ip)
					}
				}
				if ch.New != nil {
					changed = append(changed, reconcile.AddLeases(res, *ch.New)...)
				}
			}
		}
	}
	if v.caches.ProblemsChanged() != v.cacheGen {
		v.cacheFindings()
		findings = true
	}
	return changed, gone, false, findings
}

// KnownDir reports whether the state directory dir was read whole and
// could be: its entries can then be read one by one (ReadEntries).
func (v *View) KnownDir(dir string) bool { return v.states.Known(dir) }

// ReadEntries reads the entries names of a state directory read whole
// before: the event path. It returns the addresses whose allocation
// changed.
func (v *View) ReadEntries(dir string, names map[string]bool) ([]netip.Addr, []statedir.Note) {
	return v.states.ReadNames(dir, names)
}

// TakeChanges returns the addresses given to another container and those
// released (with their last owners) since it was last called.
func (v *View) TakeChanges() (reused map[netip.Addr]bool, released map[netip.Addr]hostlocal.Owner) {
	return v.states.TakeChanges()
}

// Networks are the networks as last resolved.
func (v *View) Networks() []reconcile.Network { return v.nets }

// CNINetworks are the macvlan networks of both CNI sources, as last
// combined.
func (v *View) CNINetworks() []cni.Network { return v.cniNets }

// Discovery is what the last combining found: the networks, their
// attachments, followed and refused.
func (v *View) Discovery() cni.Discovery { return v.disco }

// Results are the addresses libcni's cache gives the followed attachments,
// by network (reconcile.Input.Results). The reconciler keeps the map:
// ApplyCaches changes it in place.
func (v *View) Results() map[string]map[netip.Addr]reconcile.Lease { return v.results }

// Names are the names of every network of the configuration directory and
// the caches, whatever its plugins (cni.Names).
func (v *View) Names() []string { return v.names }

// Resolved are what Resolve said of the networks.
func (v *View) Resolved() []reconcile.Finding { return v.found }

// Findings are what Resolve said of the networks and what is wrong with
// the CNI files and caches.
func (v *View) Findings() []reconcile.Finding { return slices.Concat(v.found, v.cniFound) }

// ConfFiles are the configuration directory's files as last read;
// ConfErr why it could not be read (nil when it could or does not exist),
// ConfMissing whether it does not exist.
func (v *View) ConfFiles() []cni.File { return v.confFiles }

// ConfErr is why the configuration directory could not be read when last
// tried, nil when it could.
func (v *View) ConfErr() error {
	if errors.Is(v.confErr, os.ErrNotExist) {
		return nil
	}
	return v.confErr
}

// ConfMissing reports whether the configuration directory did not exist
// when last read.
func (v *View) ConfMissing() bool { return errors.Is(v.confErr, os.ErrNotExist) }

// ConfProblems are what is wrong with the configuration directory's files
// as they are now (cni.Discover), including those whose networks are kept
// from before.
func (v *View) ConfProblems() []cni.Problem { return v.confProblems }

// CacheProblems are what is wrong with libcni's cache files and
// directories, and between them and the configuration directory.
func (v *View) CacheProblems() []cni.Problem {
	return slices.Concat(v.caches.Problems(), v.disco.Problems)
}

// Bad are the unusable entries of a state directory (at most
// statedir.MaxBadListed by name), and how many more there are.
func (v *View) Bad(dir string) ([]statedir.Bad, int) { return v.states.Bad(filepath.Clean(dir)) }
