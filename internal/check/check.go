// Package check is `flatnet check`: it diagnoses a node, its CNI
// configuration and flatnet's own state, and says for every problem what is
// wrong and how to fix it.
//
// Run is pure: it takes [Facts] (one look at the configuration, the CNI
// files, the kernel, a few sysctls and service states) and returns one
// [Result] per check, each ok, warn or fail, with the fix for every warn and
// fail. [Gather] is the thin adapter that collects the facts Run needs from
// /proc, /sys, /etc, /run and `systemctl show`; it reads and never changes
// anything.
//
// What the checks know about the kernel, each proved in a namespace lab:
//
//   - The shim has no address. A pod reaching the node on-link ARPs for the
//     node's address and only the shim hears it (macvlan never passes
//     traffic between a child and its parent), so the shim must answer for
//     an address it does not hold. arp_ignore 1, 2 and 8 forbid that; the
//     kernel applies the larger of net.ipv4.conf.all.arp_ignore and the
//     shim's own value, so either one breaks pod→node connections (the node
//     can still reach the pods: they learn its MAC from its own ARP
//     requests). Values 0 and 3 (and the reserved 4–7) answer. arp_ignore
//     on the master does not matter.
//   - rp_filter, strict or loose, never drops what pods send to the shim:
//     the reverse path to every pod is its /32 route through the shim. It
//     matters when pods reach the node through their gateway instead (their
//     subnet does not hold the node's address): the packets then arrive on
//     the master while the route back is the shim, and strict rp_filter
//     (the larger of all and the master's value is 1) drops them. Loose (2)
//     lets them through.
//   - ARP flux: a shim with arp_filter 0 and rp_filter 0 answers the LAN's
//     ARP requests for the node's addresses with its own MAC. arp_filter 1
//     (what flatnet sets) or any rp_filter on the shim stops it.
package check

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/inspect"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/sysconf"
	"github.com/flatnet/flatnet/internal/text"
)

// Status is a check's verdict.
type Status string

// The verdicts. Fail means host↔pod traffic is broken or will break; warn
// means something is off that an operator should look at; every warn and
// fail comes with a fix.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is one check: one line of `flatnet check`.
type Result struct {
	// Name says what was checked: a kind, then the subject ("shim
	// eno1.host", "routes default").
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail is what was found, as an operator reads it.
	Detail string `json:"detail"`
	// Fix is a command or a configuration change; set for warn and fail.
	Fix string `json:"fix,omitempty"`
}

// Facts is everything Run decides from.
type Facts struct {
	// ConfigPath is the configuration file asked for; ConfigErr is set when
	// it could not be read or parsed, and Config then holds the defaults the
	// other checks run with.
	ConfigPath string
	ConfigErr  error
	Config     config.Config

	// Observation is one look at the node: the CNI files and networks,
	// the kernel's snapshot, the networks resolved, what a full pass would
	// do, the LAN guard. Nil fields when KernelErr is set.
	inspect.Observation
	// KernelErr is set when the kernel's links and routes could not be
	// read; the node's checks are then skipped.
	KernelErr error

	// Sysctls holds IPv4 per-interface sysctls by "<dev>/<key>":
	// "all/arp_ignore", "eno1.host/arp_filter". A missing key is unknown.
	Sysctls map[string]string
	// SysctlD holds what the sysctl.d files set for single interfaces, by
	// "<dev>/<key>"; systemd applies those whenever the interface appears.
	SysctlD map[string]int
	Macvlan Support
	// BootTime is when the node booted; zero when unknown.
	BootTime time.Time
	// StateFiles are the allocation files of each state directory, by
	// directory, with their modification times.
	StateFiles map[string][]StateFile
	Networkd   Networkd
	NM         NetworkManager
	Daemon     Daemon
}

// Support says how the kernel provides macvlan.
type Support struct {
	// State is "loaded" (the module is loaded), "builtin", "module" (can be
	// loaded), "in use" (a macvlan link exists), "absent", or "" (unknown).
	State string
	// From names where that was read.
	From string
}

// StateFile is one allocation file of a state directory.
type StateFile struct {
	IP      netip.Addr
	ModTime time.Time
}

// Networkd is systemd-networkd as it bears on the shims.
type Networkd struct {
	// Running is whether systemd-networkd runs in this network namespace.
	Running bool
	// ManageForeignRoutes is its networkd.conf setting (default yes);
	// ManageForeignRoutesFrom the file that set it ("" for the default).
	ManageForeignRoutes     bool
	ManageForeignRoutesFrom string
	// Links is how networkd treats each shim, by name.
	Links map[string]NetworkdLink
}

// NetworkdLink is networkd's view of one link.
type NetworkdLink struct {
	// State is its ADMIN_STATE ("unmanaged", "configured", "configuring",
	// "failed", …) or, when Predicted, "unmanaged" or "managed" as worked
	// out from the .network files.
	State string
	// NetworkFile is the .network file that matches it, if any.
	NetworkFile string
	Predicted   bool
}

// NetworkManager is NetworkManager as it bears on the shims.
type NetworkManager struct {
	// Running is whether NetworkManager runs in this network namespace.
	Running bool
	// Unmanaged holds, for each shim its configuration leaves alone, the
	// setting that does it ("/usr/lib/NetworkManager/conf.d/flatnet.conf
	// [device-flatnet-shim]").
	Unmanaged map[string]string
}

// Daemon is what is known of the flatnet daemon.
type Daemon struct {
	// Systemd is whether systemd is PID 1 and systemctl can be run.
	Systemd bool
	// Unit is flatnet.service as `systemctl show` describes it; nil when
	// not asked. UnitErr is why asking failed.
	Unit    *sysconf.Unit
	UnitErr error
	// PIDs are the `flatnet run` processes in this network namespace.
	PIDs []int
	// PIDsKnown is false when the processes could not be listed.
	PIDsKnown bool
	// ConfigDigest is the digest of the configuration the unit's daemon
	// runs with (sd.LoadedConfig; "" for the built-in defaults), when
	// ConfigDigestKnown.
	ConfigDigest      string
	ConfigDigestKnown bool
}

// Run runs every check on f, in the order an operator reads them: the
// configuration, the CNI networks, the kernel, each master, shim and
// network, the sysctls, the network managers and the daemon.
func Run(f Facts) []Result {
	c := &checker{f: f}
	c.config()
	c.cniDir()
	c.cniLint()
	if f.KernelErr != nil || f.Snap == nil || f.Plan == nil {
		c.add(Fail, "kernel", fmt.Sprintf("cannot read the node's links and routes: %v", cmp.Or[error](f.KernelErr, errUnknown)),
			"run flatnet check as root on the node itself")
	} else {
		c.networks()
		c.cniCache()
		c.unmatched()
		c.macvlan()
		c.masters()
		c.shims()
		c.lanGuard()
		c.filterTables()
		c.arpIgnore()
		c.ndp()
		c.rpFilter()
		c.routes()
		c.foreign()
		c.allocations()
		c.attachments()
		c.pending()
		c.networkd()
		c.networkManager()
	}
	c.daemon()
	return c.out
}

var errUnknown = errors.New("unknown error")

// Counts returns how many results have each status.
func Counts(rs []Result) (ok, warn, fail int) {
	for _, r := range rs {
		switch r.Status {
		case OK:
			ok++
		case Warn:
			warn++
		case Fail:
			fail++
		}
	}
	return ok, warn, fail
}

// checker accumulates results.
type checker struct {
	f   Facts
	out []Result
	// macvlanConfigs counts the macvlan plugins in the CNI files, usable
	// or not.
	macvlanConfigs int
	// tables holds the Dirs of the FindFilter findings a lan guard line
	// reported (tableReported).
	tables map[string]bool
}

func (c *checker) add(s Status, name, detail, fix string) {
	if s == OK {
		fix = ""
	}
	c.out = append(c.out, Result{Name: name, Status: s, Detail: detail, Fix: fix})
}

// config checks the configuration file.
func (c *checker) config() {
	f := c.f
	path := cmp.Or(f.ConfigPath, config.DefaultPath)
	if errors.Is(f.ConfigErr, fs.ErrNotExist) {
		c.add(Fail, "config", f.ConfigErr.Error()+" (the other checks use the built-in defaults)",
			fmt.Sprintf("give --config the path of an existing file, or leave it out to use %s (or the defaults, when that does not exist)", config.DefaultPath))
		return
	}
	if f.ConfigErr != nil {
		// One result per problem: config.Parse joins one error per line.
		for _, line := range strings.Split(f.ConfigErr.Error(), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			c.add(Fail, "config", line+" (the other checks use the built-in defaults)",
				fmt.Sprintf("correct %s as the message says, then `systemctl reload flatnet`; the running daemon keeps its old configuration until then", path))
		}
		return
	}
	if f.Config.Path == "" {
		c.add(OK, "config", fmt.Sprintf("%s not present: built-in defaults (cni_conf_dir %s, state_root %s)", path, f.Config.CNIConfDir, f.Config.StateRoot), "")
		return
	}
	what := fmt.Sprintf("networks discovered from %s and libcni's cache", f.Config.CNIConfDir)
	if n := len(f.Config.Networks); n > 0 {
		what += " with " + text.Plural(n, "[[network]] table", "[[network]] tables")
	}
	if !f.Config.Discover {
		what = text.Plural(len(f.Config.Networks), "[[network]] table", "[[network]] tables") + " (discover = false)"
	}
	if c.configNotLoaded() {
		c.add(Warn, "config", fmt.Sprintf("%s is valid but not what flatnet runs with: it changed since flatnet loaded it", f.Config.Path),
			"systemctl reload flatnet applies it (journalctl -u flatnet says if it is refused)")
		return
	}
	c.add(OK, "config", fmt.Sprintf("%s is valid: %s, on_stop %s, resync every %s", f.Config.Path, what, f.Config.OnStop, shortDuration(f.Config.ResyncInterval)), "")
}

// configNotLoaded reports whether the unit's daemon runs with another
// configuration than the valid one on disk: one edited but not reloaded.
func (c *checker) configNotLoaded() bool {
	d := c.f.Daemon
	return c.f.ConfigErr == nil && d.ConfigDigestKnown && d.ConfigDigest != c.f.Config.Digest
}

// networks describes each network flatnet mirrors and reports those it
// cannot.
func (c *checker) networks() {
	f := c.f
	if len(f.Networks) == 0 && len(f.Resolve) == 0 && c.macvlanConfigs == 0 && !f.CNIDirMissing && f.CNIDirErr == nil {
		c.add(Warn, "networks", fmt.Sprintf("nothing to mirror: no macvlan network in %s, in libcni's cache (%s) or in the configuration", f.Config.CNIConfDir, strings.Join(f.Config.CNICacheDirs, ", ")),
			fmt.Sprintf("put the pods' macvlan conflist in %s, or point cni_conf_dir in %s at the directory that holds it", f.Config.CNIConfDir, cmp.Or(f.ConfigPath, config.DefaultPath)))
	}
	for _, n := range f.Networks {
		var st reconcile.NetStatus
		for _, s := range f.Plan.Networks {
			if s.Name == n.Name {
				st = s
			}
		}
		where := fmt.Sprintf("pods %s, state dir %s", describeRanges(n.Ranges), n.StateDir)
		if n.StateDir == "" {
			where = fmt.Sprintf("IPAM %s, addresses from libcni's cached results", cmp.Or(n.IPAM, "none"))
		}
		c.add(OK, "network "+n.Name, fmt.Sprintf("from %s: master %s, shim %s, %s, %s",
			n.Source, cmp.Or(n.Master, "(none yet)"), n.Shim, where, text.Plural(st.Allocated, "allocation", "allocations")), "")
	}
	// A master set in flatnet.toml must be the one the pods are on.
	for _, cn := range f.Config.Networks {
		for _, n := range f.CNI {
			if n.Name == cn.Name && cn.Master != "" && n.Master != "" && n.Master != cn.Master {
				c.add(Fail, "network "+cn.Name, fmt.Sprintf("flatnet.toml puts network %s's shim on %s, but its CNI config (%s) puts the pods on %s: the shim reaches only pods of its own master", cn.Name, cn.Master, n.File, n.Master),
					fmt.Sprintf(`remove master from the [[network]] %q of %s (it defaults to the CNI config's), or set it to %q`, cn.Name, cmp.Or(f.Config.Path, config.DefaultPath), n.Master))
			}
		}
	}
	for _, r := range f.Resolve {
		switch r.Kind {
		case reconcile.FindNoRanges:
			c.add(Fail, "network "+r.Network, r.Msg,
				fmt.Sprintf(`add ranges = ["<pod CIDR>"] to the [[network]] named %q in %s, or define the network in %s`, r.Network, cmp.Or(f.Config.Path, config.DefaultPath), f.Config.CNIConfDir))
		case reconcile.FindShimClash:
			c.add(Fail, "network "+r.Network, r.Msg,
				fmt.Sprintf(`set shim = "<another name>" for network %q in a [[network]] table of %s`, r.Network, cmp.Or(f.Config.Path, config.DefaultPath)))
		case reconcile.FindMode:
			if slices.ContainsFunc(f.CNI, func(n cni.Network) bool { return n.Name == r.Network }) {
				break // the CNI lint line of its file names it with its fix
			}
			c.add(Fail, "network "+r.Network, r.Msg,
				`set "mode": "bridge" (or leave "mode" out) in the network's NetworkAttachmentDefinition, then recreate its pods so they are made again in bridge mode`)
		case reconcile.FindMaster:
			c.add(OK, "network "+r.Network, r.Msg, "")
		case reconcile.FindTrust:
			c.add(Warn, "network "+r.Network, r.Msg,
				fmt.Sprintf(`give the network a name and a state directory (ipam "dataDir") of its own in its NetworkAttachmentDefinition; or, if root means this node to mirror it, describe it in a [[network]] table of %s`, cmp.Or(f.Config.Path, config.DefaultPath)))
		default:
			c.add(Warn, "network "+r.Network, r.Msg, "see the message")
		}
	}
}

// cniCache reports what is wrong with libcni's cache entries: an
// attachment flatnet cannot follow, pods made with another configuration
// than the one that wins, entries that cannot be used.
func (c *checker) cniCache() {
	for _, p := range c.f.CacheProblems {
		name := "cni cache " + filepath.Base(p.File)
		var conflict *cni.ConflictError
		switch {
		case errors.Is(p.Err, cni.ErrUnfollowable):
			c.add(Warn, name, p.Err.Error()+": the node cannot reach that pod through flatnet",
				`correct the network's NetworkAttachmentDefinition (or conflist) as the message says, or route its pods by hand`)
		case errors.As(p.Err, &conflict):
			c.add(Warn, "cni cache "+conflict.Network, p.Err.Error(),
				"recreate those pods so they take the configuration in use, or make the configurations agree; two NetworkAttachmentDefinitions of one network name: rename one")
		case errors.Is(p.Err, cni.ErrNameTaken):
			c.add(Warn, name, p.Err.Error(),
				"the NetworkAttachmentDefinition must name its network (its config's \"name\") differently from the networks of "+c.f.Config.CNIConfDir)
		default:
			c.add(Warn, name, p.Error()+": skipped", fmt.Sprintf("nothing flatnet needs; libcni writes no such file, so it can be removed: rm %s", p.File))
		}
	}
}

// unmatched fails for each state directory holding allocations that no
// network flatnet knows explains: pods the node cannot reach, which would
// otherwise go unseen.
func (c *checker) unmatched() {
	f := c.f
	for _, u := range f.Unmatched {
		net := filepath.Base(u.Dir)
		c.add(Fail, "unmatched "+net, fmt.Sprintf("%s holds %s, but flatnet knows no network %s: neither %s nor libcni's cache (%s) defines it, so the node cannot reach those pods",
			u.Dir, text.Plural(u.Allocated, "allocation", "allocations"), net, f.Config.CNIConfDir, strings.Join(f.Config.CNICacheDirs, ", ")),
			fmt.Sprintf(`tell flatnet where the network is defined (cni_conf_dir, cni_cache_dirs), or describe it in %s: [[network]] name = %q, master = "<NIC>", ranges = ["<pod CIDR>"], then systemctl reload flatnet; if no pod holds those addresses any more, remove %s`,
				cmp.Or(f.Config.Path, config.DefaultPath), net, u.Dir))
	}
}

// describeRanges prints ranges as "192.168.1.2-192.168.1.254 of 192.168.0.0/16".
func describeRanges(rs []hostlocal.Range) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%s-%s of %s", r.Start, r.End, r.Subnet))
	}
	if len(s) == 0 {
		return "(no ranges)"
	}
	return strings.Join(s, ", ")
}

// shortDuration prints d as an operator writes it: "5m", not "5m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
