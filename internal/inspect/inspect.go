// Package inspect takes one look at the node that changes nothing: what
// the daemon would find (the CNI networks, the state directories, the
// kernel) and what its next full pass would do. `flatnet status`, `flatnet
// check` and `flatnet teardown` are built on it, so they work whether the
// daemon runs or not.
package inspect

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/sd"
	"github.com/flatnet/flatnet/internal/statedir"
)

// Observation is one look at the node.
type Observation struct {
	// CNIFiles are the CNI configuration directory's files as read;
	// CNIDirErr is set when it exists but cannot be read, CNIDirMissing
	// when it does not exist. CNI and CNIProblems are what discovery made
	// of the files.
	CNIFiles      []cni.File
	CNIDirErr     error
	CNIDirMissing bool
	CNI           []cni.Network
	CNIProblems   []cni.Problem
	// CacheProblems are what was wrong with libcni's cache entries, or
	// between them and the configuration directory.
	CacheProblems []cni.Problem
	// Unmatched are the state directories holding allocations that no
	// known network explains.
	Unmatched []statedir.Unmatched

	// Disco is what discovery made of the files and the caches: the
	// attachments of each network (followed and refused), those whose
	// network namespace is gone among them.
	Disco cni.Discovery
	// States are the state directories as read, by path; Results the
	// addresses libcni's cache gives the networks' live attachments, by
	// network (reconcile.Input).
	States  map[string]reconcile.DirState
	Results map[string]map[netip.Addr]reconcile.Lease

	Snap *reconcile.Snapshot
	// Networks and Resolve are what reconcile.Resolve made of the
	// configuration; Plan is what a full pass would do now.
	Networks []reconcile.Network
	Resolve  []reconcile.Finding
	Plan     *reconcile.Plan
	// Bad are the unusable entries of each state directory; StateErrs why
	// a state directory could not be read (its network's routes are
	// held), by directory.
	Bad       map[string][]statedir.Bad
	StateErrs map[string]error
	// Guard is the LAN guard the daemon would use with this configuration
	// on this kernel; FilterErr says why the kernel cannot filter a
	// master's egress, ShimErr why it cannot keep the shim guard's rules
	// (nil when it can), GuardWhy why lan_guard could not be honoured.
	Guard     reconcile.Guard
	FilterErr error
	ShimErr   error
	GuardWhy  string
}

// Look reads the configuration's CNI networks, their state directories
// and the kernel, and plans without applying.
func Look(cfg config.Config, k *netlinkx.Kernel) (*Observation, error) {
	o := &Observation{Bad: map[string][]statedir.Bad{}, StateErrs: map[string]error{}}
	files, err := cni.ReadDir(cfg.CNIConfDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		o.CNIDirErr = err
	}
	o.CNIDirMissing = errors.Is(err, os.ErrNotExist)
	o.CNIFiles = files
	_, o.CNIProblems = cni.Discover(files)
	var cache []cni.CacheFile
	for _, dir := range cfg.CNICacheDirs {
		fs, err := cni.ReadCache(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			o.CacheProblems = append(o.CacheProblems, cni.Problem{File: dir, Err: err})
		}
		cache = append(cache, fs...)
	}
	all := cni.DiscoverAll(files, cache)
	o.Disco, o.Results = all, reconcile.Results(all)
	o.CNI = all.Networks
	for _, p := range all.Problems {
		if p.File != "" && filepath.IsAbs(p.File) || errors.Is(p.Err, cni.ErrConflict) || errors.Is(p.Err, cni.ErrCacheConflict) {
			o.CacheProblems = append(o.CacheProblems, p)
		}
	}
	if o.Snap, err = k.Snapshot(); err != nil {
		return nil, err
	}
	o.Networks, o.Resolve = reconcile.Resolve(cfg, all, o.Snap)
	states := map[string]reconcile.DirState{}
	o.States = states
	known := map[string]bool{}
	for _, n := range o.Networks {
		if n.StateDir == "" {
			continue // its IPAM keeps nothing on the node
		}
		known[filepath.Clean(n.StateDir)] = true
		allocs, bad, err := statedir.Read(n.StateDir)
		states[n.StateDir] = reconcile.DirState{Allocs: allocs, Err: err}
		if err != nil {
			o.StateErrs[n.StateDir] = err
		}
		if len(bad) > 0 {
			o.Bad[n.StateDir] = bad
		}
	}
	// A directory named like any network of the files or the cache,
	// whatever its plugins, is that network's (cni.Names).
	for _, name := range all.Names {
		known[filepath.Join(filepath.Clean(cfg.StateRoot), name)] = true
	}
	o.Unmatched, _ = statedir.FindUnmatched(filepath.Clean(cfg.StateRoot), known)
	o.FilterErr, o.ShimErr = netlinkx.ProbeFilter(), netlinkx.ProbeShim()
	o.Guard, o.GuardWhy = reconcile.ChooseGuard(cfg.LANGuard, reconcile.GuardKernel{Filter: o.FilterErr, Shim: o.ShimErr})
	o.Plan = reconcile.Compute(reconcile.Input{Networks: o.Networks, States: states, Results: o.Results, Snap: o.Snap, MachineID: sd.MachineID(), Guard: o.Guard})
	return o, nil
}
