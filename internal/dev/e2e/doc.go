// Package e2e holds flatnet's integration tests: the real flatnet binary,
// built once per run, runs inside a network-namespace lab (package lab)
// whose pods are made by the real CNI macvlan and host-local plugins, and
// reachability is proven with real packets (ping, HTTP, ARP).
//
// The tests need root, iproute2, iputils ping and the CNI plugins; without
// them they skip, or fail when CI=true. Tests poll for conditions with
// generous timeouts and never assert how long anything took.
package e2e
