// Package config reads flatnet.toml: the daemon's settings and the optional
// [[network]] tables that override what CNI discovery finds.
//
// Parse is pure: it takes the file's bytes and returns either a Config with
// every default filled in or every problem in the file at once, each naming
// the file, the line and the key, so an operator fixes the whole file in one
// go. Load is the thin adapter that reads the file.
//
// Choices worth knowing:
//
//   - Every key is optional, unknown keys anywhere are errors (with a
//     suggestion when a known key is close), and so are values of the wrong
//     TOML type.
//   - cni_conf_dir, state_root, state_dir and every entry of cni_cache_dirs
//     must be absolute; they are returned cleaned (filepath.Clean).
//   - cni_cache_dirs = [] means no cache directory; an entry listed twice is
//     an error.
//   - log_level is matched without regard to case.
//   - A network's name must be a valid CNI network name (a letter or digit,
//     then letters, digits, '_', '.', '-'), since it also names a directory.
//   - ranges entries must be CIDRs whose host bits are zero: "192.168.1.2/24"
//     is refused, not silently read as "192.168.1.0/24", because a range that
//     limits which addresses get routed should mean exactly what it says.
//     IPv4 is written dotted ("::ffff:a.b.c.d/n" is refused). An empty list is
//     refused too; leave the key out to use host-local's ranges.
//   - Network numbers in messages count from 1, as an operator reads the
//     file: network[1] is the first [[network]] table.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/flatnet/flatnet/internal/text"
)

// DefaultPath is where flatnet looks for its configuration file.
const DefaultPath = "/etc/flatnet/flatnet.toml"

// Defaults of the top-level keys.
const (
	DefaultCNIConfDir     = "/etc/cni/net.d"        // cni_conf_dir
	DefaultStateRoot      = "/var/lib/cni/networks" // state_root: host-local's default dataDir
	DefaultResyncInterval = 5 * time.Minute         // resync_interval
)

// The default cni_cache_dirs: libcni's cache directory (libcni.CacheDir,
// used by containerd, CRI-O, podman and cnitool) and Multus's default
// cniDir, where Multus caches its delegates.
const (
	DefaultCNICacheDir = "/var/lib/cni"
	MultusCNICacheDir  = "/var/lib/cni/multus"
)

// DefaultCNICacheDirs returns a new slice of the default cni_cache_dirs.
func DefaultCNICacheDirs() []string { return []string{DefaultCNICacheDir, MultusCNICacheDir} }

// MinResyncInterval is the shortest resync_interval accepted.
const MinResyncInterval = time.Second

// The values of on_stop.
const (
	OnStopKeep     = "keep"     // leave shims and routes in place (the default)
	OnStopTeardown = "teardown" // remove flatnet's routes and the shims it created
)

// LANGuards are the values of lan_guard: how the shims are kept from
// costing the LAN (see reconcile.Guard). "auto", the default, is the shim
// guard where the kernel has it, else the egress filter, else the shim's
// own address.
var LANGuards = []string{"auto", "shim", "filter", "address", "off"}

// MaxFileSize is the largest configuration file Load reads.
const MaxFileSize = 1 << 20

// Config is flatnet.toml after defaults and validation.
type Config struct {
	Path           string        // file it came from ("" when built-in defaults)
	Digest         string        // SHA-256 of the file's bytes, hex ("" when built-in defaults)
	CNIConfDir     string        // cni_conf_dir, default "/etc/cni/net.d"
	CNICacheDirs   []string      // cni_cache_dirs, default DefaultCNICacheDirs(); empty: none
	Discover       bool          // discover, default true; false: mirror only the [[network]] tables
	StateRoot      string        // state_root, default "/var/lib/cni/networks"
	ResyncInterval time.Duration // resync_interval, default 5m; at least 1s
	LogLevel       slog.Level    // log_level: debug|info|warn|error, default info
	OnStop         string        // on_stop: "keep" (default) | "teardown"
	LANGuard       string        // lan_guard: one of LANGuards, default "auto"
	Networks       []Network     // [[network]], zero or more
}

// Network is one [[network]] table. Empty fields were not set; the daemon
// fills them from CNI discovery.
type Network struct {
	Name     string         // the CNI network name; required, unique
	Master   string         // a valid interface name, or "" for the CNI config's
	Shim     string         // a valid interface name other than Master, or ""
	StateDir string         // absolute and cleaned, or ""
	Ranges   []netip.Prefix // masked prefixes; nil when not set
	Line     int            // line of its [[network]] header, for messages (0 if unknown)
}

// Default returns the configuration used when there is no file.
func Default() Config {
	return Config{
		CNIConfDir:     DefaultCNIConfDir,
		CNICacheDirs:   DefaultCNICacheDirs(),
		Discover:       true,
		StateRoot:      DefaultStateRoot,
		ResyncInterval: DefaultResyncInterval,
		LogLevel:       slog.LevelInfo,
		OnStop:         OnStopKeep,
		LANGuard:       "auto",
	}
}

// Error is one problem in a configuration file. Parse returns all of them
// joined with errors.Join.
type Error struct {
	File string // as given to Parse
	Line int    // 1-based; 0 when not known
	Key  string // "resync_interval", "network[2].shim"; "" for messages about the file
	Msg  string
}

// Error formats e as "file:line: key: msg".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and parses the file at path. When the file does not exist and
// mustExist is false it returns Default(), whose Path is "".
func Load(path string, mustExist bool) (Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !mustExist {
		return Default(), nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	if len(data) > MaxFileSize {
		return Config{}, fmt.Errorf("reading config: %s is larger than %d bytes", path, MaxFileSize)
	}
	c, err := Parse(data, path)
	if err == nil {
		c.Digest = Digest(data)
	}
	return c, err
}

// Digest is what identifies a configuration file's content: the daemon
// records the one it runs with, so flatnet check can tell a file changed
// since (and not yet reloaded) from the one in use.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Parse reads a flatnet.toml document; filename is used in messages and
// becomes Config.Path. On error the Config is the zero value and the error
// joins one *Error per problem, in the order of the file's lines.
func Parse(data []byte, filename string) (Config, error) {
	p := parser{file: filename}
	if p.file == "" {
		p.file = "flatnet.toml"
	}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, &Error{File: p.file, Line: parseErrorLine(pe, data), Msg: text.Printable(pe.Message)}
		}
		return Config{}, &Error{File: p.file, Msg: text.Printable(err.Error())}
	}
	p.lines = scanKeyLines(string(data))
	c := p.config(doc)
	if len(p.errs) > 0 {
		// In the order of the file; the rare message without a line goes last.
		order := func(e *Error) int {
			if e.Line == 0 {
				return int(^uint(0) >> 1)
			}
			return e.Line
		}
		sort.SliceStable(p.errs, func(i, j int) bool { return order(p.errs[i]) < order(p.errs[j]) })
		errs := make([]error, len(p.errs))
		for i, e := range p.errs {
			errs[i] = e
		}
		return Config{}, errors.Join(errs...)
	}
	c.Path = filename
	return c, nil
}

// parseErrorLine is the line of a TOML syntax error. The parser's line lags
// by one for some errors at the end of the input (even reporting line 0), so
// the line the error's byte offset is on wins when it is later.
func parseErrorLine(pe toml.ParseError, data []byte) int {
	start := min(max(pe.Position.Start, 0), len(data))
	return max(pe.Position.Line, 1+bytes.Count(data[:start], []byte("\n")))
}

// Keys each table accepts, in the order messages list them.
var (
	topKeys     = []string{"cni_conf_dir", "cni_cache_dirs", "discover", "state_root", "resync_interval", "log_level", "on_stop", "lan_guard", "network"}
	networkKeys = []string{"name", "master", "shim", "state_dir", "ranges"}
)

// cniName is what libcni accepts as a network name (utils.ValidateNetworkName).
var cniName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// ValidNetworkName reports whether libcni accepts name as a network name
// (utils.ValidateNetworkName): a letter or digit, then letters, digits,
// '_', '.', '-'. It also names a directory, so nothing else is safe.
func ValidNetworkName(name string) bool { return cniName.MatchString(name) }

// parser collects the errors of one document.
type parser struct {
	file  string
	lines *keyLines
	errs  []*Error
}

// errorf records a problem with key, located at line.
func (p *parser) errorf(line int, key, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// config checks the top-level table.
func (p *parser) config(doc map[string]any) Config {
	c := Default()
	for _, k := range sortedKeys(doc) {
		v := doc[k]
		line := p.lines.line(-1, k)
		switch k {
		case "cni_conf_dir":
			c.CNIConfDir = p.absPath(line, k, v)
		case "cni_cache_dirs":
			if dirs, ok := p.absPaths(line, k, v); ok {
				c.CNICacheDirs = dirs
			}
		case "discover":
			if b, ok := v.(bool); ok {
				c.Discover = b
			} else {
				p.errorf(line, k, "must be true or false, not %s", tomlType(v))
			}
		case "state_root":
			c.StateRoot = p.absPath(line, k, v)
		case "resync_interval":
			s, ok := p.str(line, k, v)
			if !ok {
				break
			}
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				p.errorf(line, k, "%q is not a duration (e.g. \"5m\", \"30s\")", s)
			case d < MinResyncInterval:
				p.errorf(line, k, "%q is too short; the minimum is %s", s, MinResyncInterval)
			default:
				c.ResyncInterval = d
			}
		case "log_level":
			s, ok := p.str(line, k, v)
			if !ok {
				break
			}
			switch strings.ToLower(s) {
			case "debug":
				c.LogLevel = slog.LevelDebug
			case "info":
				c.LogLevel = slog.LevelInfo
			case "warn":
				c.LogLevel = slog.LevelWarn
			case "error":
				c.LogLevel = slog.LevelError
			default:
				p.errorf(line, k, "%q is not one of debug, info, warn, error", s)
			}
		case "on_stop":
			s, ok := p.str(line, k, v)
			if !ok {
				break
			}
			if s != OnStopKeep && s != OnStopTeardown {
				p.errorf(line, k, "%q is not one of keep, teardown", s)
				break
			}
			c.OnStop = s
		case "lan_guard":
			s, ok := p.str(line, k, v)
			if !ok {
				break
			}
			if !slices.Contains(LANGuards, s) {
				p.errorf(line, k, "%q is not one of %s", s, strings.Join(LANGuards, ", "))
				break
			}
			c.LANGuard = s
		case "network":
			c.Networks = p.networks(line, v)
		default:
			p.unknown(line, k, topKeys, "at top level")
		}
	}
	return c
}

// networks checks the [[network]] tables.
func (p *parser) networks(line int, v any) []Network {
	var tables []map[string]any
	switch v := v.(type) {
	case []map[string]any:
		tables = v
	case []any: // network = [{...}, {...}]
		for _, t := range v {
			m, ok := t.(map[string]any)
			if !ok {
				p.errorf(line, "network", "must be a list of tables ([[network]]); found an array holding %s", tomlType(t))
				return nil
			}
			tables = append(tables, m)
		}
	default:
		p.errorf(line, "network", "must be a list of tables ([[network]]), not %s", tomlType(v))
		return nil
	}
	nets := make([]Network, 0, len(tables))
	byName := map[string]int{}
	for i, t := range tables {
		n := p.network(i, t, line)
		if n.Name != "" {
			if j, ok := byName[n.Name]; ok {
				p.errorf(p.keyLine(i, "name", line), fmt.Sprintf("network[%d].name", i+1), "%q is already used by network[%d]; names must be unique", n.Name, j+1)
			} else {
				byName[n.Name] = i
			}
		}
		nets = append(nets, n)
	}
	// The same shim on two different masters cannot be.
	for i, a := range nets {
		for j := range i {
			b := nets[j]
			if a.Shim != "" && a.Shim == b.Shim && a.Master != "" && b.Master != "" && a.Master != b.Master {
				p.errorf(p.keyLine(i, "shim", line), fmt.Sprintf("network[%d].shim", i+1),
					"%q is already the shim of network[%d] on master %q; one shim serves one master", a.Shim, j+1, b.Master)
				break
			}
		}
	}
	return nets
}

// keyLine is the line of key in the i-th network, else of its header, else
// fallback.
func (p *parser) keyLine(i int, key string, fallback int) int {
	if l := p.lines.line(i, key); l > 0 {
		return l
	}
	if l := p.lines.header(i); l > 0 {
		return l
	}
	return fallback
}

// network checks the i-th (0-based) [[network]] table.
func (p *parser) network(i int, t map[string]any, fallback int) Network {
	n := Network{Line: p.lines.header(i)}
	if n.Line == 0 {
		n.Line = fallback
	}
	key := func(k string) string { return fmt.Sprintf("network[%d].%s", i+1, k) }
	for _, k := range sortedKeys(t) {
		v := t[k]
		line := p.keyLine(i, k, fallback)
		switch k {
		case "name":
			s, ok := p.str(line, key(k), v)
			switch {
			case !ok:
			case s == "":
				p.errorf(line, key(k), "empty; set it to the CNI network name")
			case !cniName.MatchString(s):
				p.errorf(line, key(k), "%q is not a valid CNI network name (a letter or digit, then letters, digits, '_', '.', '-')", s)
			default:
				n.Name = s
			}
		case "master":
			if s, ok := p.str(line, key(k), v); ok {
				if err := ValidIfName(s); err != nil {
					p.errorf(line, key(k), "%v", err)
				} else {
					n.Master = s
				}
			}
		case "shim":
			if s, ok := p.str(line, key(k), v); ok {
				if err := ValidIfName(s); err != nil {
					p.errorf(line, key(k), "%v", err)
				} else {
					n.Shim = s
				}
			}
		case "state_dir":
			n.StateDir = p.absPath(line, key(k), v)
		case "ranges":
			n.Ranges = p.ranges(line, key(k), v)
		default:
			p.unknown(line, k, networkKeys, "in [[network]]")
		}
	}
	if _, ok := t["name"]; !ok {
		p.errorf(n.Line, key("name"), "missing; set it to the CNI network name")
	}
	if n.Shim != "" && n.Shim == n.Master {
		p.errorf(p.keyLine(i, "shim", fallback), key("shim"), "%q is the master's own name; pick another", n.Shim)
		n.Shim = ""
	}
	return n
}

// ranges checks a list of CIDRs.
func (p *parser) ranges(line int, key string, v any) []netip.Prefix {
	list, ok := v.([]any)
	if !ok {
		p.errorf(line, key, "must be a list of CIDRs (e.g. [\"192.168.1.0/24\"]), not %s", tomlType(v))
		return nil
	}
	if len(list) == 0 {
		p.errorf(line, key, "empty; leave the key out to use host-local's ranges")
		return nil
	}
	out := make([]netip.Prefix, 0, len(list))
	for j, e := range list {
		k := fmt.Sprintf("%s[%d]", key, j+1)
		s, ok := e.(string)
		if !ok {
			p.errorf(line, k, "must be a string like \"192.168.1.0/24\", not %s", tomlType(e))
			continue
		}
		pfx, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			p.errorf(line, k, "%q is not a CIDR (e.g. \"192.168.1.0/24\", \"fd00::/64\")", s)
		case pfx.Addr().Is4In6():
			p.errorf(line, k, "%q is an IPv4-mapped IPv6 prefix; write IPv4 as \"a.b.c.d/n\"", s)
		case pfx.Masked() != pfx:
			p.errorf(line, k, "%q has host bits set; write %q, or %q for that one address",
				s, pfx.Masked().String(), netip.PrefixFrom(pfx.Addr(), pfx.Addr().BitLen()).String())
		default:
			out = append(out, pfx)
		}
	}
	return out
}

// str returns v as a string, or records a type error.
func (p *parser) str(line int, key string, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		p.errorf(line, key, "must be a string, not %s", tomlType(v))
	}
	return s, ok
}

// absPath returns v as a cleaned absolute path, or records why it is not one.
func (p *parser) absPath(line int, key string, v any) string {
	s, ok := p.str(line, key, v)
	if !ok {
		return ""
	}
	if !filepath.IsAbs(s) {
		p.errorf(line, key, "%q is not an absolute path", s)
		return ""
	}
	return filepath.Clean(s)
}

// absPaths checks a list of absolute paths, each cleaned and listed once.
// ok is false when there was a problem.
func (p *parser) absPaths(line int, key string, v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		p.errorf(line, key, "must be a list of absolute paths (e.g. [\"/var/lib/cni\"]), not %s", tomlType(v))
		return nil, false
	}
	out := make([]string, 0, len(list))
	seen := map[string]int{}
	bad := false
	for j, e := range list {
		k := fmt.Sprintf("%s[%d]", key, j+1)
		s, ok := e.(string)
		if !ok {
			p.errorf(line, k, "must be a string like \"/var/lib/cni\", not %s", tomlType(e))
			bad = true
			continue
		}
		if !filepath.IsAbs(s) {
			p.errorf(line, k, "%q is not an absolute path", s)
			bad = true
			continue
		}
		s = filepath.Clean(s)
		if i, dup := seen[s]; dup {
			p.errorf(line, k, "%q is already %s[%d]", s, key, i+1)
			bad = true
			continue
		}
		seen[s] = j
		out = append(out, s)
	}
	return out, !bad
}

// unknown records an unknown key, suggesting a known one that is close.
func (p *parser) unknown(line int, k string, known []string, where string) {
	msg := fmt.Sprintf("unknown key %q %s", k, where)
	if s := closest(k, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: msg})
}

// closest returns the known key within two edits of k, if there is one.
func closest(k string, known []string) string {
	best, bestD := "", 3
	for _, s := range known {
		if d := editDistance(strings.ToLower(k), s); d < bestD {
			best, bestD = s, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes); inputs
// longer than 64 bytes are not compared.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return len(a) + len(b)
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// tomlType names the TOML type of a decoded value, for messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date/time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

// sortedKeys returns m's keys in a fixed order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
