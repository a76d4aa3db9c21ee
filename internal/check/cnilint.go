package check

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/text"
)

// cniDir checks that the CNI configuration directory can be read.
func (c *checker) cniDir() {
	f := c.f
	dir := f.Config.CNIConfDir
	switch {
	case f.CNIDirErr != nil:
		c.add(Fail, "cni", fmt.Sprintf("cannot read %s: %v", dir, f.CNIDirErr),
			fmt.Sprintf("make %s readable by root (ls -ld %s), or point cni_conf_dir at the right directory", dir, dir))
		return
	case f.CNIDirMissing && len(f.Config.Networks) > 0:
		c.add(OK, "cni", fmt.Sprintf("%s does not exist; the networks come from the configuration alone", dir), "")
		return
	case f.CNIDirMissing:
		c.add(Warn, "cni", fmt.Sprintf("%s does not exist: no CNI network to mirror", dir),
			fmt.Sprintf("install the pods' macvlan conflist in %s, or set cni_conf_dir in the configuration to where it is", dir))
		return
	}
	var names []string
	for _, n := range f.CNI {
		names = append(names, fmt.Sprintf("%s (%s)", n.Name, n.File))
	}
	found := "no macvlan network"
	if len(names) > 0 {
		found = "macvlan: " + strings.Join(names, ", ")
	}
	c.add(OK, "cni", fmt.Sprintf("%s: %s, %s", dir, text.Plural(countCNIFiles(f.CNIFiles), "config file", "config files"), found), "")
}

func countCNIFiles(files []cni.File) int {
	n := 0
	for _, f := range files {
		if slices.Contains(cni.Extensions, filepath.Ext(f.Name)) {
			n++
		}
	}
	return n
}

// rawPlugin is a macvlan plugin as written in a CNI file, read leniently so
// that a mode or master the macvlan plugin refuses can still be explained.
// Its ranges are not read here: package cni's reading (its Networks, and
// the *cni.RangeError of a refused one) is what check explains.
type rawPlugin struct {
	network string
	Type    string `json:"type"`
	Master  string `json:"master"`
	Mode    string `json:"mode"`
	IPAM    *struct {
		Type string `json:"type"`
	} `json:"ipam"`
}

// macvlanPlugins returns the macvlan plugins of a CNI file; ok is false
// when the file is not JSON of a known shape.
func macvlanPlugins(name string, data []byte) (plugins []rawPlugin, ok bool) {
	var list struct {
		Name    string            `json:"name"`
		Plugins []json.RawMessage `json:"plugins"`
	}
	if json.Unmarshal(data, &list) != nil {
		return nil, false
	}
	raws := list.Plugins
	if filepath.Ext(name) != ".conflist" {
		raws = []json.RawMessage{data}
	}
	for _, r := range raws {
		var p rawPlugin
		if json.Unmarshal(r, &p) != nil {
			continue
		}
		if p.Type == "macvlan" {
			p.network = list.Name
			plugins = append(plugins, p)
		}
	}
	return plugins, true
}

// cniLint checks every macvlan plugin of every CNI file and reports the
// files the runtime cannot use.
func (c *checker) cniLint() {
	f := c.f
	problems := map[string][]cni.Problem{}
	for _, p := range f.CNIProblems {
		problems[p.File] = append(problems[p.File], p)
	}
	for _, file := range f.CNIFiles {
		if !slices.Contains(cni.Extensions, filepath.Ext(file.Name)) {
			continue
		}
		name := "cni " + file.Name
		path := filepath.Join(f.Config.CNIConfDir, file.Name)
		explained := false
		if file.Err == nil {
			plugins, _ := macvlanPlugins(file.Name, file.Data)
			c.macvlanConfigs += len(plugins)
			for _, p := range plugins {
				explained = c.lintPlugin(name, path, file.Name, p, problems[file.Name]) || explained
			}
		}
		if explained {
			continue
		}
		for _, p := range problems[file.Name] {
			msg := p.Err.Error()
			switch {
			case errors.Is(p.Err, cni.ErrDuplicate):
				c.add(Warn, name, msg, fmt.Sprintf("remove %s, or give its network another name; the runtime uses the first file too", path))
			default:
				c.add(Fail, name, "skipped, by flatnet and by the container runtime: "+msg,
					fmt.Sprintf("correct %s as the message says; pods of its network cannot start until then", path))
			}
		}
	}
}

// lintPlugin checks one macvlan plugin, given the file's problems. It
// reports whether it found something wrong (which then explains them).
func (c *checker) lintPlugin(name, path, file string, p rawPlugin, problems []cni.Problem) bool {
	f := c.f
	net := p.network
	before := len(c.out)
	bad := func(s Status, detail, fix string) {
		c.add(s, name, fmt.Sprintf("network %s: %s", net, detail), fix)
	}
	if p.IPAM == nil || p.IPAM.Type == "" {
		bad(Warn, "macvlan with no IPAM: its pods get their addresses themselves (a VM that runs DHCP), which flatnet cannot know, so the node does not reach them (flatnet status lists them as not routable)",
			fmt.Sprintf(`give the network an IPAM in %s (host-local, static, whereabouts or dhcp: their address is then in libcni's cache), or route those pods by hand`, path))
	}
	lintMode(bad, path, net, p.Mode)
	master := c.lintMaster(bad, path, p.Master)
	lan := c.lanPrefixes(master)
	// A range host-local refuses, as package cni read it.
	for _, pr := range problems {
		var re *cni.RangeError
		if errors.As(pr.Err, &re) {
			explainRange(bad, path, re, lan)
		}
	}
	// What host-local hands out, as package cni worked it out.
	for _, n := range f.CNI {
		if n.File != file || n.Name != net {
			continue
		}
		for _, r := range n.Ranges {
			lintLAN(bad, path, r, master, lan)
			if f.Snap != nil {
				c.lintNodeOverlap(bad, path, r)
			}
		}
	}
	if len(c.out) > before {
		return true
	}
	desc := fmt.Sprintf("macvlan %s on %s", cmp.Or(p.Mode, "bridge"), cmp.Or(master, "(default-route NIC)"))
	if p.IPAM.Type != "host-local" {
		desc += fmt.Sprintf(", IPAM %s: flatnet routes the addresses libcni caches for its pods", p.IPAM.Type)
	}
	for _, n := range f.CNI {
		if n.File == file && n.Name == net {
			for _, r := range n.Ranges {
				desc += fmt.Sprintf(", host-local %s-%s of %s", r.Start, r.End, r.Subnet)
				if r.Gateway.IsValid() {
					desc += " gateway " + r.Gateway.String()
				}
			}
		}
	}
	c.add(OK, name, fmt.Sprintf("network %s: %s", net, desc), "")
	return false
}

// lintMode fails a macvlan mode the shim cannot reach pods in.
func lintMode(bad func(Status, string, string), path, net, mode string) {
	switch mode {
	case "", "bridge":
		return
	}
	why := map[string]string{
		"private":  "private mode drops all traffic between macvlans of one master, so the shim cannot reach the pods",
		"vepa":     "vepa mode sends traffic between macvlans to the switch, which must send it back (reflective relay); almost none do, so the shim cannot reach the pods",
		"passthru": "passthru mode allows a single macvlan on the master, so the shim and the pods cannot coexist",
	}[mode]
	if why == "" {
		why = "the shim can reach pods only in bridge mode"
	}
	bad(Fail, fmt.Sprintf("macvlan mode %q: %s", mode, why),
		fmt.Sprintf(`set "mode": "bridge" in %s (bridge is also what leaving "mode" out means), then recreate the pods of %s: a pod keeps the mode it was made with`, path, net))
}

// lintMaster fails a master that is not on the node and returns the NIC
// the pods are on: master, or the default route's when it is "".
func (c *checker) lintMaster(bad func(Status, string, string), path, master string) string {
	f := c.f
	if f.Snap == nil {
		return master
	}
	if master == "" {
		master = f.Snap.DefaultRouteDev()
		if master == "" {
			bad(Fail, `no "master" and no default route: the macvlan plugin has no NIC to put pods on`,
				fmt.Sprintf(`set "master" in %s to the NIC on the pods' LAN (see ip -br link)`, path))
		}
	} else if _, ok := f.Snap.Link(master); !ok {
		hint := ""
		if d := f.Snap.DefaultRouteDev(); d != "" {
			hint = fmt.Sprintf("; the default route is on %s", d)
		}
		bad(Fail, fmt.Sprintf("master %s does not exist: no pod of this network can start", master),
			fmt.Sprintf(`set "master" in %s to the NIC on the pods' LAN (see ip -br link%s)`, path, hint))
	}
	return master
}

// explainRange says why host-local refuses a range, and how to write it.
func explainRange(bad func(Status, string, string), path string, re *cni.RangeError, lan []netip.Prefix) {
	subnet := re.Subnet.Masked()
	first, last := hostlocal.RangeFromPrefix(subnet).Start, hostlocal.RangeFromPrefix(subnet).End
	switch re.Problem {
	case cni.RangeTooSmall:
		bad(Fail, fmt.Sprintf("subnet %s is too small to allocate from (host-local needs /30 or wider, /126 for IPv6): host-local refuses this", re.Subnet),
			fmt.Sprintf(`widen "subnet" in %s`, path))
	case cni.RangeHostBits:
		bad(Fail, fmt.Sprintf("subnet %s has host bits set: host-local refuses this, so no pod of the network can start", re.Subnet),
			fmt.Sprintf(`write "subnet" in %s as "%s"`, path, subnet))
	case cni.RangeGatewayOutside:
		// The seed's failed attempt: pods in a narrower subnet than the LAN,
		// with the LAN's router as gateway.
		gw := re.Gateway
		fix := fmt.Sprintf(`set "gateway" in %s to the router's address inside %s, or remove it`, path, subnet)
		for _, l := range lan {
			if l.Contains(gw) && l.Bits() < subnet.Bits() && l.Contains(subnet.Addr()) {
				s, e := first, last
				if subnet.Contains(re.Start) {
					s = re.Start
				}
				if subnet.Contains(re.End) {
					e = re.End
				}
				fix = fmt.Sprintf(`use the LAN's subnet and narrow the pool instead: "subnet": "%s", "rangeStart": "%s", "rangeEnd": "%s", "gateway": "%s" in %s`, l.Masked(), s, e, gw, path)
				break
			}
		}
		bad(Fail, fmt.Sprintf("gateway %s is outside subnet %s: host-local refuses this, so no pod of the network can start", gw, subnet), fix)
	case cni.RangeStartOutside:
		bad(Fail, fmt.Sprintf("rangeStart %s is outside subnet %s: host-local refuses this", re.Start, subnet),
			fmt.Sprintf(`set "rangeStart" in %s to an address inside %s (such as %s), or widen "subnet"`, path, subnet, first))
	case cni.RangeEndOutside:
		bad(Fail, fmt.Sprintf("rangeEnd %s is outside subnet %s: host-local refuses this", re.End, subnet),
			fmt.Sprintf(`set "rangeEnd" in %s to an address inside %s (such as %s), or widen "subnet"`, path, subnet, last))
	case cni.RangeEndBeforeStart:
		bad(Fail, fmt.Sprintf("rangeEnd %s is before rangeStart %s: host-local refuses this", re.End, re.Start),
			fmt.Sprintf(`swap them in %s: "rangeStart": "%s", "rangeEnd": "%s"`, path, re.End, re.Start))
	}
}

// lintLAN warns of an IPv4 range whose subnet does not hold the master's
// address: the pods are then not on-link with the node, and reach it, and
// the rest of the LAN, only through their gateway.
func lintLAN(bad func(Status, string, string), path string, r hostlocal.Range, master string, lan []netip.Prefix) {
	if !r.Subnet.Addr().Is4() || len(lan) == 0 {
		return
	}
	for _, l := range lan {
		if r.Subnet.Contains(l.Addr()) {
			return
		}
	}
	lanStr := make([]string, len(lan))
	for i, l := range lan {
		lanStr[i] = l.Masked().String()
	}
	via := "their gateway"
	if r.Gateway.IsValid() {
		via = "their gateway " + r.Gateway.String()
	}
	bad(Warn, fmt.Sprintf("subnet %s does not hold %s's address (%s): pods reach the node only through %s, which must route between the two, and not through the shim",
		r.Subnet, master, strings.Join(lanStr, ", "), via),
		fmt.Sprintf(`use the LAN's subnet (%s) as "subnet" in %s and keep the pods in %s with "rangeStart" and "rangeEnd"`, lanStr[0], path, r.Subnet))
}

// lintNodeOverlap fails a range that holds one of the node's addresses:
// host-local would give it to a pod.
func (c *checker) lintNodeOverlap(bad func(Status, string, string), path string, r hostlocal.Range) {
	for _, a := range c.f.Snap.Addrs {
		if !r.Contains(a) || a == r.Gateway {
			continue
		}
		fix := fmt.Sprintf(`narrow the range in %s so it leaves %s out`, path, a)
		if addrDist(r.Start, a).Cmp(addrDist(a, r.End)) >= 0 {
			// Keep the larger part: below the address.
			fix += fmt.Sprintf(` ("rangeEnd": "%s")`, a.Prev())
		} else {
			fix += fmt.Sprintf(` ("rangeStart": "%s")`, a.Next())
		}
		bad(Fail, fmt.Sprintf("pool %s-%s holds the node's own address %s: host-local may give it to a pod, which then steals the node's traffic", r.Start, r.End, a),
			fix+", and recreate any pod holding it")
	}
}

// lanPrefixes are the master's IPv4 addresses with their prefix lengths.
func (c *checker) lanPrefixes(master string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range c.linkAddrs(master) {
		if p.Addr().Is4() && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p)
		}
	}
	return out
}

// addrDist is b minus a, as a number.
func addrDist(a, b netip.Addr) *big.Int {
	x, y := a.As16(), b.As16()
	return new(big.Int).Sub(new(big.Int).SetBytes(y[:]), new(big.Int).SetBytes(x[:]))
}
