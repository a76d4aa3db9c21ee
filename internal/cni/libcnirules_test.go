package cni

import (
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// crListWith is a network list named "n" of one bridge plugin, with the
// top-level keys extra ("" for none, else `"key": value` pairs).
func crListWith(extra string) []byte {
	if extra != "" {
		extra += ", "
	}
	return []byte(`{"name": "n", ` + extra + `"plugins": [{"type": "bridge"}]}`)
}

// TestListRulesAgainstLibcni holds the keys of a network list beyond its
// name and plugins to libcni's NetworkConfFromBytes (v1.3): a list with a
// flag that is not true or false is refused, as the runtime refuses it, and
// "cniVersions" settles the list's cniVersion on the highest version libcni
// implements, which decides what host-local allows (one range set per
// family before 0.3.0) and is the version flatnet's messages name.
func TestListRulesAgainstLibcni(t *testing.T) {
	tests := []struct {
		name    string
		extra   string
		refused bool
		version string // the list's cniVersion when accepted
	}{
		{"flags as booleans", `"disableCheck": true, "disableGC": false, "loadOnlyInlinedPlugins": true`, false, ""},
		{"flags as strings, in any case", `"disableCheck": "FALSE", "loadOnlyInlinedPlugins": "True"`, false, ""},
		{"a flag neither true nor false", `"disableCheck": "maybe"`, true, ""},
		{"a later flag is checked when the first is absent", `"disableGC": "maybe"`, true, ""},
		{"a later flag is checked after a boolean one", `"disableCheck": true, "loadOnlyInlinedPlugins": "yes"`, true, ""},
		{"a flag of another type", `"disableGC": 1`, true, ""},

		{"no cniVersions: cniVersion as written", `"cniVersion": "0.3.1"`, false, "0.3.1"},
		{"the highest of cniVersions and cniVersion", `"cniVersion": "0.3.1", "cniVersions": ["0.4.0", "1.0.0"]`, false, "1.0.0"},
		{"cniVersion when it is the highest", `"cniVersion": "0.4.0", "cniVersions": ["0.3.1"]`, false, "0.4.0"},
		{"libcni's own version counts", `"cniVersions": ["1.1.0"]`, false, "1.1.0"},
		{"versions above libcni's are left out", `"cniVersions": ["1.0.0", "2.0.0"]`, false, "1.0.0"},
		{"a cniVersion above libcni's is left out", `"cniVersion": "2.0.0", "cniVersions": ["0.4.0"]`, false, "0.4.0"},
		{"of two equal versions, the first written", `"cniVersions": ["1.0.0", "1.0"]`, false, "1.0.0"},
		{"nothing usable: cniVersion as written", `"cniVersion": "0.4.0", "cniVersions": []`, false, "0.4.0"},
		{"cniVersions not a list", `"cniVersions": "1.0.0"`, true, ""},
		{"a cniVersions entry not a string", `"cniVersions": [1]`, true, ""},
		{"a cniVersions entry not a version", `"cniVersions": ["v1.0.0"]`, true, ""},
		{"cniVersion not a version, with cniVersions", `"cniVersion": "x", "cniVersions": ["1.0.0"]`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := crListWith(tt.extra)
			ours, err := parseConfList(data)
			theirs, lerr := libcni.NetworkConfFromBytes(data)
			if (err != nil) != tt.refused || (lerr != nil) != tt.refused {
				t.Fatalf("parseConfList: %v, libcni: %v; want refused %v", err, lerr, tt.refused)
			}
			if tt.refused {
				return
			}
			if ours.cniVersion != tt.version || theirs.CNIVersion != tt.version {
				t.Errorf("cniVersion %q, libcni's %q; want %q", ours.cniVersion, theirs.CNIVersion, tt.version)
			}
		})
	}
}

// TestDiscoverCNIVersions: a list whose cniVersion is 0.2.0 but whose
// "cniVersions" include 0.4.0 runs at 0.4.0, where host-local allows two
// range sets of one family; without it the network is refused.
func TestDiscoverCNIVersions(t *testing.T) {
	list := func(versions string) []byte {
		return []byte(`{"cniVersion": "0.2.0", ` + versions + `"name": "n", "plugins": [` +
			macvlan(`{"type": "host-local", "ranges": [[{"subnet": "10.0.1.0/24"}], [{"subnet": "10.0.2.0/24"}]]}`) + `]}`)
	}
	nets, probs := Discover([]File{{Name: "a.conflist", Data: list(`"cniVersions": ["0.4.0"], `)}})
	if len(probs) != 0 || len(nets) != 1 || len(nets[0].Ranges) != 2 {
		t.Errorf("with cniVersions 0.4.0: %+v, %v; want the network with two ranges", nets, probs)
	}
	nets, probs = Discover([]File{{Name: "a.conflist", Data: list("")}})
	want := `a.conflist: network "n": cniVersion "0.2.0" allows one range set per address family; 0.3.0 and later allow more`
	if len(nets) != 0 || len(probs) != 1 || probs[0].Error() != want {
		t.Errorf("without: %+v, %v; want %s", nets, probs, want)
	}
}
