package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// NewNamespace makes an empty namespace of the lab, named <prefix><name>,
// with its loopback up, for a runtime of the test's own to attach (cnitool,
// as Multus would); the lab removes it with the rest.
func (l *Lab) NewNamespace(name string) (string, error) {
	if !podName.MatchString(name) || name == "lan" || name == "node" {
		return "", fmt.Errorf("bad namespace name %q", name)
	}
	l.ops.RLock()
	defer l.ops.RUnlock()
	ns := l.prefix + name
	if err := l.addNS(ns); err != nil {
		return "", err
	}
	if err := l.ipBatch(ns, []string{"link set lo up"}); err != nil {
		return "", err
	}
	return ns, nil
}

// Cnitool runs the CNI project's cnitool, the binary at bin, as a runtime
// that uses libcni does (containerd, CRI-O, podman, Multus): `cnitool
// <command> <network> <netns path of ns>`, the network's configuration
// found in confDir (NETCONFPATH), the lab's plugins, inside the node
// namespace, and with <Dir>/varlib as /var/lib in a mount namespace of its
// own: host-local keeps its allocations in StateRoot and libcni its cache
// in CacheDir, never on the host. It returns cnitool's output (the CNI
// result, for add).
func (l *Lab) Cnitool(bin, confDir, command, network, ns string) ([]byte, error) {
	l.ops.RLock()
	defer l.ops.RUnlock()
	if err := l.checkNS(ns); err != nil {
		return nil, err
	}
	argv := []string{"unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount --bind "$0" /var/lib && exec "$@"`, filepath.Join(l.Dir, "varlib"),
		"ip", "netns", "exec", l.Node, bin, command, network, filepath.Join(NetnsDir, ns)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CNI_") && !strings.HasPrefix(e, "NETCONFPATH=") {
			env = append(env, e)
		}
	}
	cmd.Env = append(env, "CNI_PATH="+l.CNIPath, "NETCONFPATH="+confDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	l.logf("cnitool %s %s %s: %v", command, network, ns, time.Since(start).Round(time.Millisecond))
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("cnitool %s %s %s: %w: %s", command, network, ns, err, strings.TrimSpace(stdout.String()+" "+stderr.String()))
	}
	return stdout.Bytes(), nil
}

// ResultIPs are the addresses of a CNI result.
func ResultIPs(result []byte) ([]netip.Prefix, error) {
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(result, &res); err != nil {
		return nil, fmt.Errorf("CNI result: %w: %s", err, result)
	}
	var out []netip.Prefix
	for _, a := range res.IPs {
		p, err := netip.ParsePrefix(a.Address)
		if err != nil {
			return nil, fmt.Errorf("CNI result: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}
