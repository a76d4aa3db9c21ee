//go:build integration

package netlinkx

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/reconcile"
	"golang.org/x/sys/unix"
)

// TestDoBatchFailuresInPlace: only the last request of a batch asks for an
// acknowledgement, so a failure must still land on its own op wherever it
// is: first or last of a batch, across batches, at the very end.
func TestDoBatchFailuresInPlace(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	const n = 2*batchSize + 88
	dst := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)}), 32)
	}
	taken := map[int]bool{0: true, batchSize - 1: true, batchSize: true, batchSize + 44: true, n - 1: true}
	for i := range taken {
		if out, err := l.Exec(l.Node, "ip", "route", "add", dst(i).String(), "dev", l.Master, "proto", "4"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	var ops []reconcile.Op
	for i := range n {
		ops = append(ops, reconcile.Op{Kind: reconcile.AddRoute, Dev: l.Master, Dst: dst(i)})
	}
	// A deletion of a route that is not there succeeds (it is gone), and an
	// op on a device that is not there fails without a request.
	ops[100] = reconcile.Op{Kind: reconcile.DelRoute, Dev: l.Master, Dst: netip.MustParsePrefix("10.78.0.1/32")}
	ops[101].Dev = "nosuch0"

	var k *Kernel
	var errs []error
	if err := l.Do(l.Node, func() (err error) {
		if k, err = New(); err != nil {
			return err
		}
		errs = k.DoBatch(ops)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for i, err := range errs {
		switch {
		case taken[i]:
			if !errors.Is(err, unix.EEXIST) {
				t.Errorf("op %d (%s, taken): error %v, want EEXIST", i, ops[i], err)
			}
		case i == 101:
			if err == nil {
				t.Errorf("op %d (%s): no error for a missing device", i, ops[i])
			}
		case err != nil:
			t.Errorf("op %d (%s): %v", i, ops[i], err)
		}
	}
	out, err := l.Exec(l.Node, "ip", "route", "show", "proto", fmt.Sprint(reconcile.Protocol))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Count(out, "\n"), n-len(taken)-2; got != want {
		t.Errorf("%d routes of flatnet's in the kernel, want %d", got, want)
	}
}

// TestAddShimLinkLocalAtOnce: a shim flatnet makes (AddShim) has its
// link-local address usable the moment it is up, not tentative for the one
// to two seconds of duplicate address detection: the node's solicitations
// for pods leave the shim from that address, and while it is tentative the
// kernel sends none, so a new pod's first IPv6 packet waited a second.
func TestAddShimLinkLocalAtOnce(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	shim := l.Master + ".host"
	op := reconcile.Op{Kind: reconcile.AddShim, Dev: shim, Master: l.Master, MTU: 1500,
		MAC: reconcile.ShimMAC("0123456789abcdef0123456789abcdef", shim), Guard: reconcile.GuardShim}
	if err := l.Do(l.Node, func() error {
		k, err := New()
		if err != nil {
			return err
		}
		defer k.Close()
		return k.Do(op)
	}); err != nil {
		t.Fatal(err)
	}
	out, err := l.Exec(l.Node, "ip", "-6", "addr", "show", "dev", shim, "scope", "link")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "inet6 fe80::") || strings.Contains(out, "tentative") {
		t.Errorf("the new shim's link-local address, right after AddShim:\n%s\nwant one, not tentative", out)
	}
	if v, err := l.Exec(l.Node, "sysctl", "-n", "net/ipv6/conf/"+shim+"/accept_dad"); err != nil || strings.TrimSpace(v) != "0" {
		t.Errorf("accept_dad on %s: %q, %v; want 0", shim, v, err)
	}
}
