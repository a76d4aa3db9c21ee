package daemon

import (
	"errors"
	"os"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/statedir"
)

// Observation is one look at the node that changes nothing: what the
// daemon would find and what it would do. `flatnet status` and `flatnet
// check` are built on it, so they work whether the daemon runs or not.
type Observation struct {
	Networks    []reconcile.Network
	Plan        *reconcile.Plan
	Snap        *reconcile.Snapshot
	CNIFiles    []cni.File // the CNI config dir's files as read, for lint
	CNI         []cni.Network
	CNIProblems []cni.Problem
	CNIError    error                     // the CNI config dir could not be read
	CNIMissing  bool                      // the CNI config dir does not exist
	Bad         map[string][]statedir.Bad // unusable state-dir entries, by dir
	Findings    []reconcile.Finding       // from resolving the networks
	// Guard is the LAN guard the daemon would use with this configuration
	// on this kernel; FilterErr says why the kernel cannot filter a
	// master's egress (nil when it can), GuardWhy why lan_guard could not
	// be honoured.
	Guard     reconcile.Guard
	FilterErr error
	GuardWhy  string
}

// Observe reads the configuration's CNI networks, their state directories
// and the kernel, and plans without applying.
func Observe(cfg config.Config, k *netlinkx.Kernel) (*Observation, error) {
	o := &Observation{Bad: map[string][]statedir.Bad{}}
	files, err := cni.ReadDir(cfg.CNIConfDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		o.CNIError = err
	}
	o.CNIMissing = errors.Is(err, os.ErrNotExist)
	o.CNIFiles = files
	o.CNI, o.CNIProblems = cni.Discover(files)
	if o.Snap, err = k.Snapshot(); err != nil {
		return nil, err
	}
	o.Networks, o.Findings = reconcile.Resolve(cfg, o.CNI, o.Snap)
	states := map[string]reconcile.DirState{}
	for _, n := range o.Networks {
		allocs, bad, err := statedir.Read(n.StateDir)
		states[n.StateDir] = reconcile.DirState{Allocs: allocs, Err: err}
		if len(bad) > 0 {
			o.Bad[n.StateDir] = bad
		}
	}
	o.FilterErr = netlinkx.ProbeFilter()
	o.Guard, o.GuardWhy = reconcile.ChooseGuard(cfg.LANGuard, o.FilterErr == nil)
	o.Plan = reconcile.Compute(reconcile.Input{Networks: o.Networks, States: states, Snap: o.Snap, MachineID: machineID(), Guard: o.Guard})
	return o, nil
}
