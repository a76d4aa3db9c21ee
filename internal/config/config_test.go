package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	want := Config{
		CNIConfDir:     "/etc/cni/net.d",
		CNICacheDirs:   []string{"/var/lib/cni", "/var/lib/cni/multus"},
		Discover:       true,
		StateRoot:      "/var/lib/cni/networks",
		ResyncInterval: 5 * time.Minute,
		LogLevel:       slog.LevelInfo,
		OnStop:         "keep",
		LANGuard:       "auto",
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Default() = %+v, want %+v", got, want)
	}
}

// withDefaults returns Default() with Path set and f applied.
func withDefaults(path string, f func(*Config)) Config {
	c := Default()
	c.Path = path
	if f != nil {
		f(&c)
	}
	return c
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Config
	}{
		{
			name: "empty file",
			in:   "",
			want: withDefaults("flatnet.toml", nil),
		},
		{
			name: "comments only",
			in:   "# nothing here\n\n   # still nothing\n",
			want: withDefaults("flatnet.toml", nil),
		},
		{
			name: "product example",
			in: `cni_conf_dir    = "/etc/cni/net.d"        # networks are discovered here when no [[network]] is given
state_root      = "/var/lib/cni/networks" # host-local's default dataDir
resync_interval = "5m"                    # full reconcile as a safety net; events do the real work
log_level       = "info"                  # debug | info | warn | error
on_stop         = "keep"                  # keep | teardown: what stopping the service does to shims and routes

[[network]]                               # zero or more; with none, discovery decides
name      = "default"                     # the CNI network name
master    = "eno1"                        # default: the CNI config's master, else the default-route NIC
shim      = "eno1.host"                   # default: "<master>.host" when it fits IFNAMSIZ, else a short stable name
state_dir = "/var/lib/cni/networks/default" # default: the CNI config's dataDir/<name>, else <state_root>/<name>
ranges    = ["192.168.1.0/24"]            # only IPs inside are mirrored; default: host-local's ranges
`,
			want: withDefaults("flatnet.toml", func(c *Config) {
				c.Networks = []Network{{
					Name:     "default",
					Master:   "eno1",
					Shim:     "eno1.host",
					StateDir: "/var/lib/cni/networks/default",
					Ranges:   []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")},
					Line:     7,
				}}
			}),
		},
		{
			name: "every top-level key changed",
			in: `cni_conf_dir = "/run/cni/net.d/"
state_root = "/srv//cni"
resync_interval = "1m30s"
log_level = "DEBUG"
on_stop = "teardown"
lan_guard = "address"
`,
			want: withDefaults("flatnet.toml", func(c *Config) {
				c.CNIConfDir = "/run/cni/net.d"
				c.StateRoot = "/srv/cni"
				c.ResyncInterval = 90 * time.Second
				c.LogLevel = slog.LevelDebug
				c.OnStop = "teardown"
				c.LANGuard = "address"
			}),
		},
		{
			name: "log levels warn and error, shortest resync",
			in:   "log_level = \"warn\"\nresync_interval = \"1s\"\n",
			want: withDefaults("flatnet.toml", func(c *Config) {
				c.LogLevel = slog.LevelWarn
				c.ResyncInterval = time.Second
			}),
		},
		{
			name: "log level error",
			in:   "log_level = 'error'\n",
			want: withDefaults("flatnet.toml", func(c *Config) { c.LogLevel = slog.LevelError }),
		},
		{
			name: "two networks, dual stack, only names required",
			in: `
[[network]]
name = "lan"
ranges = [
  "192.168.1.0/24",
  "fd00:1::/64", # v6 too
]

[[network]]
name = "lab.v2"
`,
			want: withDefaults("flatnet.toml", func(c *Config) {
				c.Networks = []Network{
					{Name: "lan", Line: 2, Ranges: []netip.Prefix{
						netip.MustParsePrefix("192.168.1.0/24"),
						netip.MustParsePrefix("fd00:1::/64"),
					}},
					{Name: "lab.v2", Line: 9},
				}
			}),
		},
		{
			name: "inline array of tables",
			in:   "\nnetwork = [{name = \"a\", master = \"eth0\"}, {name = \"b\"}]\n",
			want: withDefaults("flatnet.toml", func(c *Config) {
				c.Networks = []Network{{Name: "a", Master: "eth0", Line: 2}, {Name: "b", Line: 2}}
			}),
		},
		{
			name: "empty network list",
			in:   "network = []\n",
			want: withDefaults("flatnet.toml", func(c *Config) { c.Networks = []Network{} }),
		},
		{
			name: "same shim on the same master twice is fine",
			in:   "[[network]]\nname='a'\nmaster='eth0'\nshim='s'\n[[network]]\nname='b'\nmaster='eth0'\nshim='s'\n",
			want: withDefaults("flatnet.toml", func(c *Config) {
				c.Networks = []Network{
					{Name: "a", Master: "eth0", Shim: "s", Line: 1},
					{Name: "b", Master: "eth0", Shim: "s", Line: 5},
				}
			}),
		},
		{
			name: "host routes as ranges",
			in:   "[[network]]\nname='a'\nranges=['192.168.1.7/32', '2001:db8::7/128']\n",
			want: withDefaults("flatnet.toml", func(c *Config) {
				c.Networks = []Network{{Name: "a", Line: 1, Ranges: []netip.Prefix{
					netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("2001:db8::7/128"),
				}}}
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in), "flatnet.toml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // every message, in order
	}{
		{
			name: "toml syntax",
			in:   "log_level = \"info\"\non_stop = = \"keep\"\n",
			want: []string{`flatnet.toml:2: expected value but found '=' instead`},
		},
		{
			name: "syntax error at the very end",
			in:   "a = 1\n\"\\",
			want: []string{`flatnet.toml:2: invalid escape in string '\\x00'`},
		},
		{
			name: "duplicate key is a syntax error",
			in:   "log_level = \"info\"\nlog_level = \"debug\"\n",
			want: []string{`flatnet.toml:2: Key 'log_level' has already been defined.`},
		},
		{
			name: "bad duration",
			in:   "\n\nresync_interval = \"5 minutes\"\n",
			want: []string{`flatnet.toml:3: resync_interval: "5 minutes" is not a duration (e.g. "5m", "30s")`},
		},
		{
			name: "duration too short",
			in:   "resync_interval = \"500ms\"\n",
			want: []string{`flatnet.toml:1: resync_interval: "500ms" is too short; the minimum is 1s`},
		},
		{
			name: "negative duration",
			in:   "resync_interval = \"-5m\"\n",
			want: []string{`flatnet.toml:1: resync_interval: "-5m" is too short; the minimum is 1s`},
		},
		{
			name: "duration as integer",
			in:   "resync_interval = 300\n",
			want: []string{`flatnet.toml:1: resync_interval: must be a string, not an integer`},
		},
		{
			name: "bad log level",
			in:   "log_level = \"verbose\"\n",
			want: []string{`flatnet.toml:1: log_level: "verbose" is not one of debug, info, warn, error`},
		},
		{
			name: "bad on_stop",
			in:   "on_stop = \"remove\"\n",
			want: []string{`flatnet.toml:1: on_stop: "remove" is not one of keep, teardown`},
		},
		{
			name: "bad lan_guard",
			in:   "lan_guard = \"nft\"\n",
			want: []string{`flatnet.toml:1: lan_guard: "nft" is not one of auto, shim, filter, address, off`},
		},
		{
			name: "on_stop is case sensitive",
			in:   "on_stop = \"Keep\"\n",
			want: []string{`flatnet.toml:1: on_stop: "Keep" is not one of keep, teardown`},
		},
		{
			name: "relative dirs",
			in:   "cni_conf_dir = \"etc/cni\"\nstate_root = \"\"\n",
			want: []string{
				`flatnet.toml:1: cni_conf_dir: "etc/cni" is not an absolute path`,
				`flatnet.toml:2: state_root: "" is not an absolute path`,
			},
		},
		{
			name: "dir of wrong type",
			in:   "state_root = true\ncni_conf_dir = [\"/a\"]\n",
			want: []string{
				`flatnet.toml:1: state_root: must be a string, not a boolean`,
				`flatnet.toml:2: cni_conf_dir: must be a string, not an array`,
			},
		},
		{
			name: "unknown top-level key with suggestion",
			in:   "log_levle = \"info\"\n",
			want: []string{`flatnet.toml:1: unknown key "log_levle" at top level; did you mean "log_level"?`},
		},
		{
			name: "unknown top-level key without suggestion",
			in:   "\n# c\ncolour = \"blue\"\n",
			want: []string{`flatnet.toml:3: unknown key "colour" at top level`},
		},
		{
			name: "unknown table",
			in:   "log_level = \"info\"\n\n[daemon]\nx = 1\n",
			want: []string{`flatnet.toml:3: unknown key "daemon" at top level`},
		},
		{
			name: "unknown key in network",
			in: `[[network]]
name = "a"

[[network]]
name = "b"
master = "eno1"

# typo below
mastr = "eno2"
`,
			want: []string{`flatnet.toml:9: unknown key "mastr" in [[network]]; did you mean "master"?`},
		},
		{
			name: "unknown sub-table in network",
			in:   "[[network]]\nname = \"a\"\n[network.extra]\nx = 1\n",
			want: []string{`flatnet.toml:3: unknown key "extra" in [[network]]`},
		},
		{
			name: "network as a table",
			in:   "[network]\nname = \"a\"\n",
			want: []string{`flatnet.toml:1: network: must be a list of tables ([[network]]), not a table`},
		},
		{
			name: "network as a string",
			in:   "network = \"default\"\n",
			want: []string{`flatnet.toml:1: network: must be a list of tables ([[network]]), not a string`},
		},
		{
			name: "network as an array of strings",
			in:   "network = [\"default\"]\n",
			want: []string{`flatnet.toml:1: network: must be a list of tables ([[network]]); found an array holding a string`},
		},
		{
			name: "missing name",
			in:   "[[network]]\nmaster = \"eno1\"\n",
			want: []string{`flatnet.toml:1: network[1].name: missing; set it to the CNI network name`},
		},
		{
			name: "empty name",
			in:   "[[network]]\nname = \"\"\n",
			want: []string{`flatnet.toml:2: network[1].name: empty; set it to the CNI network name`},
		},
		{
			name: "name not a CNI name",
			in:   "[[network]]\nname = \"../etc\"\n",
			want: []string{`flatnet.toml:2: network[1].name: "../etc" is not a valid CNI network name (a letter or digit, then letters, digits, '_', '.', '-')`},
		},
		{
			name: "name of wrong type",
			in:   "[[network]]\nname = 7\n",
			want: []string{`flatnet.toml:2: network[1].name: must be a string, not an integer`},
		},
		{
			name: "duplicate name",
			in:   "[[network]]\nname = \"a\"\n[[network]]\nname = \"b\"\n[[network]]\nname = \"a\"\n",
			want: []string{`flatnet.toml:6: network[3].name: "a" is already used by network[1]; names must be unique`},
		},
		{
			name: "shim equals master",
			in: `[[network]]
name = "a"

[[network]]
name = "default"
master = "eno1"
shim = "eno1"
`,
			want: []string{`flatnet.toml:7: network[2].shim: "eno1" is the master's own name; pick another`},
		},
		{
			name: "shim too long",
			in:   "[[network]]\nname = \"a\"\nshim = \"enp0s31f6.flatnet\"\n",
			want: []string{`flatnet.toml:3: network[1].shim: "enp0s31f6.flatnet" is 17 bytes; a Linux interface name has at most 15`},
		},
		{
			name: "bad master",
			in:   "[[network]]\nname = \"a\"\nmaster = \"eth 0\"\n",
			want: []string{`flatnet.toml:3: network[1].master: "eth 0" contains ' '; a Linux interface name is printable ASCII without spaces`},
		},
		{
			name: "same shim on two masters",
			in:   "[[network]]\nname='a'\nmaster='eth0'\nshim='s'\n[[network]]\nname='b'\nmaster='eth1'\nshim='s'\n",
			want: []string{`flatnet.toml:8: network[2].shim: "s" is already the shim of network[1] on master "eth0"; one shim serves one master`},
		},
		{
			name: "relative state_dir",
			in:   "[[network]]\nname = \"a\"\nstate_dir = \"cni/a\"\n",
			want: []string{`flatnet.toml:3: network[1].state_dir: "cni/a" is not an absolute path`},
		},
		{
			name: "bad ranges",
			in: `[[network]]
name = "a"
ranges = ["192.168.1.0/33", "192.168.1.2/24", "10.0.0.1", 5, "::ffff:10.0.0.0/104", "fd00::1/64"]
`,
			want: []string{
				`flatnet.toml:3: network[1].ranges[1]: "192.168.1.0/33" is not a CIDR (e.g. "192.168.1.0/24", "fd00::/64")`,
				`flatnet.toml:3: network[1].ranges[2]: "192.168.1.2/24" has host bits set; write "192.168.1.0/24", or "192.168.1.2/32" for that one address`,
				`flatnet.toml:3: network[1].ranges[3]: "10.0.0.1" is not a CIDR (e.g. "192.168.1.0/24", "fd00::/64")`,
				`flatnet.toml:3: network[1].ranges[4]: must be a string like "192.168.1.0/24", not an integer`,
				`flatnet.toml:3: network[1].ranges[5]: "::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 prefix; write IPv4 as "a.b.c.d/n"`,
				`flatnet.toml:3: network[1].ranges[6]: "fd00::1/64" has host bits set; write "fd00::/64", or "fd00::1/128" for that one address`,
			},
		},
		{
			name: "ranges not a list",
			in:   "[[network]]\nname = \"a\"\nranges = \"192.168.1.0/24\"\n",
			want: []string{`flatnet.toml:3: network[1].ranges: must be a list of CIDRs (e.g. ["192.168.1.0/24"]), not a string`},
		},
		{
			name: "ranges empty",
			in:   "[[network]]\nname = \"a\"\nranges = []\n",
			want: []string{`flatnet.toml:3: network[1].ranges: empty; leave the key out to use host-local's ranges`},
		},
		{
			name: "everything at once, in file order",
			in: `resync_interval = "5 minutes"
log_level = "loud"
bogus = 1

[[network]]
name = "default"
master = "eno1"
shim = "eno1"
ranges = ["300.0.0.0/8"]

[[network]]
mastr = "eno1"
`,
			want: []string{
				`flatnet.toml:1: resync_interval: "5 minutes" is not a duration (e.g. "5m", "30s")`,
				`flatnet.toml:2: log_level: "loud" is not one of debug, info, warn, error`,
				`flatnet.toml:3: unknown key "bogus" at top level`,
				`flatnet.toml:8: network[1].shim: "eno1" is the master's own name; pick another`,
				`flatnet.toml:9: network[1].ranges[1]: "300.0.0.0/8" is not a CIDR (e.g. "192.168.1.0/24", "fd00::/64")`,
				`flatnet.toml:11: network[2].name: missing; set it to the CNI network name`,
				`flatnet.toml:12: unknown key "mastr" in [[network]]; did you mean "master"?`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in), "flatnet.toml")
			if err == nil {
				t.Fatalf("Parse succeeded with %+v; want errors", got)
			}
			if !reflect.DeepEqual(got, Config{}) {
				t.Errorf("Parse returned %+v with an error; want the zero Config", got)
			}
			msgs := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(msgs, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", msgs, tt.want)
			}
			// Each message is its own *Error.
			var e *Error
			if !errors.As(err, &e) || e.File != "flatnet.toml" {
				t.Errorf("errors.As(*Error) failed or wrong file: %#v", e)
			}
		})
	}
}

func TestParseErrorFields(t *testing.T) {
	_, err := Parse([]byte("[[network]]\nname = \"a\"\nmaster = \"x\"\nshim = \"x\"\n"), "/etc/flatnet/flatnet.toml")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %v", err)
	}
	want := Error{File: "/etc/flatnet/flatnet.toml", Line: 4, Key: "network[1].shim", Msg: `"x" is the master's own name; pick another`}
	if *e != want {
		t.Fatalf("got %+v, want %+v", *e, want)
	}
	if got := (&Error{File: "f.toml", Msg: "m"}).Error(); got != "f.toml: m" {
		t.Fatalf("no line, no key: %q", got)
	}
	if got := (&Error{File: "f.toml", Key: "k", Msg: "m"}).Error(); got != "f.toml: k: m" {
		t.Fatalf("no line: %q", got)
	}
}

func TestParsePath(t *testing.T) {
	c, err := Parse(nil, "/etc/flatnet/flatnet.toml")
	if err != nil || c.Path != "/etc/flatnet/flatnet.toml" {
		t.Fatalf("Parse(nil) = %+v, %v", c, err)
	}
	_, err = Parse([]byte("x = 1"), "")
	if err == nil || !strings.HasPrefix(err.Error(), "flatnet.toml:1: ") {
		t.Fatalf("empty filename: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.toml")

	c, err := Load(missing, false)
	if err != nil || !reflect.DeepEqual(c, Default()) {
		t.Fatalf("Load(missing, false) = %+v, %v; want Default()", c, err)
	}
	if _, err := Load(missing, true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing, true) = %v; want fs.ErrNotExist", err)
	}

	good := filepath.Join(dir, "flatnet.toml")
	if err := os.WriteFile(good, []byte("on_stop = \"teardown\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = Load(good, true)
	if err != nil || c.OnStop != "teardown" || c.Path != good {
		t.Fatalf("Load(good) = %+v, %v", c, err)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("on_stop = \"never\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, false); err == nil || !strings.HasPrefix(err.Error(), bad+":1: on_stop: ") {
		t.Fatalf("Load(bad) = %v", err)
	}

	huge := filepath.Join(dir, "huge.toml")
	if err := os.WriteFile(huge, []byte(strings.Repeat("#\n", MaxFileSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(huge, false); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load(huge) = %v", err)
	}

	if _, err := Load(dir, false); err == nil {
		t.Fatalf("Load(directory) succeeded")
	}
}

func TestLoadExample(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "flatnet.toml"), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Networks) != 2 || c.Networks[0].Name != "default" || c.Networks[1].Shim != "" {
		t.Fatalf("unexpected %+v", c)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"master", "master", 0},
		{"mastr", "master", 1},
		{"shmi", "shim", 2},
		{"", "abc", 3},
		{strings.Repeat("a", 65), "a", 66},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	if got := closest("STATE_DIR", networkKeys); got != "state_dir" {
		t.Errorf("closest ignores case: got %q", got)
	}
	if got := closest("xyz", networkKeys); got != "" {
		t.Errorf("closest(xyz) = %q", got)
	}
}
