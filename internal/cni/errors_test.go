package cni

import (
	"errors"
	"testing"
)

// TestDiscoverSentinels checks that the problems callers act on match their
// sentinel, and that wrapping it left the messages as they were.
func TestDiscoverSentinels(t *testing.T) {
	files := []File{
		{Name: "10-a.conflist", Data: conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24"}`))},
		{Name: "20-a.conflist", Data: conflist(macvlan(`{"type": "host-local", "subnet": "10.0.1.0/24"}`))},
		{Name: "50-bad.conf", Data: []byte(`{"name": "b", "type": "macvlan", "ipam": {"type": "host-local"}}`)},
	}
	_, problems := Discover(files)
	want := []struct {
		msg  string
		kind error
	}{
		{`20-a.conflist: network "net" is already defined in 10-a.conflist, which wins`, ErrDuplicate},
		{`50-bad.conf: network "b": host-local has no IP ranges: set ipam "ranges" (or "subnet")`, nil},
	}
	if len(problems) != len(want) {
		t.Fatalf("problems %v", problems)
	}
	for i, w := range want {
		p := problems[i]
		if p.Error() != w.msg {
			t.Errorf("problem %d\n got %s\nwant %s", i, p, w.msg)
		}
		for _, k := range []error{ErrDuplicate} {
			if errors.Is(p, k) != (k == w.kind) {
				t.Errorf("%s: errors.Is(%v) = %v", p, k, !(k == w.kind))
			}
		}
	}
}
