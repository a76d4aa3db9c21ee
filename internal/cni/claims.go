package cni

import (
	"cmp"
	"encoding/json"
	"path/filepath"
	"slices"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// Claim is a network the configuration directory defines, whatever its
// plugins: a bridge, flannel or calico network as well as a macvlan one.
// The directory is root's (docs/security.md), so what it defines is the
// node's own: a network known only from libcni's cache, which tenants fill
// (a Multus NetworkAttachmentDefinition), may not take a claim's name,
// its state directory, or an address of its ranges.
type Claim struct {
	Name  string
	File  string   // base name of the file
	Types []string // the plugin types, in order
	// StateDirs are the directories host-local keeps this network's
	// allocations in: <dataDir>/<name> for each of its plugins whose IPAM
	// is host-local ("" dataDir: DefaultDataDir), cleaned. A network
	// without host-local IPAM has none, but its name still takes
	// <state root>/<name>, which the caller knows.
	StateDirs []string
	// Ranges are the ranges of its host-local IPAM, when they parse.
	Ranges []hostlocal.Range
}

// Claims returns the networks of a configuration directory's files, the
// first definition of each name (in libcni's order, as Discover), whatever
// their plugins. Files that cannot be used claim nothing.
func Claims(files []File) []Claim {
	files = sortedFiles(files)
	var out []Claim
	seen := map[string]bool{}
	for _, f := range files {
		if !hasCNIExt(f.Name) || f.Err != nil {
			continue
		}
		list, err := readList(f.Name, f.Data)
		if err != nil || list.name == "" || seen[list.name] {
			continue
		}
		seen[list.name] = true
		out = append(out, claimOf(f.Name, list))
	}
	return out
}

// claimOf is what list claims.
func claimOf(file string, list netList) Claim {
	c := Claim{Name: list.name, File: file}
	for _, p := range list.plugins {
		var head pluginHead
		_ = json.Unmarshal(p, &head) // readList checked it
		c.Types = append(c.Types, head.Type)
		if head.IPAM.Type != "host-local" {
			continue
		}
		dataDir, ranges, err := hostLocal(p, list.cniVersion)
		if err != nil {
			continue
		}
		dir := filepath.Join(cmp.Or(dataDir, DefaultDataDir), list.name)
		if !slices.Contains(c.StateDirs, dir) {
			c.StateDirs = append(c.StateDirs, dir)
		}
		c.Ranges = append(c.Ranges, ranges...)
	}
	return c
}

// Kind says what c is, for messages: "a bridge network", "a flannel
// network".
func (c Claim) Kind() string {
	if len(c.Types) == 0 {
		return "a network"
	}
	return "a " + c.Types[0] + " network"
}
