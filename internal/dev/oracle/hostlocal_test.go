package oracle

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/hostlocal"
)

// ipams are host-local IPAM sections, one per rule of host-local's
// LoadIPAMConfig and Range.Canonicalize, each accepted or refused.
var ipams = []string{
	`{"type": "host-local", "subnet": "192.168.0.0/16", "rangeStart": "192.168.1.2", "rangeEnd": "192.168.1.254", "gateway": "192.168.0.1"}`,
	`{"type": "host-local", "ranges": [[{"subnet": "192.168.0.0/16", "rangeStart": "192.168.1.2", "rangeEnd": "192.168.1.254", "gateway": "192.168.0.1"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.1.0/24"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.1.0/24"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.128/25"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100", "rangeEnd": "10.0.0.50"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.1.1"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "gateway": "fd00::1"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "fd00::1"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "192.168.1.5/24"}]]}`,
	`{"type": "host-local", "subnet": "fd00::1/64"}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.4/30"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.4/31"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "fd00::/126"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "fd00::/127"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "::ffff:10.0.0.0/120"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "::ffff:10.0.0.10", "gateway": "::ffff:10.0.0.1"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "", "rangeEnd": "", "gateway": ""}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.1", "rangeEnd": "10.0.0.1"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.0", "rangeEnd": "10.0.0.255"}]]}`,
	`{"type": "host-local", "subnet": "10.0.0.0/24", "ranges": [[{"subnet": "10.0.1.0/24"}]]}`,
	`{"type": "host-local", "subnet": "10.0.0.0/24", "ranges": [[{"subnet": "10.0.0.0/24"}]]}`,
	`{"type": "host-local", "ranges": []}`,
	`{"type": "host-local", "ranges": [[]]}`,
	`{"type": "host-local"}`,
	`{"type": "host-local", "ranges": [[{"rangeStart": "10.0.0.1"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": 10}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.x"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}]], "dataDir": "/run/cni/ipam"}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}]], "dataDir": "/run/cni//ipam/"}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{"dst": "x"}]}`,
	`{"type": "host-local", "RANGES": [[{"SUBNET": "10.0.0.0/24", "RangeEnd": "10.0.0.9"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "2001:db8::/32", "rangeStart": "2001:db8::10", "rangeEnd": "2001:db8::ffff"}]]}`,
	`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/8", "gateway": "10.255.255.255"}]]}`,
}

// plugins are what surrounds an IPAM section in a network list.
var plugins = []string{
	`{"type": "macvlan", "master": "eno1", "ipam": %s}`,
	`{"type": "macvlan", "master": "eno1", "ipam": %s, "runtimeConfig": {"ipRanges": [[{"subnet": "172.16.0.0/24"}]]}}`,
	`{"type": "macvlan", "master": "eno1", "ipam": %s, "runtimeConfig": {"ipRanges": [[{"subnet": "10.0.0.0/28"}]]}}`,
	`{"type": "macvlan", "master": "eno1", "ipam": %s, "args": {"cni": {"ips": ["10.0.0.5"]}}}`,
	`{"type": "macvlan", "master": "eno1", "ipam": %s, "args": {"cni": {"ips": ["bogus"]}}}`,
	`{"type": "macvlan", "master": "eno1", "ipam": %s, "args": {"cni": {"ips": ["10.0.0.5/24", ""]}}}`,
	`{"type": "macvlan", "master": "eno1", "ipam": %s, "args": {"cni": {"ips": [null]}}}`,
	`{"type": "macvlan", "master": "eno1", "ipam": %s, "runtimeConfig": {"ips": ["fd00::5/64"]}}`,
	`{"type": "macvlan", "master": "eno1", "mode": "vepa", "ipam": %s}`,
	`{"type": "macvlan", "master": "eno1", "ipam": %s, "dataDir": "x"}`,
}

// corpus is every configuration the tests hold to host-local: the golden
// configuration directories of internal/cni, and each IPAM section in each
// plugin, under each cniVersion that changes a rule.
func corpus(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	paths, err := filepath.Glob(filepath.Join("..", "..", "cni", "testdata", "discover", "*", "*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden configurations (%v)", err)
	}
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			out[p] = data
		}
	}
	for i, ipam := range ipams {
		for j, plugin := range plugins {
			for _, v := range []string{"1.0.0", "0.3.0", "0.2.0", "", "v1.0.0", "1.0.0-rc1"} {
				out[fmt.Sprintf("ipam[%d] plugin[%d] cniVersion %q", i, j, v)] = fmt.Appendf(nil,
					`{"cniVersion": %q, "name": "net", "plugins": [`+plugin+`]}`, v, ipam)
			}
		}
	}
	return out
}

// TestRangesAgreeWithHostLocal holds internal/cni's reading of host-local
// configurations to host-local's own LoadIPAMConfig.
func TestRangesAgreeWithHostLocal(t *testing.T) {
	count := map[verdict]int{}
	for name, data := range corpus(t) {
		count[agree(t, name, data)]++
	}
	nAccepted, nRefused := count[accepted], count[refused]
	// Both sides of every rule are exercised.
	if nAccepted < 100 || nRefused < 100 {
		t.Fatalf("corpus too one-sided: %d accepted, %d refused", nAccepted, nRefused)
	}
	t.Logf("%d configurations host-local accepts, %d it refuses", nAccepted, nRefused)
}

// FuzzRangesAgreeWithHostLocal is TestRangesAgreeWithHostLocal on what a
// fuzzer makes of the corpus.
func FuzzRangesAgreeWithHostLocal(f *testing.F) {
	for _, data := range corpus(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { agree(t, "fuzzed", data) })
}

// verdict is host-local's on a configuration.
type verdict int

const (
	notCompared verdict = iota // not a list libcni reads holding one macvlan plugin with host-local IPAM
	accepted
	refused
)

// agree compares internal/cni and host-local on one network list, when it
// is one libcni reads holding one macvlan plugin with host-local IPAM, and
// returns host-local's verdict.
//
// Where host-local accepts, flatnet must give the same ranges in the same
// order, with the same defaults, and the same dataDir, or refuse for a
// reason of its own (flatnetOnly). Where host-local refuses, so that no pod
// of the network can start, flatnet must refuse too.
func agree(t testing.TB, name string, data []byte) verdict {
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		return notCompared
	}
	var plugin *libcni.PluginConfig
	for _, p := range list.Plugins {
		if p.Network.Type != "macvlan" {
			continue
		}
		if plugin != nil {
			return notCompared // one network, two macvlan plugins
		}
		plugin = p
	}
	if plugin == nil || plugin.Network.IPAM.Type != "host-local" {
		return notCompared
	}
	// What libcni hands the plugin, and the plugin its IPAM: the list's
	// name and cniVersion injected (buildOneConfig).
	conf, err := libcni.InjectConf(plugin, map[string]any{"name": list.Name, "cniVersion": list.CNIVersion})
	if err != nil {
		return notCompared
	}
	want, hlErr := loadIPAMConfig(conf.Bytes)

	nets, problems := cni.Discover([]cni.File{{Name: "00-net.conflist", Data: data}})
	var got *cni.Network
	for i := range nets {
		if nets[i].Name == list.Name {
			got = &nets[i]
		}
	}
	switch {
	case hlErr != nil && got != nil:
		t.Fatalf("%s: host-local refuses (%v), flatnet follows %+v\n%s", name, hlErr, *got, data)
	case hlErr != nil:
		return refused
	case got == nil:
		if len(problems) != 1 || !flatnetOnly(problems[0].Error()) {
			t.Fatalf("%s: host-local accepts, flatnet refuses: %v\n%s", name, problems, data)
		}
		return accepted
	}
	var wantRanges []hostlocal.Range
	for _, set := range want.Ranges {
		for _, r := range set {
			wantRanges = append(wantRanges, hostlocal.Range{
				Subnet:  prefix(net.IPNet(r.Subnet)),
				Start:   addr(r.RangeStart),
				End:     addr(r.RangeEnd),
				Gateway: addr(r.Gateway),
			})
		}
	}
	if fmt.Sprint(got.Ranges) != fmt.Sprint(wantRanges) {
		t.Fatalf("%s: ranges\nflatnet    %v\nhost-local %v\n%s", name, got.Ranges, wantRanges, data)
	}
	if wantDir := want.DataDir; wantDir != "" && filepath.Clean(wantDir) != got.DataDir || wantDir == "" && got.DataDir != "" {
		t.Fatalf("%s: dataDir: flatnet %q, host-local %q", name, got.DataDir, want.DataDir)
	}
	return accepted
}

// loadIPAMConfig is host-local's LoadIPAMConfig, with a panic as a refusal:
// it dereferences a null in args.cni.ips (plugins v1.10.0), so the plugin
// crashes and no pod of the network starts.
func loadIPAMConfig(conf []byte) (c *allocator.IPAMConfig, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("host-local panics: %v", p)
		}
	}()
	c, _, err = allocator.LoadIPAMConfig(conf, "")
	return c, err
}

// flatnetOnly reports whether a problem is one of flatnet's own refusals
// of a configuration host-local accepts: a relative dataDir (resolved
// against whatever directory the runtime runs in), or what the macvlan
// plugin, not host-local, would refuse.
func flatnetOnly(problem string) bool {
	for _, s := range []string{"dataDir", "mode", "linkInContainer", "master", "not a valid CNI network name"} {
		if strings.Contains(problem, s) {
			return true
		}
	}
	return false
}

// prefix converts host-local's canonical subnet.
func prefix(n net.IPNet) netip.Prefix {
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr(n.IP), ones)
}

// addr converts host-local's canonical (4- or 16-byte) address.
func addr(ip net.IP) netip.Addr {
	if ip == nil {
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
