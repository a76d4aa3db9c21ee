// Package cni discovers the networks flatnet can mirror from a CNI
// configuration directory (/etc/cni/net.d), reading it the way the container
// runtime does (libcni): files named *.conf, *.conflist and *.json, in
// sort.Strings order of their names. A .conflist is a network list
// ({"cniVersion", "name", "plugins": [...]}); a .conf or .json is a single
// plugin ({"cniVersion", "name", "type", ...}), so a .json file holding a
// "plugins" list is not a network list and is reported, as the runtime
// skips it too ("no 'type'; perhaps this is a .conflist?").
//
// Discover is pure. A network is found for every plugin of type "macvlan",
// whatever its IPAM; for host-local IPAM, its ranges are worked out
// exactly as host-local does (see Discover). A file that cannot be used
// becomes a Problem and never affects the others. ReadDir is the small
// adapter that reads the directory.
//
// Note that a kubelet with a CRI runtime uses only the first usable file of
// the directory as the pod network; the others are typically used through
// multus. Discover reports all of them.
//
// Networks that never reach the directory are found in libcni's result
// cache: ReadCache and ReadCacheFile read it, ParseCache reads one entry
// into the same Network a file would give, Combine (or DiscoverAll) merges
// both sources; cache.go records what the cache holds and who writes it.
// Every problem matches one of the Err* sentinels with errors.Is.
package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/text"
)

// Extensions are the file name extensions libcni reads from the directory.
var Extensions = []string{".conf", ".conflist", ".json"}

// File is one file of the CNI configuration directory.
type File struct {
	Name string // base name
	Data []byte // content
	Err  error  // set when the file could not be read; Discover reports it as a Problem
}

// Network is a macvlan network found in the CNI configuration, whatever
// its IPAM.
type Network struct {
	Name   string // the CNI network name
	File   string // base name of the file it came from
	Master string // macvlan "master"; "" means the default-route NIC (the macvlan plugin's rule)
	Mode   string // macvlan "mode"; "" means bridge (the plugin's default)
	// IPAM is the IPAM plugin's type: "host-local", "static",
	// "whereabouts", "dhcp", any other, or "" for none (an L2-only
	// attachment: a VM that runs DHCP itself). Only host-local keeps
	// state on the node (DataDir, Ranges); the others' addresses are
	// known from libcni's cached results alone.
	IPAM    string
	DataDir string            // host-local ipam "dataDir", cleaned; "" when absent (host-local then uses /var/lib/cni/networks)
	Ranges  []hostlocal.Range // host-local's: every range of every range set, in its order, with defaults filled in
}

// HostLocal reports whether n's IPAM is host-local, which keeps a state
// directory on the node.
func (n Network) HostLocal() bool { return n.IPAM == "host-local" }

// Problem is a configuration file, or a network in one, that was skipped,
// and why.
type Problem struct {
	File string // base name
	Err  error
}

// Error formats p as "00-bad.conflist: why", on one line: control
// characters from the file's name or content are escaped.
func (p Problem) Error() string { return text.Printable(p.File) + ": " + text.Printable(p.Err.Error()) }

// Unwrap returns the reason.
func (p Problem) Unwrap() error { return p.Err }

// Discover finds the macvlan networks in the files of a CNI configuration
// directory. Files are taken in name order whatever the order
// given, names without a CNI extension are ignored, and when two files
// define the same network name the first wins and the later one is a
// Problem.
//
// The ranges follow host-local (plugins/ipam/host-local/backend/allocator,
// LoadIPAMConfig and Range.Canonicalize):
//
//   - range sets come from the plugin's runtimeConfig.ipRanges, then the
//     legacy ipam-level "subnet" (with its rangeStart, rangeEnd, gateway) when
//     one is given, then ipam "ranges", in that order; none at all is an error;
//   - a subnet smaller than /30 (/126 for IPv6) is refused ("too small to
//     allocate from");
//   - gateway, when absent, is the address after the subnet's address as
//     written, so ".1" for "192.168.0.0/16"; host-local always has a gateway
//     and never hands it out. When given it must lie in the subnet;
//   - rangeStart, when absent, is the same address after the subnet's (so it
//     equals the default gateway, which allocation skips); when given it must
//     lie in the subnet;
//   - rangeEnd, when absent, is the subnet's last address, minus one for IPv4
//     (the broadcast); when given it must lie in the subnet and not before
//     rangeStart;
//   - a subnet written with host bits ("192.168.1.5/24") is refused, as
//     every host-local since 0.8 refuses it;
//   - within a set, families must not mix and ranges must not overlap; range
//     sets must not overlap each other; more than one set per family needs
//     cniVersion 0.3.0 or later.
//
// Any of these errors skips the network with a Problem, as host-local would
// fail every allocation. So do: an unknown macvlan mode, "linkInContainer"
// (the master is then not on the node), an invalid master or network name,
// and a relative dataDir. A macvlan network with another IPAM (static,
// whereabouts, dhcp, ...) or none has no ranges and no state directory:
// its pods' addresses are known from libcni's cache alone.
//
// Not followed: plugin configs loaded from a <name>/ subdirectory of the
// directory (newer libcni), and ipRanges a runtime passes at run time
// through the "ipRanges" capability (libcni's cache has those: Combine). A
// "cniVersions" list is read as libcni reads it (listRules).
func Discover(files []File) ([]Network, []Problem) {
	files = sortedFiles(files)
	var (
		nets     []Network
		problems []Problem
		seen     = map[string]string{} // network name -> file
	)
	for _, f := range files {
		if !hasCNIExt(f.Name) {
			continue
		}
		if f.Err != nil {
			problems = append(problems, Problem{File: f.Name, Err: f.Err})
			continue
		}
		found, err := parseFile(f.Name, f.Data)
		if err != nil {
			problems = append(problems, Problem{File: f.Name, Err: err})
			continue
		}
		for _, n := range found {
			if first, ok := seen[n.Name]; ok {
				problems = append(problems, Problem{File: f.Name, Err: fmt.Errorf("network %q is already defined in %s, which wins%w", n.Name, first, silent{ErrDuplicate})})
				continue
			}
			seen[n.Name] = f.Name
			nets = append(nets, n)
		}
	}
	return nets, problems
}

// sortedFiles is files in libcni's order, by name, whatever the order
// given; files is not changed.
func sortedFiles(files []File) []File {
	files = append([]File(nil), files...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files
}

// hasCNIExt reports whether libcni reads a file of this name.
func hasCNIExt(name string) bool {
	ext := filepath.Ext(name)
	for _, e := range Extensions {
		if ext == e {
			return true
		}
	}
	return false
}

// netList is a network list, whichever form it came in: the list's name and
// cniVersion, and each plugin's JSON.
type netList struct {
	name       string
	cniVersion string
	plugins    [][]byte
}

// pluginHead is what libcni itself reads of a plugin (types.PluginConf),
// with the same types, so that a plugin libcni cannot decode is refused.
type pluginHead struct {
	CNIVersion   string          `json:"cniVersion"`
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities"`
	IPAM         struct {
		Type string `json:"type"`
	} `json:"ipam"`
	DNS struct {
		Nameservers []string `json:"nameservers"`
		Domain      string   `json:"domain"`
		Search      []string `json:"search"`
		Options     []string `json:"options"`
	} `json:"dns"`
	PrevResult       map[string]any `json:"prevResult"`
	ValidAttachments []struct {
		ContainerID string `json:"containerID"`
		IfName      string `json:"ifname"`
	} `json:"cni.dev/valid-attachments"`
}

// Names returns, sorted and once each, the name of every network that the
// usable files of a configuration directory define and that a cache entry
// is attached to, whatever its plugins: a bridge or flannel network as
// well as a macvlan one. host-local keeps every network's allocations
// under the same state root, by name, so a directory named like one of
// these belongs to a network the node knows; only the others are a
// network flatnet cannot see (statedir.FindUnmatched).
func Names(files []File, entries []CacheEntry) []string {
	set := map[string]bool{} // thousands of entries name a few networks
	for _, f := range files {
		if !hasCNIExt(f.Name) || f.Err != nil {
			continue
		}
		if list, err := readList(f.Name, f.Data); err == nil && list.name != "" {
			set[list.name] = true
		}
	}
	for _, e := range entries {
		if e.NetworkName != "" {
			set[e.NetworkName] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// readList reads a file as a network list: a .conflist as one, any other
// as a single plugin.
func readList(name string, data []byte) (netList, error) {
	if filepath.Ext(name) == ".conflist" {
		return parseConfList(data)
	}
	return parseConf(data)
}

// parseFile reads one file and returns its macvlan networks.
func parseFile(name string, data []byte) ([]Network, error) {
	list, err := readList(name, data)
	if err != nil {
		return nil, err
	}
	nets, err := listNetworks(list)
	for i := range nets {
		nets[i].File = name
	}
	return nets, err
}

// listNetworks returns the macvlan networks of a network list,
// with File unset.
func listNetworks(list netList) ([]Network, error) {
	var nets []Network
	for i, p := range list.plugins {
		var head pluginHead
		if err := json.Unmarshal(p, &head); err != nil || head.Type != "macvlan" {
			continue // parseConfList/parseConf checked it already
		}
		n, err := macvlanNetwork(list, p)
		if err != nil {
			if len(list.plugins) > 1 {
				return nil, fmt.Errorf("network %q: plugin %d (macvlan): %w", list.name, i, err)
			}
			return nil, fmt.Errorf("network %q: %w", list.name, err)
		}
		if len(nets) == 0 {
			// A second macvlan plugin in one list would make a second
			// interface of the same name: the first defines the network.
			nets = append(nets, n)
		}
	}
	return nets, nil
}

// parseConfList reads a .conflist as libcni's NetworkConfFromBytes does.
func parseConfList(data []byte) (netList, error) {
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return netList{}, jsonError(err, data)
	}
	var list netList
	rawName, ok := raw["name"]
	if !ok {
		return netList{}, errors.New(`no "name"`)
	}
	if list.name, ok = rawName.(string); !ok {
		return netList{}, fmt.Errorf(`"name" is %s, not a string`, jsonType(rawName))
	}
	if v, ok := raw["cniVersion"]; ok {
		if list.cniVersion, ok = v.(string); !ok {
			return netList{}, fmt.Errorf(`"cniVersion" is %s, not a string`, jsonType(v))
		}
	}
	var err error
	if list.cniVersion, err = listRules(raw, list.cniVersion); err != nil {
		return netList{}, err
	}
	rawPlugins, ok := raw["plugins"]
	if !ok {
		return netList{}, errors.New(`no "plugins" list (plugin files in a subdirectory are not read)`)
	}
	plugins, ok := rawPlugins.([]any)
	if !ok {
		return netList{}, fmt.Errorf(`"plugins" is %s, not a list`, jsonType(rawPlugins))
	}
	if len(plugins) == 0 {
		return netList{}, errors.New(`"plugins" is empty`)
	}
	for i, p := range plugins {
		b, err := json.Marshal(p)
		if err != nil {
			return netList{}, fmt.Errorf("plugin %d: %w", i, err)
		}
		var head pluginHead
		if err := json.Unmarshal(b, &head); err != nil {
			return netList{}, fmt.Errorf("plugin %d: %w", i, jsonError(err, b))
		}
		if head.Type == "" {
			return netList{}, fmt.Errorf(`plugin %d has no "type"`, i)
		}
		list.plugins = append(list.plugins, b)
	}
	return list, nil
}

// parseConf reads a .conf or .json single-plugin file as libcni's
// ConfFromBytes and the runtime do.
func parseConf(data []byte) (netList, error) {
	var head pluginHead
	if err := json.Unmarshal(data, &head); err != nil {
		return netList{}, jsonError(err, data)
	}
	if head.Type == "" {
		var probe struct {
			Plugins json.RawMessage `json:"plugins"`
		}
		if json.Unmarshal(data, &probe) == nil && probe.Plugins != nil {
			return netList{}, errors.New(`no "type": this is a network list, which is read only from a *.conflist file`)
		}
		return netList{}, errors.New(`no "type"`)
	}
	return netList{name: head.Name, cniVersion: head.CNIVersion, plugins: [][]byte{data}}, nil
}

// macvlanConf is what flatnet reads of a macvlan plugin's config.
type macvlanConf struct {
	Master          string `json:"master"`
	Mode            string `json:"mode"`
	LinkInContainer bool   `json:"linkInContainer"`
	IPAM            struct {
		Type string `json:"type"`
	} `json:"ipam"`
}

// macvlanNetwork reads one macvlan plugin of list.
func macvlanNetwork(list netList, plugin []byte) (Network, error) {
	var mc macvlanConf
	if err := json.Unmarshal(plugin, &mc); err != nil {
		return Network{}, jsonError(err, plugin)
	}
	switch {
	case !config.ValidNetworkName(list.name):
		return Network{}, fmt.Errorf("%q is not a valid CNI network name (a letter or digit, then letters, digits, '_', '.', '-'); the runtime refuses it", list.name)
	case mc.LinkInContainer:
		return Network{}, errors.New(`"linkInContainer": the master is inside the container's namespace, not on the node`)
	}
	switch mc.Mode {
	case "", "bridge", "private", "vepa", "passthru":
	default:
		return Network{}, fmt.Errorf("unknown macvlan mode %q", mc.Mode)
	}
	if mc.Master != "" {
		if err := config.ValidIfName(mc.Master); err != nil {
			return Network{}, fmt.Errorf("master: %w", err)
		}
	}
	n := Network{Name: list.name, Master: mc.Master, Mode: mc.Mode, IPAM: mc.IPAM.Type}
	if n.HostLocal() {
		dataDir, ranges, err := hostLocal(plugin, list.cniVersion)
		if err != nil {
			return Network{}, err
		}
		n.DataDir, n.Ranges = dataDir, ranges
	}
	return n, nil
}

// jsonError makes a JSON decoding error readable: the line and column of a
// syntax error, the JSON path of a type mismatch.
func jsonError(err error, data []byte) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var addr *net.ParseError
	switch {
	case errors.As(err, &syn):
		off := min(max(int(syn.Offset), 0), len(data))
		line := 1 + strings.Count(string(data[:off]), "\n")
		col := off - strings.LastIndexByte(string(data[:off]), '\n')
		if off > 0 && col > 1 {
			col-- // Offset is just past the offending byte
		}
		return fmt.Errorf("invalid JSON at line %d, column %d: %s", line, col, syn.Error())
	case errors.As(err, &addr):
		return fmt.Errorf("%q is not an IP address", addr.Text)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Errorf("a JSON %s where %s belongs", typ.Value, goTypeAsJSON(typ))
		}
		return fmt.Errorf("%s: a JSON %s where %s belongs", typ.Field, typ.Value, goTypeAsJSON(typ))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// goTypeAsJSON names the JSON type a Go destination expects.
func goTypeAsJSON(e *json.UnmarshalTypeError) string {
	if e.Type == nil {
		return "another type"
	}
	if e.Type == ipType || e.Type == ipArgType {
		return "an IP address string"
	}
	switch e.Type.Kind().String() {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "a list"
	case "struct", "map":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	}
	return e.Type.String()
}

// jsonType names the JSON type of a value decoded into any.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// ipType and ipArgType are the types of IP addresses, for messages.
var (
	ipType    = reflect.TypeFor[net.IP]()
	ipArgType = reflect.TypeFor[ipArg]()
)
