//go:build integration

package netlinkx

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// TestFilterOnTheKernel: in a lab node, the probe finds the egress hook and
// leaves nothing behind; the table flatnet writes reads back as written,
// replaces what was there in one go, and is recognised when an operator
// wrote it with nft(8) (the recipe flatnet's README once gave); a rule of
// another shape makes it Other; WatchFilter reports its deletion.
func TestFilterOnTheKernel(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	if _, err := l.Exec(l.Node, "ip", "link", "add", "eno2", "type", "veth", "peer", "name", "eno2p"); err != nil {
		t.Fatal(err)
	}
	nftList := func() string {
		out, err := l.Exec(l.Node, "nft", "list", "ruleset")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	read := func() *reconcile.Filter {
		var f *reconcile.Filter
		if err := l.Do(l.Node, func() (err error) { f, err = readFilter(); return err }); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if err := l.Do(l.Node, ProbeFilter); err != nil {
		t.Fatalf("ProbeFilter on a kernel with netdev egress: %v", err)
	}
	if out := nftList(); strings.TrimSpace(out) != "" {
		t.Fatalf("the probe left something behind:\n%s", out)
	}
	if f := read(); f != nil {
		t.Fatalf("no table, read %+v", f)
	}

	drops := []reconcile.Drop{{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}, {Master: "eno1", MAC: "02:00:00:00:00:02"}, {Master: "eno2", MAC: "02:00:00:00:00:03"}}
	if err := l.Do(l.Node, func() error { return setFilter(drops) }); err != nil {
		t.Fatal(err)
	}
	got := read()
	if got == nil || got.Other || !slices.EqualFunc(got.Drops, drops, func(a, b reconcile.Drop) bool { return a.Master == b.Master && a.MAC == b.MAC }) {
		t.Fatalf("read back %+v, want %v\n%s", got, drops, nftList())
	}
	if out := nftList(); !strings.Contains(out, "ether saddr 02:68:e4:f9:d5:ec counter packets 0 bytes 0 drop") {
		t.Errorf("nft does not print flatnet's rule as `ether saddr … drop`:\n%s", out)
	}
	// Written anew: only the new content.
	if err := l.Do(l.Node, func() error { return setFilter(drops[2:]) }); err != nil {
		t.Fatal(err)
	}
	if got := read(); got == nil || len(got.Drops) != 1 || got.Drops[0].Master != "eno2" {
		t.Errorf("after rewriting: %+v\n%s", got, nftList())
	}

	// The watch sees a flush.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan Event, 16)
	go func() {
		_ = l.Do(l.Node, func() error {
			return WatchFilter(ctx, func(e Event) {
				select {
				case events <- e:
				default:
				}
			})
		})
	}()
	// The subscription is in place once a change by nft(8) is seen.
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		if _, err := l.Exec(l.Node, "nft", "add", "chain", "netdev", "flatnet", "probe"); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			seen = e.Kind == FilterChanged
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("WatchFilter reported no change of the table")
		}
	}
	for len(events) > 0 {
		<-events
	}
	// A change flatnet makes itself is not reported (it would cost a full
	// pass); the next one, by nft(8), is, and says who made it.
	if err := l.Do(l.Node, func() error { return setFilter(drops[2:]) }); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(l.Node, "nft", "flush", "ruleset"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Kind != FilterChanged || e.By != "nft" {
			t.Errorf("event %v by %q, want FilterChanged by nft: flatnet's own change was reported", e.Kind, e.By)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for nft flush ruleset")
	}
	if f := read(); f != nil {
		t.Errorf("after a flush, read %+v", f)
	}

	// The README's old manual recipe, as an operator typed it.
	for _, c := range []string{
		"add table netdev flatnet",
		"add chain netdev flatnet eno1 { type filter hook egress device eno1 priority 0; }",
		"add rule netdev flatnet eno1 ether saddr 02:68:e4:f9:d5:ec drop",
	} {
		if _, err := l.Exec(l.Node, append([]string{"nft"}, strings.Fields(c)...)...); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(); got == nil || got.Other || len(got.Drops) != 1 || got.Drops[0] != (reconcile.Drop{Master: "eno1", MAC: "02:68:e4:f9:d5:ec"}) {
		t.Errorf("the operator's table read as %+v", got)
	}
	if _, err := l.Exec(l.Node, "nft", "add", "rule", "netdev", "flatnet", "eno1", "ether", "type", "arp", "accept"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got == nil || !got.Other {
		t.Errorf("a rule flatnet would not write was not noticed: %+v", got)
	}
}
