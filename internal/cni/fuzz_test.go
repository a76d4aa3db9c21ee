package cni

import (
	"cmp"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/config"
)

// FuzzDiscover checks that Discover never panics on any two files and that
// what it returns keeps its promises: every range is usable (Start <= End,
// both inside a masked Subnet of one family), names are unique and valid,
// and every problem names one of the files.
func FuzzDiscover(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "discover", "*", "*"))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data, []byte(`{"name": "x", "type": "macvlan", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}`))
		}
	}
	f.Add(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "192.168.1.5/24", "gateway": "192.168.1.1"}], [{"subnet": "fd00::/120", "rangeEnd": "fd00::ff"}]]}`)), []byte(`{`))
	f.Add(conflist(macvlan(`{"type": "host-local", "subnet": "10.0.0.255/24"}`)), conflist(macvlan(`{"type": "host-local", "subnet": "::ffff:10.0.0.0/120"}`)))
	f.Add(conflist(macvlan(`{"type": "host-local", "ranges": [[{"subnet": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/64"}]]}`)), []byte(`{"type": "macvlan"}`))

	f.Fuzz(func(t *testing.T, a, b []byte) {
		files := []File{{Name: "10-a.conflist", Data: a}, {Name: "20-b.conf", Data: b}, {Name: "30-c.json", Data: a}}
		nets, problems := Discover(files)
		names := map[string]bool{}
		for _, n := range nets {
			if names[n.Name] || !config.ValidNetworkName(n.Name) {
				t.Fatalf("bad or duplicate network name %q", n.Name)
			}
			names[n.Name] = true
			if n.File != "10-a.conflist" && n.File != "20-b.conf" && n.File != "30-c.json" {
				t.Fatalf("network from file %q", n.File)
			}
			checkNetwork(t, n)
			base := cmp.Or(n.DataDir, "/var/lib/cni/networks")
			if dir := filepath.Join(base, n.Name); filepath.Dir(dir) != base || filepath.Base(dir) != n.Name {
				t.Fatalf("state dir %q is not <dataDir>/<name>", dir)
			}
		}
		for _, p := range problems {
			if p.Err == nil || p.Error() == "" {
				t.Fatalf("empty problem %#v", p)
			}
			if strings.ContainsAny(p.Error(), "\r\n") {
				t.Fatalf("problem %q spans lines", p.Error())
			}
			if p.File != "10-a.conflist" && p.File != "20-b.conf" && p.File != "30-c.json" {
				t.Fatalf("problem for file %q", p.File)
			}
		}
		// Every file yields networks or a problem or neither, never both.
		for _, f := range files {
			hasNet, hasProblem := false, false
			for _, n := range nets {
				hasNet = hasNet || n.File == f.Name
			}
			for _, p := range problems {
				hasProblem = hasProblem || p.File == f.Name && !strings.Contains(p.Err.Error(), "already defined")
			}
			if hasNet && hasProblem {
				t.Fatalf("%s gave both networks and a problem", f.Name)
			}
		}
	})
}
