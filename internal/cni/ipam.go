package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// The types below mirror what host-local decodes from its stdin
// (allocator.Net, IPAMConfig, Range), so that a config host-local refuses to
// decode is refused here too: same JSON field names (matched without regard
// to case, as encoding/json does), same IP and CIDR parsers.

// ipnet is a CIDR kept with its address as written, like CNI's types.IPNet:
// "192.168.1.5/24" is 192.168.1.5 with a /24 mask (which canonicalize
// refuses, as host-local does).
type ipnet net.IPNet

// UnmarshalJSON parses a CIDR string.
func (n *ipnet) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s is not a CIDR string", b)
	}
	ip, p, err := net.ParseCIDR(s)
	if err != nil {
		return fmt.Errorf("%q is not a CIDR", s)
	}
	p.IP = ip
	*n = ipnet(*p)
	return nil
}

// rangeConf is one range of a range set (allocator.Range).
type rangeConf struct {
	RangeStart net.IP `json:"rangeStart,omitempty"`
	RangeEnd   net.IP `json:"rangeEnd,omitempty"`
	Subnet     ipnet  `json:"subnet"`
	Gateway    net.IP `json:"gateway,omitempty"`
}

// rangeSet is a list of ranges host-local allocates one address from.
type rangeSet []rangeConf

// ipamConf is host-local's IPAMConfig; the embedded range is the legacy
// single-range form.
type ipamConf struct {
	rangeConf
	Type    string     `json:"type"`
	DataDir string     `json:"dataDir"`
	Ranges  []rangeSet `json:"ranges"`
	Routes  []struct {
		Dst ipnet  `json:"dst"`
		GW  net.IP `json:"gw,omitempty"`
	} `json:"routes"`
}

// ipArg is an address a pod asks for ("ips" in args.cni and runtimeConfig)
// as host-local's ip.IP reads it: an address, or one written as a CIDR
// ("10.0.0.5/24"). "" and null decode to none, which host-local then
// refuses ("cannot understand ip").
type ipArg struct{ ip net.IP }

// UnmarshalText parses an address or a CIDR.
func (a *ipArg) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "" {
		*a = ipArg{}
		return nil
	}
	var ip net.IP
	if strings.Contains(s, "/") {
		ip, _, _ = net.ParseCIDR(s)
	} else {
		ip = net.ParseIP(s)
	}
	if ip == nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	a.ip = ip
	return nil
}

// hostLocalConf is host-local's view of the whole plugin config
// (allocator.Net).
type hostLocalConf struct {
	IPAM          *ipamConf `json:"ipam"`
	RuntimeConfig struct {
		IPRanges []rangeSet `json:"ipRanges,omitempty"`
		IPs      []ipArg    `json:"ips,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	Args *struct {
		A *struct {
			IPs []ipArg `json:"ips"`
		} `json:"cni"`
	} `json:"args"`
}

// labeledSet is a range set and where it was written, for messages.
type labeledSet struct {
	label  string // "ipam.ranges[1]"
	legacy bool   // the ipam-level subnet: its one range has no index
	set    rangeSet
}

// hostLocal returns the dataDir and ranges host-local would use for the
// plugin config, or why host-local would refuse it.
func hostLocal(plugin []byte, cniVersion string) (string, []hostlocal.Range, error) {
	var c hostLocalConf
	if err := json.Unmarshal(plugin, &c); err != nil {
		return "", nil, jsonError(err, plugin)
	}
	if c.IPAM == nil {
		return "", nil, errors.New(`no "ipam"`)
	}
	ipam := c.IPAM
	// The addresses asked for are only checked: they must be addresses.
	asked := c.RuntimeConfig.IPs
	if c.Args != nil && c.Args.A != nil {
		asked = append(asked, c.Args.A.IPs...)
	}
	for _, a := range asked {
		if a.ip == nil {
			return "", nil, errors.New(`an empty address in "ips": host-local cannot understand it`)
		}
	}
	var sets []labeledSet
	for i, s := range c.RuntimeConfig.IPRanges {
		sets = append(sets, labeledSet{label: fmt.Sprintf("runtimeConfig.ipRanges[%d]", i), set: s})
	}
	if ipam.Subnet.IP != nil {
		sets = append(sets, labeledSet{label: "ipam", legacy: true, set: rangeSet{ipam.rangeConf}})
	}
	for i, s := range ipam.Ranges {
		sets = append(sets, labeledSet{label: fmt.Sprintf("ipam.ranges[%d]", i), set: s})
	}
	if len(sets) == 0 {
		return "", nil, errors.New(`host-local has no IP ranges: set ipam "ranges" (or "subnet")`)
	}

	canon := make([][]hostlocal.Range, len(sets))
	v4, v6 := 0, 0
	for i, s := range sets {
		rs, err := canonicalizeSet(s)
		if err != nil {
			return "", nil, err
		}
		canon[i] = rs
		if rs[0].Start.Is4() {
			v4++
		} else {
			v6++
		}
	}
	if (v4 > 1 || v6 > 1) && !versionAtLeast(cniVersion, "0.3.0") {
		return "", nil, fmt.Errorf("cniVersion %q allows one range set per address family; 0.3.0 and later allow more", cniVersion)
	}
	for i := range canon {
		for j := i + 1; j < len(canon); j++ {
			if setsOverlap(canon[i], canon[j]) {
				return "", nil, fmt.Errorf("%s overlaps %s", sets[i].label, sets[j].label)
			}
		}
	}

	dataDir := ipam.DataDir
	if dataDir != "" {
		if !filepath.IsAbs(dataDir) {
			return "", nil, fmt.Errorf("ipam dataDir %q is not an absolute path; host-local would resolve it against the runtime's working directory", dataDir)
		}
		dataDir = filepath.Clean(dataDir)
	}
	var ranges []hostlocal.Range
	for _, rs := range canon {
		ranges = append(ranges, rs...)
	}
	return dataDir, ranges, nil
}

// canonicalizeSet is host-local's RangeSet.Canonicalize.
func canonicalizeSet(s labeledSet) ([]hostlocal.Range, error) {
	if len(s.set) == 0 {
		return nil, fmt.Errorf("%s: empty range set", s.label)
	}
	label := func(k int) string {
		if s.legacy {
			return s.label
		}
		return fmt.Sprintf("%s[%d]", s.label, k)
	}
	out := make([]hostlocal.Range, len(s.set))
	for k, rc := range s.set {
		r, err := canonicalize(rc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label(k), err)
		}
		if k > 0 && r.Start.Is4() != out[0].Start.Is4() {
			return nil, fmt.Errorf("%s: mixed address families in one range set", s.label)
		}
		out[k] = r
	}
	for a := range out {
		for b := a + 1; b < len(out); b++ {
			if overlaps(out[a], out[b]) {
				return nil, fmt.Errorf("%s and %s overlap (%s, %s)", label(a), label(b), out[a], out[b])
			}
		}
	}
	return out, nil
}

// canonicalize is host-local's Range.Canonicalize: it checks a range and
// fills in its defaults. A refusal is a *RangeError.
func canonicalize(rc rangeConf) (hostlocal.Range, error) {
	if rc.Subnet.IP == nil {
		return hostlocal.Range{}, errors.New(`no "subnet"`)
	}
	ip, mask := rc.Subnet.IP, rc.Subnet.Mask
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	written := fmt.Sprintf("%s/%d", rc.Subnet.IP, maskOnes(mask))
	if len(ip) != len(mask) {
		return hostlocal.Range{}, fmt.Errorf("subnet %s mixes an IPv4 address with an IPv6 mask", written)
	}
	ones, bits := mask.Size()
	base, ok := netip.AddrFromSlice(ip)
	if !ok {
		return hostlocal.Range{}, fmt.Errorf("subnet %s is not IPv4 or IPv6", written)
	}
	// What the range says, for a RangeError.
	e := &RangeError{Subnet: netip.PrefixFrom(base, ones)}
	if rc.RangeStart != nil {
		e.Start = addrOf(rc.RangeStart)
	}
	if rc.RangeEnd != nil {
		e.End = addrOf(rc.RangeEnd)
	}
	if rc.Gateway != nil {
		e.Gateway = addrOf(rc.Gateway)
	}
	if ones > bits-2 {
		return hostlocal.Range{}, e.is(RangeTooSmall, "network %s too small to allocate from", written)
	}
	subnet := e.Subnet.Masked()
	if subnet.Addr() != base {
		// Every host-local since 0.8 refuses it ("Network has host bits
		// set"), so no pod of the network can start.
		return hostlocal.Range{}, e.is(RangeHostBits, "subnet %s has host bits set; write it as %s", written, subnet)
	}
	r := hostlocal.Range{Subnet: subnet, Start: base.Next(), Gateway: base.Next(), End: hostlocal.RangeFromPrefix(subnet).End}
	if e.Gateway.IsValid() {
		r.Gateway = e.Gateway
		if !subnet.Contains(r.Gateway) {
			return hostlocal.Range{}, e.is(RangeGatewayOutside, "gateway %s not in network %s", r.Gateway, written)
		}
	}
	if e.Start.IsValid() {
		r.Start = e.Start
		if !subnet.Contains(r.Start) {
			return hostlocal.Range{}, e.outside(RangeStartOutside, "rangeStart", written)
		}
	}
	if e.End.IsValid() {
		r.End = e.End
		if !subnet.Contains(r.End) {
			return hostlocal.Range{}, e.outside(RangeEndOutside, "rangeEnd", written)
		}
		if r.End.Less(r.Start) {
			e.Start = r.Start // the default, when none was written
			return hostlocal.Range{}, e.is(RangeEndBeforeStart, "rangeEnd %s is before rangeStart %s", r.End, r.Start)
		}
	}
	return r, nil
}

// RangeProblem is what is wrong with a host-local range.
type RangeProblem int

// The ranges host-local refuses that flatnet check explains with a fix of
// its own.
const (
	RangeTooSmall       RangeProblem = iota + 1 // smaller than /30 (/126)
	RangeHostBits                               // subnet written with host bits
	RangeGatewayOutside                         // gateway not in the subnet
	RangeStartOutside                           // rangeStart not in the subnet (or of the other family)
	RangeEndOutside                             // rangeEnd not in the subnet (or of the other family)
	RangeEndBeforeStart                         // rangeEnd before rangeStart (written or default)
)

// RangeError is one host-local range that host-local refuses, so that no
// pod of its network can start: what is wrong and what the range says, so
// that flatnet check explains it from the same reading the daemon made.
type RangeError struct {
	Problem RangeProblem
	// Subnet is the subnet as written, host bits and all; Start, End and
	// Gateway are as written, zero when absent (End before Start: Start is
	// the default when absent).
	Subnet              netip.Prefix
	Start, End, Gateway netip.Addr
	msg                 string
}

// Error is host-local's reason, as a person reads it.
func (e *RangeError) Error() string { return e.msg }

// is fills in the problem and message and returns e.
func (e *RangeError) is(p RangeProblem, format string, args ...any) *RangeError {
	e.Problem, e.msg = p, fmt.Sprintf(format, args...)
	return e
}

// outside is a rangeStart or rangeEnd outside the subnet.
func (e *RangeError) outside(p RangeProblem, key, written string) *RangeError {
	a := e.Start
	if p == RangeEndOutside {
		a = e.End
	}
	if a.Is4() != e.Subnet.Addr().Is4() {
		return e.is(p, "%s %s is not the same IP version as subnet %s", key, a, written)
	}
	return e.is(p, "%s %s not in network %s", key, a, written)
}

// addrOf converts a parsed net.IP the way host-local's canonicalizeIP does:
// IPv4 (also written as "::ffff:a.b.c.d") becomes a 4-byte address.
func addrOf(ip net.IP) netip.Addr {
	if v4 := ip.To4(); v4 != nil {
		return netip.AddrFrom4([4]byte(v4))
	}
	a, _ := netip.AddrFromSlice(ip)
	return a
}

// maskOnes is the prefix length of a canonical mask.
func maskOnes(m net.IPMask) int {
	ones, _ := m.Size()
	return ones
}

// overlaps is host-local's Range.Overlaps.
func overlaps(a, b hostlocal.Range) bool {
	if a.Start.Is4() != b.Start.Is4() {
		return false
	}
	return a.Contains(b.Start) || a.Contains(b.End) || b.Contains(a.Start) || b.Contains(a.End)
}

// setsOverlap is host-local's RangeSet.Overlaps.
func setsOverlap(a, b []hostlocal.Range) bool {
	for _, r := range a {
		for _, r1 := range b {
			if overlaps(r, r1) {
				return true
			}
		}
	}
	return false
}

// versionAtLeast reports whether the CNI version v ("0.3.1", "1.0.0") is at
// least min, as host-local's version.GreaterThanOrEqualTo has it: with
// libcni's parser, so "" is 0.1.0 and an unparseable version ("v1.0.0",
// "1.0.0-rc1") is not.
func versionAtLeast(v, min string) bool {
	p, err := parseVersion(v)
	return err == nil && cmpVersion(p, mustVersion(min)) >= 0
}
