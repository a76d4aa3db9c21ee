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

// VLAN is a VLAN of one of the node's NICs (AddVLAN): a VLAN device in the
// node, and its end on the LAN: a VLAN device of the same ID on the
// bridge the NIC is plugged into, which forwards the tagged frames as they
// are. The kernel needs 802.1Q support (CONFIG_VLAN_8021Q).
type VLAN struct {
	// Parent is the node's NIC carrying the VLAN. Default Options.Master.
	Parent string
	// ID is the VLAN ID (1-4094).
	ID int
	// Name is the VLAN device in the node. Default "<Parent>.<ID>".
	Name string
	// Addrs are the node's addresses on it.
	Addrs []netip.Prefix
	// Bridge is the LAN bridge the parent is plugged into. Default the
	// lab's (br0). LANName is the VLAN device on it, default "<Bridge>.<ID>";
	// LANAddrs its addresses (the LAN's side of the VLAN).
	Bridge, LANName string
	LANAddrs        []netip.Prefix
}

// AddVLAN makes a VLAN of a node NIC and its end in the LAN, both up.
func (l *Lab) AddVLAN(v VLAN) error {
	if v.Parent == "" {
		v.Parent = l.Master
	}
	if v.Bridge == "" {
		v.Bridge = l.Bridge
	}
	if v.ID < 1 || v.ID > 4094 {
		return fmt.Errorf("AddVLAN: VLAN ID %d out of 1-4094", v.ID)
	}
	if v.Name == "" {
		v.Name = fmt.Sprintf("%s.%d", v.Parent, v.ID)
	}
	if v.LANName == "" {
		v.LANName = fmt.Sprintf("%s.%d", v.Bridge, v.ID)
	}
	return l.addPair(v.Name, v.LANName, v.Addrs, v.LANAddrs,
		fmt.Sprintf("link add link %s name %s type vlan id %d", v.Parent, v.Name, v.ID),
		fmt.Sprintf("link add link %s name %s type vlan id %d", v.Bridge, v.LANName, v.ID))
}

// VXLAN is a VXLAN segment between the node and the LAN (AddVXLAN): a
// VXLAN device in each, tunnelling over the node's NIC and the LAN
// bridge, point to point.
type VXLAN struct {
	// Name is the device's name, in the node and in the LAN.
	Name string
	// VNI is the VXLAN network identifier.
	VNI int
	// Addrs and LANAddrs are the node's and the LAN's addresses on it.
	Addrs, LANAddrs []netip.Prefix
}

// AddVXLAN makes a VXLAN device in the node and one in the LAN, both up,
// each sending to the other's address on the LAN (UDP port 4789).
func (l *Lab) AddVXLAN(v VXLAN) error {
	if v.VNI < 1 || v.VNI > 1<<24-1 {
		return fmt.Errorf("AddVXLAN: VNI %d out of range", v.VNI)
	}
	gw := l.Opts.GatewayAddr.Addr()
	return l.addPair(v.Name, v.Name, v.Addrs, v.LANAddrs,
		fmt.Sprintf("link add %s type vxlan id %d local %s remote %s dstport 4789 dev %s", v.Name, v.VNI, l.NodeIP, gw, l.Master),
		fmt.Sprintf("link add %s type vxlan id %d local %s remote %s dstport 4789 dev %s", v.Name, v.VNI, gw, l.NodeIP, l.Bridge))
}

// addPair makes a device in the node and one in the LAN with the given
// ip commands, gives them their addresses and sets them up.
func (l *Lab) addPair(node, lan string, addrs, lanAddrs []netip.Prefix, nodeAdd, lanAdd string) error {
	for _, name := range []string{node, lan} {
		if err := checkIfName(name); err != nil {
			return err
		}
	}
	l.ops.RLock()
	defer l.ops.RUnlock()
	cmds := []string{lanAdd}
	for _, a := range lanAddrs {
		cmds = append(cmds, addrAdd(a, lan))
	}
	if err := l.ipBatch(l.LAN, append(cmds, "link set "+lan+" up")); err != nil {
		return err
	}
	cmds = []string{nodeAdd}
	for _, a := range addrs {
		cmds = append(cmds, addrAdd(a, node))
	}
	return l.ipBatch(l.Node, append(cmds, "link set "+node+" up"))
}
