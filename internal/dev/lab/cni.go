package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// CNIPathDefaults are searched, in order, after $CNI_PATH for the plugins.
var CNIPathDefaults = []string{"/opt/cni/bin", "/usr/lib/cni"}

// FindCNIPath returns the first directory holding the macvlan and
// host-local plugins: from $CNI_PATH (a colon-separated list), then
// /opt/cni/bin, then /usr/lib/cni (Debian's containernetworking-plugins).
func FindCNIPath() (string, error) {
	var dirs []string
	if p := os.Getenv("CNI_PATH"); p != "" {
		dirs = append(dirs, filepath.SplitList(p)...)
	}
	dirs = append(dirs, CNIPathDefaults...)
	for _, d := range dirs {
		if d == "" {
			continue
		}
		ok := true
		for _, plugin := range []string{"macvlan", "host-local"} {
			if fi, err := os.Stat(filepath.Join(d, plugin)); err != nil || fi.Mode()&0o111 == 0 {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", fmt.Errorf("CNI plugins macvlan and host-local not found in %s (install containernetworking-plugins or set CNI_PATH)", strings.Join(dirs, ", "))
}

// Pod is a namespace whose interface was made by the CNI plugins.
type Pod struct {
	// Name is the pod's name in the lab; NS its namespace.
	Name, NS string
	// ContainerID is the CNI_CONTAINERID it was added with (64 hex digits).
	ContainerID string
	// IfName is its interface ("eth0").
	IfName string
	// Network is the CNI network it was added to (Options.Network for
	// AddPod, the one named for AddPodTo).
	Network string
	// IP is its first IPv4 address (else its first address); IPs all of them
	// with their prefix length, as the plugin returned them.
	IP  netip.Addr
	IPs []netip.Prefix
	// MAC is the interface's MAC address, per the plugin's result.
	MAC net.HardwareAddr
	// Result is the plugin's ADD result, as it printed it.
	Result json.RawMessage
}

// ipamConf is host-local's part of the conflist.
type ipamConf struct {
	Type    string        `json:"type"`
	DataDir string        `json:"dataDir,omitempty"`
	Ranges  [][]rangeConf `json:"ranges"`
	Routes  []routeConf   `json:"routes,omitempty"`
}

type rangeConf struct {
	Subnet     string `json:"subnet"`
	RangeStart string `json:"rangeStart,omitempty"`
	RangeEnd   string `json:"rangeEnd,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
}

type routeConf struct {
	Dst string `json:"dst"`
}

type pluginConf struct {
	Type   string   `json:"type"`
	Master string   `json:"master,omitempty"`
	Mode   string   `json:"mode,omitempty"`
	IPAM   ipamConf `json:"ipam"`
}

type confList struct {
	CNIVersion string       `json:"cniVersion"`
	Name       string       `json:"name"`
	Plugins    []pluginConf `json:"plugins"`
}

// pluginOf is the macvlan plugin's object of a network's conflist.
func (l *Lab) pluginOf(o netConf) pluginConf {
	ipam := ipamConf{Type: "host-local"}
	if !l.Opts.NoDataDir {
		ipam.DataDir = l.StateRoot
	}
	addr := func(a netip.Addr) string {
		if a.IsValid() {
			return a.String()
		}
		return ""
	}
	for _, r := range o.ranges {
		ipam.Ranges = append(ipam.Ranges, []rangeConf{{
			Subnet:     r.Subnet.String(),
			RangeStart: addr(r.RangeStart),
			RangeEnd:   addr(r.RangeEnd),
			Gateway:    addr(r.Gateway),
		}})
	}
	for _, r := range o.routes {
		ipam.Routes = append(ipam.Routes, routeConf{Dst: r.String()})
	}
	return pluginConf{Type: "macvlan", Master: o.master, Mode: o.mode, IPAM: ipam}
}

// ConfListJSON is the lab's conflist: the seed's, with the lab's dataDir.
func (l *Lab) ConfListJSON() []byte { return l.confListOf(l.mainNet()) }

// confListOf is a network's conflist.
func (l *Lab) confListOf(n netConf) []byte {
	b, err := json.MarshalIndent(confList{
		CNIVersion: n.cniVersion,
		Name:       n.name,
		Plugins:    []pluginConf{l.pluginOf(n)},
	}, "", "    ")
	if err != nil {
		panic(err) // plain structs of strings always marshal
	}
	return append(b, '\n')
}

// WriteConfList (re)writes the conflist to ConfList, atomically.
func (l *Lab) WriteConfList() error {
	return writeFileAtomic(l.ConfList, l.ConfListJSON())
}

// writeFileAtomic writes a file by renaming a temporary one over it.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// netconf is what a plugin gets on stdin: its conflist object with the
// list's cniVersion and name, and for DEL of CNI >= 0.4.0 the ADD result.
func (l *Lab) netconf(prevResult json.RawMessage) []byte {
	return l.netconfOf(l.mainNet(), prevResult)
}

// netconfOf is netconf for a network.
func (l *Lab) netconfOf(n netConf, prevResult json.RawMessage) []byte {
	m := map[string]any{}
	b, _ := json.Marshal(l.pluginOf(n))
	_ = json.Unmarshal(b, &m)
	m["cniVersion"] = n.cniVersion
	m["name"] = n.name
	if len(prevResult) > 0 && versionAtLeast040(n.cniVersion) {
		m["prevResult"] = prevResult
	}
	out, _ := json.Marshal(m)
	return out
}

// versionAtLeast040 reports whether a CNI version passes prevResult on DEL.
func versionAtLeast040(v string) bool {
	switch v {
	case "", "0.1.0", "0.2.0", "0.3.0", "0.3.1":
		return false
	}
	return true
}

var podName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

// AddPod makes a pod the way a container runtime on the node would: a new
// namespace with lo up, then the macvlan plugin run inside the node
// namespace with CNI_COMMAND=ADD, a fresh random container id, CNI_NETNS
// the pod's namespace and CNI_IFNAME=eth0. The plugin's result gives the
// pod's addresses. Names are lower-case letters, digits and dashes, and not
// "lan" or "node".
func (l *Lab) AddPod(name string) (*Pod, error) {
	return l.addPod(l.mainNet(), name)
}

// addPod is AddPod on network n.
func (l *Lab) addPod(n netConf, name string) (*Pod, error) {
	if !podName.MatchString(name) || name == "lan" || name == "node" {
		return nil, fmt.Errorf("bad pod name %q", name)
	}
	l.ops.RLock()
	defer l.ops.RUnlock()
	if err := l.checkNS(l.Node); err != nil {
		return nil, err
	}
	p := &Pod{Name: name, NS: l.prefix + name, IfName: "eth0", ContainerID: newContainerID(), Network: n.name}
	l.mu.Lock()
	if _, dup := l.pods[name]; dup {
		l.mu.Unlock()
		return nil, fmt.Errorf("pod %s exists", name)
	}
	l.mu.Unlock()
	if err := l.addNS(p.NS); err != nil {
		return nil, err
	}
	if err := l.ipBatch(p.NS, []string{"link set lo up"}); err != nil {
		return nil, errors.Join(err, l.delNS(p.NS))
	}
	out, err := l.cni("ADD", p)
	if err != nil {
		// A runtime cleans up a failed ADD with DEL.
		_, derr := l.cni("DEL", p)
		return nil, errors.Join(err, derr, l.delNS(p.NS))
	}
	p.Result = out
	if err := p.parseResult(out); err != nil {
		_, derr := l.cni("DEL", p)
		return nil, errors.Join(err, derr, l.delNS(p.NS))
	}
	l.mu.Lock()
	l.pods[name] = p
	l.mu.Unlock()
	return p, nil
}

// Pods lists the lab's pods by name.
func (l *Lab) Pods() map[string]*Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]*Pod, len(l.pods))
	for k, v := range l.pods {
		out[k] = v
	}
	return out
}

// DelPod removes a pod the way a container runtime does: CNI DEL (so
// host-local releases the pod's address and removes its file), then the
// namespace.
func (l *Lab) DelPod(p *Pod) error {
	l.ops.RLock()
	defer l.ops.RUnlock()
	if err := l.checkNS(p.NS); err != nil {
		return err
	}
	_, err := l.cni("DEL", p)
	err = errors.Join(err, l.delNS(p.NS))
	l.mu.Lock()
	delete(l.pods, p.Name)
	l.mu.Unlock()
	return err
}

// cni runs the macvlan plugin for a pod with CNI_COMMAND command ("ADD",
// "DEL") and returns what it printed; AddPod and DelPod use it. It runs
// inside the node namespace (`ip netns exec`, as the runtime's own
// namespace is the node's), in a private mount namespace that maps
// /var/lib to the lab when the conflist has no dataDir.
func (l *Lab) cni(command string, p *Pod) ([]byte, error) {
	plugin := filepath.Join(l.CNIPath, "macvlan")
	argv := []string{"ip", "netns", "exec", l.Node, plugin}
	if l.varLib != "" {
		argv = append([]string{"unshare", "--mount", "--propagation", "private",
			"sh", "-c", `mount --bind "$0" /var/lib && exec "$@"`, l.varLib}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CNI_") {
			env = append(env, e)
		}
	}
	cmd.Env = append(env,
		"CNI_COMMAND="+command,
		"CNI_CONTAINERID="+p.ContainerID,
		"CNI_NETNS="+filepath.Join(NetnsDir, p.NS),
		"CNI_IFNAME="+p.IfName,
		"CNI_PATH="+l.CNIPath,
	)
	var prev json.RawMessage
	if command != "ADD" {
		prev = p.Result
	}
	cmd.Stdin = bytes.NewReader(l.netconfOf(l.netOf(p), prev))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	l.logf("CNI %s %s (container %.12s…): %v", command, p.NS, p.ContainerID, time.Since(start).Round(time.Millisecond))
	if err != nil {
		msg := strings.TrimSpace(stdout.String() + " " + stderr.String())
		var cerr struct {
			Msg     string `json:"msg"`
			Details string `json:"details"`
		}
		if json.Unmarshal(stdout.Bytes(), &cerr) == nil && cerr.Msg != "" {
			msg = cerr.Msg
			if cerr.Details != "" {
				msg += ": " + cerr.Details
			}
		}
		return stdout.Bytes(), fmt.Errorf("CNI %s for pod %s: %w: %s", command, p.Name, err, msg)
	}
	return stdout.Bytes(), nil
}

// parseResult reads a CNI result (any version from 0.3.0) into the pod.
func (p *Pod) parseResult(out []byte) error {
	var res struct {
		Interfaces []struct {
			Name    string `json:"name"`
			Mac     string `json:"mac"`
			Sandbox string `json:"sandbox"`
		} `json:"interfaces"`
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return fmt.Errorf("CNI result for pod %s: %w: %s", p.Name, err, out)
	}
	for _, ip := range res.IPs {
		pfx, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			return fmt.Errorf("CNI result for pod %s: address %q: %w", p.Name, ip.Address, err)
		}
		p.IPs = append(p.IPs, pfx)
		if !p.IP.IsValid() || (!p.IP.Is4() && pfx.Addr().Is4()) {
			p.IP = pfx.Addr()
		}
	}
	if !p.IP.IsValid() {
		return fmt.Errorf("CNI result for pod %s has no address: %s", p.Name, out)
	}
	for _, i := range res.Interfaces {
		if i.Sandbox != "" && i.Mac != "" {
			if mac, err := net.ParseMAC(i.Mac); err == nil {
				p.MAC = mac
			}
		}
	}
	return nil
}

// newContainerID returns 64 random hex digits, like a container runtime's id.
func newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
