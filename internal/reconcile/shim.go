package reconcile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net"
)

// IFNAMSIZ-1: the longest interface name Linux accepts.
const maxIfName = 15

// ShimName is the default shim name for a master: "<master>.host", as in
// the hand-made fix, or, when that does not fit in 15 bytes, "fn" plus a
// hash of the master's name plus ".host" — short and the same every boot.
func ShimName(master string) string {
	if n := master + ".host"; len(n) <= maxIfName {
		return n
	}
	sum := sha256.Sum256([]byte(master))
	return "fn" + hex.EncodeToString(sum[:4]) + ".host"
}

// ShimMAC derives the shim's MAC address from the machine id and the shim's
// name: the same across restarts and reboots, so pods' ARP caches and
// switch port security survive them, and different on every node. The
// address is unicast and locally administered. A node without a machine
// id passes the seed from [ShimSeed].
func ShimMAC(machineID, shim string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("flatnet shim\x00" + machineID + "\x00" + shim))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// ShimSeed is what seeds the MAC of a shim on master: the machine id, or,
// on a node without one (a container, an odd image; /etc/machine-id and
// the DMI product UUID both missing), the master's permanent address, else
// its current one. Either lasts across reboots, where the boot id, the
// usual last resort, would give the shim a new MAC at every boot.
func ShimSeed(machineID string, master Link) string {
	switch {
	case machineID != "":
		return machineID
	case len(master.PermMAC) > 0:
		return "mac " + master.PermMAC.String()
	}
	return "mac " + master.MAC.String()
}

// OwnShim reports whether l is a shim flatnet made, by its marks: the
// alias flatnet gives its shims, on a macvlan, with the MAC flatnet derives
// for that name on that master ([ShimMAC]). The alias alone is not enough:
// anyone with CAP_NET_ADMIN can set it, on any device, and flatnet deletes
// only what it made.
func OwnShim(l Link, snap *Snapshot, machineID string) bool {
	if l.Alias != ShimAlias || l.Kind != "macvlan" {
		return false
	}
	seed := machineID
	if seed == "" {
		master, ok := snap.LinkByIndex(l.ParentIndex)
		if !ok {
			return false
		}
		seed = ShimSeed("", master)
	}
	return bytes.Equal(l.MAC, ShimMAC(seed, l.Name))
}

// managedDevs are the devices whose routes with flatnet's protocol are
// flatnet's: the networks' shims (made or adopted), and the shims flatnet
// made or set up that no network uses any more. A route with protocol 97
// anywhere else is someone else's: never replaced, never deleted.
func managedDevs(in Input) map[string]bool {
	m := make(map[string]bool, len(in.Networks)+2)
	for _, n := range in.Networks {
		m[n.Shim] = true
	}
	for _, l := range in.Snap.Links {
		if OwnShim(l, in.Snap, in.MachineID) || l.Kind == "macvlan" && Guarded(l, in.Snap) {
			m[l.Name] = true
		}
	}
	return m
}
