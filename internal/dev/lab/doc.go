// Package lab builds a throwaway network-namespace copy of the node in
// flatnet's product brief, for the demo, the integration tests and the
// benchmark.
//
// A lab is three kinds of network namespace, all named "fnlab-<pid>-<n>-…"
// after the process that made them:
//
//   - the LAN (Lab.LAN): a Linux bridge br0 holding the LAN's gateway,
//     192.168.0.1/16 and fd00::1/64;
//   - the node (Lab.Node): the far end of a veth pair plugged into br0, named
//     like the node's NIC (eno1), 192.168.0.5/16 and fd00::5/64, with a
//     default route via the gateway. flatnet runs here;
//   - pods (Lab.AddPod): one namespace each, whose eth0 is made by the real
//     CNI macvlan plugin (run inside the node namespace, as a container
//     runtime on the node would) with host-local IPAM, from the conflist the
//     lab writes to <Dir>/net.d. host-local keeps its allocation files in
//     <Dir>/networks/<network>, never in /var/lib/cni.
//
// More of the same, for the topologies flatnet supports: AddNetwork writes
// another conflist (AddPodTo puts pods on it), AddNIC gives the node a
// second NIC on a bridge of the LAN, and Options.JoinLAN makes a lab whose
// node joins another lab's LAN, so that several nodes, each with its own
// ranges, state dir and flatnet (with its own Options.MachineID, hence its
// own shim MAC), share one LAN. WatchNDP, NDPProbe and Neighbours show what
// a namespace learns of its neighbours.
//
// Pods may also come from a container runtime as on a Kubernetes node:
// StartCRI runs containerd with its CRI plugin for the lab (in the node
// namespace, in mount and PID namespaces of its own that go with it), and
// its RunPod, StopPod and RemovePod drive it with crictl as kubelet does;
// StartDHCPServer serves DHCP on the LAN (dnsmasq) for dhcp IPAM, and
// ReadCacheEntry reads what libcni cached of an attachment.
//
// Nothing of the host is touched: every command and socket of the lab runs
// in one of the lab's own namespaces (the methods refuse any other), and
// Close removes all of them, kills the processes the lab started and
// deletes the lab's directory. New also removes what labs of processes that
// are no longer alive left behind, and HandleInterrupt closes every open lab
// on SIGINT or SIGTERM.
//
// The package needs root, iproute2, iputils ping, nft and the CNI plugins
// (Debian's containernetworking-plugins); Require skips a test without
// them, or fails it under CI (testenv.Skip). StartCRI also needs
// containerd, runc and util-linux (RequireCRI), StartDHCPServer dnsmasq. Its own tests that build labs
// carry the integration build tag.
package lab
