package reconcile

import (
	"slices"
	"testing"
)

// TestShimARPIgnore: a shim with arp_ignore set (inherited from
// default.arp_ignore when it was made, or set later) is configured again.
func TestShimARPIgnore(t *testing.T) {
	s := shim
	s.ARPIgnore = true
	in := Input{
		Networks: []Network{seedNet},
		States:   map[string]DirState{seedNet.StateDir: allocs()},
		Snap:     &Snapshot{Links: []Link{eno1, s}},
	}
	k := &fakeKernel{}
	if _, err := Apply(k, Compute(in).Ops); err != nil {
		t.Fatal(err)
	}
	want := []string{"sysctl -w net.ipv4.conf.eno1.host.arp_filter=1 net.ipv4.conf.eno1.host.arp_ignore=0 net.ipv6.conf.eno1.host.proxy_ndp=1 net.ipv6.conf.eno1.host.forwarding=1 net.ipv6.conf.eno1.host.accept_dad=0"}
	if !slices.Equal(k.cmds, want) {
		t.Errorf("ops %q, want %q", k.cmds, want)
	}
}
