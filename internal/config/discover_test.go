package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDiscovery(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		dirs     []string
		discover bool
	}{
		{"defaults", "", []string{"/var/lib/cni", "/var/lib/cni/multus"}, true},
		{"one dir, cleaned", `cni_cache_dirs = ["/run/cni//cache/"]`, []string{"/run/cni/cache"}, true},
		{"none", "cni_cache_dirs = []", []string{}, true},
		{"multiline list", "cni_cache_dirs = [\n  \"/var/lib/cni\",  # libcni\n  \"/srv/multus\",\n]\n", []string{"/var/lib/cni", "/srv/multus"}, true},
		{"discovery off", "discover = false", []string{"/var/lib/cni", "/var/lib/cni/multus"}, false},
		{"discovery on", "discover = true\ncni_cache_dirs = ['/a']", []string{"/a"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in), "f.toml")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.CNICacheDirs, tt.dirs) || c.Discover != tt.discover {
				t.Fatalf("cni_cache_dirs %q discover %v; want %q %v", c.CNICacheDirs, c.Discover, tt.dirs, tt.discover)
			}
		})
	}
}

func TestParseDiscoveryErrors(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`cni_cache_dirs = "/var/lib/cni"`, []string{`f.toml:1: cni_cache_dirs: must be a list of absolute paths (e.g. ["/var/lib/cni"]), not a string`}},
		{"\ncni_cache_dirs = [\"/a\", \"b\", 3, \"/a/\"]", []string{
			`f.toml:2: cni_cache_dirs[2]: "b" is not an absolute path`,
			`f.toml:2: cni_cache_dirs[3]: must be a string like "/var/lib/cni", not an integer`,
			`f.toml:2: cni_cache_dirs[4]: "/a" is already cni_cache_dirs[1]`,
		}},
		{`discover = "no"`, []string{`f.toml:1: discover: must be true or false, not a string`}},
		{"log_level = 'info'\ndiscovery = false", []string{`f.toml:2: unknown key "discovery" at top level; did you mean "discover"?`}},
		{"cni_cache_dir = ['/a']", []string{`f.toml:1: unknown key "cni_cache_dir" at top level; did you mean "cni_cache_dirs"?`}},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in), "f.toml")
		var got []string
		if err != nil {
			for _, e := range flatten(err) {
				got = append(got, e.Error())
			}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// TestDefaultCacheDirsFresh: a caller changing its Config's list changes no
// other Config's.
func TestDefaultCacheDirsFresh(t *testing.T) {
	a, b := Default(), Default()
	a.CNICacheDirs[0] = "/changed"
	if b.CNICacheDirs[0] != DefaultCNICacheDir || strings.HasPrefix(DefaultCNICacheDirs()[0], "/changed") {
		t.Fatalf("the default cache dirs are shared")
	}
}

// TestShippedDefaults: the values etc/flatnet/flatnet.toml shows in its
// comments, uncommented, are the defaults.
func TestShippedDefaults(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "etc", "flatnet", "flatnet.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc strings.Builder
	keys := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "#[[") {
			break // the example tables
		}
		if k, _, ok := strings.Cut(strings.TrimPrefix(line, "#"), " = "); ok && strings.HasPrefix(line, "#") && !strings.Contains(k, " ") {
			doc.WriteString(line[1:] + "\n")
			keys++
		}
	}
	c, err := Parse([]byte(doc.String()), "flatnet.toml")
	if err != nil {
		t.Fatalf("%v\n%s", err, doc.String())
	}
	want := Default()
	want.Path = "flatnet.toml"
	if !reflect.DeepEqual(c, want) || keys != len(topKeys)-1 {
		t.Fatalf("%d keys shown:\n%s\nparse to %+v\nwant %+v", keys, doc.String(), c, want)
	}
}
