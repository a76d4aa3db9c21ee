// Package hostlocal understands the on-disk state of the CNI host-local IPAM
// plugin: which names in its data directory are allocations, what a file
// says about its owner, and which addresses a range may hand out.
//
// It does no I/O. What host-local writes (plugins/ipam/host-local/backend/disk):
//
//   - one regular file per allocated address, named by the address in Go's
//     net.IP.String() form (so canonical: "192.168.1.2", "fd00::2");
//   - the file is created with O_EXCL and written afterwards, so a reader can
//     see it empty for a moment; the content is "<container id>\r\n<ifname>"
//     (CNI >= 0.4 plugins, host-local >= 0.8) or just "<container id>" (older);
//   - "lock" (flock target) and "last_reserved_ip.<range set index>" live in
//     the same directory and are not allocations;
//   - a released address has its file removed.
package hostlocal

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MaxFileSize is the largest state file flatnet reads. Real ones hold a
// 64-byte container id and an interface name; anything bigger is not
// host-local's and is not read, so a huge file cannot cost memory.
const MaxFileSize = 4096

// ErrNotAllocation marks names host-local keeps in its directory that are not
// allocations ("lock", "last_reserved_ip.N", dot files). Callers skip them
// silently.
var ErrNotAllocation = errors.New("not an allocation")

// ParseName returns the address a state file name allocates. Only names in
// canonical form are accepted: "192.168.001.002", "::ffff:192.168.1.2" or
// "fd00:0::2" never come from host-local and are rejected, so one address
// cannot be routed twice under two names.
func ParseName(name string) (netip.Addr, error) {
	if name == "lock" || strings.HasPrefix(name, "last_reserved_ip.") || strings.HasPrefix(name, ".") {
		return netip.Addr{}, ErrNotAllocation
	}
	ip, err := netip.ParseAddr(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("name %q is not an IP address", name)
	}
	if ip.Zone() != "" || ip.Is4In6() || ip.String() != name {
		return netip.Addr{}, fmt.Errorf("name %q is not an IP address in canonical form", name)
	}
	return ip, nil
}

// Owner is what an allocation file says about the container holding it.
// Both fields are empty while host-local has created the file but not yet
// written it.
type Owner struct {
	ContainerID string
	IfName      string
}

// ParseContent reads an allocation file's content: "<id>\r\n<ifname>" or the
// older "<id>" alone. Unprintable bytes are dropped so the values are safe to
// log.
func ParseContent(b []byte) Owner {
	b = bytes.TrimSpace(b)
	id, ifname, _ := bytes.Cut(b, []byte("\n"))
	return Owner{ContainerID: printable(bytes.TrimSpace(id), 128), IfName: printable(bytes.TrimSpace(ifname), 16)}
}

// printable keeps at most max bytes of b that are printable ASCII.
func printable(b []byte, max int) string {
	var s strings.Builder
	for _, c := range b {
		if s.Len() == max {
			break
		}
		if c > ' ' && c < 0x7f {
			s.WriteByte(c)
		}
	}
	return s.String()
}

// Range is an address range as host-local hands addresses out of it: every
// address from Start to End inclusive, inside Subnet, except Gateway.
type Range struct {
	Subnet  netip.Prefix
	Start   netip.Addr
	End     netip.Addr
	Gateway netip.Addr // zero when none
}

// RangeFromPrefix is the range of every host address of p, the way
// host-local fills in a range that gives only a subnet: the network address
// is skipped, and for IPv4 the broadcast address too. Host routes ("/32",
// "/128") are ranges of one address.
func RangeFromPrefix(p netip.Prefix) Range {
	p = p.Masked()
	r := Range{Subnet: p, Start: p.Addr(), End: lastAddr(p)}
	if p.Bits() < p.Addr().BitLen()-1 {
		r.Start = r.Start.Next()
		if p.Addr().Is4() {
			r.End = r.End.Prev()
		}
	}
	return r
}

// Contains reports whether host-local could allocate ip from r.
func (r Range) Contains(ip netip.Addr) bool {
	return r.Subnet.Contains(ip) && r.Start.Compare(ip) <= 0 && ip.Compare(r.End) <= 0
}

// String prints r as host-local's config would: "192.168.0.0/16
// (192.168.1.2-192.168.1.254)".
func (r Range) String() string {
	return fmt.Sprintf("%s (%s-%s)", r.Subnet, r.Start, r.End)
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	a16 := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := range a16 {
		switch {
		case bits >= (i+1)*8:
		case bits <= i*8:
			a16[i] = 0xff
		default:
			a16[i] |= 0xff >> (bits - i*8)
		}
	}
	last := netip.AddrFrom16(a16)
	if p.Addr().Is4() {
		last = last.Unmap()
	}
	return last
}

// Rejection says why an allocated address must never be routed; 0 means
// it may be.
type Rejection int

// The reasons, each with its own fix (flatnet check names them).
const (
	NotUnicast         Rejection = iota + 1 // loopback, link-local, multicast, unspecified
	NodeAddress                             // one of the node's own addresses
	Gateway                                 // a range's gateway
	NetworkOrBroadcast                      // the first or last address of an IPv4 subnet
	OutsideRanges                           // in none of the network's ranges
)

// String says it as a log line does.
func (r Rejection) String() string {
	switch r {
	case NotUnicast:
		return "not a unicast address"
	case NodeAddress:
		return "a node address"
	case Gateway:
		return "the gateway"
	case NetworkOrBroadcast:
		return "the network or broadcast address of its subnet"
	case OutsideRanges:
		return "outside the network's ranges"
	}
	return ""
}

// Explain says r of ip, allocated in a network with ranges rs, as a log
// line does: for the first or last address of a subnet, which subnet.
func (r Rejection) Explain(ip netip.Addr, rs []Range) string {
	if r == NetworkOrBroadcast {
		for _, x := range rs {
			if x.Subnet.Contains(ip) {
				return "the network or broadcast address of " + x.Subnet.String()
			}
		}
	}
	return r.String()
}

// Reject says why ip, allocated in a network with ranges rs, must never be
// routed, or 0 when it may be. isNodeAddr tells the node's own addresses.
func Reject(ip netip.Addr, rs []Range, isNodeAddr func(netip.Addr) bool) Rejection {
	switch {
	case !ip.IsGlobalUnicast(): // also private space; not loopback, link-local, multicast, 0.0.0.0
		return NotUnicast
	case isNodeAddr != nil && isNodeAddr(ip):
		return NodeAddress
	}
	in := false
	for _, r := range rs {
		if r.Gateway == ip {
			return Gateway
		}
		// The first and last address of the subnet: whose neighbour is outside.
		if ip.Is4() && r.Subnet.Bits() < 31 && r.Subnet.Contains(ip) && (!r.Subnet.Contains(ip.Prev()) || !r.Subnet.Contains(ip.Next())) {
			return NetworkOrBroadcast
		}
		if r.Contains(ip) {
			in = true
		}
	}
	if !in {
		return OutsideRanges
	}
	return 0
}
