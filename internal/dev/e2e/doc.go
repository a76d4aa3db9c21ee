// Package e2e holds flatnet's integration tests: the real flatnet binary,
// built once per run, runs inside a network-namespace lab (package lab)
// whose pods are made by the real CNI macvlan and host-local plugins, and
// reachability is proven with real packets (ping, HTTP, ARP). The CRI
// tests (cri_test.go) make their pods through containerd's CRI and
// crictl instead, as kubelet does.
//
// The tests build only with the integration tag (go test -tags
// integration), so that a plain go test ./... runs the unit tests alone,
// without root. They need root, iproute2, iputils ping, nft and the CNI
// plugins; without them they skip, or fail under CI (testenv.Skip). Tests
// wait for the event or condition they look for with generous safety
// deadlines and never assert how long anything took.
package e2e
