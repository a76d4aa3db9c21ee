package cni

import (
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
