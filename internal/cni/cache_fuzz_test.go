package cni

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/config"
)

// cacheSeeds adds every golden cache entry to a fuzzer's corpus.
func cacheSeeds(f *testing.F, add func(data []byte)) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "cache", "*", "*", "results", "*"))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			add(data)
		}
	}
	add(cacheJSON("capnet", "c1", "eth0", netListJSON("capnet", `{"type": "macvlan", "capabilities": {"ipRanges": true}, "ipam": {"type": "host-local"}}`),
		`{"ipRanges": [[{"subnet": "10.30.0.0/24", "rangeStart": "10.30.0.100"}], [{"subnet": "fd00::/64"}]]}`))
	one := cacheJSON("one", "c2", "net1", `{"cniVersion": "0.3.1", "name": "one", "type": "macvlan", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`, "")
	add(one)
	// libcni's "result" is a map: any other JSON type there is refused,
	// and a result that is an object of the wrong shape is read as none.
	for _, result := range []string{`null`, `{}`, `5`, `[]`, `"x"`, `true`, `{"ips": "x"}`, `{"ips": [{"address": "10.0.0.5/24", "interface": 7}]}`} {
		var e map[string]json.RawMessage
		_ = json.Unmarshal(one, &e)
		e["result"] = json.RawMessage(result)
		data, _ := json.Marshal(e)
		add(data)
	}
}

// libcniName is the file name libcni gives data's entry, when data has
// the fields for one.
func libcniName(data []byte) string {
	var e struct {
		ContainerID string `json:"containerId"`
		IfName      string `json:"ifName"`
		NetworkName string `json:"networkName"`
	}
	_ = json.Unmarshal(data, &e)
	name := e.NetworkName + "-" + e.ContainerID + "-" + e.IfName
	if name == "--" || strings.ContainsAny(name, "/\x00") {
		return "x"
	}
	return name
}

// FuzzParseCache checks that ParseCache never panics on any content and
// keeps its promises: every error is one of the package's kinds and fits
// one line; an entry names a valid network; a macvlan network from the
// cache is the one Discover finds in a file holding the same
// configuration, and is as usable as any Discover returns.
func FuzzParseCache(f *testing.F) {
	cacheSeeds(f, func(data []byte) { f.Add(data, true) })
	f.Add([]byte(`{"cniVersion": "0.3.1", "ips": []}`), false)
	f.Fuzz(func(t *testing.T, data []byte, libcniNamed bool) {
		name := "x"
		if libcniNamed {
			name = libcniName(data)
		}
		path := filepath.Join("/var/lib/cni/results", name)
		e, err := ParseCache(CacheFile{Path: path, Data: data})
		// A memo changes nothing: the first read fills it, the second
		// takes from it, the third is another attachment's path.
		memo := newConfigMemo()
		for i, p := range []string{path, path, filepath.Join("/var/lib/cni/multus/results", name)} {
			m, merr := parseCache(CacheFile{Path: p, Data: data}, memo)
			want := e
			if p != path && want.Network != nil {
				n := *want.Network
				n.File = p
				want.Network = &n
			}
			want.Path = p
			if (merr == nil) != (err == nil) || err != nil && p == path && merr.Error() != err.Error() || err == nil && !reflect.DeepEqual(m, want) {
				t.Fatalf("with a memo (read %d, %s): %+v, %v; without: %+v, %v", i+1, p, m, merr, e, err)
			}
		}
		if err != nil {
			if sentinelName(err) == "none" {
				t.Fatalf("error of no kind: %v", err)
			}
			p := Problem{File: path, Err: err}
			if msg := p.Error(); strings.ContainsAny(msg, "\r\n") || msg == "" {
				t.Fatalf("problem %q is not one line", msg)
			}
			if Ignorable(err) != (errors.Is(err, ErrCacheIncomplete) || errors.Is(err, ErrCacheLegacy)) {
				t.Fatalf("Ignorable(%v) is wrong", err)
			}
			var ue *UnfollowableError
			if errors.As(err, &ue) && (e.Network != nil || ue.Network != e.NetworkName || ue.Attachment.Path != path) {
				t.Fatalf("unfollowable %+v with entry %+v", ue, e)
			}
			return
		}
		if !config.ValidNetworkName(e.NetworkName) || !config.ValidNetworkName(e.ContainerID) || !libcniIfName(e.IfName) {
			t.Fatalf("entry with invalid names: %+v", e)
		}
		if filepath.Base(path) != e.NetworkName+"-"+e.ContainerID+"-"+e.IfName {
			t.Fatalf("entry %+v in a file named %s", e, path)
		}
		if e.Network == nil {
			return
		}
		n := *e.Network
		if n.Name != e.NetworkName || n.File != path || !n.FromCache() {
			t.Fatalf("network %+v of entry %+v", n, e)
		}
		checkNetwork(t, n)

		// The same configuration in a file: the same network, unless
		// the runtime's capability arguments changed it.
		var env struct {
			Config         []byte          `json:"config"`
			CapabilityArgs json.RawMessage `json:"capabilityArgs"`
		}
		if json.Unmarshal(data, &env) != nil || len(env.CapabilityArgs) > 0 && string(env.CapabilityArgs) != "null" {
			return
		}
		fileName := "10-x.conf"
		var probe map[string]json.RawMessage
		if json.Unmarshal(env.Config, &probe) == nil && probe["plugins"] != nil {
			fileName = "10-x.conflist"
		}
		nets, problems := Discover([]File{{Name: fileName, Data: env.Config}})
		if len(nets) == 0 || len(problems) > 0 {
			t.Fatalf("Discover finds %v, %v in the cached configuration of %+v", nets, problems, n)
		}
		nets[0].File = n.File
		if !equalNetworks(nets[0], n) {
			t.Fatalf("from the cache %+v, from a file %+v", n, nets[0])
		}
	})
}

// equalNetworks compares networks field by field.
func equalNetworks(a, b Network) bool {
	if a.Name != b.Name || a.File != b.File || a.Master != b.Master || a.Mode != b.Mode || a.DataDir != b.DataDir || len(a.Ranges) != len(b.Ranges) {
		return false
	}
	for i := range a.Ranges {
		if a.Ranges[i] != b.Ranges[i] {
			return false
		}
	}
	return true
}

// checkNetwork fails t unless n is as usable as a network Discover returns.
func checkNetwork(t *testing.T, n Network) {
	t.Helper()
	if !config.ValidNetworkName(n.Name) {
		t.Fatalf("bad network name %q", n.Name)
	}
	if n.Master != "" && config.ValidIfName(n.Master) != nil {
		t.Fatalf("invalid master %q", n.Master)
	}
	if n.DataDir != "" && (!filepath.IsAbs(n.DataDir) || filepath.Clean(n.DataDir) != n.DataDir) {
		t.Fatalf("bad dataDir %q", n.DataDir)
	}
	if n.HostLocal() != (len(n.Ranges) > 0) || !n.HostLocal() && n.DataDir != "" {
		t.Fatalf("network %q of IPAM %q with ranges %v, dataDir %q", n.Name, n.IPAM, n.Ranges, n.DataDir)
	}
	for _, r := range n.Ranges {
		s := r.Subnet
		if !s.IsValid() || s.Masked() != s || s.Addr().Is4In6() {
			t.Fatalf("bad subnet in %v", r)
		}
		if !s.Contains(r.Start) || !s.Contains(r.End) || r.End.Less(r.Start) {
			t.Fatalf("range %v: start and end not ordered inside the subnet", r)
		}
		if r.Gateway.IsValid() && !s.Contains(r.Gateway) {
			t.Fatalf("range %v: gateway outside the subnet", r)
		}
		if !r.Contains(r.Start) || !r.Contains(r.End) {
			t.Fatalf("range %v does not contain its own ends", r)
		}
	}
}

// FuzzCacheAgainstLibcni compares ParseCache with libcni's own reader of
// the cache, GetCachedAttachments, on any content.
func FuzzCacheAgainstLibcni(f *testing.F) {
	cacheSeeds(f, func(data []byte) { f.Add(data) })
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstLibcni(t, libcniName(data), data)
	})
}

// FuzzConfListAgainstLibcni compares the network list parser with libcni's
// NetworkConfFromBytes.
func FuzzConfListAgainstLibcni(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*", "*", "*.conflist"))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"name": "n", "disableCheck": "true", "plugins": [{"type": "macvlan", "capabilities": {"ipRanges": true}, "dns": {"nameservers": ["1.1.1.1"]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		compareConfList(t, data)
	})
}

// TestCacheResultType: a "result" that libcni could not decode into its
// map is refused as malformed, saying where, and one that is an object of
// the wrong shape is an attachment with no address.
func TestCacheResultType(t *testing.T) {
	one := cacheJSON("one", "c2", "net1", `{"cniVersion": "0.3.1", "name": "one", "type": "macvlan", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`, "")
	for _, c := range []struct{ result, err string }{
		{`5`, "result: a JSON number where an object belongs"},
		{`["10.0.0.5/24"]`, "result: a JSON array where an object belongs"},
		{`null`, ""},
		{`{"ips": "10.0.0.5/24"}`, ""},
		{`{"ips": [{"address": "10.0.0.5/24"}]}`, ""},
	} {
		var e map[string]json.RawMessage
		if err := json.Unmarshal(one, &e); err != nil {
			t.Fatal(err)
		}
		e["result"] = json.RawMessage(c.result)
		data, _ := json.Marshal(e)
		got, err := ParseCache(CacheFile{Path: "/c/results/one-c2-net1", Data: data})
		switch {
		case c.err != "":
			if !errors.Is(err, ErrCacheMalformed) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("result %s: %v, want %v saying %q", c.result, err, ErrCacheMalformed, c.err)
			}
		case err != nil:
			t.Errorf("result %s: %v", c.result, err)
		case strings.Contains(c.result, "address") != (len(got.Addrs) == 1):
			t.Errorf("result %s: addresses %v", c.result, got.Addrs)
		}
	}
}
