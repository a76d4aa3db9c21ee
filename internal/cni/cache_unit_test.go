package cni

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
)

// cacheJSON builds a cniCacheV1 entry; capArgs is a JSON object or "".
func cacheJSON(network, id, ifname, config, capArgs string) []byte {
	e := map[string]any{
		"kind":        "cniCacheV1",
		"containerId": id,
		"config":      base64.StdEncoding.EncodeToString([]byte(config)),
		"ifName":      ifname,
		"networkName": network,
		"netns":       "/var/run/netns/" + id,
		"result":      map[string]any{"cniVersion": "1.0.0", "ips": []any{map[string]any{"address": "192.168.1.2/16"}}},
	}
	if capArgs != "" {
		e["capabilityArgs"] = json.RawMessage(capArgs)
	}
	b, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return b
}

// cacheFile is a CacheFile for cacheJSON's entry, named as libcni names it.
func cacheFile(dir, network, id, ifname, config, capArgs string, mtime int64) CacheFile {
	return CacheFile{
		Path:    filepath.Join(dir, "results", network+"-"+id+"-"+ifname),
		Data:    cacheJSON(network, id, ifname, config, capArgs),
		ModTime: time.Unix(mtime, 0),
	}
}

// netList is a one-plugin network list named name.
func netListJSON(name, plugin string) string {
	return `{"cniVersion": "1.0.0", "name": "` + name + `", "plugins": [` + plugin + `]}`
}

func TestParseCacheEntry(t *testing.T) {
	f := cacheFile("/var/lib/cni", "nadnet", "c1", "net1", netListJSON("nadnet", macvlan(`{"type": "host-local", "subnet": "192.168.0.0/16", "rangeStart": "192.168.3.1", "rangeEnd": "192.168.3.9", "gateway": "192.168.0.1"}`)), "", 7)
	e, err := ParseCache(f)
	if err != nil {
		t.Fatal(err)
	}
	want := Network{Name: "nadnet", File: "/var/lib/cni/results/nadnet-c1-net1", Master: "eno1", IPAM: "host-local",
		Ranges: []hostlocal.Range{r("192.168.0.0/16", "192.168.3.1", "192.168.3.9", "192.168.0.1")}}
	if e.Network == nil || !reflect.DeepEqual(*e.Network, want) {
		t.Fatalf("Network = %+v, want %+v", e.Network, want)
	}
	wantAtt := Attachment{Path: f.Path, ContainerID: "c1", IfName: "net1", NetNS: "/var/run/netns/c1", ModTime: time.Unix(7, 0),
		Addrs: []Addr{{Prefix: netip.MustParsePrefix("192.168.1.2/16")}}}
	if !reflect.DeepEqual(e.Attachment, wantAtt) || e.NetworkName != "nadnet" || !reflect.DeepEqual(e.Types, []string{"macvlan"}) {
		t.Fatalf("entry = %+v", e)
	}
	if !e.Network.FromCache() {
		t.Errorf("a network from the cache says it is not")
	}
	if got := (Attachment{ContainerID: "7bd849c5e1f0aabbccdd", IfName: "eth0"}).String(); got != "7bd849c5e1f0…/eth0" {
		t.Errorf("Attachment.String() = %q", got)
	}
}

// TestParseCacheCapabilities follows libcni's injectRuntimeConfig: the
// runtime's ipRanges reach host-local only through a plugin capability.
func TestParseCacheCapabilities(t *testing.T) {
	v4 := `{"type": "host-local", "ranges": [[{"subnet": "10.20.0.0/24"}]]}`
	args := `{"ipRanges": [[{"subnet": "10.30.0.0/24", "rangeStart": "10.30.0.100", "rangeEnd": "10.30.0.110"}]], "portMappings": []}`
	runtime := r("10.30.0.0/24", "10.30.0.100", "10.30.0.110", "10.30.0.1")
	conf := r("10.20.0.0/24", "10.20.0.1", "10.20.0.254", "10.20.0.1")
	tests := []struct {
		name, plugin, args string
		want               []hostlocal.Range
	}{
		{"capability on", `{"type": "macvlan", "capabilities": {"ipRanges": true}, "ipam": ` + v4 + `}`, args, []hostlocal.Range{runtime, conf}},
		{"capability off", `{"type": "macvlan", "capabilities": {"ipRanges": false}, "ipam": ` + v4 + `}`, args, []hostlocal.Range{conf}},
		{"no capabilities", `{"type": "macvlan", "ipam": ` + v4 + `}`, args, []hostlocal.Range{conf}},
		{"no arguments", `{"type": "macvlan", "capabilities": {"ipRanges": true}, "ipam": ` + v4 + `}`, "", []hostlocal.Range{conf}},
		{"only run-time ranges", `{"type": "macvlan", "capabilities": {"ipRanges": true}, "ipam": {"type": "host-local"}}`, args, []hostlocal.Range{runtime}},
		{"the configuration's runtimeConfig is replaced", `{"type": "macvlan", "capabilities": {"ipRanges": true}, "runtimeConfig": {"ipRanges": [[{"subnet": "10.40.0.0/24"}]]}, "ipam": ` + v4 + `}`, args, []hostlocal.Range{runtime, conf}},
		{"the configuration's runtimeConfig stays without arguments", `{"type": "macvlan", "runtimeConfig": {"ipRanges": [[{"subnet": "10.40.0.0/24"}]]}, "ipam": ` + v4 + `}`, args,
			[]hostlocal.Range{r("10.40.0.0/24", "10.40.0.1", "10.40.0.254", "10.40.0.1"), conf}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseCache(cacheFile("/c", "capnet", "c1", "eth0", netListJSON("capnet", tt.plugin), tt.args, 1))
			if err != nil {
				t.Fatal(err)
			}
			if e.Network == nil || !reflect.DeepEqual(e.Network.Ranges, tt.want) {
				t.Fatalf("ranges %+v, want %+v", e.Network, tt.want)
			}
		})
	}
	_, err := ParseCache(cacheFile("/c", "capnet", "c1", "eth0", netListJSON("capnet", `{"type": "macvlan", "capabilities": {"ipRanges": "yes"}, "ipam": `+v4+`}`), args, 1))
	if !errors.Is(err, ErrCacheMalformed) {
		t.Errorf("capabilities of the wrong type: %v", err)
	}
}

func TestParseCacheKinds(t *testing.T) {
	good := string(cacheJSON("n", "c", "eth0", netListJSON("n", `{"type": "bridge"}`), ""))
	tests := []struct {
		name, data string
		want       error
		msg        string
	}{
		{"legacy result", `{"cniVersion": "0.3.1", "interfaces": [], "ips": [{"version": "4", "address": "10.0.0.2/24"}], "dns": {}}`, ErrCacheLegacy, ""},
		{"no kind", `{"containerId": "c"}`, ErrCacheMalformed, `not a libcni cache entry: no "kind"`},
		{"kind of another type", `{"kind": 1}`, ErrCacheMalformed, `not a libcni cache entry: kind: a JSON number where a string belongs`},
		{"empty kind", `{"kind": ""}`, ErrCacheKind, `unknown kind of cache entry "" (libcni writes "cniCacheV1"); not read`},
		{"object in an array", `[` + good + `]`, ErrCacheMalformed, ""},
		{"null", `null`, ErrCacheMalformed, `not a libcni cache entry: no "kind"`},
		{"string", `"cniCacheV1"`, ErrCacheMalformed, ""},
		{"trailing junk", good + `x`, ErrCacheMalformed, ""},
		{"white space only", " \n\t", ErrCacheIncomplete, "being written: empty"},
		{"result not an object", with(good, "result", []int{1}), ErrCacheMalformed, `not a libcni cache entry: result: a JSON array where an object belongs`},
		{"capabilityArgs not an object", with(good, "capabilityArgs", "x"), ErrCacheMalformed, `not a libcni cache entry: capabilityArgs: a JSON string where an object belongs`},
		{"networkName not a string", with(good, "networkName", 1), ErrCacheMalformed, `not a libcni cache entry: networkName: a JSON number where a string belongs`},
		{"bad network name", with(good, "networkName", "../n"), ErrCacheMalformed, `not a libcni cache entry: "networkName" "../n" is not a valid CNI network name`},
		{"no container id", with(good, "containerId", ""), ErrCacheMalformed, `not a libcni cache entry: no "containerId"`},
		{"no ifName", with(good, "ifName", ""), ErrCacheMalformed, `not a libcni cache entry: no "ifName"`},
		{"long ifName", with(good, "ifName", "a23456789012345x"), ErrCacheMalformed, `not a libcni cache entry: "ifName" "a23456789012345x" is not an interface name libcni accepts`},
		{"cniArgs not pairs", strings.Replace(good, `"kind"`, `"cniArgs":"x","kind"`, 1), ErrCacheMalformed, ""},
		{"no config", strings.Replace(good, `"config"`, `"config2"`, 1), ErrCacheMalformed, `not a libcni cache entry: no "config"`},
		{"config null", strings.Replace(good, `"config":"`, `"config":null,"x":"`, 1), ErrCacheMalformed, `not a libcni cache entry: no "config"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCache(CacheFile{Path: "/c/results/n-c-eth0", Data: []byte(tt.data)})
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseCache = %v, want %v", err, tt.want)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message\n got %s\nwant %s", err, tt.msg)
			}
		})
	}
	// Keys match without regard to case, as libcni's encoding/json does.
	e, err := ParseCache(CacheFile{Path: "/c/results/n-c-eth0", Data: []byte(strings.NewReplacer(`"kind"`, `"KIND"`, `"networkName"`, `"NetworkName"`).Replace(good))})
	if err != nil || e.NetworkName != "n" {
		t.Errorf("upper-case keys: %+v, %v", e, err)
	}
	if _, err := ParseCache(CacheFile{Path: "/c/results/n-c-eth0", Err: errors.New("boom")}); !errors.Is(err, ErrCacheUnreadable) {
		t.Errorf("read error: %v", err)
	}
	gone := ReadCacheFile(t.TempDir(), "n-c-eth0")
	if _, err := ParseCache(gone); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrCacheUnreadable) {
		t.Errorf("removed file: %v", err)
	}
}

// TestParseCacheHalfWritten cuts a real entry at every byte: each prefix
// is a file libcni is still writing, never junk.
func TestParseCacheHalfWritten(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "cache", "*", "*", "results", "*"))
	n := 0
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if _, err := ParseCache(CacheFile{Path: p, Data: data}); err != nil && !errors.Is(err, ErrUnfollowable) {
			continue // not a good entry to start from
		}
		n++
		for i := range len(data) - 1 {
			if _, err := ParseCache(CacheFile{Path: p, Data: data[:i]}); !errors.Is(err, ErrCacheIncomplete) || !Ignorable(err) {
				t.Fatalf("%s cut at %d: %v", p, i, err)
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d entries to cut", n)
	}
}

func TestCombine(t *testing.T) {
	ml := func(master, ipam string) string {
		return `{"type": "macvlan", "master": "` + master + `", "ipam": ` + ipam + `}`
	}
	hl := `{"type": "host-local", "subnet": "10.0.0.0/24"}`
	hl2 := `{"type": "host-local", "subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100"}`
	parse := func(f CacheFile) CacheEntry {
		t.Helper()
		e, err := ParseCache(f)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	confNets, _ := Discover([]File{{Name: "10-a.conflist", Data: []byte(netListJSON("a", ml("eno1", hl)))}})

	entries := []CacheEntry{
		// a: agrees with its file, and once disagrees (another master).
		parse(cacheFile("/c", "a", "c1", "eth0", netListJSON("a", ml("eno1", hl)), "", 5)),
		parse(cacheFile("/c", "a", "c2", "eth0", netListJSON("a", `{"type": "macvlan", "master": "eno1", "mode": "bridge", "ipam": {"type": "host-local", "dataDir": "/var/lib/cni/networks", "subnet": "10.0.0.0/24"}}`), "", 5)),
		parse(cacheFile("/c", "a", "c3", "eth0", netListJSON("a", ml("eno2", hl)), "", 9)),
		// b: cache only; the oldest (c6) holds; c4 differs in its ranges.
		parse(cacheFile("/c", "b", "c4", "net1", netListJSON("b", ml("eno1", hl)), "", 1)),
		parse(cacheFile("/c", "b", "c5", "net1", netListJSON("b", ml("eno1", hl2)), "", 2)),
		parse(cacheFile("/m", "b", "c5", "net1", netListJSON("b", ml("eno1", hl2)), "", 1)), // the same attachment, older, elsewhere
		parse(cacheFile("/c", "b", "c6", "net1", `{"cniVersion": "0.3.1", "name": "b", "type": "macvlan", "master": "eno1", "ipam": `+hl2+`}`, "", 0)),
		// not macvlan
		parse(cacheFile("/c", "br", "c7", "eth0", netListJSON("br", `{"type": "bridge", "ipam": `+hl+`}`), "", 3)),
	}
	for round := range 20 {
		in := append([]CacheEntry(nil), entries...)
		rand.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		d := Combine(confNets, nil, in)
		if len(d.Networks) != 2 || d.Networks[0].File != "10-a.conflist" || d.Networks[1].Name != "b" || d.Networks[1].File != "/c/results/b-c6-net1" {
			t.Fatalf("round %d: networks %+v", round, d.Networks)
		}
		if got := paths(d.Attachments["a"]); !reflect.DeepEqual(got, []string{"/c/results/a-c1-eth0", "/c/results/a-c2-eth0"}) {
			t.Fatalf("attachments of a: %q", got)
		}
		if got := paths(d.Attachments["b"]); !reflect.DeepEqual(got, []string{"/c/results/b-c5-net1", "/c/results/b-c6-net1"}) {
			t.Fatalf("attachments of b: %q", got)
		}
		if got := paths(d.Refused["a"]); !reflect.DeepEqual(got, []string{"/c/results/a-c3-eth0"}) {
			t.Fatalf("refused of a: %q", got)
		}
		if got := paths(d.Refused["b"]); !reflect.DeepEqual(got, []string{"/c/results/b-c4-net1"}) {
			t.Fatalf("refused of b: %q", got)
		}
		if len(d.Attachments) != 2 || len(d.Problems) != 2 {
			t.Fatalf("attachments %v problems %v", d.Attachments, d.Problems)
		}
		var ce *ConflictError
		p := d.Problems[0]
		if !errors.As(p.Err, &ce) || !errors.Is(p, ErrConflict) || errors.Is(p, ErrCacheConflict) || ce.Network != "a" || ce.Winner != "10-a.conflist" || p.File != "/c/results/a-c3-eth0" {
			t.Fatalf("problem 0: %#v", p)
		}
		if want := `/c/results/a-c3-eth0: network "a": 1 cached attachment was made with another configuration than 10-a.conflist, which flatnet follows (master "eno2", not "eno1"): not routed, the node may not reach its pod until it is recreated (c3/eth0)`; p.Error() != want {
			t.Errorf("problem 0\n got %s\nwant %s", p, want)
		}
		p = d.Problems[1]
		if !errors.As(p.Err, &ce) || !errors.Is(p, ErrCacheConflict) || errors.Is(p, ErrConflict) || ce.Winner != "/c/results/b-c6-net1" || len(ce.Attachments) != 1 {
			t.Fatalf("problem 1: %#v", p)
		}
		if want := `/c/results/b-c4-net1: network "b": 1 cached attachment was made with another configuration than /c/results/b-c6-net1, which flatnet follows: the first configuration seen holds until its last attachment is gone (ranges 10.0.0.0/24 (10.0.0.1-10.0.0.254) gateway 10.0.0.1, not 10.0.0.0/24 (10.0.0.100-10.0.0.254) gateway 10.0.0.1); not routed: c4/net1`; p.Error() != want {
			t.Errorf("problem 1\n got %s\nwant %s", p, want)
		}
	}
}

// with returns the JSON object s with key set to v.
func with(s, key string, v any) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		panic(err)
	}
	m[key] = v
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func paths(as []Attachment) []string {
	var p []string
	for _, a := range as {
		p = append(p, a.Path)
	}
	return p
}

// TestCombineRunTimeRanges: attachments that differ only in the ranges the
// runtime passed are made with one configuration.
func TestCombineRunTimeRanges(t *testing.T) {
	plugin := `{"type": "macvlan", "master": "eno1", "capabilities": {"ipRanges": true}, "ipam": {"type": "host-local"}}`
	var es []CacheEntry
	for i, subnet := range []string{"10.1.0.0/24", "10.2.0.0/24"} {
		e, err := ParseCache(cacheFile("/c", "rt", "c"+string(rune('1'+i)), "eth0", netListJSON("rt", plugin), `{"ipRanges": [[{"subnet": "`+subnet+`"}]]}`, int64(i)))
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	d := Combine(nil, nil, es)
	if len(d.Problems) != 0 || len(d.Networks) != 1 || len(d.Attachments["rt"]) != 2 || len(d.Networks[0].Ranges) != 2 ||
		d.Networks[0].Ranges[0].Subnet.String() != "10.1.0.0/24" || d.Networks[0].Ranges[1].Subnet.String() != "10.2.0.0/24" {
		t.Fatalf("%+v", d)
	}
}

// TestCombineRunTimeRangesOverWritten: a configuration that writes ranges
// and takes ipRanges too gives each pod the ranges its runtime passed
// (host-local takes them before the written ones), so the network has
// every attachment's, not only its first's: else a later pod's address
// is outside the network and not routed. The index takes a pod whose
// ranges the first has in O(1), and one that adds ranges by a whole
// Combine.
func TestCombineRunTimeRangesOverWritten(t *testing.T) {
	plugin := `{"type": "macvlan", "master": "eno1", "capabilities": {"ipRanges": true}, "ipam": {"type": "host-local", "subnet": "10.20.0.0/24"}}`
	entry := func(id, runtime string, mtime int64) CacheEntry {
		t.Helper()
		args := ""
		if runtime != "" {
			args = `{"ipRanges": [[{"subnet": "` + runtime + `"}]]}`
		}
		e, err := ParseCache(cacheFile("/c", "rt", id, "eth0", netListJSON("rt", plugin), args, mtime))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	first, second := entry("c1", "10.30.0.0/24", 1), entry("c2", "10.31.0.0/24", 2)
	d := Combine(nil, nil, []CacheEntry{first, second})
	var got []string
	for _, r := range d.Networks[0].Ranges {
		got = append(got, r.Subnet.String())
	}
	if len(d.Attachments["rt"]) != 2 || !slices.Equal(got, []string{"10.30.0.0/24", "10.20.0.0/24", "10.31.0.0/24"}) {
		t.Errorf("ranges %q, attachments %v; want the first's (run-time, then written), then the second's run-time one", got, d.Attachments)
	}

	x := NewIndex(nil, nil, []CacheEntry{first})
	if _, redefine := x.Apply(EntryChange{New: &second}); !redefine {
		t.Error("an attachment that adds ranges taken in O(1)")
	}
	third := entry("c3", "", 3) // no ipRanges: the written ranges, which the first has
	x = NewIndex(nil, nil, []CacheEntry{first})
	if chs, redefine := x.Apply(EntryChange{New: &third}); redefine || len(chs) != 1 {
		t.Errorf("an attachment within the first's ranges: changes %v, redefine %v; want it taken in O(1)", chs, redefine)
	}
}

// TestCombineTrust: the cache cannot take what the configuration directory
// defines, nor re-point a run-time network: a name of a bridge network in
// the directory refuses the macvlan attachments cached under it; a second
// configuration of a cache-only name is refused while the first has an
// attachment, whatever the order the entries come in; a name first used by
// another plugin stays that plugin's.
func TestCombineTrust(t *testing.T) {
	ml := func(master, subnet string) string {
		return `{"type": "macvlan", "master": "` + master + `", "ipam": {"type": "host-local", "subnet": "` + subnet + `"}}`
	}
	flannel := File{Name: "10-flannel.conflist", Data: []byte(`{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}`)}
	podman := File{Name: "87-podman.conflist", Data: []byte(`{"cniVersion":"0.4.0","name":"podman","plugins":[{"type":"bridge","bridge":"cni-podman0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.88.0.0/16"}]]}}]}`)}
	files := []File{flannel, podman}
	claims := Claims(files)
	parse := func(f CacheFile) CacheEntry {
		t.Helper()
		e, err := ParseCache(f)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	entries := []CacheEntry{
		parse(cacheFile("/c", "cbr0", "t1", "net1", netListJSON("cbr0", ml("eno1", "10.244.0.0/16")), "", 5)),
		parse(cacheFile("/c", "podman", "p1", "eth0", string(podman.Data), "", 5)), // the bridge's own pod
		parse(cacheFile("/c", "nad", "first", "net1", netListJSON("nad", ml("eno1", "192.168.3.0/24")), "", 10)),
		parse(cacheFile("/c", "nad", "second", "net1", netListJSON("nad", ml("eno2", "10.9.0.0/24")), "", 20)),
		parse(cacheFile("/c", "nad", "third", "net1", netListJSON("nad", ml("eno1", "192.168.3.0/24")), "", 30)),
		parse(cacheFile("/c", "br", "b1", "eth0", netListJSON("br", `{"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.7.0.0/24"}}`), "", 1)),
		parse(cacheFile("/c", "br", "m1", "net1", netListJSON("br", ml("eno1", "10.7.0.0/24")), "", 2)),
	}
	for round := range 20 {
		in := append([]CacheEntry(nil), entries...)
		rand.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		d := Combine(nil, claims, in)
		if len(d.Networks) != 1 || d.Networks[0].Name != "nad" || d.Networks[0].Master != "eno1" || d.Networks[0].File != "/c/results/nad-first-net1" {
			t.Fatalf("round %d: networks %+v", round, d.Networks)
		}
		if got := paths(d.Attachments["nad"]); !reflect.DeepEqual(got, []string{"/c/results/nad-first-net1", "/c/results/nad-third-net1"}) {
			t.Fatalf("attachments of nad: %q", got)
		}
		for name, want := range map[string]string{"cbr0": "/c/results/cbr0-t1-net1", "nad": "/c/results/nad-second-net1", "br": "/c/results/br-m1-net1"} {
			if got := paths(d.Refused[name]); !reflect.DeepEqual(got, []string{want}) {
				t.Fatalf("refused of %s: %q", name, got)
			}
		}
		if len(d.Refused) != 3 || len(d.Problems) != 3 {
			t.Fatalf("refused %v problems %v", d.Refused, d.Problems)
		}
		// By file: br, cbr0, nad.
		if p := d.Problems[0]; !errors.Is(p, ErrCacheConflict) || !strings.Contains(p.Error(), "the first attachment of this name, which holds it, is of plugin bridge") {
			t.Errorf("br: %v", p)
		}
		if p := d.Problems[1]; !errors.Is(p, ErrNameTaken) || errors.Is(p, ErrCacheConflict) ||
			p.Error() != `/c/results/cbr0-t1-net1: network "cbr0": 1 attachment of macvlan cached under a name that 10-flannel.conflist gives a flannel network, which holds it: not followed, not routed (t1/net1)` {
			t.Errorf("cbr0: %v", p)
		}
		if p := d.Problems[2]; !errors.Is(p, ErrCacheConflict) || !strings.Contains(p.Error(), `master "eno2", not "eno1"`) {
			t.Errorf("nad: %v", p)
		}
	}
	// Once the first attachment is gone, the next oldest holds.
	d := Combine(nil, claims, []CacheEntry{entries[3], entries[4]})
	if len(d.Networks) != 1 || d.Networks[0].Master != "eno2" || paths(d.Refused["nad"])[0] != "/c/results/nad-third-net1" {
		t.Fatalf("without the first: %+v refused %v", d.Networks, d.Refused)
	}
}

func TestKeep(t *testing.T) {
	d := Discovery{Networks: []Network{{Name: "a", File: "10-a.conflist"}, {Name: "b", File: "/c/results/b-c-eth0"}}}
	prev := []Network{
		{Name: "a", File: "/c/results/a-c-eth0"}, // known again, from its file
		{Name: "b", File: "/c/results/b-old-eth0"},
		{Name: "gone", File: "/c/results/gone-c-eth0"},
		{Name: "empty", File: "/c/results/empty-c-eth0"},
		{Name: "file", File: "20-file.conflist"}, // a file's network goes with its file
	}
	held := func(n Network) bool { return n.Name != "empty" }
	got := d.Keep(prev, held)
	if len(got) != 1 || got[0].Name != "gone" {
		t.Fatalf("Keep = %+v", got)
	}
}

func TestReadCache(t *testing.T) {
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	if err := os.Mkdir(results, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(results, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good := cacheJSON("n", "c", "eth0", netListJSON("n", macvlan(`{"type": "host-local", "subnet": "10.0.0.0/24"}`)), "")
	write("n-c-eth0", good)
	write(".n-c-eth0.swp", good)
	write("big", make([]byte, MaxCacheFileSize+1))
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(huge, filepath.Join(results, "link-c-eth0")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(results, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(results, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(results, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(results, "n-c-eth0"), mtime, mtime); err != nil {
		t.Fatal(err)
	}

	files, err := ReadCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // name -> error text, "" for none
		"big":         "over the 1048576 a cache entry may have",
		"dangling":    "a symlink",
		"fifo":        "not a regular file",
		"link-c-eth0": "a symlink",
		"n-c-eth0":    "",
		"sub":         "a directory",
	}
	if len(files) != len(want) {
		t.Fatalf("ReadCache returned %d files: %+v", len(files), files)
	}
	for i, f := range files {
		name := filepath.Base(f.Path)
		w, ok := want[name]
		switch {
		case !ok:
			t.Errorf("unexpected %s", name)
		case i > 0 && filepath.Base(files[i-1].Path) > name:
			t.Errorf("not in name order: %s after %s", name, files[i-1].Path)
		case w == "" && (f.Err != nil || string(f.Data) != string(good) || !f.ModTime.Equal(mtime)):
			t.Errorf("%s: %+v", name, f)
		case w != "" && (!errors.Is(f.Err, ErrCacheUnreadable) || !strings.Contains(f.Err.Error(), w) || f.Data != nil):
			t.Errorf("%s: error %v, want %q", name, f.Err, w)
		}
	}
}

// TestConfigCacheDirs: flatnet.toml's default cni_cache_dirs are the
// directories this package documents.
func TestConfigCacheDirs(t *testing.T) {
	if got := config.DefaultCNICacheDirs(); !reflect.DeepEqual(got, []string{DefaultCacheDir, MultusCacheDir}) {
		t.Fatalf("config.DefaultCNICacheDirs() = %q", got)
	}
	if DefaultDataDir != config.DefaultStateRoot {
		t.Fatalf("host-local's default dataDir differs from state_root's default")
	}
}
