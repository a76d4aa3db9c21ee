package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// TestOwnDeletionEchoes: the echo of a deletion flatnet made is dropped;
// any other deletion of one of its routes wakes a pass that reads the
// kernel again, also when an expected echo never came before that read.
func TestOwnDeletionEchoes(t *testing.T) {
	d := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	d.snap = &reconcile.Snapshot{}
	p := netip.MustParsePrefix("192.168.1.2/32")
	gone := netlinkx.Event{Kind: netlinkx.OwnRouteDeleted, Dst: p}

	// A pass deletes the route: its echo is expected and dropped.
	d.expectDel[p]++
	d.onKernel(gone)
	if d.needSnapshot() {
		t.Errorf("our own deletion's echo asked for a new snapshot")
	}

	// A pass deletes a route that had already gone without a word (its
	// shim went down): no echo comes. The next pass reads the kernel...
	d.expectDel[p]++
	d.kernelDirty = true
	if !d.needSnapshot() {
		t.Fatalf("no new snapshot with the kernel marked dirty")
	}
	// ... and a later deletion by someone else is not taken for the echo.
	d.onKernel(gone)
	if !d.needSnapshot() {
		t.Errorf("a route deleted by someone else was taken for our echo")
	}
}

// TestCarrierBack: a shim is reported when a snapshot shows its carrier
// back after one without it, not when it is new, recreated or unchanged.
func TestCarrierBack(t *testing.T) {
	d := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	nets := []reconcile.Network{{Name: "default", Master: "eno1", Shim: "eno1.host"}}
	snap := func(index int, lowerUp bool) *reconcile.Snapshot {
		return &reconcile.Snapshot{Links: []reconcile.Link{{Index: index, Name: "eno1.host", Up: true, LowerUp: lowerUp}}}
	}
	for i, c := range []struct {
		snap *reconcile.Snapshot
		back bool
	}{
		{snap(7, false), false},        // first look
		{snap(7, true), true},          // the master came back
		{snap(7, true), false},         // unchanged
		{snap(7, false), false},        // the master went down
		{snap(9, true), false},         // recreated: a new device has no entries
		{&reconcile.Snapshot{}, false}, // gone
		{snap(9, true), false},         // and back, new again
		{snap(9, false), false},        // down
		{snap(9, true), true},          // up
	} {
		if got := d.carrierBack(nets, c.snap)["eno1.host"]; got != c.back {
			t.Errorf("step %d: carrier back %v, want %v", i, got, c.back)
		}
	}
}
