package cni

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestIndexAgreesWithCombine: whatever sequence of cache entries comes,
// changes and goes, the Index's changes (or its call for a whole Combine)
// keep exactly the attachments Combine follows, and a change it takes in
// O(1) leaves every network, refusal and name as Combine has them.
func TestIndexAgreesWithCombine(t *testing.T) {
	ml := func(master, subnet string) string {
		return `{"type": "macvlan", "master": "` + master + `", "ipam": {"type": "host-local", "subnet": "` + subnet + `"}}`
	}
	confNets, _ := Discover([]File{{Name: "10-conf.conflist", Data: []byte(netListJSON("conf", ml("eno1", "10.1.0.0/24")))}})
	claims := Claims([]File{
		{Name: "10-conf.conflist", Data: []byte(netListJSON("conf", ml("eno1", "10.1.0.0/24")))},
		{Name: "20-br.conflist", Data: []byte(netListJSON("bridged", `{"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.9.0.0/24"}}`))},
	})
	configs := map[string][]string{
		"conf":    {netListJSON("conf", ml("eno1", "10.1.0.0/24")), netListJSON("conf", ml("eno2", "10.1.0.0/24"))},
		"nad":     {netListJSON("nad", ml("eno1", "10.2.0.0/24")), netListJSON("nad", ml("eno1", "10.3.0.0/24")), netListJSON("nad", `{"type": "bridge"}`)},
		"bridged": {netListJSON("bridged", ml("eno1", "10.9.0.0/24")), netListJSON("bridged", `{"type": "bridge"}`)},
		// A name whose attachments have no ranges (static IPAM), and that
		// a runtime's ipRanges attachment may share (the same key as
		// written: no ranges).
		"static": {netListJSON("static", `{"type": "macvlan", "master": "eno1", "ipam": {"type": "static"}}`),
			netListJSON("static", `{"type": "macvlan", "master": "eno1", "ipam": {"type": "static"}}`),
			netListJSON("static", `{"type": "macvlan", "master": "eno1", "capabilities": {"ipRanges": true}, "ipam": {"type": "host-local"}}`)},
		// Run-time ranges (ipRanges), with no ranges written or with some.
		"rt": {netListJSON("rt", `{"type": "macvlan", "master": "eno1", "capabilities": {"ipRanges": true}, "ipam": {"type": "host-local"}}`)},
		"rtw": {netListJSON("rtw", `{"type": "macvlan", "master": "eno1", "capabilities": {"ipRanges": true}, "ipam": {"type": "host-local", "subnet": "10.20.0.0/24"}}`),
			netListJSON("rtw", `{"type": "macvlan", "master": "eno1", "ipam": {"type": "host-local", "subnet": "10.20.0.0/24"}}`)},
	}
	names := slices.Sorted(maps.Keys(configs))
	rng := rand.New(rand.NewPCG(1, 2))
	quick, whole := 0, 0
	defer func() {
		t.Logf("%d changes taken in O(1), %d by a whole Combine", quick, whole)
		if quick < 1000 {
			t.Errorf("only %d changes taken in O(1): the test says little of Apply", quick)
		}
	}()
	for round := range 300 {
		entries := map[string]CacheEntry{}
		make1 := func(tick int) CacheEntry {
			name := names[rng.IntN(len(names))]
			conf := configs[name][rng.IntN(len(configs[name]))]
			capArgs := ""
			if strings.Contains(conf, "ipRanges") && (name != "rtw" || rng.IntN(3) > 0) {
				capArgs = fmt.Sprintf(`{"ipRanges": [[{"subnet": "10.%d.0.0/24"}]]}`, 40+rng.IntN(2))
			}
			f := cacheFile("/c", name, fmt.Sprintf("c%d", rng.IntN(6)), "net1", conf, capArgs, int64(tick))
			e, err := ParseCache(f)
			if err != nil && e.NetworkName == "" {
				t.Fatal(err)
			}
			return e
		}
		all := func() []CacheEntry { return slices.Collect(maps.Values(entries)) }
		followed := func(d Discovery) map[string]Attachment {
			out := map[string]Attachment{}
			for _, as := range d.Attachments {
				for _, a := range as {
					out[a.Path] = a
				}
			}
			return out
		}
		for range 5 {
			e := make1(0)
			entries[e.Path] = e
		}
		x := NewIndex(confNets, claims, all())
		d := Combine(confNets, claims, all())
		kept := followed(d)
		for step := range 40 {
			var c EntryChange
			if len(entries) > 0 && rng.IntN(3) == 0 {
				paths := slices.Sorted(maps.Keys(entries))
				old := entries[paths[rng.IntN(len(paths))]]
				c.Old = &old
				delete(entries, old.Path)
			} else {
				e := make1(step + 1)
				if old, ok := entries[e.Path]; ok {
					c.Old = &old
				}
				c.New = &e
				entries[e.Path] = e
			}
			changes, redefine := x.Apply(c)
			next := Combine(confNets, claims, all())
			if redefine {
				whole++
				x = NewIndex(confNets, claims, all())
				d, kept = next, followed(next)
				continue
			}
			quick++
			for _, ch := range changes {
				if ch.Old != nil {
					delete(kept, ch.Old.Path)
				}
				if ch.New != nil {
					kept[ch.New.Path] = *ch.New
				}
			}
			if want := followed(next); !reflect.DeepEqual(kept, want) {
				t.Fatalf("round %d step %d: the index keeps %v, Combine follows %v", round, step, slices.Sorted(maps.Keys(kept)), slices.Sorted(maps.Keys(want)))
			}
			if !reflect.DeepEqual(next.Networks, d.Networks) || !reflect.DeepEqual(next.Refused, d.Refused) {
				t.Fatalf("round %d step %d: taken in O(1), but the networks changed:\n%+v\n%+v\nrefused %v\n%v", round, step, d.Networks, next.Networks, d.Refused, next.Refused)
			}
			d = next
		}
	}
}
