package reconcile

import (
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
