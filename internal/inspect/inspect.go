// Package inspect takes one look at the node that changes nothing: what
// the daemon would find (the CNI networks, the state directories, the
// kernel) and what its next full pass would do. `flatnet status`, `flatnet
// check` and `flatnet teardown` are built on it, so they work whether the
// daemon runs or not.
package inspect

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/sd"
	"github.com/flatnet/flatnet/internal/statedir"
	"github.com/flatnet/flatnet/internal/view"
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
	// (nil when it can), GuardWhy why lan_guard could not be honoured, or
	// why the guard is not the one chosen (reconcile.GuardFor).
	Guard     reconcile.Guard
	FilterErr error
	ShimErr   error
	GuardWhy  string
	// Memory reports that the daemon's memory of the node (view.Memory)
	// was read from its runtime directory, so that the look keeps what
	// the daemon keeps; MemoryErr why it could not be.
	Memory    bool
	MemoryErr error
}

// Look reads the configuration's CNI networks, their state directories
// and the kernel, and plans without applying. The inputs are assembled as
// the daemon assembles them (view.View), with what the daemon knows from
// history (view.Memory, from its runtime directory) when it runs.
func Look(cfg config.Config, k *netlinkx.Kernel) (*Observation, error) {
	o, err := Assemble(cfg, k.Snapshot)
	if err != nil {
		return nil, err
	}
	o.FilterErr, o.ShimErr = netlinkx.ProbeFilter(), netlinkx.ProbeShim()
	kernel := reconcile.GuardKernel{Filter: o.FilterErr, Shim: o.ShimErr}
	o.Guard, o.GuardWhy = reconcile.ChooseGuard(cfg.LANGuard, kernel)
	if g, why := reconcile.GuardFor(o.Guard, cfg.LANGuard, kernel, o.Snap); why != "" {
		o.Guard, o.GuardWhy = g, why
	}
	o.Plan = reconcile.Compute(reconcile.Input{Networks: o.Networks, States: o.States, Results: o.Results, Snap: o.Snap, MachineID: sd.MachineID(), Guard: o.Guard})
	return o, nil
}

// Assemble is Look's reading of the node, the kernel's state taken with
// snapshot: everything but the LAN guard and the plan.
func Assemble(cfg config.Config, snapshot func() (*reconcile.Snapshot, error)) (*Observation, error) {
	o := &Observation{Bad: map[string][]statedir.Bad{}, StateErrs: map[string]error{}}
	v := view.New(cfg)
	o.Memory, o.MemoryErr = restore(v)
	a, err := v.Full(view.Fresh, snapshot, nil)
	if err != nil {
		return nil, err
	}
	o.CNIFiles, o.CNIDirErr, o.CNIDirMissing = v.ConfFiles(), v.ConfErr(), v.ConfMissing()
	o.CNIProblems, o.CacheProblems = v.ConfProblems(), v.CacheProblems()
	o.Disco, o.Results, o.CNI = v.Discovery(), v.Results(), v.CNINetworks()
	o.Snap, o.Networks, o.Resolve, o.States = a.Snap, a.Networks, v.Resolved(), a.States
	known := map[string]bool{}
	for dir, st := range a.States {
		known[filepath.Clean(dir)] = true
		if st.Err != nil {
			o.StateErrs[dir] = st.Err
		}
		if bad, _ := v.Bad(dir); len(bad) > 0 {
			o.Bad[dir] = bad
		}
	}
	// A directory named like any network of the files or the cache,
	// whatever its plugins, is that network's (cni.Names).
	for _, name := range v.Names() {
		known[filepath.Join(filepath.Clean(cfg.StateRoot), name)] = true
	}
	o.Unmatched, _ = statedir.FindUnmatched(filepath.Clean(cfg.StateRoot), known)
	return o, nil
}

// restore gives v the daemon's Memory, when the daemon recorded one.
func restore(v *view.View) (bool, error) {
	path := filepath.Join(sd.RuntimeDir(), view.MemoryFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	m, err := view.ParseMemory(b)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	v.Restore(m)
	return true, nil
}
