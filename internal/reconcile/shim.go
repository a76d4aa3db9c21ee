package reconcile

import (
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
