// Package sysconf reads the node's system configuration as systemd,
// NetworkManager and the kernel keep it, for flatnet check: readers of
// files under a root (Root), and pure parsers of what they read
// (systemd-networkd's .network files and networkd.conf, NetworkManager's
// configuration, sysctl.d, the kernel's config and modules, /proc, the
// output of systemctl show). It only reads.
package sysconf

import (
	"bufio"
	"bytes"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The parsers below read the files Root's readers collect. They are pure,
// so the tests feed them fixtures.

// ConfFile is a configuration file: its path (for messages) and content.
type ConfFile struct {
	Path string
	Data []byte
}

// iniEntry is one key = value of an INI-style file.
type iniEntry struct {
	section, key, value string
}

// parseINI reads systemd unit-style and GLib keyfile-style files:
// "[Section]" headers, "key=value" lines, "#" and ";" comments.
func parseINI(data []byte) []iniEntry {
	var out []iniEntry
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		out = append(out, iniEntry{section: section, key: strings.TrimSpace(k), value: strings.TrimSpace(v)})
	}
	return out
}

// parseBool reads a systemd or GLib boolean; ok is false when v is none.
func parseBool(v string) (b, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "yes", "y", "true", "t", "on":
		return true, true
	case "0", "no", "n", "false", "f", "off":
		return false, true
	}
	return false, false
}

// ParseBootTime reads the boot time from /proc/stat ("btime <seconds>").
func ParseBootTime(stat []byte) (time.Time, bool) {
	for line := range strings.SplitSeq(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || s <= 0 {
				return time.Time{}, false
			}
			return time.Unix(s, 0), true
		}
	}
	return time.Time{}, false
}

// ManageForeignRoutes works out systemd-networkd's ManageForeignRoutes=
// from networkd.conf and its drop-ins, given in the order networkd reads
// them (the main file, then the drop-ins by name). The last assignment
// wins; the default is yes. from is the file that set it, "" for the
// default.
func ManageForeignRoutes(files []ConfFile) (value bool, from string) {
	value = true
	for _, f := range files {
		for _, e := range parseINI(f.Data) {
			if e.section != "Network" || e.key != "ManageForeignRoutes" {
				continue
			}
			if e.value == "" {
				value, from = true, ""
				continue
			}
			if b, ok := parseBool(e.value); ok {
				value, from = b, f.Path
			}
		}
	}
	return value, from
}

// ParseNetifState reads a link's state file of systemd-networkd
// (/run/systemd/netif/links/<ifindex>).
func ParseNetifState(data []byte) (adminState, networkFile string) {
	for line := range strings.SplitSeq(string(data), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "ADMIN_STATE":
			adminState = v
		case "NETWORK_FILE":
			networkFile = v
		}
	}
	return adminState, networkFile
}

// NetworkdMatch finds the .network file systemd-networkd would give a link
// called name of kind ("macvlan"), given the files in the order networkd
// sorts them (by file name). It reports the file and whether it says
// Unmanaged=yes; found is false when none matches (networkd then leaves the
// link alone). Only Name=, Kind= and Type= are evaluated; other match keys
// are taken to match. A [Match] section without any setting matches
// nothing, as networkd ignores such files.
func NetworkdMatch(files []ConfFile, name, kind string) (file string, unmanaged, found bool) {
	for _, f := range files {
		var names, kinds, types []string
		settings := 0
		un := false
		for _, e := range parseINI(f.Data) {
			switch e.section {
			case "Match":
				settings++
				switch e.key {
				case "Name":
					names = appendList(names, e.value)
				case "Kind":
					kinds = appendList(kinds, e.value)
				case "Type":
					types = appendList(types, e.value)
				}
			case "Link":
				if e.key == "Unmanaged" {
					un, _ = parseBool(e.value)
				}
			}
		}
		if settings == 0 {
			continue
		}
		if matchGlobs(names, name) && matchGlobs(kinds, kind) && matchGlobs(types, "ether") {
			return f.Path, un, true
		}
	}
	return "", false, false
}

// appendList adds the space-separated words of v to l; an empty v resets.
func appendList(l []string, v string) []string {
	if v == "" {
		return nil
	}
	return append(l, strings.Fields(v)...)
}

// matchGlobs matches s against a systemd match list: any glob matches; a
// list starting with "!" is inverted; an empty list matches everything.
func matchGlobs(globs []string, s string) bool {
	if len(globs) == 0 {
		return true
	}
	invert := false
	if strings.HasPrefix(globs[0], "!") {
		invert = true
		globs = append([]string{strings.TrimPrefix(globs[0], "!")}, globs[1:]...)
	}
	m := false
	for _, g := range globs {
		if g == "" {
			continue
		}
		if ok, _ := path.Match(g, s); ok {
			m = true
			break
		}
	}
	return m != invert
}

// NMUnmanaged works out whether NetworkManager's configuration leaves the
// device called dev, of type kind ("macvlan"), unmanaged, given the files
// in the order NetworkManager reads them. It returns the setting that does
// it ("<file> [keyfile] unmanaged-devices"), or "" when the device is
// managed.
//
// [keyfile] unmanaged-devices (the last assignment, with += and -= applied)
// wins over [device*] sections, of which the first that matches the device
// and sets managed decides, later files before earlier ones.
func NMUnmanaged(files []ConfFile, dev, kind string) string {
	var unmanaged []string
	unmanagedFrom := ""
	type section struct {
		file, name, match, managed string
		hasManaged                 bool
	}
	var sections [][]section // by file
	for _, f := range files {
		var secs []section
		for _, e := range parseINI(f.Data) {
			switch {
			case e.section == "keyfile" && strings.TrimRight(e.key, "+- ") == "unmanaged-devices":
				items := splitSpecs(e.value)
				switch {
				case strings.HasSuffix(e.key, "+"):
					unmanaged = append(unmanaged, items...)
				case strings.HasSuffix(e.key, "-"):
					var keep []string
					for _, u := range unmanaged {
						if !slices.Contains(items, u) {
							keep = append(keep, u)
						}
					}
					unmanaged = keep
				default:
					unmanaged = items
				}
				unmanagedFrom = f.Path
			case e.section == "device" || strings.HasPrefix(e.section, "device-"):
				if len(secs) == 0 || secs[len(secs)-1].name != e.section {
					secs = append(secs, section{file: f.Path, name: e.section})
				}
				s := &secs[len(secs)-1]
				switch e.key {
				case "match-device":
					s.match = e.value
				case "managed":
					s.managed, s.hasManaged = e.value, true
				}
			}
		}
		sections = append(sections, secs)
	}
	if len(unmanaged) > 0 && matchDeviceSpec(unmanaged, dev, kind) {
		return unmanagedFrom + " [keyfile] unmanaged-devices"
	}
	for i := len(sections) - 1; i >= 0; i-- {
		for _, s := range sections[i] {
			if !s.hasManaged || (s.match != "" && !matchDeviceSpec(splitSpecs(s.match), dev, kind)) {
				continue
			}
			if b, ok := parseBool(s.managed); ok && !b {
				return s.file + " [" + s.name + "]"
			}
			return ""
		}
	}
	return ""
}

// splitSpecs splits a NetworkManager device list at ',' and ';'.
func splitSpecs(v string) []string {
	var out []string
	for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// matchDeviceSpec evaluates a NetworkManager device list ("Device List
// Format" of NetworkManager.conf(5)) for a device: "*", interface-name:
// (glob, "=" exact, "~" case-insensitive), type:, and except: negations,
// which win over positive matches; a list of only negations matches what
// they do not. Other kinds of spec (mac:, driver:, …) are taken not to
// match.
func matchDeviceSpec(specs []string, dev, kind string) bool {
	positive, negatives, matched := false, false, false
	for _, s := range specs {
		neg := false
		if rest, ok := strings.CutPrefix(s, "except:"); ok {
			neg, s = true, rest
		}
		m := matchOneSpec(s, dev, kind)
		if neg {
			negatives = true
			if m {
				return false
			}
			continue
		}
		positive = true
		matched = matched || m
	}
	if !positive && negatives {
		return true
	}
	return matched
}

func matchOneSpec(s, dev, kind string) bool {
	if s == "*" {
		return true
	}
	if v, ok := strings.CutPrefix(s, "interface-name:"); ok {
		switch {
		case strings.HasPrefix(v, "="):
			return v[1:] == dev
		case strings.HasPrefix(v, "~"):
			ok, _ := path.Match(strings.ToLower(v[1:]), strings.ToLower(dev))
			return ok
		}
		ok, _ := path.Match(v, dev)
		return ok
	}
	if v, ok := strings.CutPrefix(s, "type:"); ok {
		return v == kind
	}
	return false
}

// SysctlD works out what the sysctl.d files, in the order systemd-sysctl
// reads them, set for key (such as "arp_ignore") of each IPv4 interface in
// devs, by "<dev>/<key>". Keys are written with dots ("net.ipv4.conf.
// eno1/host.arp_ignore", slashes standing for dots in names) or slashes
// ("net/ipv4/conf/eno1.host/arp_ignore"), and may be globs.
func SysctlD(files []ConfFile, devs []string, key string) map[string]int {
	out := map[string]int{}
	for _, f := range files {
		sc := bufio.NewScanner(bytes.NewReader(f.Data))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || line[0] == '#' || line[0] == ';' {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			p := sysctlKeyPath(strings.TrimPrefix(strings.TrimSpace(k), "-"))
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				continue
			}
			for _, d := range devs {
				if ok, _ := path.Match(p, "net/ipv4/conf/"+d+"/"+key); ok {
					out[d+"/"+key] = n
				}
			}
		}
	}
	return out
}

// sysctlKeyPath turns a sysctl key into its path under /proc/sys: when the
// first separator is a dot, dots and slashes swap.
func sysctlKeyPath(k string) string {
	i := strings.IndexAny(k, "./")
	if i < 0 || k[i] == '/' {
		return k
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, k)
}

// KernelConfigMacvlan reads CONFIG_MACVLAN from a kernel config: "y", "m",
// or "n" when it is not set.
func KernelConfigMacvlan(cfg []byte) string {
	for line := range strings.SplitSeq(string(cfg), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "CONFIG_MACVLAN="); ok {
			return strings.TrimSpace(v)
		}
	}
	return "n"
}

// HasModule reports whether a modules.dep or modules.builtin list names
// macvlan.ko (possibly compressed).
func HasModule(list []byte) bool {
	for line := range strings.SplitSeq(string(list), "\n") {
		f, _, _ := strings.Cut(line, ":")
		base := filepath.Base(strings.TrimSpace(f))
		if base == "macvlan.ko" || strings.HasPrefix(base, "macvlan.ko.") {
			return true
		}
	}
	return false
}

// IsFlatnetRun reports whether a /proc/<pid>/cmdline is `flatnet run …`.
func IsFlatnetRun(cmdline []byte) bool {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) < 2 || filepath.Base(args[0]) != "flatnet" {
		return false
	}
	return args[1] == "run"
}

// ParseSystemctlShow reads `systemctl show -p …` output.
func ParseSystemctlShow(out []byte) *Unit {
	u := &Unit{}
	for line := range strings.SplitSeq(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "LoadState":
			u.LoadState = v
		case "ActiveState":
			u.ActiveState = v
		case "SubState":
			u.SubState = v
		case "StatusText":
			u.StatusText = v
		case "MainPID":
			u.MainPID, _ = strconv.Atoi(v)
		}
	}
	return u
}

// Unit is a systemd unit's state, as `systemctl show` tells it.
type Unit struct {
	LoadState, ActiveState, SubState, StatusText string
	MainPID                                      int
	// MainPIDHere is whether the main process runs in this network
	// namespace (a unit of the host seen from a lab namespace does not).
	MainPIDHere bool
}
