package check

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/sd"
	"github.com/flatnet/flatnet/internal/sysconf"
)

// Env is where Gather looks. The zero value is the node itself.
type Env struct {
	// Root prefixes every path Gather reads ("" is "/"), so tests can
	// point it at a fixture tree.
	Root string
	// Systemctl runs systemctl with args; nil runs the real one, when
	// systemd is PID 1 and systemctl is installed.
	Systemctl func(args ...string) ([]byte, error)
}

// Gather fills in the facts about the node that Run needs beyond what the
// caller's look at the configuration and the kernel (f.Networks, f.Snap)
// gave: sysctls, macvlan support, boot time, state-file times,
// systemd-networkd, NetworkManager and the daemon. It only reads files
// under /proc, /sys, /etc, /run, /usr/lib and /lib, and runs `systemctl
// show`; a file it cannot read leaves its fact unknown.
func Gather(f *Facts, env Env) {
	g := gatherer{Root: sysconf.Root(env.Root), env: env}
	procs := g.processes()
	shims, existing := devicesOf(f)

	f.Sysctls = g.sysctls(existing)
	f.SysctlD = sysconf.SysctlD(g.DropIns("", "sysctl.d", "/etc/sysctl.conf"), shims, "arp_ignore")
	f.Macvlan = g.macvlan(f)
	if b, err := g.Read("proc/stat"); err == nil {
		f.BootTime, _ = sysconf.ParseBootTime(b)
	}
	f.StateFiles = map[string][]StateFile{}
	for _, n := range f.Networks {
		if n.StateDir != "" {
			f.StateFiles[n.StateDir] = g.stateFiles(n.StateDir)
		}
	}
	f.Networkd = g.networkd(f, procs, shims)
	f.NM = g.networkManager(f, procs, shims)
	f.Daemon = g.daemon(procs)
}

// devicesOf returns the shims the networks want and, of the devices the
// checks look at (the masters, the shims, and the default route's), those
// the snapshot holds.
func devicesOf(f *Facts) (shims, existing []string) {
	var masters []string
	for _, n := range f.Networks {
		if n.Master != "" && !slices.Contains(masters, n.Master) {
			masters = append(masters, n.Master)
		}
		if n.Master != "" && !slices.Contains(shims, n.Shim) {
			shims = append(shims, n.Shim)
		}
	}
	// The masters the CNI files name count too, usable or not: their
	// lint compares the pods' subnets with the master's.
	devices := slices.Clone(masters)
	for _, file := range f.CNIFiles {
		plugins, _ := macvlanPlugins(file.Name, file.Data)
		for _, p := range plugins {
			if p.Master != "" && !slices.Contains(devices, p.Master) {
				devices = append(devices, p.Master)
			}
		}
	}
	if f.Snap != nil {
		if d := f.Snap.DefaultRouteDev(); d != "" && !slices.Contains(devices, d) {
			devices = append(devices, d)
		}
	}
	if f.Snap != nil {
		for _, d := range append(devices, shims...) {
			if _, ok := f.Snap.Link(d); ok {
				existing = append(existing, d)
			}
		}
	}
	return shims, existing
}

// sysctls reads the IPv4 ARP and reverse-path sysctls of all, default
// and each of devs, by "<dev>/<key>".
func (g gatherer) sysctls(devs []string) map[string]string {
	out := map[string]string{}
	for _, dev := range append([]string{"all", "default"}, devs...) {
		for _, key := range []string{"arp_ignore", "arp_filter", "arp_announce", "rp_filter"} {
			if v, ok := g.ReadTrim("proc/sys/net/ipv4/conf", dev, key); ok {
				out[dev+"/"+key] = v
			}
		}
	}
	return out
}

// networkd reads whether systemd-networkd runs here and, when it does,
// whether it keeps foreign routes and whether it manages each shim.
func (g gatherer) networkd(f *Facts, procs procs, shims []string) Networkd {
	nd := Networkd{Running: procs.comm["systemd-network"], ManageForeignRoutes: true, Links: map[string]NetworkdLink{}}
	if !nd.Running {
		return nd
	}
	var confs []sysconf.ConfFile
	if main, ok := g.First("etc/systemd/networkd.conf", "run/systemd/networkd.conf", "usr/local/lib/systemd/networkd.conf", "usr/lib/systemd/networkd.conf"); ok {
		confs = append(confs, main)
	}
	confs = append(confs, g.DropIns("systemd", "networkd.conf.d", "")...)
	nd.ManageForeignRoutes, nd.ManageForeignRoutesFrom = sysconf.ManageForeignRoutes(confs)
	networks := g.NetworkFiles()
	for _, shim := range shims {
		nd.Links[shim] = g.networkdLink(f, networks, shim)
	}
	return nd
}

// networkdLink is networkd's state of shim: what networkd says of the
// link or, when it says nothing settled (no link, no state file, pending,
// initialized), what its .network files would make of a macvlan of that
// name.
func (g gatherer) networkdLink(f *Facts, networks []sysconf.ConfFile, shim string) NetworkdLink {
	l := NetworkdLink{}
	if f.Snap != nil {
		if link, ok := f.Snap.Link(shim); ok {
			if b, err := g.Read("run/systemd/netif/links/" + strconv.Itoa(link.Index)); err == nil {
				l.State, l.NetworkFile = sysconf.ParseNetifState(b)
			}
		}
	}
	if l.State == "" || l.State == "pending" || l.State == "initialized" {
		file, un, found := sysconf.NetworkdMatch(networks, shim, "macvlan")
		l = NetworkdLink{State: "unmanaged", NetworkFile: file, Predicted: true}
		if found && !un {
			l.State = "managed"
		}
	}
	return l
}

// networkManager reads whether NetworkManager runs here and, when it
// does, which shims it leaves alone and what says so: its configuration,
// or udev's NM_UNMANAGED on the link.
func (g gatherer) networkManager(f *Facts, procs procs, shims []string) NetworkManager {
	nm := NetworkManager{Running: procs.comm["NetworkManager"], Unmanaged: map[string]string{}}
	if !nm.Running {
		return nm
	}
	files := g.NMFiles()
	for _, shim := range shims {
		if by := sysconf.NMUnmanaged(files, shim, "macvlan"); by != "" {
			nm.Unmanaged[shim] = by
			continue
		}
		if f.Snap != nil {
			if link, ok := f.Snap.Link(shim); ok {
				if b, err := g.Read("run/udev/data/n" + strconv.Itoa(link.Index)); err == nil && bytes.Contains(b, []byte("E:NM_UNMANAGED=1")) {
					nm.Unmanaged[shim] = "udev NM_UNMANAGED=1"
				}
			}
		}
	}
	return nm
}

// daemon reads the `flatnet run` processes here and, under systemd, what
// systemctl says of flatnet.service and, while it is active, the digest of
// the configuration it loaded.
func (g gatherer) daemon(procs procs) Daemon {
	d := Daemon{PIDs: procs.flatnet, PIDsKnown: procs.known}
	systemctl := g.systemctl()
	if systemctl == nil {
		return d
	}
	d.Systemd = true
	out, err := systemctl("show", "flatnet.service", "-p", "LoadState,ActiveState,SubState,StatusText,MainPID")
	if err != nil {
		d.UnitErr = err
		return d
	}
	u := sysconf.ParseSystemctlShow(out)
	u.MainPIDHere = u.MainPID > 0 && g.sameNetns(u.MainPID, procs.self)
	d.Unit = u
	if u.ActiveState == "active" {
		if b, err := g.Read(strings.TrimPrefix(sd.LoadedConfig, "/")); err == nil {
			d.ConfigDigest, d.ConfigDigestKnown = sd.ParseLoadedConfig(b)
		}
	}
	return d
}

// systemctl is env.Systemctl, or else the real systemctl with a timeout
// when systemd is PID 1 and systemctl is installed; nil when there is
// none.
func (g gatherer) systemctl() func(args ...string) ([]byte, error) {
	comm, _ := g.ReadTrim("proc/1/comm")
	systemctl := g.env.Systemctl
	if systemctl == nil && comm == "systemd" {
		if p, err := exec.LookPath("systemctl"); err == nil {
			systemctl = func(args ...string) ([]byte, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return exec.CommandContext(ctx, p, args...).Output()
			}
		}
	}
	return systemctl
}

// gatherer reads files under env.Root.
type gatherer struct {
	sysconf.Root
	env Env
}

// macvlan works out the kernel's macvlan support.
func (g gatherer) macvlan(f *Facts) Support {
	if f.Snap != nil {
		for _, l := range f.Snap.Links {
			if l.Kind == "macvlan" {
				return Support{State: "in use", From: l.Name + " is a macvlan"}
			}
		}
	}
	if _, err := os.Stat(g.Path("sys/module/macvlan/initstate")); err == nil {
		return Support{State: "loaded", From: "/sys/module/macvlan"}
	}
	if b, err := g.Read("proc/modules"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(line, "macvlan ") {
				return Support{State: "loaded", From: "/proc/modules"}
			}
		}
	}
	rel, _ := g.ReadTrim("proc/sys/kernel/osrelease")
	modDir := filepath.Join("lib/modules", rel)
	if rel != "" {
		if b, err := g.Read(modDir, "modules.builtin"); err == nil && sysconf.HasModule(b) {
			return Support{State: "builtin", From: "/" + modDir + "/modules.builtin"}
		}
		if b, err := g.Read(modDir, "modules.dep"); err == nil {
			if sysconf.HasModule(b) {
				return Support{State: "module", From: "/" + modDir + "/modules.dep"}
			}
		}
	}
	cfg, from := g.KernelConfig(rel)
	switch {
	case cfg == nil:
	case sysconf.KernelConfigMacvlan(cfg) == "y":
		return Support{State: "builtin", From: from + ": CONFIG_MACVLAN=y"}
	case sysconf.KernelConfigMacvlan(cfg) == "m":
		if _, err := g.Read(modDir, "modules.dep"); err == nil {
			return Support{State: "absent", From: from + ": CONFIG_MACVLAN=m, but /" + modDir + " has no macvlan.ko"}
		}
		return Support{State: "module", From: from + ": CONFIG_MACVLAN=m"}
	default:
		return Support{State: "absent", From: from + ": CONFIG_MACVLAN is not set"}
	}
	return Support{}
}

// stateFiles lists the allocation files of a state directory.
func (g gatherer) stateFiles(dir string) []StateFile {
	ents, err := os.ReadDir(g.Path(dir))
	if err != nil {
		return nil
	}
	var out []StateFile
	for _, e := range ents {
		ip, err := hostlocal.ParseName(e.Name())
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, StateFile{IP: ip, ModTime: info.ModTime()})
	}
	slices.SortFunc(out, func(a, b StateFile) int { return a.IP.Compare(b.IP) })
	return out
}

// procs is what a look at the processes found.
type procs struct {
	self    string          // this process's network namespace
	comm    map[string]bool // process names seen in this network namespace
	flatnet []int           // `flatnet run` processes in this network namespace
	known   bool            // /proc could be listed
}

// processes lists the processes that share this network namespace. A
// process whose namespace cannot be read counts as sharing it.
func (g gatherer) processes() procs {
	p := procs{comm: map[string]bool{}}
	p.self, _ = os.Readlink(g.Path("proc/self/ns/net"))
	ents, err := os.ReadDir(g.Path("proc"))
	if err != nil {
		return p
	}
	p.known = true
	me := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == me {
			continue
		}
		if !g.sameNetns(pid, p.self) {
			continue
		}
		comm, _ := g.ReadTrim("proc", e.Name(), "comm")
		p.comm[comm] = true
		if comm == "flatnet" {
			if cmdline, err := g.Read("proc", e.Name(), "cmdline"); err == nil && sysconf.IsFlatnetRun(cmdline) {
				p.flatnet = append(p.flatnet, pid)
			}
		}
	}
	slices.Sort(p.flatnet)
	return p
}

// sameNetns reports whether pid is in the network namespace self names.
func (g gatherer) sameNetns(pid int, self string) bool {
	ns, err := os.Readlink(g.Path("proc", strconv.Itoa(pid), "ns/net"))
	return err != nil || self == "" || ns == self
}

// FlatnetPIDs returns the `flatnet run` processes in this network
// namespace.
func FlatnetPIDs(env Env) []int {
	return gatherer{Root: sysconf.Root(env.Root), env: env}.processes().flatnet
}
