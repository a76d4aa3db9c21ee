package cni

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/discover")

// render prints what Discover found, one line per network, range and
// problem, for golden files.
func render(nets []Network, problems []Problem) string {
	var b strings.Builder
	for _, n := range nets {
		fmt.Fprintf(&b, "network %q file=%s master=%q mode=%q ipam=%q dataDir=%q\n", n.Name, n.File, n.Master, n.Mode, n.IPAM, n.DataDir)
		for _, r := range n.Ranges {
			fmt.Fprintf(&b, "  range %s start=%s end=%s gateway=%s\n", r.Subnet, r.Start, r.End, r.Gateway)
		}
	}
	for _, p := range problems {
		fmt.Fprintf(&b, "problem %s\n", p)
	}
	return b.String()
}

// TestDiscoverGolden reads each directory under testdata/discover with
// ReadDir and compares what Discover finds with <dir>.golden.
func TestDiscoverGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "discover", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			files, err := readDir(dir) // testdata: wherever the checkout is
			if err != nil {
				t.Fatal(err)
			}
			got := render(Discover(files))
			golden(t, dir+".golden", got, "Discover("+dir+")")
		})
	}
	if n < 4 {
		t.Fatalf("found %d golden cases, want at least 4", n)
	}
}

// golden compares got with the golden file path (rewritten first with
// -update); what names the call that made got.
func golden(t *testing.T, path, got, what string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s:\n--- got\n%s--- want\n%s", what, got, want)
	}
}

// TestDiscoverSeed pins the network of the article flatnet started from,
// field by field.
func TestDiscoverSeed(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "discover", "seed", "00-default.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	nets, problems := Discover([]File{{Name: "00-default.conflist", Data: data}})
	want := []Network{{
		Name:   "default",
		File:   "00-default.conflist",
		Master: "eno1",
		IPAM:   "host-local",
		Ranges: []hostlocal.Range{{
			Subnet:  netip.MustParsePrefix("192.168.0.0/16"),
			Start:   netip.MustParseAddr("192.168.1.2"),
			End:     netip.MustParseAddr("192.168.1.254"),
			Gateway: netip.MustParseAddr("192.168.0.1"),
		}},
	}}
	if len(problems) != 0 || !reflect.DeepEqual(nets, want) {
		t.Fatalf("Discover = %+v, %v; want %+v", nets, problems, want)
	}
}

// conflist wraps one plugin in a network list named "net".
func conflist(plugin string) []byte {
	return []byte(`{"cniVersion": "0.3.1", "name": "net", "plugins": [` + plugin + `]}`)
}

// macvlan is a macvlan plugin with the given ipam object.
func macvlan(ipam string) string {
	return `{"type": "macvlan", "master": "eno1", "ipam": ` + ipam + `}`
}

// r builds a Range from strings; gw may be "".
func r(subnet, start, end, gw string) hostlocal.Range {
	x := hostlocal.Range{
		Subnet: netip.MustParsePrefix(subnet),
		Start:  netip.MustParseAddr(start),
		End:    netip.MustParseAddr(end),
	}
	if gw != "" {
		x.Gateway = netip.MustParseAddr(gw)
	}
	return x
}

func TestDiscoverRanges(t *testing.T) {
	tests := []struct {
		name string
		ipam string
		want []hostlocal.Range
	}{
		{
			name: "subnet only: host-local's defaults",
			ipam: `{"type": "host-local", "ranges": [[{"subnet": "192.168.1.0/24"}]]}`,
			want: []hostlocal.Range{r("192.168.1.0/24", "192.168.1.1", "192.168.1.254", "192.168.1.1")},
		},
		{
			name: "legacy subnet form",
			ipam: `{"type": "host-local", "subnet": "10.0.0.0/8", "rangeStart": "10.1.0.0", "rangeEnd": "10.1.255.255", "gateway": "10.0.0.254"}`,
			want: []hostlocal.Range{r("10.0.0.0/8", "10.1.0.0", "10.1.255.255", "10.0.0.254")},
		},
		{
			name: "legacy subnet comes before ranges",
			ipam: `{"type": "host-local", "subnet": "10.0.0.0/24", "ranges": [[{"subnet": "fd00::/64"}]]}`,
			want: []hostlocal.Range{
				r("10.0.0.0/24", "10.0.0.1", "10.0.0.254", "10.0.0.1"),
				r("fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:ffff", "fd00::1"),
			},
		},
		{
			name: "runtimeConfig ipRanges come first",
			ipam: `{"type": "host-local", "ranges": [[{"subnet": "10.0.1.0/24"}]]}, "runtimeConfig": {"ipRanges": [[{"subnet": "10.0.2.0/24"}]]}`,
			want: []hostlocal.Range{
				r("10.0.2.0/24", "10.0.2.1", "10.0.2.254", "10.0.2.1"),
				r("10.0.1.0/24", "10.0.1.1", "10.0.1.254", "10.0.1.1"),
			},
		},
		{
			name: "smallest IPv4 subnet",
			ipam: `{"type": "host-local", "ranges": [[{"subnet": "10.0.0.4/30"}]]}`,
			want: []hostlocal.Range{r("10.0.0.4/30", "10.0.0.5", "10.0.0.6", "10.0.0.5")},
		},
		{
			name: "smallest IPv6 subnet keeps its last address",
			ipam: `{"type": "host-local", "ranges": [[{"subnet": "fd00::/126"}]]}`,
			want: []hostlocal.Range{r("fd00::/126", "fd00::1", "fd00::3", "fd00::1")},
		},
		{
			name: "IPv4-mapped addresses are IPv4",
			ipam: `{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "::ffff:10.0.0.10", "gateway": "::ffff:10.0.0.1"}]]}`,
			want: []hostlocal.Range{r("10.0.0.0/24", "10.0.0.10", "10.0.0.254", "10.0.0.1")},
		},
		{
			name: "empty strings mean absent",
			ipam: `{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "", "rangeEnd": "", "gateway": ""}]]}`,
			want: []hostlocal.Range{r("10.0.0.0/24", "10.0.0.1", "10.0.0.254", "10.0.0.1")},
		},
		{
			name: "gateway outside the range but inside the subnet",
			ipam: `{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/16", "rangeStart": "10.0.5.1", "rangeEnd": "10.0.5.9", "gateway": "10.0.255.254"}]]}`,
			want: []hostlocal.Range{r("10.0.0.0/16", "10.0.5.1", "10.0.5.9", "10.0.255.254")},
		},
		{
			name: "a given rangeEnd may be the IPv4 broadcast address",
			ipam: `{"type": "host-local", "subnet": "192.168.0.0/24", "rangeEnd": "192.168.0.255"}`,
			want: []hostlocal.Range{r("192.168.0.0/24", "192.168.0.1", "192.168.0.255", "192.168.0.1")},
		},
		{
			name: "single-address range",
			ipam: `{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.7", "rangeEnd": "10.0.0.7"}]]}`,
			want: []hostlocal.Range{r("10.0.0.0/24", "10.0.0.7", "10.0.0.7", "10.0.0.1")},
		},
		{
			name: "field names match without regard to case, as in Go's JSON",
			ipam: `{"Type": "host-local", "RANGES": [[{"Subnet": "10.0.0.0/24", "RangeStart": "10.0.0.9"}]]}`,
			want: []hostlocal.Range{r("10.0.0.0/24", "10.0.0.9", "10.0.0.254", "10.0.0.1")},
		},
		{
			name: "two sets per family from 0.3.0",
			ipam: `{"type": "host-local", "ranges": [[{"subnet": "10.0.1.0/24"}], [{"subnet": "10.0.2.0/24"}]]}`,
			want: []hostlocal.Range{
				r("10.0.1.0/24", "10.0.1.1", "10.0.1.254", "10.0.1.1"),
				r("10.0.2.0/24", "10.0.2.1", "10.0.2.254", "10.0.2.1"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nets, problems := Discover([]File{{Name: "x.conflist", Data: conflist(macvlan(tt.ipam))}})
			if len(problems) != 0 {
				t.Fatalf("problems: %v", problems)
			}
			if len(nets) != 1 || !reflect.DeepEqual(nets[0].Ranges, tt.want) {
				t.Fatalf("got %+v\nwant ranges %+v", nets, tt.want)
			}
		})
	}
}

func TestDiscoverFields(t *testing.T) {
	tests := []struct {
		name string
		file File
		want Network
	}{
		{
			name: "no master, mode and dataDir",
			file: File{Name: "a.conflist", Data: []byte(`{"name": "n", "plugins": [{"type": "macvlan", "mode": "private", "ipam": {"type": "host-local", "dataDir": "/run/ipam//x/", "subnet": "10.0.0.0/24"}}]}`)},
			want: Network{Name: "n", File: "a.conflist", Mode: "private", IPAM: "host-local", DataDir: "/run/ipam/x",
				Ranges: []hostlocal.Range{r("10.0.0.0/24", "10.0.0.1", "10.0.0.254", "10.0.0.1")}},
		},
		{
			name: "single plugin .conf",
			file: File{Name: "b.conf", Data: []byte(`{"cniVersion": "0.3.1", "name": "n", "type": "macvlan", "master": "eth0.100", "mode": "passthru", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`)},
			want: Network{Name: "n", File: "b.conf", Master: "eth0.100", Mode: "passthru", IPAM: "host-local",
				Ranges: []hostlocal.Range{r("10.0.0.0/24", "10.0.0.1", "10.0.0.254", "10.0.0.1")}},
		},
		{
			name: "single plugin .json without cniVersion",
			file: File{Name: "c.json", Data: []byte(`{"name": "n", "type": "macvlan", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`)},
			want: Network{Name: "n", File: "c.json", IPAM: "host-local",
				Ranges: []hostlocal.Range{r("10.0.0.0/24", "10.0.0.1", "10.0.0.254", "10.0.0.1")}},
		},
		{
			name: "one range set of each family before 0.3.0",
			file: File{Name: "d.conf", Data: []byte(`{"cniVersion": "0.2.0", "name": "n", "type": "macvlan", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}}`)},
			want: Network{Name: "n", File: "d.conf", IPAM: "host-local",
				Ranges: []hostlocal.Range{r("10.0.0.0/24", "10.0.0.1", "10.0.0.254", "10.0.0.1"), r("fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:ffff", "fd00::1")}},
		},
		{
			name: "macvlan after another plugin",
			file: File{Name: "e.conflist", Data: []byte(`{"name": "n", "plugins": [{"type": "tuning"}, {"type": "macvlan", "master": "eno1", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}]}`)},
			want: Network{Name: "n", File: "e.conflist", Master: "eno1", IPAM: "host-local",
				Ranges: []hostlocal.Range{r("10.0.0.0/24", "10.0.0.1", "10.0.0.254", "10.0.0.1")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nets, problems := Discover([]File{tt.file})
			if len(problems) != 0 || len(nets) != 1 || !reflect.DeepEqual(nets[0], tt.want) {
				t.Fatalf("Discover = %+v, %v\nwant %+v", nets, problems, tt.want)
			}
		})
	}
}

func TestDiscoverNothing(t *testing.T) {
	for name, data := range map[string]string{
		"bridge.conflist": `{"name": "b", "plugins": [{"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}]}`,
		"ipvlan.conf":     `{"name": "i", "type": "ipvlan", "master": "eno1", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`,
		"Macvlan.conf":    `{"name": "m", "type": "Macvlan", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`,
		"README.md":       `not json`,
		"backup.conf.bak": `{`,
		"noext":           `{`,
		"upper.CONF":      `{`,
	} {
		nets, problems := Discover([]File{{Name: name, Data: []byte(data)}})
		if len(nets) != 0 || len(problems) != 0 {
			t.Errorf("%s: Discover = %+v, %v; want nothing", name, nets, problems)
		}
	}
	if nets, problems := Discover(nil); nets != nil || problems != nil {
		t.Errorf("Discover(nil) = %v, %v", nets, problems)
	}
}

func TestDiscoverProblems(t *testing.T) {
	tests := []struct {
		name string
		file string
		data string
		want string
	}{
		// The file itself.
		{"empty file", "a.conflist", ``, `a.conflist: invalid JSON at line 1, column 1: unexpected end of JSON input`},
		{"syntax error", "a.conflist", "{\n  \"name\": \"n\",\n  \"plugins\": [}\n", `a.conflist: invalid JSON at line 3, column 15: invalid character '}' looking for beginning of value`},
		{"not an object", "a.conflist", `[1]`, `a.conflist: a JSON array where an object belongs`},
		{"no name", "a.conflist", `{"plugins": [{"type": "macvlan"}]}`, `a.conflist: no "name"`},
		{"name not a string", "a.conflist", `{"name": 5, "plugins": [{"type": "macvlan"}]}`, `a.conflist: "name" is a number, not a string`},
		{"cniVersion not a string", "a.conflist", `{"name": "n", "cniVersion": 1, "plugins": [{"type": "macvlan"}]}`, `a.conflist: "cniVersion" is a number, not a string`},
		{"no plugins", "a.conflist", `{"name": "n"}`, `a.conflist: no "plugins" list (plugin files in a subdirectory are not read)`},
		{"plugins not a list", "a.conflist", `{"name": "n", "plugins": {}}`, `a.conflist: "plugins" is an object, not a list`},
		{"plugins empty", "a.conflist", `{"name": "n", "plugins": []}`, `a.conflist: "plugins" is empty`},
		{"plugin not an object", "a.conflist", `{"name": "n", "plugins": [1]}`, `a.conflist: plugin 0: a JSON number where an object belongs`},
		{"plugin without type", "a.conflist", `{"name": "n", "plugins": [{"type": "macvlan"}, {"master": "x"}]}`, `a.conflist: plugin 1 has no "type"`},
		{"plugin type not a string", "a.conflist", `{"name": "n", "plugins": [{"type": 1}]}`, `a.conflist: plugin 0: type: a JSON number where a string belongs`},
		{"conf without type", "a.conf", `{"name": "n"}`, `a.conf: no "type"`},
		{"list in a .json", "a.json", `{"name": "n", "plugins": [{"type": "macvlan"}]}`, `a.json: no "type": this is a network list, which is read only from a *.conflist file`},
		{"control characters stay escaped", "a\n.conflist", "{\"name\": \"n\", \"plugins\": [{\"type\": \"macvlan\", \"mode\": \"x\\u000ay\"}]}", `a\n.conflist: network "n": unknown macvlan mode "x\ny"`},
		{"conf not JSON", "a.conf", `name = "n"`, `a.conf: invalid JSON at line 1, column 2: invalid character 'a' in literal null (expecting 'u')`},
		{"cut short after a newline", "a.conflist", "{\n  \"name\": \"n\",\n", `a.conflist: invalid JSON at line 3, column 1: unexpected end of JSON input`},

		// The macvlan plugin.
		{"bad network name", "a.conflist", `{"name": "../x", "plugins": [` + macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24"}`) + `]}`, `a.conflist: network "../x": "../x" is not a valid CNI network name (a letter or digit, then letters, digits, '_', '.', '-'); the runtime refuses it`},
		{"empty network name", "a.conf", `{"type": "macvlan", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`, `a.conf: network "": "" is not a valid CNI network name (a letter or digit, then letters, digits, '_', '.', '-'); the runtime refuses it`},
		{"bad mode", "a.conflist", string(conflist(`{"type": "macvlan", "mode": "source", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`)), `a.conflist: network "net": unknown macvlan mode "source"`},
		{"link in container", "a.conflist", string(conflist(`{"type": "macvlan", "linkInContainer": true, "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`)), `a.conflist: network "net": "linkInContainer": the master is inside the container's namespace, not on the node`},
		{"bad master", "a.conflist", string(conflist(`{"type": "macvlan", "master": "eno1/x", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`)), `a.conflist: network "net": master: "eno1/x" contains '/', which a Linux interface name cannot contain`},
		{"master not a string", "a.conflist", string(conflist(`{"type": "macvlan", "master": 1, "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`)), `a.conflist: network "net": master: a JSON number where a string belongs`},
		{"second of two macvlans is bad", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24"}`) + `,` + `{"type": "macvlan", "mode": "source"}`)), `a.conflist: network "net": plugin 1 (macvlan): unknown macvlan mode "source"`},

		// host-local.
		{"no ranges", "a.conflist", string(conflist(macvlan(`{"type": "host-local"}`))), `a.conflist: network "net": host-local has no IP ranges: set ipam "ranges" (or "subnet")`},
		{"ranges empty", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": []}`))), `a.conflist: network "net": host-local has no IP ranges: set ipam "ranges" (or "subnet")`},
		{"empty range set", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[]]}`))), `a.conflist: network "net": ipam.ranges[0]: empty range set`},
		{"range without subnet", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"rangeStart": "10.0.0.1"}]]}`))), `a.conflist: network "net": ipam.ranges[0][0]: no "subnet"`},
		{"bad subnet", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/33"}]]}`))), `a.conflist: network "net": "10.0.0.0/33" is not a CIDR`},
		{"subnet not a string", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": 10}`))), `a.conflist: network "net": 10 is not a CIDR string`},
		{"null subnet", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": null}`))), `a.conflist: network "net": "" is not a CIDR`},
		{"bad rangeStart", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24", "rangeStart": "10.0.0"}`))), `a.conflist: network "net": "10.0.0" is not an IP address`},
		{"bad route", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24", "routes": [{"dst": "default"}]}`))), `a.conflist: network "net": "default" is not a CIDR`},
		{"bad args ip", "a.conflist", `{"name": "net", "plugins": [{"type": "macvlan", "args": {"cni": {"ips": ["x"]}}, "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}]}`, `a.conflist: network "net": "x" is not an IP address`},
		{"empty args ip", "a.conflist", `{"name": "net", "plugins": [{"type": "macvlan", "args": {"cni": {"ips": [""]}}, "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}]}`, `a.conflist: network "net": an empty address in "ips": host-local cannot understand it`},
		{"bad runtimeConfig ips", "a.conflist", `{"name": "net", "plugins": [{"type": "macvlan", "runtimeConfig": {"ips": [[]]}, "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}]}`, `a.conflist: network "net": runtimeConfig.ips: a JSON array where an IP address string belongs`},
		{"ranges wrong shape", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [{"subnet": "10.0.0.0/24"}]}`))), `a.conflist: network "net": ipam.ranges: a JSON object where a list belongs`},
		{"subnet too small /31", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/31"}`))), `a.conflist: network "net": ipam: network 10.0.0.0/31 too small to allocate from`},
		{"subnet too small /32", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.1/32"}]]}`))), `a.conflist: network "net": ipam.ranges[0][0]: network 10.0.0.1/32 too small to allocate from`},
		{"subnet too small /127", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "fd00::/127"}]]}`))), `a.conflist: network "net": ipam.ranges[0][0]: network fd00::/127 too small to allocate from`},
		{"v4-mapped subnet", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "::ffff:10.0.0.0/120"}]]}`))), `a.conflist: network "net": ipam.ranges[0][0]: subnet 10.0.0.0/120 mixes an IPv4 address with an IPv6 mask`},
		{"gateway outside", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}]]}`))), `a.conflist: network "net": ipam.ranges[0][0]: gateway 10.0.1.1 not in network 10.0.0.0/24`},
		{"gateway other family", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "gateway": "fd00::1"}]]}`))), `a.conflist: network "net": ipam.ranges[0][0]: gateway fd00::1 not in network 10.0.0.0/24`},
		{"rangeStart outside", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "192.168.0.0/24", "rangeStart": "192.168.1.2"}]]}`))), `a.conflist: network "net": ipam.ranges[0][0]: rangeStart 192.168.1.2 not in network 192.168.0.0/24`},
		{"rangeEnd outside", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": "192.168.0.0/24", "rangeEnd": "192.168.1.0"}`))), `a.conflist: network "net": ipam: rangeEnd 192.168.1.0 not in network 192.168.0.0/24`},
		{"rangeEnd other family", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": "fd00::/64", "rangeEnd": "10.0.0.1"}`))), `a.conflist: network "net": ipam: rangeEnd 10.0.0.1 is not the same IP version as subnet fd00::/64`},
		{"rangeStart after rangeEnd", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.200", "rangeEnd": "10.0.0.100"}]]}`))), `a.conflist: network "net": ipam.ranges[0][0]: rangeEnd 10.0.0.100 is before rangeStart 10.0.0.200`},
		{"rangeEnd before default start", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.0"}`))), `a.conflist: network "net": ipam: rangeEnd 10.0.0.0 is before rangeStart 10.0.0.1`},
		{"host bits", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "192.168.1.5/24"}]]}`))), `a.conflist: network "net": ipam.ranges[0][0]: subnet 192.168.1.5/24 has host bits set; write it as 192.168.1.0/24`},
		{"host bits, legacy subnet", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": "fd00::1/64"}`))), `a.conflist: network "net": ipam: subnet fd00::1/64 has host bits set; write it as fd00::/64`},
		{"mixed families in a set", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}`))), `a.conflist: network "net": ipam.ranges[0]: mixed address families in one range set`},
		{"overlap in a set", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/16"}, {"subnet": "10.0.1.0/24"}]]}`))), `a.conflist: network "net": ipam.ranges[0][0] and ipam.ranges[0][1] overlap (10.0.0.0/16 (10.0.0.1-10.0.255.254), 10.0.1.0/24 (10.0.1.1-10.0.1.254))`},
		{"overlapping sets", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/16", "ranges": [[{"subnet": "10.0.0.0/16", "rangeStart": "10.0.9.0"}]]}`))), `a.conflist: network "net": ipam overlaps ipam.ranges[0]`},
		{"two v4 sets before 0.3.0", "a.conf", `{"cniVersion": "0.2.0", "name": "n", "type": "macvlan", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.0.1.0/24"}], [{"subnet": "10.0.2.0/24"}]]}}`, `a.conf: network "n": cniVersion "0.2.0" allows one range set per address family; 0.3.0 and later allow more`},
		{"two v6 sets without a version", "a.conflist", `{"name": "n", "plugins": [{"type": "macvlan", "ipam": {"type": "host-local", "ranges": [[{"subnet": "fd00:1::/64"}], [{"subnet": "fd00:2::/64"}]]}}]}`, `a.conflist: network "n": cniVersion "" allows one range set per address family; 0.3.0 and later allow more`},
		{"relative dataDir", "a.conflist", string(conflist(macvlan(`{"type": "host-local", "dataDir": "ipam", "subnet": "10.0.0.0/24"}`))), `a.conflist: network "net": ipam dataDir "ipam" is not an absolute path; host-local would resolve it against the runtime's working directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nets, problems := Discover([]File{{Name: tt.file, Data: []byte(tt.data)}})
			if len(nets) != 0 {
				t.Errorf("networks %+v; want none", nets)
			}
			if len(problems) != 1 {
				t.Fatalf("problems %v; want one", problems)
			}
			if got := problems[0].Error(); got != tt.want {
				t.Errorf("problem\n got %s\nwant %s", got, tt.want)
			}
			if problems[0].File != tt.file {
				t.Errorf("problem names %q, want %q", problems[0].File, tt.file)
			}
		})
	}
}

func TestDiscoverOrderAndDuplicates(t *testing.T) {
	good := func(name, subnet string) []byte {
		return []byte(`{"name": "` + name + `", "plugins": [` + macvlan(`{"type": "host-local", "subnet": "`+subnet+`"}`) + `]}`)
	}
	readErr := errors.New("permission denied")
	files := []File{
		{Name: "30-c.conflist", Data: good("a", "10.0.3.0/24")},
		{Name: "10-a.conflist", Data: good("a", "10.0.1.0/24")},
		{Name: "20-b.conflist", Data: []byte(`{`)},
		{Name: "25-unreadable.conf", Err: readErr},
		{Name: "05-z.conflist", Data: good("z", "10.0.5.0/24")},
		{Name: "00-notes.txt", Data: good("notes", "10.0.6.0/24")}, // not read, nor does it stop the reading
	}
	nets, problems := Discover(files)
	if len(nets) != 2 || nets[0].Name != "z" || nets[1].Name != "a" || nets[1].File != "10-a.conflist" {
		t.Fatalf("networks %+v", nets)
	}
	want := []string{
		`20-b.conflist: invalid JSON at line 1, column 1: unexpected end of JSON input`,
		`25-unreadable.conf: permission denied`,
		`30-c.conflist: network "a" is already defined in 10-a.conflist, which wins`,
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems\n got %q\nwant %q", got, want)
	}
	if !errors.Is(problems[1], readErr) {
		t.Errorf("Problem does not unwrap to its reason")
	}
	if files[0].Name != "30-c.conflist" {
		t.Errorf("Discover reordered the caller's slice")
	}
}

// TestDiscoverSameNameTwice: two files given under one name (a directory
// never holds them, but Discover takes any list) stay in the order given,
// as "first wins" needs: the first given defines the network and the other
// is a duplicate, whichever of the two comes first, so the result never
// depends on how the name sort breaks a tie.
func TestDiscoverSameNameTwice(t *testing.T) {
	one := func(master string) File {
		return File{Name: "a.conflist", Data: conflist(`{"type": "macvlan", "master": "` + master + `"}`)}
	}
	for _, pair := range [][2]string{{"eno1", "eno2"}, {"eno2", "eno1"}} {
		first, second := pair[0], pair[1]
		nets, probs := Discover([]File{one(first), one(second)})
		if len(nets) != 1 || nets[0].Master != first || len(probs) != 1 || !errors.Is(probs[0], ErrDuplicate) {
			t.Errorf("%s given first: networks %+v, problems %v; want %s's network and a duplicate", first, nets, probs, first)
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"0.3.0", true}, {"0.3.1", true}, {"0.4.0", true}, {"1.0.0", true}, {"1.1", true}, {"1", true},
		{"+1.0.0", true},
		{"v1.0.0", false}, {"1.0.0-rc1", false}, {"0.2.0", false}, {"0.1.0", false}, {"0.2.9", false}, {"0", false}, {"", false},
		{"x", false}, {"1.0.0.0", false}, {"0.-1.0", false}, {"0..3", false},
	}
	for _, tt := range tests {
		if got := versionAtLeast(tt.v, "0.3.0"); got != tt.want {
			t.Errorf("versionAtLeast(%q, 0.3.0) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// TestProblemKinds: the problems that call for their own advice are told
// apart by errors.Is, not by their text.
func TestProblemKinds(t *testing.T) {
	_, probs := Discover([]File{
		{Name: "10-a.conflist", Data: conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24"}`))},
		{Name: "20-a.conflist", Data: conflist(macvlan(`{"type": "host-local", "subnet": "10.0.1.0/24"}`))},
		{Name: "50-bad.conflist", Data: []byte(`{"name": "b", "plugins": [{"type": "macvlan", "ipam": {"type": "host-local", "subnet": "10.0.2.0/31"}}]}`)},
	})
	want := map[string]error{"20-a.conflist": ErrDuplicate, "50-bad.conflist": nil}
	if len(probs) != len(want) {
		t.Fatalf("problems %v", probs)
	}
	for _, p := range probs {
		kind, ok := want[p.File]
		switch {
		case !ok:
			t.Errorf("unexpected problem %v", p)
		case kind == nil && errors.Is(p, ErrDuplicate):
			t.Errorf("%v: of a kind it is not", p)
		case kind != nil && !errors.Is(p, kind):
			t.Errorf("%v: not %v", p, kind)
		}
	}
}

// TestDiscoverAnyIPAM: a macvlan network of any IPAM is found, with no
// ranges and no state directory unless its IPAM is host-local: its pods'
// addresses come from libcni's cache.
func TestDiscoverAnyIPAM(t *testing.T) {
	for ipam, want := range map[string]string{
		`{"type": "dhcp"}`: "dhcp",
		`{"type": "static", "addresses": [{"address": "192.168.1.50/16"}]}`: "static",
		`{"type": "whereabouts", "range": "192.168.2.0/24"}`:                "whereabouts",
		``: "",
	} {
		plugin := `{"type": "macvlan", "master": "eno1"}`
		if ipam != "" {
			plugin = macvlan(ipam)
		}
		nets, probs := Discover([]File{{Name: "a.conflist", Data: conflist(plugin)}})
		if len(probs) != 0 || len(nets) != 1 || nets[0].IPAM != want || nets[0].HostLocal() || nets[0].DataDir != "" || len(nets[0].Ranges) != 0 {
			t.Errorf("IPAM %s: %+v %v", ipam, nets, probs)
		}
	}
}

// TestRangeErrors: the ranges flatnet check explains carry what is wrong
// and what the range says.
func TestRangeErrors(t *testing.T) {
	tests := []struct {
		ipam string
		want RangeError
	}{
		{`{"type": "host-local", "subnet": "10.0.0.0/31"}`, RangeError{Problem: RangeTooSmall, Subnet: netip.MustParsePrefix("10.0.0.0/31")}},
		{`{"type": "host-local", "ranges": [[{"subnet": "192.168.1.5/16", "rangeStart": "192.168.1.10"}]]}`,
			RangeError{Problem: RangeHostBits, Subnet: netip.MustParsePrefix("192.168.1.5/16"), Start: netip.MustParseAddr("192.168.1.10")}},
		{`{"type": "host-local", "subnet": "192.168.1.0/24", "rangeEnd": "192.168.1.99", "gateway": "192.168.0.1"}`,
			RangeError{Problem: RangeGatewayOutside, Subnet: netip.MustParsePrefix("192.168.1.0/24"), End: netip.MustParseAddr("192.168.1.99"), Gateway: netip.MustParseAddr("192.168.0.1")}},
		{`{"type": "host-local", "subnet": "192.168.1.0/24", "rangeStart": "::ffff:192.168.2.1"}`,
			RangeError{Problem: RangeStartOutside, Subnet: netip.MustParsePrefix("192.168.1.0/24"), Start: netip.MustParseAddr("192.168.2.1")}},
		{`{"type": "host-local", "ranges": [[{"subnet": "fd00::/64", "rangeEnd": "10.0.0.1"}]]}`,
			RangeError{Problem: RangeEndOutside, Subnet: netip.MustParsePrefix("fd00::/64"), End: netip.MustParseAddr("10.0.0.1")}},
		{`{"type": "host-local", "subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.0"}`,
			RangeError{Problem: RangeEndBeforeStart, Subnet: netip.MustParsePrefix("10.0.0.0/24"), Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.0")}},
	}
	for _, tt := range tests {
		_, problems := Discover([]File{{Name: "a.conflist", Data: conflist(macvlan(tt.ipam))}})
		var re *RangeError
		if len(problems) != 1 || !errors.As(problems[0], &re) {
			t.Errorf("%s: problems %v, want one *RangeError", tt.ipam, problems)
			continue
		}
		got := *re
		got.msg = ""
		if got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.ipam, got, tt.want)
		}
		if !strings.HasSuffix(problems[0].Error(), ": "+re.Error()) {
			t.Errorf("%s: problem %q does not end with the range's reason %q", tt.ipam, problems[0], re)
		}
	}
}
