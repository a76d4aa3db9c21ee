//go:build integration

package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// The CRI tests: pods made by containerd's CRI plugin and driven with
// crictl, as kubelet drives them (lab.StartCRI), on the three IPAMs a
// macvlan network of a node may have. host-local's pods are also in its
// state files; static and dhcp pods are known only from libcni's cache
// entry (its "result"), which is where flatnet must learn them.
//
// Each test checks the lab first (the pod's address, the LAN reaching the
// pod, the cache entry), then flatnet in subtests, so that a failure
// names what flatnet did not do: "routed" (a proto 97 route through the
// shim, pings both ways), "kept across SIGKILL" (the route stays while
// flatnet is dead and is never deleted or changed by the new process) and
// "unrouted after stopp".

var (
	criToolsOnce        sync.Once
	crictlBin, pauseBin string
	criToolsErr         error
)

// needCRI returns crictl, pinned in internal/dev/tools.mod, and the pause
// program (internal/dev/pause, static), built once per run next to the
// flatnet binary. Where a lab cannot run containerd, the test is skipped
// (failed under CI).
func needCRI(t testing.TB) (crictl, pause string) {
	t.Helper()
	needFlatnet(t)
	lab.RequireCRI(t)
	criToolsOnce.Do(func() {
		dir := filepath.Dir(flatnetBin)
		root := moduleRoot()
		crictlBin = filepath.Join(dir, "crictl")
		pauseBin = filepath.Join(dir, "pause")
		for _, argv := range [][]string{
			{"build", "-modfile=" + filepath.Join(root, "internal/dev/tools.mod"), "-o", crictlBin, "sigs.k8s.io/cri-tools/cmd/crictl"},
			{"build", "-trimpath", "-ldflags=-s -w", "-o", pauseBin, "./internal/dev/pause"},
		} {
			cmd := exec.Command(goTool(), argv...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				criToolsErr = fmt.Errorf("go %s: %w\n%s", strings.Join(argv, " "), err, out)
				return
			}
		}
	})
	if criToolsErr != nil {
		t.Fatal(criToolsErr)
	}
	return crictlBin, pauseBin
}

// goTool is the go command: on the PATH, else in $GOROOT/bin.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// startCRI starts the lab's containerd, stopped when the test ends (before
// the lab is closed); its log's end is shown if the test failed.
func startCRI(t testing.TB, l *lab.Lab, o lab.CRIOptions) *lab.CRI {
	t.Helper()
	o.Crictl, o.Pause = needCRI(t)
	c, err := l.StartCRI(o)
	if err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	t.Logf("containerd started (pid %d, snapshotter %s), log %s", c.Proc.PID, c.Snapshotter, c.Proc.LogPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log (%s), last lines:\n%s", c.Proc.LogPath, lastLines(c.Proc.Log(), 40))
			if c.DHCPLog != "" {
				b, _ := os.ReadFile(c.DHCPLog)
				t.Logf("dhcp daemon log (%s):\n%s", c.DHCPLog, lastLines(string(b), 40))
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("stopping containerd: %v", err)
		}
	})
	return c
}

// lastLines is the end of a log.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// useConfList replaces the lab's conflist with conf (network name) and
// waits until the CRI has loaded it: it uses the first conflist of its
// directory only.
func useConfList(t testing.TB, l *lab.Lab, c *lab.CRI, name, conf string) {
	t.Helper()
	if err := l.RemoveConfList(l.Opts.Network); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(filepath.Join(l.CNIConfDir, "00-"+name+".conflist"), []byte(conf)); err != nil {
		t.Fatal(err)
	}
	criLoads(t, c, name)
}

// criLoads waits until the CRI has loaded the network name.
func criLoads(t testing.TB, c *lab.CRI, name string) {
	t.Helper()
	waitFor(t, 30*time.Second, "the CRI loads network "+name, func() error {
		nets, err := c.Networks()
		if err == nil && !slices.Contains(nets, name) {
			err = fmt.Errorf("the CRI has %v", nets)
		}
		return err
	})
}

// runPod runs a pod through crictl.
func runPod(t testing.TB, c *lab.CRI, name string) *lab.CRIPod {
	t.Helper()
	p, err := c.RunPod(name)
	if err != nil {
		t.Fatalf("crictl runp %s: %v", name, err)
	}
	t.Logf("pod %s: %s (sandbox %.12s…, netns %s)", name, p.IP, p.ID, p.NetNS)
	return p
}

// podFreshPings is freshPings from a pod of the CRI: its neighbour table
// emptied first, it pings ip.
func podFreshPings(c *lab.CRI, p *lab.CRIPod, ip netip.Addr) func() error {
	return func() error {
		if _, err := c.PodExec(p, "ip", "neigh", "flush", "all"); err != nil {
			return err
		}
		return c.PodPing(p, ip)
	}
}

// cachedWith is a waitFor condition: libcni's cache has the pod's entry
// for network, whose result holds the pod's address.
func cachedWith(l *lab.Lab, network string, p *lab.CRIPod) func() error {
	return func() error {
		e, err := l.ReadCacheEntry(network, p.ID, "eth0")
		if err != nil {
			return err
		}
		ips, err := lab.ResultIPs(e.Result)
		if err != nil {
			return err
		}
		for _, a := range ips {
			if a.Addr() == p.IP {
				return nil
			}
		}
		return fmt.Errorf("%s: result's addresses %v, not %s", e.Path, ips, p.IP)
	}
}

// uncached is a waitFor condition: libcni's cache has no entry of the pod.
func uncached(l *lab.Lab, network string, p *lab.CRIPod) func() error {
	return func() error {
		e, err := l.ReadCacheEntry(network, p.ID, "eth0")
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("%s is still there", e.Path)
	}
}

// criCase is one IPAM of the CRI tests.
type criCase struct {
	// network is the CNI network's name.
	network string
	// conf makes its conflist, given the lab and its runtime (with
	// whatever the network needs running); nil keeps the lab's own
	// (host-local).
	conf func(l *lab.Lab, c *lab.CRI) string
	// opts are the runtime's options.
	opts lab.CRIOptions
	// address checks the IPAM's address of the pod.
	address func(t *testing.T, l *lab.Lab, p *lab.CRIPod)
	// released checks what the IPAM does after crictl stopp, if anything.
	released func(t *testing.T, l *lab.Lab, p *lab.CRIPod)
}

// runCRICase builds a lab with its containerd, the case's network and
// flatnet, runs one pod through crictl and checks the lab, then flatnet
// (see the top of this file); crictl stopp and rmp end the pod.
func runCRICase(t *testing.T, cc criCase) {
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	c := startCRI(t, l, cc.opts)
	if cc.conf != nil {
		useConfList(t, l, c, cc.network, cc.conf(l, c))
	} else {
		criLoads(t, c, cc.network)
	}
	fn := startFlatnet(t, l, "")
	p := runPod(t, c, "web")

	// The lab: the IPAM's address, the LAN reaches the pod, libcni's cache
	// explains it.
	cc.address(t, l, p)
	waitFor(t, 15*time.Second, "the LAN gateway pings the pod", pings(l, l.LAN, p.IP))
	waitFor(t, 15*time.Second, "libcni's cache entry of the pod", cachedWith(l, cc.network, p))

	shim := l.Master + ".host"
	t.Run("routed", func(t *testing.T) {
		waitFor(t, 15*time.Second, "flatnet routes the pod through the shim", routedVia(l, p.IP, shim))
		waitFor(t, 15*time.Second, "the node pings the pod", freshPings(l, l.Node, p.IP))
		waitFor(t, 15*time.Second, "the pod pings the node", podFreshPings(c, p, l.NodeIP))
	})

	// SIGKILL, then a new flatnet: the route must stay all along.
	w, err := l.WatchRoutes(l.Node)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn.Stop(syscall.SIGKILL); err == nil {
		t.Fatal("flatnet exited cleanly on SIGKILL")
	}
	afterKill := routedVia(l, p.IP, shim)()
	fn = launchFlatnet(t, l)
	waitLog(t, fn, "msg=reconciled", 15*time.Second) // its first pass is done
	t.Run("kept across SIGKILL", func(t *testing.T) {
		if afterKill != nil {
			t.Errorf("right after flatnet's SIGKILL: %v", afterKill)
		}
		waitFor(t, 15*time.Second, "the pod routed after the restart", routedVia(l, p.IP, shim))
		waitFor(t, 15*time.Second, "the node pings the pod after the restart", freshPings(l, l.Node, p.IP))
		waitFor(t, 15*time.Second, "the pod pings the node after the restart", podFreshPings(c, p, l.NodeIP))
		for _, e := range w.Events() {
			if e.Dst == netip.PrefixFrom(p.IP, 32) {
				t.Errorf("the pod's route changed across the restart: %v", e)
			}
		}
	})
	if err := w.Close(); err != nil {
		t.Error(err)
	}

	beforeStop := routedVia(l, p.IP, shim)()
	if err := c.StopPod(p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "crictl stopp removes the cache entry", uncached(l, cc.network, p))
	if cc.released != nil {
		cc.released(t, l, p)
	}
	t.Run("unrouted after stopp", func(t *testing.T) {
		if beforeStop != nil {
			t.Errorf("no route to take away: before crictl stopp, %v", beforeStop)
		}
		waitFor(t, 15*time.Second, "crictl stopp takes the pod's route", notRouted(l, p.IP.String()))
	})
	if err := c.RemovePod(p); err != nil {
		t.Fatal(err)
	}
	running(t, fn)
}

// TestCRIHostLocal: the lab's own network (macvlan with host-local, the
// seed's conflist), a pod made by containerd through crictl: flatnet
// mirrors it from host-local's state file.
func TestCRIHostLocal(t *testing.T) {
	runCRICase(t, criCase{
		network: "default",
		address: func(t *testing.T, l *lab.Lab, p *lab.CRIPod) {
			r := lab.SeedRange()
			if p.IP.Less(r.RangeStart) || r.RangeEnd.Less(p.IP) {
				t.Fatalf("the pod's address %s is not of host-local's range %s–%s", p.IP, r.RangeStart, r.RangeEnd)
			}
			if _, err := os.Stat(filepath.Join(l.StateDir(), p.IP.String())); err != nil {
				t.Fatalf("host-local's allocation: %v", err)
			}
		},
		released: func(t *testing.T, l *lab.Lab, p *lab.CRIPod) {
			waitFor(t, 15*time.Second, "host-local releases the address", func() error {
				_, err := os.Stat(filepath.Join(l.StateDir(), p.IP.String()))
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return fmt.Errorf("allocation still there (%v)", err)
			})
		},
	})
}

// staticAddr is TestCRIStatic's pod address, on the LAN outside every
// range of the lab.
var staticAddr = netip.MustParsePrefix("192.168.1.50/16")

// TestCRIStatic: macvlan with static IPAM, one fixed address on the LAN. No
// state file exists: flatnet can learn the pod only from libcni's cache.
func TestCRIStatic(t *testing.T) {
	runCRICase(t, criCase{
		network: "lanstatic",
		conf: func(*lab.Lab, *lab.CRI) string {
			return `{"cniVersion": "1.0.0", "name": "lanstatic", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "bridge",
 "ipam": {"type": "static", "addresses": [{"address": "` + staticAddr.String() + `", "gateway": "192.168.0.1"}],
  "routes": [{"dst": "0.0.0.0/0"}]}}]}`
		},
		address: func(t *testing.T, l *lab.Lab, p *lab.CRIPod) {
			if p.IP != staticAddr.Addr() {
				t.Fatalf("the pod's address is %s, want the static %s", p.IP, staticAddr.Addr())
			}
		},
	})
}

// The dhcp test's server leases these, of the LAN's 192.168.0.0/16.
var (
	dhcpFirst = netip.MustParseAddr("192.168.4.10")
	dhcpLast  = netip.MustParseAddr("192.168.4.50")
)

// TestCRIDHCP: macvlan with dhcp IPAM. dnsmasq serves the LAN; the CNI dhcp
// plugin's daemon runs beside containerd, in its mount namespace, where
// the pods' network namespaces are. As for static, flatnet can learn the
// pod only from libcni's cache.
func TestCRIDHCP(t *testing.T) {
	var srv *lab.DHCPServer
	runCRICase(t, criCase{
		network: "landhcp",
		opts:    lab.CRIOptions{DHCP: true},
		conf: func(l *lab.Lab, c *lab.CRI) string {
			s, err := l.StartDHCPServer(dhcpFirst, dhcpLast)
			if err != nil {
				t.Fatal(err)
			}
			srv = s
			return `{"cniVersion": "1.0.0", "name": "landhcp", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "bridge",
 "ipam": {"type": "dhcp", "daemonSocketPath": "` + c.DHCPSocket + `"}}]}`
		},
		address: func(t *testing.T, l *lab.Lab, p *lab.CRIPod) {
			if p.IP.Less(dhcpFirst) || dhcpLast.Less(p.IP) {
				t.Fatalf("the pod's address %s is not of the DHCP range %s–%s", p.IP, dhcpFirst, dhcpLast)
			}
			waitFor(t, 15*time.Second, "dnsmasq's lease of the pod's address", func() error {
				ok, err := srv.Leased(p.IP)
				if err == nil && !ok {
					err = fmt.Errorf("no lease of %s in %s", p.IP, srv.Leases)
				}
				return err
			})
		},
		released: func(t *testing.T, l *lab.Lab, p *lab.CRIPod) {
			waitFor(t, 15*time.Second, "the dhcp daemon releases the lease", func() error {
				ok, err := srv.Leased(p.IP)
				if err == nil && ok {
					err = fmt.Errorf("%s still leased in %s", p.IP, srv.Leases)
				}
				return err
			})
		},
	})
}

// TestCRILeavesNothing: a lab's runtime, with a pod and the dhcp daemon,
// runs in namespaces of its own and goes with them. While it runs, its
// mounts (the pod's network namespace, /run) exist in its mount namespace
// only; once the lab is closed, no process of its PID namespace is left
// (its init reaped, not a zombie), no mount of the lab anywhere here, no
// cgroup of its pods, no namespace and no directory of the lab.
func TestCRILeavesNothing(t *testing.T) {
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	c := startCRI(t, l, lab.CRIOptions{DHCP: true})
	criLoads(t, c, l.Opts.Network)
	p := runPod(t, c, "web")

	procs, err := c.Processes()
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) < 5 { // init, containerd, the dhcp daemon, a shim, pause
		t.Errorf("the runtime's PID namespace holds %v, want at least init, containerd, the dhcp daemon, a shim and pause", procs)
	}
	theirs, err := c.MountPoints()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{p.NetNS, "/run", "/var/lib"} {
		if !slices.Contains(theirs, want) {
			t.Errorf("the runtime's mount namespace has no mount on %s", want)
		}
	}
	if m := hostMountsUnder(t, l.Dir, "/run/containerd", "/var/lib/cni"); len(m) > 0 {
		t.Errorf("mounts of the runtime seen here while it runs: %v", m)
	}
	var cgroups []string
	for _, root := range cgroupRoots(t) {
		if _, err := os.Stat(filepath.Join(root, c.CgroupParent)); err == nil {
			cgroups = append(cgroups, filepath.Join(root, c.CgroupParent))
		}
	}
	if len(cgroups) == 0 {
		t.Errorf("no cgroup %s in any hierarchy while the pod runs", c.CgroupParent)
	}
	nss := l.Namespaces()

	if err := l.Close(); err != nil {
		t.Fatalf("closing the lab: %v", err)
	}
	if !c.Proc.Exited() {
		t.Errorf("unshare (pid %d) still runs", c.Proc.PID)
	}
	if left, err := c.Processes(); err != nil || len(left) > 0 {
		t.Errorf("processes of the runtime left: %v %v", left, err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.Init)); err == nil {
		t.Errorf("the runtime's init (pid %d) is still there (a zombie?)", c.Init)
	}
	if m := hostMountsUnder(t, l.Dir, "/run/containerd", "/var/lib/cni"); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup %s left", cg)
		}
	}
	for _, ns := range nss {
		if _, err := os.Stat(filepath.Join(lab.NetnsDir, ns)); err == nil {
			t.Errorf("namespace %s left", ns)
		}
	}
	if _, err := os.Stat(l.Dir); err == nil {
		t.Errorf("the lab's directory %s left", l.Dir)
	}
}

// hostMountsUnder lists the mount points this process sees under any of
// dirs.
func hostMountsUnder(t testing.TB, dirs ...string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		for _, d := range dirs {
			if f[4] == d || strings.HasPrefix(f[4], d+"/") {
				out = append(out, f[4])
			}
		}
	}
	return out
}

// cgroupRoots lists the mount points of the cgroup hierarchies here.
func cgroupRoots(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if _, after, ok := strings.Cut(line, " - "); ok {
			if f := strings.Fields(after); len(f) > 0 && (f[0] == "cgroup" || f[0] == "cgroup2") {
				out = append(out, strings.Fields(line)[4])
			}
		}
	}
	return out
}
