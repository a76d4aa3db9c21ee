package cni

import (
	"errors"
	"reflect"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// crClaimFiles are a configuration directory with networks of several
// plugins and files that claim nothing, in no particular order: a file
// libcni does not read, one it cannot read, one that does not parse and
// one without a name each sort before a file that claims.
func crClaimFiles() []File {
	return []File{
		{Name: "40-half.conflist", Data: []byte(`{"name": "half", "plugins": [{"type": "bridge", "ipam": {"type": "host-local"}}, {"type": "portmap"}]}`)},
		{Name: "00-notes.txt", Data: []byte(`{"name": "notes", "type": "bridge"}`)},
		{Name: "30-flannel.conflist", Data: []byte(`{"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel"}, {"type": "portmap", "capabilities": {"portMappings": true}}]}`)},
		{Name: "05-unreadable.conf", Err: errors.New("permission denied")},
		{Name: "10-broken.conflist", Data: []byte(`{"name": "broken", "plugins": [`)},
		{Name: "15-noname.conf", Data: []byte(`{"type": "bridge"}`)},
		{Name: "20-podman.conflist", Data: []byte(`{"cniVersion": "0.4.0", "name": "podman", "plugins": [{"type": "bridge", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]]}}]}`)},
		{Name: "50-podman-again.conf", Data: []byte(`{"name": "podman", "type": "bridge", "ipam": {"type": "host-local", "dataDir": "/run/x", "subnet": "10.89.0.0/16"}}`)},
	}
}

// crClaimsWant is what crClaimFiles claim: each name once, from its first
// file, with every plugin's type, and the state directory and ranges of a
// host-local IPAM that works; a host-local that does not (no ranges) gives
// neither, but the name and types stand.
func crClaimsWant() []Claim {
	return []Claim{
		{Name: "podman", File: "20-podman.conflist", Types: []string{"bridge"},
			StateDirs: []string{"/var/lib/cni/networks/podman"},
			Ranges:    []hostlocal.Range{r("10.88.0.0/16", "10.88.0.1", "10.88.255.254", "10.88.0.1")}},
		{Name: "cbr0", File: "30-flannel.conflist", Types: []string{"flannel", "portmap"}},
		{Name: "half", File: "40-half.conflist", Types: []string{"bridge", "portmap"}},
	}
}

// TestClaims: every network the configuration directory defines, whatever
// its plugins, is claimed with its state directory and ranges, so that the
// cache cannot take its name or its addresses; files libcni would skip
// claim nothing and do not hide the files after them.
func TestClaims(t *testing.T) {
	if got, want := Claims(crClaimFiles()), crClaimsWant(); !reflect.DeepEqual(got, want) {
		t.Errorf("Claims\n got %+v\nwant %+v", got, want)
	}
}

// TestLastGoodClaims: LastGood claims what Claims does, from the files as
// ReadDir gives them (in name order), and a file being written keeps its
// claim without hiding the files after it.
func TestLastGoodClaims(t *testing.T) {
	files := sortedFiles(crClaimFiles())
	d := NewLastGood()
	d.Update(files)
	if got, want := d.Claims(), crClaimsWant(); !reflect.DeepEqual(got, want) {
		t.Errorf("Claims after Update\n got %+v\nwant %+v", got, want)
	}
	lan := File{Name: "60-lan.conflist", Data: conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24"}`))}
	for i := range files {
		if files[i].Name == "20-podman.conflist" {
			files[i].Data = nil // truncated to be written again
		}
	}
	nets, _ := d.Update(append(files, lan))
	want := append(crClaimsWant(), Claim{Name: "net", File: lan.Name, Types: []string{"macvlan"},
		StateDirs: []string{"/var/lib/cni/networks/net"}, Ranges: []hostlocal.Range{r("10.0.0.0/24", "10.0.0.1", "10.0.0.254", "10.0.0.1")}})
	if got := d.Claims(); !reflect.DeepEqual(got, want) {
		t.Errorf("Claims with a file being written\n got %+v\nwant %+v", got, want)
	}
	if len(nets) != 1 || nets[0].Name != "net" {
		t.Errorf("networks with a file being written: %+v, want net", nets)
	}
}
