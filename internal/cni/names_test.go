package cni

import (
	"errors"
	"reflect"
	"testing"
)

// TestNames: every network the usable files define and every cache entry
// is attached to, whatever the plugins, sorted and once each; files that
// libcni would not read, or cannot parse, name nothing, nor does one
// without a name, and none of them hides the files after it.
func TestNames(t *testing.T) {
	files := []File{
		{Name: "00-unreadable.conf", Err: errors.New("permission denied")},
		{Name: "05-noname.conf", Data: []byte(`{"type": "bridge"}`)},
		{Name: "10-flannel.conflist", Data: []byte(`{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}`)},
		{Name: "87-podman.conflist", Data: []byte(`{"cniVersion":"0.4.0","name":"podman","plugins":[{"type":"bridge","bridge":"cni-podman0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.88.0.0/16"}]]}}]}`)},
		{Name: "20-lan.conf", Data: []byte(`{"cniVersion":"0.3.1","name":"lan","type":"macvlan","master":"eno1","ipam":{"type":"host-local","subnet":"192.168.0.0/16"}}`)},
		{Name: "30-again.conf", Data: []byte(`{"cniVersion":"0.3.1","name":"lan","type":"ipvlan","master":"eno1"}`)},
		{Name: "40-broken.conflist", Data: []byte(`{"name":"broken","plugins":`)},
		{Name: "50-notype.conf", Data: []byte(`{"name":"notype"}`)},
		{Name: "README.md", Data: []byte(`{"name":"readme","type":"bridge"}`)},
		{Name: "60-unreadable.conf", Err: errors.New("permission denied")},
	}
	entries := []CacheEntry{{NetworkName: "multus-cni-network", Types: []string{"multus"}}, {NetworkName: "nadnet"}, {NetworkName: "podman"}}
	want := []string{"cbr0", "lan", "multus-cni-network", "nadnet", "podman"}
	if got := Names(files, entries); !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %q, want %q", got, want)
	}
	if got := Names(nil, nil); len(got) != 0 {
		t.Errorf("Names of nothing = %q", got)
	}
}
