package main

import "testing"

// TestGCPercentFor: a small live heap may gather minGarbage between
// collections (capped, for a nearly empty heap); from about 8 MiB live,
// runGCPercent's half of the live heap is more, and holds.
func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 400},
		{512 << 10, 400},
		{2 << 20, 200},
		{3 << 20, 133},
		{8 << 20, 50},
		{100 << 20, 50},
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", c.live, got, c.want)
		}
	}
}
