package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error it returns is a
// located *Error, and that an accepted Config keeps the promises its type
// documents.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"resync_interval = \"30s\"\n[[network]]\nname = \"default\"\nmaster = \"eno1\"\nshim = \"eno1.host\"\nranges = [\"192.168.1.0/24\", \"fd00::/64\"]\n",
		"[[network]]\nmastr = 1\n[[network]]\nname = \"\"\n",
		"network = [{name = \"a\"}, {name = \"a\"}]\n",
		"a = \"\"\"\n[[network]]\n\"\"\"\n",
		"log_level = 'DEBUG'\non_stop = 'teardown'\nstate_root = '/x/../y'\n",
		"discover = false\ncni_cache_dirs = ['/var/lib/cni', \"/var/lib/cni/multus/\", 'x', 1]\n",
	}
	if data, err := os.ReadFile(filepath.Join("testdata", "flatnet.toml")); err == nil {
		seeds = append(seeds, string(data))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		scanKeyLines(string(data)) // also on text the TOML parser refuses
		c, err := Parse(data, "f.toml")
		if err != nil {
			for _, e := range flatten(err) {
				var ce *Error
				if !errors.As(e, &ce) || ce.File != "f.toml" || ce.Msg == "" {
					t.Fatalf("error %q is not a located *Error", e)
				}
				if !strings.HasPrefix(e.Error(), "f.toml") {
					t.Fatalf("error %q does not name the file", e)
				}
				if strings.ContainsAny(e.Error(), "\r\n") {
					t.Fatalf("error %q spans lines", e)
				}
				if ce.Line <= 0 {
					t.Fatalf("error %q has no line", e)
				}
			}
			return
		}
		if c.Path != "f.toml" {
			t.Fatalf("Path = %q", c.Path)
		}
		if c.ResyncInterval < MinResyncInterval {
			t.Fatalf("ResyncInterval = %v", c.ResyncInterval)
		}
		if c.OnStop != OnStopKeep && c.OnStop != OnStopTeardown {
			t.Fatalf("OnStop = %q", c.OnStop)
		}
		if !filepath.IsAbs(c.CNIConfDir) || !filepath.IsAbs(c.StateRoot) {
			t.Fatalf("relative dirs in %+v", c)
		}
		if c.CNICacheDirs == nil {
			t.Fatalf("CNICacheDirs is nil")
		}
		dirs := map[string]bool{}
		for _, d := range c.CNICacheDirs {
			if !filepath.IsAbs(d) || filepath.Clean(d) != d || dirs[d] {
				t.Fatalf("bad or repeated cache dir %q in %q", d, c.CNICacheDirs)
			}
			dirs[d] = true
		}
		names := map[string]bool{}
		for _, n := range c.Networks {
			if n.Name == "" || names[n.Name] || strings.ContainsAny(n.Name, "/ ") {
				t.Fatalf("bad or duplicate name %q", n.Name)
			}
			names[n.Name] = true
			if n.Master != "" && ValidIfName(n.Master) != nil || n.Shim != "" && ValidIfName(n.Shim) != nil {
				t.Fatalf("invalid ifname in %+v", n)
			}
			if n.Shim != "" && n.Shim == n.Master {
				t.Fatalf("shim == master in %+v", n)
			}
			if n.StateDir != "" && !filepath.IsAbs(n.StateDir) {
				t.Fatalf("relative state_dir in %+v", n)
			}
			if n.Ranges != nil && len(n.Ranges) == 0 {
				t.Fatalf("empty, non-nil ranges in %+v", n)
			}
			for _, p := range n.Ranges {
				if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() {
					t.Fatalf("bad range %v in %+v", p, n)
				}
			}
		}
	})
}

// flatten undoes errors.Join.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
