package reconcile

import (
	"slices"
	"strings"
	"testing"
)

// TestKindLists holds FindingKinds and OpKinds to their const blocks:
// every kind once, in order, from the first; and every op kind printed as
// the command that does it.
func TestKindLists(t *testing.T) {
	for i, k := range FindingKinds() {
		if k != FindReject+FindingKind(i) {
			t.Errorf("FindingKinds()[%d] = %d, want %d", i, k, FindReject+FindingKind(i))
		}
	}
	if len(FindingKinds()) < int(FindFilter) {
		t.Errorf("FindingKinds() stops before FindFilter: %v", FindingKinds())
	}
	for i, k := range OpKinds() {
		if k != AddShim+OpKind(i) {
			t.Errorf("OpKinds()[%d] = %d, want %d", i, k, AddShim+OpKind(i))
		}
		if s := (Op{Kind: k, Dev: "eno1.host"}).String(); strings.HasPrefix(s, "op(") {
			t.Errorf("op kind %d prints as %s: Op.String has no case for it", k, s)
		}
	}
	if len(OpKinds()) < int(SetProbe) {
		t.Errorf("OpKinds() stops before SetProbe: %v", OpKinds())
	}
}

// TestKindListsEnd: the lists stop at their last kind. A kind past it
// would be a value no consumer knows (flatnet check holds each listed
// kind to a line of its own).
func TestKindListsEnd(t *testing.T) {
	if got := FindingKinds(); got[len(got)-1] != FindFilter || len(got) != int(findEnd-FindReject) {
		t.Errorf("FindingKinds() = %v, want FindReject up to FindFilter (%d), each once", got, FindFilter)
	}
	if got := OpKinds(); got[len(got)-1] != opEnd-1 || len(got) != int(opEnd-AddShim) {
		t.Errorf("OpKinds() = %v, want AddShim up to %d, each once", got, opEnd-1)
	}
}

// TestZeroKindIsNone: the zero value of a kind is no kind at all. A zero
// Op must never read as a change to a device (it would print, and do,
// something), and lowerMaster returns a Finding with Kind 0 for "nothing
// to report".
func TestZeroKindIsNone(t *testing.T) {
	if slices.Contains(FindingKinds(), 0) {
		t.Errorf("FindingKinds() = %v: 0 is a kind", FindingKinds())
	}
	if slices.Contains(OpKinds(), 0) {
		t.Errorf("OpKinds() = %v: 0 is a kind", OpKinds())
	}
	if s := (Op{Dev: "eno1.host"}).String(); s != "op(0)" {
		t.Errorf("the zero Op prints as %q, want op(0)", s)
	}
}

// TestChangesLinks: which ops change a device or its settings, after
// which the daemon takes a new snapshot instead of trusting the one the
// plan came from; routes, neighbour flushes and the nftables tables do not.
func TestChangesLinks(t *testing.T) {
	keeps := map[OpKind]bool{AddRoute: true, ReplaceRoute: true, DelRoute: true, FlushNeigh: true, FlushNeighs: true, SetFilter: true, SetProbe: true}
	for _, k := range OpKinds() {
		if got := k.ChangesLinks(); got == keeps[k] {
			t.Errorf("op kind %d: ChangesLinks() = %v", k, got)
		}
	}
}
