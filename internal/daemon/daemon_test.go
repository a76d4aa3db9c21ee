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
