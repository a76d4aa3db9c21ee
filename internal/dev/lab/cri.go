package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/testenv"
	"golang.org/x/sys/unix"
)

// A lab's container runtime is containerd 1.6 with its CRI plugin, driven
// by crictl as kubelet drives it: pods whose network the CRI sets up
// through libcni, from the first conflist of its conf_dir, with the
// plugins of CNIPath, run inside the node namespace.
//
// Quirks of containerd 1.6 that shape it (see also criInit):
//
//   - The CRI puts a pod's network namespace in /var/run/netns unless
//     netns_mounts_under_state_dir is set; it is, so pods' namespaces are
//     bind mounts under <State>/io.containerd.grpc.v1.cri/netns, which
//     exist only in the runtime's mount namespace (on the host they are
//     empty files, removed with the lab's directory).
//   - Shims put their sockets in /run/containerd/s whatever the state
//     directory, and runc its state in /run/containerd/runc: /run is a
//     tmpfs of the runtime's mount namespace.
//   - A runtimes.runc table must repeat runtime_type, or the CRI fails
//     every RunPodSandbox with "container.Runtime.Name must be set".
//   - The CRI resolves sandbox_image locally first and pulls only when it
//     is missing; with no registry reachable, the image is imported with
//     ctr into the "k8s.io" namespace, unpacked for the CRI's snapshotter,
//     and StartCRI waits until the CRI lists it.
//   - The CRI also runs the loopback plugin for the pod's lo: CNIPath must
//     hold it (Debian's and Fedora's containernetworking-plugins do), and
//     libcni caches that attachment too, as results/cni-loopback-<id>-lo,
//     beside <network>-<id>-eth0. Both go on CNI DEL (crictl stopp).
//   - RunPodSandbox sets up the pod's network (CNI ADD) before it starts
//     the sandbox container, so the pod's address and cache entry exist
//     when crictl runp returns; the pid in `crictl inspectp`'s info is the
//     pause process's in the runtime's PID namespace, not this one's.
//   - The aufs snapshotter runs modprobe at start: it is disabled, with
//     the other snapshotters the lab never uses, so that the runtime loads
//     no kernel module; AppArmor is disabled so that it loads no profile.
//   - runc (cgroupfs driver) makes a cgroup per container under the pod's
//     cgroup_parent, in the host's hierarchies, and a killed runtime
//     leaves them: every pod of a lab gets the parent "/<lab prefix>cri",
//     which Close (and RemoveStale, for a killed test) removes.

// SandboxImage is the name of the pause image StartCRI imports and the
// CRI runs as every pod's sandbox container.
const SandboxImage = "flatnet.test/pause:lab"

// CRIOptions shape a lab's containerd (StartCRI).
type CRIOptions struct {
	// Crictl is the crictl binary (cri-tools); required.
	Crictl string
	// Pause is a static program that waits for SIGTERM (internal/dev/pause,
	// built with CGO_ENABLED=0); required. StartCRI packs it into the
	// SandboxImage.
	Pause string
	// ConfDir is the CRI's CNI conf_dir. Default CNIConfDir. containerd 1.6
	// uses only the first conflist there by file name (max_conf_num 1), and
	// follows changes to the directory.
	ConfDir string
	// DHCP starts the CNI dhcp plugin's daemon beside containerd, listening
	// on CRI.DHCPSocket: name it in a conflist's "ipam" as
	// "daemonSocketPath" (else the plugin asks /run/cni/dhcp.sock). The
	// plugin hands the daemon the pod's network namespace by its path, which
	// exists only in the runtime's mount namespace: the daemon runs there.
	// The macvlan plugin (1.1.1) gives it eth0 still down; the daemon sets
	// the link up, its first attempt fails with "network is down" and is
	// retried some 3 s later, so a dhcp pod takes several seconds to start.
	// On CNI DEL (crictl stopp) the daemon releases the lease.
	DHCP bool
	// Snapshotter is containerd's snapshotter. Default "overlayfs" when an
	// overlay mounts in the lab's directory, else "native".
	Snapshotter string
}

// CRI is a containerd the lab runs (StartCRI). Its exported fields are
// read-only.
type CRI struct {
	// Dir is <lab Dir>/cri: containerd's configuration, root, state and
	// socket, crictl's configuration, the image archive, the init script,
	// pods' files.
	Dir string
	// Socket is containerd's gRPC socket, the CRI endpoint.
	Socket string
	// Config is containerd's config.toml; CrictlConfig crictl's.
	Config, CrictlConfig string
	// Root and State are containerd's root and state directories.
	Root, State string
	// Snapshotter is the snapshotter in use.
	Snapshotter string
	// CgroupParent is every pod's cgroup_parent.
	CgroupParent string
	// DHCPSocket is the dhcp daemon's socket ("" without CRIOptions.DHCP);
	// DHCPLog its output.
	DHCPSocket, DHCPLog string
	// Proc is unshare(1), the parent of the runtime's PID namespace:
	// killing its init (which Proc.Close does first) ends every process of
	// the runtime, the shims and the pods' pause processes.
	Proc *Process

	// Init is the PID (as this process sees it) of the runtime's init, the
	// child of Proc that is PID 1 of the runtime's PID namespace; Proc
	// reaps it.
	Init int

	lab    *Lab
	crictl string
	closer *closer
	once   sync.Once
	err    error
	pidNS  string // "pid:[inode]" of the runtime's PID namespace
}

// criInit is the init of the runtime's PID namespace (sh, PID 1 there,
// reaping the shims that containerd's children leave; StartCRI writes it
// to <Dir>/cri/init.sh), run by
// `unshare --mount --pid --fork --kill-child --mount-proc` inside the node
// namespace, in a mount namespace of the runtime's own, whose mounts go
// with it. It
//
//   - mounts the cgroup hierarchies again: `ip netns exec` mounted the
//     node's own sysfs over /sys, without the mounts under /sys/fs/cgroup
//     that runc needs; /proc/self/cgroup names the hierarchies (a lone
//     "0::" line: cgroup v2 only);
//   - mounts a tmpfs over /run (see CRI);
//   - binds <Dir>/varlib over /var/lib, so that libcni's cache
//     /var/lib/cni is CacheDir and host-local's default dataDir
//     /var/lib/cni/networks is StateRoot;
//   - starts the dhcp daemon when asked, then containerd, and waits.
//
// Arguments: varlib, containerd's config, then the dhcp plugin, its
// socket and its log ("" "" "" without).
const criInit = `# init of a flatnet test lab's containerd (see lab.StartCRI)
set -eu
varlib=$1 config=$2 dhcp=$3 dhcpsock=$4 dhcplog=$5
if [ "$(cut -d: -f1 /proc/self/cgroup | sort -u)" = 0 ]; then
	mount -t cgroup2 cgroup2 /sys/fs/cgroup
else
	mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
	while IFS=: read -r id ctrls _; do
		if [ "$id" = 0 ]; then
			dir=unified opts=
		else
			case $ctrls in
			name=*) dir=${ctrls#name=} opts=none,$ctrls ;;
			*) dir=$ctrls opts=$ctrls ;;
			esac
		fi
		mkdir "/sys/fs/cgroup/$dir"
		if [ -z "$opts" ]; then
			mount -t cgroup2 cgroup2 "/sys/fs/cgroup/$dir"
		else
			mount -t cgroup -o "$opts" cgroup "/sys/fs/cgroup/$dir"
		fi
	done </proc/self/cgroup
fi
mount -t tmpfs -o mode=755 run /run
mount --bind "$varlib" /var/lib
if [ -n "$dhcp" ]; then
	"$dhcp" daemon -socketpath "$dhcpsock" >"$dhcplog" 2>&1 &
fi
containerd --config "$config" &
wait $!
`

// criTools are the commands StartCRI runs.
var criTools = []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "unshare", "nsenter", "mount"}

// CRIMissing returns why a lab cannot run containerd here ("" when it
// can): what Missing says, or a tool of criTools missing.
func CRIMissing() string {
	why := Missing()
	var more []string
	for _, tool := range criTools {
		if _, err := exec.LookPath(tool); err != nil {
			more = append(more, tool+" not found")
		}
	}
	if len(more) > 0 {
		if why != "" {
			why += "; "
		}
		why += strings.Join(more, "; ") + " (packaging/deps.sh test installs them)"
	}
	return why
}

// RequireCRI skips the test when a lab cannot run containerd here (see
// CRIMissing); under CI it fails the test instead (testenv.Skip).
func RequireCRI(t testing.TB) {
	t.Helper()
	if why := CRIMissing(); why != "" {
		testenv.Skip(t, "CRI lab unavailable: %s", why)
	}
}

// StartCRI runs containerd for the lab and returns once the CRI answers
// crictl and lists SandboxImage. containerd runs in the node namespace
// (the macvlan master is there), as PID 1's child in a PID namespace of
// its own and in a mount namespace of its own (see criInit), with its
// root, state, socket and configuration under <Dir>/cri; the CRI's CNI
// configuration is ConfDir and CNIPath. Close, or the lab's Close, stops
// it by PID, and every container and mount of it goes with its
// namespaces.
func (l *Lab) StartCRI(o CRIOptions) (c *CRI, err error) {
	if o.Crictl == "" || o.Pause == "" {
		return nil, errors.New("StartCRI: CRIOptions.Crictl and Pause are required")
	}
	for _, tool := range criTools {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("StartCRI needs %s: %w", tool, err)
		}
	}
	if o.ConfDir == "" {
		o.ConfDir = l.CNIConfDir
	}
	if err := l.checkNS(l.Node); err != nil {
		return nil, err
	}
	// /run and /var/lib are replaced in the runtime's mount namespace: the
	// lab's directory must be elsewhere for both sides to see one.
	abs, err := filepath.EvalSymlinks(l.Dir)
	if err != nil {
		return nil, err
	}
	for _, hidden := range []string{"/run", "/var/lib"} {
		if abs == hidden || strings.HasPrefix(abs, hidden+"/") {
			return nil, fmt.Errorf("StartCRI: the lab's directory %s is under %s, which the runtime's mount namespace replaces; set Options.TempDir elsewhere", l.Dir, hidden)
		}
	}
	dir := filepath.Join(l.Dir, "cri")
	c = &CRI{
		Dir:          dir,
		Socket:       filepath.Join(dir, "containerd.sock"),
		Config:       filepath.Join(dir, "config.toml"),
		CrictlConfig: filepath.Join(dir, "crictl.yaml"),
		Root:         filepath.Join(dir, "root"),
		State:        filepath.Join(dir, "state"),
		Snapshotter:  o.Snapshotter,
		CgroupParent: "/" + l.prefix + "cri",
		lab:          l,
		crictl:       o.Crictl,
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("StartCRI: %w", err) // one runtime per lab
	}
	for _, d := range []string{c.Root, c.State, filepath.Join(dir, "tmp"), filepath.Join(dir, "opt"), filepath.Join(dir, "pods")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if c.Snapshotter == "" {
		c.Snapshotter = "native"
		if l.overlayWorks(dir) {
			c.Snapshotter = "overlayfs"
		}
	}
	dhcp := []string{"", "", ""}
	if o.DHCP {
		plugin := filepath.Join(l.CNIPath, "dhcp")
		if _, err := os.Stat(plugin); err != nil {
			return nil, fmt.Errorf("StartCRI: the CNI dhcp plugin: %w", err)
		}
		c.DHCPSocket = filepath.Join(dir, "dhcp.sock")
		c.DHCPLog = filepath.Join(l.Dir, "dhcp-daemon.log")
		dhcp = []string{plugin, c.DHCPSocket, c.DHCPLog}
	}
	image := filepath.Join(dir, "pause.tar")
	if err := WriteImage(image, Image{Ref: SandboxImage, Binary: o.Pause}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.Config, []byte(c.config(l, o)), 0o644); err != nil {
		return nil, err
	}
	crictlConf := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\ndebug: false\npull-image-on-create: false\n", c.Socket, c.Socket)
	if err := os.WriteFile(c.CrictlConfig, []byte(crictlConf), 0o644); err != nil {
		return nil, err
	}

	initScript := filepath.Join(dir, "init.sh")
	if err := os.WriteFile(initScript, []byte(criInit), 0o644); err != nil {
		return nil, err
	}
	argv := append([]string{"unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
		"sh", initScript, filepath.Join(l.Dir, "varlib"), c.Config}, dhcp...)
	// The lab's Close waits until the process knows how to stop.
	l.ops.RLock()
	c.Proc, err = l.startLocked(l.Node, "containerd", nil, argv...)
	if err == nil {
		c.Proc.halt = c.halt
		c.closer = l.addCloser("containerd", c.stop)
	}
	l.ops.RUnlock()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
			c = nil
		}
	}()
	if err := c.waitReady(o); err != nil {
		return c, err
	}
	return c, nil
}

// config is containerd's config.toml.
func (c *CRI) config(l *Lab, o CRIOptions) string {
	q := strconv.Quote
	return `# containerd of a flatnet test lab
version = 2
root = ` + q(c.Root) + `
state = ` + q(c.State) + `
temp = ` + q(filepath.Join(c.Dir, "tmp")) + `
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = ` + q(c.Socket) + `

[plugins."io.containerd.internal.v1.opt"]
  path = ` + q(filepath.Join(c.Dir, "opt")) + `

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ` + q(SandboxImage) + `
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ` + q(l.CNIPath) + `
    conf_dir = ` + q(o.ConfDir) + `
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = ` + q(c.Snapshotter) + `
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`
}

// CRIStartTimeout bounds each wait of StartCRI (the socket, the image):
// a safety net, never a measurement.
const CRIStartTimeout = 60 * time.Second

// waitReady waits until the CRI answers and reports RuntimeReady, finds
// the runtime's init, imports the pause image and waits until the CRI
// lists it, and for the dhcp daemon's socket.
func (c *CRI) waitReady(o CRIOptions) error {
	if err := c.poll("the CRI to answer crictl info", func() error {
		info, err := c.info()
		if err != nil {
			return err
		}
		for _, cond := range info.Status.Conditions {
			if cond.Type == "RuntimeReady" && cond.Status {
				return nil
			}
		}
		return fmt.Errorf("not RuntimeReady: %+v", info.Status.Conditions)
	}); err != nil {
		return err
	}
	if err := c.findInit(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), CRIStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", c.lab.Node, "ctr", "--address", c.Socket, "--namespace", "k8s.io",
		"images", "import", "--snapshotter", c.Snapshotter, filepath.Join(c.Dir, "pause.tar"))
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import: %w: %s", err, bytes.TrimSpace(out))
	}
	c.lab.logf("ctr images import %s (snapshotter %s)", SandboxImage, c.Snapshotter)
	if err := c.poll("the CRI to list "+SandboxImage, func() error {
		_, err := c.Crictl("inspecti", SandboxImage)
		return err
	}); err != nil {
		return err
	}
	if c.DHCPSocket != "" {
		if err := c.poll("the dhcp daemon's socket", func() error {
			_, err := os.Stat(c.DHCPSocket)
			return err
		}); err != nil {
			b, _ := os.ReadFile(c.DHCPLog)
			return fmt.Errorf("%w; dhcp daemon: %s", err, bytes.TrimSpace(b))
		}
	}
	return nil
}

// poll runs cond until it returns nil, up to CRIStartTimeout; it gives up
// at once when containerd has exited, with the end of its log.
func (c *CRI) poll(what string, cond func() error) error {
	deadline := time.Now().Add(CRIStartTimeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if c.Proc.Exited() {
			return fmt.Errorf("waiting for %s: containerd exited (%v); its log ends:\n%s", what, c.Proc.Wait(), logTail(c.Proc.Log(), 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: still not there after %v: %w; containerd's log ends:\n%s", what, CRIStartTimeout, err, logTail(c.Proc.Log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTail is the last n lines of a log.
func logTail(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// findInit records the runtime's PID namespace and its init (the child
// of Proc in it), which halt kills and PodExec enters.
func (c *CRI) findInit() error {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid_for_children", c.Proc.PID))
	if err != nil {
		return fmt.Errorf("the runtime's PID namespace: %w", err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentPID(pid); !ok || ppid != c.Proc.PID {
			continue
		}
		if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); got == ns {
			c.pidNS, c.Init = ns, pid
			return nil
		}
	}
	return fmt.Errorf("no child of unshare (pid %d) in %s", c.Proc.PID, ns)
}

// parentPID reads a process's parent from /proc/<pid>/stat.
func parentPID(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// initAlive reports whether the runtime's init is still that process (its
// PID in the runtime's PID namespace), so a reused PID is never signalled.
func (c *CRI) initAlive() bool {
	if c.Init == 0 {
		return false
	}
	got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", c.Init))
	return err == nil && got == c.pidNS
}

// halt kills the runtime's init by its PID, which takes every process of
// its PID namespace with it, and waits for unshare to exit after reaping
// it (so that init is never left a zombie of the host's PID 1); Proc's kill
// then has nothing left to kill.
func (c *CRI) halt() {
	if c.Init == 0 {
		_ = c.findInit() // StartCRI failed before it looked
	}
	if !c.initAlive() {
		return
	}
	_ = unix.Kill(c.Init, unix.SIGKILL)
	select {
	case <-c.Proc.Done():
	case <-time.After(StopTimeout):
	}
}

// Processes lists the PIDs (as this process sees them) of the runtime's
// init and its descendants: containerd, the dhcp daemon, the shims and the
// pods' processes (in PID namespaces of the pods, under the runtime's).
// Once the init is gone, there are none: the kernel kills every process of
// a PID namespace, and of those under it, when its init dies.
func (c *CRI) Processes() ([]int, error) {
	if !c.initAlive() {
		return nil, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	parent := map[int]int{}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if ppid, ok := parentPID(pid); ok {
				parent[pid] = ppid
			}
		}
	}
	var out []int
	for pid := range parent {
		for p, n := pid, 0; p > 1 && n < len(parent); p, n = parent[p], n+1 {
			if p == c.Init {
				out = append(out, pid)
				break
			}
		}
	}
	sort.Ints(out)
	return out, nil
}

// MountPoints lists the mount points of the runtime's mount namespace, as
// its init sees them: those of the host, and its own (a tmpfs on /run, the
// cgroup hierarchies, /var/lib, the pods' network namespaces and root
// file systems), which no other namespace sees.
func (c *CRI) MountPoints() ([]string, error) {
	if !c.initAlive() {
		return nil, errors.New("the runtime is not running")
	}
	return mountPoints(fmt.Sprintf("/proc/%d/mountinfo", c.Init))
}

// Close stops the runtime (see halt), waits for it and removes its pods'
// cgroups. The lab's Close does the same.
func (c *CRI) Close() error {
	c.lab.dropCloser(c.closer)
	return c.stop()
}

// stop is Close once.
func (c *CRI) stop() error {
	c.once.Do(func() {
		c.err = c.Proc.kill()
		if err := removeCgroupTree(c.CgroupParent); err != nil {
			c.err = errors.Join(c.err, err)
		}
		c.lab.logf("containerd stopped (pid %d)", c.Proc.PID)
	})
	return c.err
}

// Crictl runs `crictl --config CrictlConfig args…` in the node namespace,
// where kubelet would run, and returns its standard output; the error
// holds its standard error.
func (c *CRI) Crictl(args ...string) ([]byte, error) {
	if err := c.lab.checkNS(c.lab.Node); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.lab.Node, c.crictl, "--config", c.CrictlConfig}, args...)...)
	cmd.WaitDelay = time.Second
	// crictl takes its endpoints from these too; only CrictlConfig counts.
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CONTAINER_RUNTIME_ENDPOINT=") && !strings.HasPrefix(e, "IMAGE_SERVICE_ENDPOINT=") && !strings.HasPrefix(e, "CRI_CONFIG_FILE=") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("crictl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// criInfo is what the lab reads of `crictl info`.
type criInfo struct {
	Status struct {
		Conditions []struct {
			Type    string `json:"type"`
			Status  bool   `json:"status"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"conditions"`
	} `json:"status"`
	CNIConfig struct {
		Networks []struct {
			Config struct {
				Name string `json:"Name"`
			} `json:"Config"`
		} `json:"Networks"`
	} `json:"cniconfig"`
}

func (c *CRI) info() (criInfo, error) {
	var info criInfo
	out, err := c.Crictl("info")
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return info, fmt.Errorf("crictl info: %w", err)
	}
	return info, nil
}

// Networks lists the CNI networks the CRI has loaded (`crictl info`):
// "cni-loopback", then the conflist's network once it has read it.
func (c *CRI) Networks() ([]string, error) {
	info, err := c.info()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range info.CNIConfig.Networks {
		out = append(out, n.Config.Name)
	}
	return out, nil
}

// CRIPod is a pod sandbox the lab's runtime runs.
type CRIPod struct {
	// Name is the pod's name (metadata.name; namespace "default"); ID the
	// sandbox's id, libcni's container id.
	Name, ID string
	// NetNS is the path of the pod's network namespace: a bind mount that
	// exists only in the runtime's mount namespace (PodExec enters it).
	NetNS string
	// IP is the pod's address as the CRI reports it; IPs are all of them.
	IP  netip.Addr
	IPs []netip.Addr
	// Config is the pod's configuration file, as given to crictl runp.
	Config string
}

// podConfig is crictl runp's pod configuration (a PodSandboxConfig).
type podConfig struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
		Attempt   int    `json:"attempt"`
	} `json:"metadata"`
	Hostname     string `json:"hostname"`
	LogDirectory string `json:"log_directory"`
	Linux        struct {
		CgroupParent string `json:"cgroup_parent"`
	} `json:"linux"`
}

// RunPod runs a pod sandbox as kubelet does, `crictl runp` with a pod
// configuration (name, namespace "default", a random uid, attempt 0, the
// hostname, a log directory in Dir/pods and CgroupParent), and reads its
// id, network namespace and addresses (`crictl inspectp`). The CRI sets up
// its network before it returns: an error of the CNI plugins is RunPod's.
func (c *CRI) RunPod(name string) (*CRIPod, error) {
	if !podName.MatchString(name) {
		return nil, fmt.Errorf("bad pod name %q", name)
	}
	var pc podConfig
	pc.Metadata.Name, pc.Metadata.Namespace = name, "default"
	uid := make([]byte, 16)
	_, _ = rand.Read(uid)
	pc.Metadata.UID = hex.EncodeToString(uid)
	pc.Hostname = name
	pc.LogDirectory = filepath.Join(c.Dir, "pods", name)
	pc.Linux.CgroupParent = c.CgroupParent
	if err := os.MkdirAll(pc.LogDirectory, 0o755); err != nil {
		return nil, err
	}
	p := &CRIPod{Name: name, Config: filepath.Join(c.Dir, "pods", name+".json")}
	b, _ := json.MarshalIndent(pc, "", "  ")
	if err := os.WriteFile(p.Config, b, 0o644); err != nil {
		return nil, err
	}
	start := time.Now()
	out, err := c.Crictl("runp", p.Config)
	if err != nil {
		return nil, err
	}
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		return nil, errors.New("crictl runp printed no pod id")
	}
	p.ID = lines[len(lines)-1]
	c.lab.logf("crictl runp %s: pod %.12s…: %v", name, p.ID, time.Since(start).Round(time.Millisecond))
	if err := c.inspect(p); err != nil {
		return p, err
	}
	return p, nil
}

// inspect reads a pod's addresses and network namespace.
func (c *CRI) inspect(p *CRIPod) error {
	out, err := c.Crictl("inspectp", "--output", "json", p.ID)
	if err != nil {
		return err
	}
	var res struct {
		Status struct {
			Network struct {
				IP            string `json:"ip"`
				AdditionalIPs []struct {
					IP string `json:"ip"`
				} `json:"additionalIps"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct {
						Type string `json:"type"`
						Path string `json:"path"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return fmt.Errorf("crictl inspectp %s: %w", p.ID, err)
	}
	ips := []string{res.Status.Network.IP}
	for _, a := range res.Status.Network.AdditionalIPs {
		ips = append(ips, a.IP)
	}
	for _, s := range ips {
		if s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("crictl inspectp %s: address %q: %w", p.ID, s, err)
		}
		p.IPs = append(p.IPs, a)
	}
	if len(p.IPs) == 0 {
		return fmt.Errorf("crictl inspectp %s: the pod has no address", p.ID)
	}
	p.IP = p.IPs[0]
	for _, ns := range res.Info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			p.NetNS = ns.Path
		}
	}
	if p.NetNS == "" {
		return fmt.Errorf("crictl inspectp %s: no network namespace in the runtime spec", p.ID)
	}
	return nil
}

// StopPod stops a pod as kubelet does (`crictl stopp`): the CRI kills its
// containers, runs CNI DEL and removes its network namespace.
func (c *CRI) StopPod(p *CRIPod) error {
	_, err := c.Crictl("stopp", p.ID)
	c.lab.logf("crictl stopp %s (%.12s…): %v", p.Name, p.ID, err)
	return err
}

// RemovePod removes a stopped pod (`crictl rmp`).
func (c *CRI) RemovePod(p *CRIPod) error {
	_, err := c.Crictl("rmp", p.ID)
	c.lab.logf("crictl rmp %s (%.12s…): %v", p.Name, p.ID, err)
	return err
}

// PodExec runs a command in a pod's network namespace and returns its
// combined output; the error includes it. The pod's namespace is a mount
// of the runtime's mount namespace only, so the command runs as
// `nsenter --target <init> --mount --pid -- nsenter --net=<NetNS> -- argv…`
// (one nsenter opens every namespace file before it enters any): inside
// the runtime's mount and PID namespaces, so it dies with them too.
func (c *CRI) PodExec(p *CRIPod, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("PodExec: no command")
	}
	if !c.initAlive() {
		return "", fmt.Errorf("PodExec in %s: the runtime is not running", p.Name)
	}
	full := append([]string{"nsenter", "--target", strconv.Itoa(c.Init), "--mount", "--pid", "--",
		"nsenter", "--net=" + p.NetNS, "--"}, argv...)
	out, err := run(context.Background(), full...)
	if err != nil {
		return out, fmt.Errorf("%s (in pod %s): %w: %s", strings.Join(argv, " "), p.Name, err, strings.TrimSpace(out))
	}
	return out, nil
}

// PodPing is Ping from a pod: up to two echo requests to ip, one of which
// must be answered.
func (c *CRI) PodPing(p *CRIPod, ip netip.Addr) error {
	_, err := c.PodExec(p, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", ip.String())
	return err
}

// overlayWorks reports whether an overlay mounts with its upper and work
// directories in dir, as containerd's overlayfs snapshotter needs. The
// probe mounts in a mount namespace of its own (in the node), which goes
// with it.
func (l *Lab) overlayWorks(dir string) bool {
	probe, err := os.MkdirTemp(dir, "overlay-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(probe)
	d := func(n string) string { return filepath.Join(probe, n) }
	for _, n := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(d(n), 0o755); err != nil {
			return false
		}
	}
	_, err = l.Exec(l.Node, "unshare", "--mount", "--propagation", "private",
		"mount", "-t", "overlay", "overlay", "-o",
		"lowerdir="+d("lower")+",upperdir="+d("upper")+",workdir="+d("work"), d("merged"))
	return err == nil
}
