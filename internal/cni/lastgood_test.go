package cni

import (
	"reflect"
	"strings"
	"testing"
)

// TestLastGood: a file that stops parsing keeps the networks
// it defined, and says so once; an empty file (being written) keeps them
// silently; a file that parses again replaces them; a file removed takes
// its networks with it.
func TestLastGood(t *testing.T) {
	good := File{Name: "00-default.conflist", Data: []byte(`{"cniVersion": "0.4.0", "name": "default", "plugins": [{"type": "macvlan", "master": "eno1", "ipam": {"type": "host-local", "subnet": "192.168.0.0/16"}}]}`)}
	moved := File{Name: good.Name, Data: []byte(strings.Replace(string(good.Data), "eno1", "eno2", 1))}
	half := File{Name: good.Name, Data: good.Data[:40]}
	empty := File{Name: good.Name}
	d := NewLastGood()
	step := func(f []File, wantMaster string, wantNotes int) {
		t.Helper()
		nets, notes := d.Update(f)
		master := ""
		if len(nets) == 1 {
			master = nets[0].Master
		}
		if master != wantMaster || len(notes) != wantNotes {
			t.Fatalf("networks %+v, notes %v; want master %q and %d notes", nets, notes, wantMaster, wantNotes)
		}
	}
	step([]File{good}, "eno1", 0)
	step([]File{half}, "eno1", 1) // kept, said
	step([]File{half}, "eno1", 0) // kept, said already
	step([]File{empty}, "eno1", 0)
	step([]File{moved}, "eno2", 0)
	step(nil, "", 0)
	step([]File{half}, "", 1) // nothing to keep: skipped, said
}

// TestLastGoodNotes: what the operator is told of a file. A file that
// never parsed is skipped, and said so, not said to keep networks it never
// had; a file that parses but no longer holds a macvlan plugin (made a
// bridge) gives its networks up, where a file that stops parsing keeps
// them.
func TestLastGoodNotes(t *testing.T) {
	good := File{Name: "00-lan.conflist", Data: conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24"}`))}
	bridge := File{Name: good.Name, Data: []byte(`{"name": "net", "plugins": [{"type": "bridge"}]}`)}
	broken := File{Name: good.Name, Data: []byte(`{"name": "net"`)}
	steps := []struct {
		file     File
		networks int
		note     string
	}{
		{broken, 0, "CNI config 00-lan.conflist skipped: invalid JSON at line 1, column 14: unexpected end of JSON input"},
		{good, 1, ""},
		{broken, 1, "CNI config 00-lan.conflist: invalid JSON at line 1, column 14: unexpected end of JSON input (keeping the networks it defined before)"},
		{bridge, 0, "CNI config 00-lan.conflist skipped: no macvlan plugin in it"},
	}
	d := NewLastGood()
	for i, s := range steps {
		nets, notes := d.Update([]File{s.file})
		var msgs []string
		for _, n := range notes {
			msgs = append(msgs, n.Msg)
		}
		if len(nets) != s.networks || (s.note == "") != (len(msgs) == 0) || (s.note != "" && (len(msgs) != 1 || msgs[0] != s.note)) {
			t.Errorf("step %d: networks %+v, notes %q; want %d networks, note %q", i, nets, msgs, s.networks, s.note)
		}
	}
}

// TestLastGoodMemory: a LastGood restored from another's Memory reads the
// directory as that one would: a file that stops parsing keeps the
// networks and the claim it had, one that never held anything is not
// remembered.
func TestLastGoodMemory(t *testing.T) {
	lan := File{Name: "00-lan.conflist", Data: conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24"}`))}
	flannel := File{Name: "10-flannel.conflist", Data: []byte(`{"name": "cbr0", "plugins": [{"type": "flannel"}]}`)}
	broken := File{Name: "20-broken.conflist", Data: []byte(`{`)}
	d := NewLastGood()
	wantNets, _ := d.Update([]File{lan, flannel, broken})
	wantClaims := d.Claims()
	m := d.Memory()
	if len(wantNets) != 1 || len(wantClaims) != 2 || len(m) != 3 {
		t.Fatalf("networks %+v, claims %+v, memory %+v", wantNets, wantClaims, m)
	}

	e := NewLastGood()
	e.Restore(m)
	got := e.Memory()
	delete(m, broken.Name) // it remembers nothing
	if !reflect.DeepEqual(got, m) {
		t.Errorf("Memory after Restore\n got %+v\nwant %+v", got, m)
	}
	half := []File{{Name: lan.Name, Data: lan.Data[:20]}, {Name: flannel.Name, Data: flannel.Data[:20]}}
	nets, notes := e.Update(half)
	if !reflect.DeepEqual(nets, wantNets) || !reflect.DeepEqual(e.Claims(), wantClaims) || len(notes) != 2 {
		t.Errorf("after Restore, with both files cut short: networks %+v, claims %+v, notes %v; want %+v, %+v and two notes", nets, e.Claims(), notes, wantNets, wantClaims)
	}
}
