package lab

import (
	"fmt"
	"net/netip"
)

// NIC is one more NIC of the node (AddNIC): a veth pair whose node end is
// Name and whose LAN end is plugged into a bridge of the LAN namespace,
// e.g. a second NIC for a storage network.
type NIC struct {
	// Name is the NIC in the node ("eno2").
	Name string
	// Addrs are the node's addresses on it.
	Addrs []netip.Prefix
	// Bridge is the LAN bridge it is plugged into. Default the lab's (br0).
	// A bridge that does not exist yet is made, with BridgeAddrs.
	Bridge      string
	BridgeAddrs []netip.Prefix
	// LANPort names the LAN end. Default "lan-<Name>".
	LANPort string
}

// AddNIC gives the node one more NIC plugged into the LAN.
func (l *Lab) AddNIC(n NIC) error {
	if n.Bridge == "" {
		n.Bridge = l.Bridge
	}
	if n.LANPort == "" {
		n.LANPort = lanPort(n.Name)
	}
	for _, name := range []string{n.Name, n.Bridge, n.LANPort} {
		if err := checkIfName(name); err != nil {
			return fmt.Errorf("AddNIC: %w", err)
		}
	}
	l.ops.RLock()
	defer l.ops.RUnlock()
	if err := l.checkNS(l.Node); err != nil {
		return err
	}
	var lan []string
	if ok, err := l.LinkExists(l.LAN, n.Bridge); err != nil {
		return err
	} else if !ok {
		lan = append(lan, "link add "+n.Bridge+" type bridge")
		for _, a := range n.BridgeAddrs {
			lan = append(lan, addrAdd(a, n.Bridge))
		}
		lan = append(lan, "link set "+n.Bridge+" up")
	}
	lan = append(lan,
		"link add "+n.LANPort+" type veth peer name "+n.Name+" netns "+l.Node,
		"link set "+n.LANPort+" master "+n.Bridge,
		"link set "+n.LANPort+" up",
	)
	if err := l.ipBatch(l.LAN, lan); err != nil {
		return err
	}
	var node []string
	for _, a := range n.Addrs {
		node = append(node, addrAdd(a, n.Name))
	}
	return l.ipBatch(l.Node, append(node, "link set "+n.Name+" up"))
}

// addrAdd is the ip command adding an address (IPv6 ones without duplicate
// address detection, so they are usable at once).
func addrAdd(a netip.Prefix, dev string) string {
	c := "addr add " + a.String() + " dev " + dev
	if a.Addr().Is6() {
		c += " nodad"
	}
	return c
}
