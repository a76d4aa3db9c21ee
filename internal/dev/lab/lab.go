package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// NetnsDir is where iproute2 keeps named network namespaces.
const NetnsDir = "/var/run/netns"

// NamePrefix starts the name of every namespace and directory a lab makes.
// The full prefix is "fnlab-<pid>-" with the pid of the process that made it.
const NamePrefix = "fnlab-"

// Range is one host-local range, as in the conflist's "ranges". Each Range
// of Options.Ranges is its own range set, so a lab with an IPv4 and an IPv6
// Range gives each pod one address of each.
type Range struct {
	Subnet     netip.Prefix // "subnet"
	RangeStart netip.Addr   // "rangeStart", optional
	RangeEnd   netip.Addr   // "rangeEnd", optional
	Gateway    netip.Addr   // "gateway", optional
}

// SeedRange is the seed's range: pods take 192.168.1.2–192.168.1.254 of the
// node's 192.168.0.0/16, with the LAN gateway 192.168.0.1.
func SeedRange() Range {
	return Range{
		Subnet:     netip.MustParsePrefix("192.168.0.0/16"),
		RangeStart: netip.MustParseAddr("192.168.1.2"),
		RangeEnd:   netip.MustParseAddr("192.168.1.254"),
		Gateway:    netip.MustParseAddr("192.168.0.1"),
	}
}

// Options shape a lab. The zero value is the seed's node.
type Options struct {
	// Network is the CNI network name. Default "default".
	Network string
	// Master is the node's NIC, the macvlan master. Default "eno1".
	Master string
	// Mode is the macvlan mode. Default "bridge".
	Mode string
	// CNIVersion is the conflist's cniVersion. Default "0.3.1".
	CNIVersion string
	// ConfListName is the conflist's file name in CNIConfDir. Default
	// "00-<network>.conflist".
	ConfListName string
	// Ranges are host-local's range sets. Default: SeedRange.
	Ranges []Range
	// Routes are host-local's routes (destinations). Default: 0.0.0.0/0.
	Routes []netip.Prefix
	// NoDataDir leaves "dataDir" out of the conflist, as on a real node.
	// host-local then writes to its default /var/lib/cni/networks; the lab
	// runs the plugins in a private mount namespace where that path is
	// StateRoot, so the host's /var/lib is still not written.
	NoDataDir bool
	// NoMaster makes a lab whose node has no Master NIC at all (pods cannot
	// be added until the test creates one with AddMaster).
	NoMaster bool

	// GatewayAddr is the LAN bridge's address. Default 192.168.0.1/16.
	GatewayAddr netip.Prefix
	// NodeAddr is the node NIC's address. Default 192.168.0.5/16.
	NodeAddr netip.Prefix
	// GatewayAddr6 and NodeAddr6 are the IPv6 addresses of the LAN bridge and
	// the node NIC. Default fd00::1/64 and fd00::5/64.
	GatewayAddr6, NodeAddr6 netip.Prefix
	// NoIPv6 leaves the IPv6 addresses out.
	NoIPv6 bool

	// NodeSysctls are written in the node namespace before its NIC exists,
	// over the lab's baseline (see BaselineSysctls), as paths under
	// /proc/sys ("net/ipv4/conf/default/arp_filter") or dotted keys
	// ("net.ipv4.ip_forward").
	NodeSysctls map[string]string

	// JoinLAN, if set, is an open lab whose LAN this lab's node joins
	// instead of making its own: several nodes on one LAN. The node's NIC is
	// plugged into that lab's bridge, GatewayAddr and GatewayAddr6 default to
	// that lab's, and NodeAddr and NodeAddr6 must differ from its node's.
	// Close the joined lab last (NewT's cleanups do: last made, first closed).
	JoinLAN *Lab
	// LANPort names the LAN end of the node NIC's veth pair. Default
	// "lan-<Master>", or "n<k>-<Master>" (unique) for a lab with JoinLAN;
	// cut to 15 bytes.
	LANPort string
	// MachineID, if set, is what StartFlatnet's flatnet reads as
	// /etc/machine-id: a file of the lab, bind-mounted over it in a private
	// mount namespace of that process only (the host's file is never
	// touched), so that nodes of one machine get different shim MACs.
	MachineID string
	// NoMachineID makes StartFlatnet's flatnet find no machine id at all,
	// as on a node whose image left /etc/machine-id empty: an empty file
	// of the lab is bind-mounted over /etc/machine-id (and over the
	// firmware's /sys/class/dmi/id/product_uuid, where there is one) in a
	// private mount namespace of that process only. Not with MachineID.
	NoMachineID bool

	// TempDir is where the lab's directory is made. Default os.TempDir().
	TempDir string
	// Logf, if set, gets one line per step of the lab (commands it runs).
	Logf func(format string, args ...any)
}

// BaselineSysctls are set in the node namespace so a lab behaves the same
// whatever the host has (a new namespace copies the host's IPv4 "all" and
// "default" settings): the kernel's defaults. Note that rp_filter = 2
// (loose), what systemd-based distributions ship, changes what the LAN
// sees: a shim without an IPv4 address then fails the reverse-path check
// for the LAN's ARP requests and does not answer them.
var BaselineSysctls = map[string]string{
	"net/ipv4/conf/all/rp_filter":        "0",
	"net/ipv4/conf/default/rp_filter":    "0",
	"net/ipv4/conf/all/arp_ignore":       "0",
	"net/ipv4/conf/default/arp_ignore":   "0",
	"net/ipv4/conf/all/arp_filter":       "0",
	"net/ipv4/conf/default/arp_filter":   "0",
	"net/ipv4/conf/all/arp_announce":     "0",
	"net/ipv4/conf/default/arp_announce": "0",
	"net/ipv4/ip_forward":                "0",
}

// withDefaults fills in the zero fields of o.
func (o Options) withDefaults() Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Network, "default")
	def(&o.Master, "eno1")
	def(&o.Mode, "bridge")
	def(&o.CNIVersion, "0.3.1")
	def(&o.ConfListName, "00-"+o.Network+".conflist")
	if o.Ranges == nil {
		o.Ranges = []Range{SeedRange()}
	}
	if o.Routes == nil {
		o.Routes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	}
	defp := func(p *netip.Prefix, v string) {
		if !p.IsValid() {
			*p = netip.MustParsePrefix(v)
		}
	}
	defp(&o.GatewayAddr, "192.168.0.1/16")
	defp(&o.NodeAddr, "192.168.0.5/16")
	defp(&o.GatewayAddr6, "fd00::1/64")
	defp(&o.NodeAddr6, "fd00::5/64")
	return o
}

// Lab is one running lab. Its exported fields are read-only.
type Lab struct {
	// Opts are the options the lab was made with, defaults filled in.
	Opts Options
	// Dir is the lab's temporary directory; Close removes it.
	Dir string
	// CNIConfDir is <Dir>/net.d, holding the conflist (flatnet's cni_conf_dir).
	CNIConfDir string
	// ConfList is the conflist's path.
	ConfList string
	// StateRoot is <Dir>/networks, host-local's dataDir (flatnet's state_root).
	StateRoot string
	// CNIPath is the directory the CNI plugins are run from.
	CNIPath string
	// LAN and Node are the names of the LAN and node namespaces.
	LAN, Node string
	// Bridge is the LAN bridge's name in LAN ("br0").
	Bridge string
	// Master is the node's NIC in Node (Opts.Master).
	Master string
	// Gateway and NodeIP are the LAN gateway's and the node's IPv4 addresses.
	Gateway, NodeIP netip.Addr

	prefix string // "fnlab-<pid>-<n>-"
	varLib string // what /var/lib is for the plugins with NoDataDir
	join   *Lab   // Opts.JoinLAN: the lab owning LAN

	// ops is held for reading by every operation that creates something
	// (namespaces, processes) and for writing by Close, so Close never races
	// a half-made pod.
	ops sync.RWMutex

	mu      sync.Mutex // guards what follows
	closed  bool
	nss     map[string]bool // namespaces of the lab (made or being made)
	pods    map[string]*Pod
	procs   map[*Process]bool
	closers map[*closer]bool
	logSeq  map[string]int
	nets    map[string]netConf // networks AddNetwork added, by name
}

// closer is something Close must close (servers, watchers).
type closer struct {
	name string
	fn   func() error
}

var labSeq atomic.Int64

// ErrClosed is returned by the methods of a closed lab.
var ErrClosed = errors.New("lab is closed")

// New builds a lab: its directory and conflist, the LAN and the node. On
// error, whatever was made is removed again. Before building, New removes
// the namespaces and directories of labs whose process is gone.
func New(opts Options) (l *Lab, err error) {
	if j := opts.JoinLAN; j != nil {
		if j.isClosed() {
			return nil, fmt.Errorf("JoinLAN: %w", ErrClosed)
		}
		if !opts.GatewayAddr.IsValid() {
			opts.GatewayAddr = j.Opts.GatewayAddr
		}
		if !opts.GatewayAddr6.IsValid() {
			opts.GatewayAddr6 = j.Opts.GatewayAddr6
		}
	}
	o := opts.withDefaults()
	if err := checkIfName(o.Master); err != nil {
		return nil, err
	}
	cniPath, err := FindCNIPath()
	if err != nil {
		return nil, err
	}
	for _, tool := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("lab needs %s: %w", tool, err)
		}
	}
	_, _ = RemoveStale()

	pid := os.Getpid()
	seq := labSeq.Add(1)
	l = &Lab{
		Opts:    o,
		CNIPath: cniPath,
		Bridge:  "br0",
		Master:  o.Master,
		Gateway: o.GatewayAddr.Addr(),
		NodeIP:  o.NodeAddr.Addr(),
		prefix:  fmt.Sprintf("%s%d-%d-", NamePrefix, pid, seq),
		nss:     map[string]bool{},
		pods:    map[string]*Pod{},
		procs:   map[*Process]bool{},
		closers: map[*closer]bool{},
		logSeq:  map[string]int{},
		nets:    map[string]netConf{},
	}
	l.LAN = l.prefix + "lan"
	l.Node = l.prefix + "node"
	if o.LANPort == "" {
		o.LANPort = lanPort(o.Master)
	}
	if j := o.JoinLAN; j != nil {
		l.join = j
		l.LAN, l.Bridge = j.LAN, j.Bridge
		if opts.LANPort == "" {
			o.LANPort = ifName(fmt.Sprintf("n%d-%s", seq, o.Master))
		}
	}
	if err := checkIfName(o.LANPort); err != nil {
		return nil, err
	}
	l.Opts = o
	register(l)
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()

	l.Dir, err = os.MkdirTemp(o.TempDir, fmt.Sprintf("%s%d-", NamePrefix, pid))
	if err != nil {
		return l, err
	}
	l.CNIConfDir = filepath.Join(l.Dir, "net.d")
	l.StateRoot = filepath.Join(l.Dir, "networks")
	l.ConfList = filepath.Join(l.CNIConfDir, o.ConfListName)
	for _, d := range []string{l.CNIConfDir, l.StateRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return l, err
		}
	}
	if err := l.WriteConfList(); err != nil {
		return l, err
	}
	// <Dir>/varlib is what the plugins (with NoDataDir) and cnitool see as
	// /var/lib: host-local's default /var/lib/cni/networks is StateRoot,
	// libcni's cache /var/lib/cni is CacheDir.
	if err := os.MkdirAll(filepath.Join(l.Dir, "varlib", "cni", "results"), 0o755); err != nil {
		return l, err
	}
	if err := os.Symlink(l.StateRoot, filepath.Join(l.Dir, "varlib", "cni", "networks")); err != nil {
		return l, err
	}
	if o.NoDataDir {
		l.varLib = filepath.Join(l.Dir, "varlib")
	}
	if err := l.build(); err != nil {
		return l, err
	}
	return l, nil
}

// build makes the LAN and the node.
func (l *Lab) build() error {
	l.ops.RLock()
	defer l.ops.RUnlock()
	o := l.Opts
	if l.join == nil {
		if err := l.addNS(l.LAN); err != nil {
			return err
		}
	}
	if err := l.addNS(l.Node); err != nil {
		return err
	}
	sysctls := map[string]string{}
	for k, v := range BaselineSysctls {
		sysctls[k] = v
	}
	for k, v := range o.NodeSysctls {
		sysctls[sysctlPath(k)] = v
	}
	keys := make([]string, 0, len(sysctls))
	for k := range sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := l.Sysctl(l.Node, k, sysctls[k]); err != nil {
			return err
		}
	}
	lan := []string{
		"link set lo up",
		"link add " + l.Bridge + " type bridge",
		"addr add " + o.GatewayAddr.String() + " dev " + l.Bridge,
	}
	if !o.NoIPv6 {
		lan = append(lan, "addr add "+o.GatewayAddr6.String()+" dev "+l.Bridge+" nodad")
	}
	lan = append(lan, "link set "+l.Bridge+" up")
	if l.join == nil {
		if err := l.ipBatch(l.LAN, lan); err != nil {
			return err
		}
	}
	if err := l.ipBatch(l.Node, []string{"link set lo up"}); err != nil {
		return err
	}
	if o.NoMaster {
		return nil
	}
	return l.addMaster()
}

// AddMaster plugs the node's NIC (Opts.Master) into the LAN, with its
// addresses and the default route: what New does unless Opts.NoMaster. With
// NoMaster it is the NIC "appearing after boot".
func (l *Lab) AddMaster() error {
	l.ops.RLock()
	defer l.ops.RUnlock()
	if l.isClosed() {
		return ErrClosed
	}
	return l.addMaster()
}

// addMaster makes the veth pair between the LAN bridge and the node.
func (l *Lab) addMaster() error {
	o := l.Opts
	port := o.LANPort
	if err := l.ipBatch(l.LAN, []string{
		"link add " + port + " type veth peer name " + o.Master + " netns " + l.Node,
		"link set " + port + " master " + l.Bridge,
		"link set " + port + " up",
	}); err != nil {
		return err
	}
	node := []string{"addr add " + o.NodeAddr.String() + " dev " + o.Master}
	if !o.NoIPv6 {
		node = append(node, "addr add "+o.NodeAddr6.String()+" dev "+o.Master+" nodad")
	}
	node = append(node,
		"link set "+o.Master+" up",
		"route add default via "+o.GatewayAddr.Addr().String()+" dev "+o.Master,
	)
	return l.ipBatch(l.Node, node)
}

// MasterDown sets the node's NIC down. The kernel then drops the routes
// through it, the default route included.
func (l *Lab) MasterDown() error {
	return l.ipBatch(l.Node, []string{"link set " + l.Master + " down"})
}

// MasterUp sets the node's NIC up and puts the default route back, as a
// node's network configuration would.
func (l *Lab) MasterUp() error {
	return l.ipBatch(l.Node, []string{
		"link set " + l.Master + " up",
		"route replace default via " + l.Gateway.String() + " dev " + l.Master,
	})
}

// lanPort names the LAN end of the node's veth pair.
func lanPort(master string) string { return ifName("lan-" + master) }

// ifName cuts a name to the 15 bytes an interface name may have.
func ifName(s string) string {
	if len(s) > 15 {
		s = s[:15]
	}
	return s
}

// checkIfName rejects names the kernel would not take as interface names.
func checkIfName(name string) error {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n:") || name == "." || name == ".." {
		return fmt.Errorf("%q is not a valid interface name", name)
	}
	return nil
}

// Namespaces lists the namespaces of the lab: LAN, node, then pods.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for ns := range l.nss {
		out = append(out, ns)
	}
	sort.Slice(out, func(i, j int) bool {
		rank := func(s string) int {
			switch s {
			case l.LAN:
				return 0
			case l.Node:
				return 1
			}
			return 2
		}
		if rank(out[i]) != rank(out[j]) {
			return rank(out[i]) < rank(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// StateDir is host-local's directory for the lab's network:
// <StateRoot>/<network>.
func (l *Lab) StateDir() string { return filepath.Join(l.StateRoot, l.Opts.Network) }

// StateFiles lists the names in StateDir (allocations, "lock",
// "last_reserved_ip.0"), sorted; none when the directory does not exist.
func (l *Lab) StateFiles() ([]string, error) {
	ents, err := os.ReadDir(l.StateDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

// logf logs one step when Opts.Logf is set.
func (l *Lab) logf(format string, args ...any) {
	if l.Opts.Logf != nil {
		l.Opts.Logf(format, args...)
	}
}

func (l *Lab) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// checkNS makes sure ns is one of the lab's namespaces, so no method of a
// lab ever acts in the host's namespace or someone else's.
func (l *Lab) checkNS(ns string) error {
	l.mu.Lock()
	closed, mine := l.closed, l.nss[ns]
	l.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case mine:
		return nil
	case l.join != nil && ns == l.LAN:
		return l.join.checkNS(ns) // the joined lab's LAN, while it is open
	}
	return fmt.Errorf("%q is not a namespace of this lab", ns)
}

// addNS records and creates a namespace. It is recorded first, so Close
// removes it even if creating it was interrupted.
func (l *Lab) addNS(ns string) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.nss[ns] {
		l.mu.Unlock()
		return fmt.Errorf("namespace %s exists", ns)
	}
	l.nss[ns] = true
	l.mu.Unlock()
	if out, err := run(context.Background(), "ip", "netns", "add", ns); err != nil {
		l.mu.Lock()
		delete(l.nss, ns)
		l.mu.Unlock()
		// ip creates the mount point before it fails to mount; tidy up.
		_, _ = run(context.Background(), "ip", "netns", "del", ns)
		return fmt.Errorf("ip netns add %s: %w: %s", ns, err, out)
	}
	l.logf("ip netns add %s", ns)
	return nil
}

// delNS removes a namespace of the lab.
func (l *Lab) delNS(ns string) error {
	err := deleteNetns(ns)
	if err == nil {
		l.logf("ip netns del %s", ns)
	}
	l.mu.Lock()
	delete(l.nss, ns)
	l.mu.Unlock()
	return err
}

// deleteNetns removes a named namespace if it exists.
func deleteNetns(ns string) error {
	if _, err := os.Lstat(filepath.Join(NetnsDir, ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := run(context.Background(), "ip", "netns", "del", ns); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", ns, err, out)
	}
	return nil
}

// ipBatch runs iproute2 commands in a namespace with one `ip -batch`.
func (l *Lab) ipBatch(ns string, cmds []string) error {
	if err := l.checkNS(ns); err != nil {
		return err
	}
	for _, c := range cmds {
		l.logf("ip -n %s %s", ns, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s -batch: %w: %s (commands: %s)", ns, err, bytes.TrimSpace(out), strings.Join(cmds, "; "))
	}
	return nil
}

// run runs a command in the caller's namespaces and returns its combined
// output.
func run(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Close removes the lab: it kills the processes it started, stops its
// servers and watchers, runs CNI DEL for the pods still there, deletes its
// namespaces and its directory. It waits for operations in flight, may be
// called more than once and from any goroutine, and always tries every
// step; the error joins what failed.
func (l *Lab) Close() error {
	if l == nil {
		return nil
	}
	l.ops.Lock()
	defer l.ops.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := make([]*Process, 0, len(l.procs))
	for p := range l.procs {
		procs = append(procs, p)
	}
	closers := make([]*closer, 0, len(l.closers))
	for c := range l.closers {
		closers = append(closers, c)
	}
	pods := make([]*Pod, 0, len(l.pods))
	for _, p := range l.pods {
		pods = append(pods, p)
	}
	l.mu.Unlock()
	defer unregister(l)

	var errs []error
	for _, p := range procs {
		if err := p.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range closers {
		if err := c.fn(); err != nil {
			errs = append(errs, fmt.Errorf("closing %s: %w", c.name, err))
		}
	}
	for _, p := range pods {
		if _, err := l.cni("DEL", p); err != nil {
			errs = append(errs, err)
		}
	}
	// Pods first, the node (whose NIC is the pods' master) next, the LAN last;
	// then anything else carrying the lab's prefix.
	l.mu.Lock()
	var nss []string
	for ns := range l.nss {
		if ns != l.LAN && ns != l.Node {
			nss = append(nss, ns)
		}
	}
	l.mu.Unlock()
	sort.Strings(nss)
	nss = append(nss, l.Node)
	if l.join == nil {
		nss = append(nss, l.LAN)
	}
	for _, ns := range nss {
		if err := l.delNS(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if left, err := netnsWithPrefix(l.prefix); err == nil {
		for _, ns := range left {
			if err := deleteNetns(ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if l.Dir != "" {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// netnsWithPrefix lists the named namespaces starting with prefix.
func netnsWithPrefix(prefix string) ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

var staleName = regexp.MustCompile(`^` + NamePrefix + `([0-9]+)-`)

// stalePID returns the pid in a lab name when that process is gone.
func stalePID(name string) (int, bool) {
	m := staleName.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return 0, false
	}
	return pid, !alive(pid)
}

// alive reports whether a process exists.
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// RemoveStale deletes the namespaces, temporary directories and cgroups
// (a runtime's, see StartCRI) of labs whose process is no longer alive:
// what a killed test or demo left. It returns the namespaces it removed.
// New calls it.
func RemoveStale() ([]string, error) {
	var removed []string
	var errs []error
	names, err := netnsWithPrefix(NamePrefix)
	if err != nil {
		errs = append(errs, err)
	}
	// Pods before nodes before LANs, as Close does.
	sort.Slice(names, func(i, j int) bool {
		rank := func(s string) int {
			switch {
			case strings.HasSuffix(s, "-lan"):
				return 2
			case strings.HasSuffix(s, "-node"):
				return 1
			}
			return 0
		}
		return rank(names[i]) < rank(names[j])
	})
	for _, ns := range names {
		if _, stale := stalePID(ns); !stale {
			continue
		}
		if err := deleteNetns(ns); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, ns)
	}
	if err := removeStaleCgroups(); err != nil {
		errs = append(errs, err)
	}
	if dirs, err := filepath.Glob(filepath.Join(os.TempDir(), NamePrefix+"*")); err == nil {
		for _, d := range dirs {
			if _, stale := stalePID(filepath.Base(d)); stale {
				if err := os.RemoveAll(d); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return removed, errors.Join(errs...)
}
