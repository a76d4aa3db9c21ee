package sysconf

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Root is where a node's files are read: "" is "/", a test points it at
// a fixture tree. Every reader takes paths relative to it, without the
// leading slash ("etc/systemd/network").
type Root string

// Path is the path of parts under r.
func (r Root) Path(parts ...string) string {
	root := string(r)
	if root == "" {
		root = "/"
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// Read reads a file of at most 16 MiB.
func (g Root) Read(parts ...string) ([]byte, error) {
	f, err := os.Open(g.Path(parts...))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 16<<20))
}

// ReadTrim is Read, trimmed; ok is false when the file cannot be read.
func (g Root) ReadTrim(parts ...string) (string, bool) {
	b, err := g.Read(parts...)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// First reads the first of paths that exists.
func (g Root) First(paths ...string) (ConfFile, bool) {
	for _, p := range paths {
		if b, err := g.Read(p); err == nil {
			return ConfFile{Path: "/" + p, Data: b}, true
		}
	}
	return ConfFile{}, false
}

// DropIns reads <dir>/<name>/*.conf from /etc, /run, /usr/local/lib,
// /usr/lib and /lib, a file in an earlier one hiding one of the same name
// in a later one, sorted by file name, then last (when set), as systemd
// reads drop-ins.
func (g Root) DropIns(dir, name, last string) []ConfFile {
	var out []ConfFile
	seen := map[string]bool{}
	for _, base := range []string{"etc", "run", "usr/local/lib", "usr/lib", "lib"} {
		out = append(out, g.ReadDir(filepath.Join(base, dir, name), ".conf", seen)...)
	}
	slices.SortStableFunc(out, func(a, b ConfFile) int { return strings.Compare(filepath.Base(a.Path), filepath.Base(b.Path)) })
	if last != "" {
		if b, err := g.Read(last); err == nil {
			out = append(out, ConfFile{Path: last, Data: b})
		}
	}
	return out
}

// NetworkFiles reads systemd-networkd's .network files in its order.
func (g Root) NetworkFiles() []ConfFile {
	var out []ConfFile
	seen := map[string]bool{}
	for _, base := range []string{"etc", "run", "usr/local/lib", "usr/lib", "lib"} {
		out = append(out, g.ReadDir(filepath.Join(base, "systemd/network"), ".network", seen)...)
	}
	slices.SortStableFunc(out, func(a, b ConfFile) int { return strings.Compare(filepath.Base(a.Path), filepath.Base(b.Path)) })
	return out
}

// NMFiles reads NetworkManager's configuration in its order: the snippets
// of /usr/lib, then /run, then NetworkManager.conf, then /etc's snippets,
// then the intern file; a snippet in /etc hides one of the same name in
// /run or /usr/lib, one in /run hides one in /usr/lib.
func (g Root) NMFiles() []ConfFile {
	seen := map[string]bool{}
	etc := g.ReadDir("etc/NetworkManager/conf.d", ".conf", seen)
	run := g.ReadDir("run/NetworkManager/conf.d", ".conf", seen)
	lib := g.ReadDir("usr/lib/NetworkManager/conf.d", ".conf", seen)
	out := append(lib, run...)
	if b, err := g.Read("etc/NetworkManager/NetworkManager.conf"); err == nil {
		out = append(out, ConfFile{Path: "/etc/NetworkManager/NetworkManager.conf", Data: b})
	}
	out = append(out, etc...)
	if b, err := g.Read("var/lib/NetworkManager/NetworkManager-intern.conf"); err == nil {
		out = append(out, ConfFile{Path: "/var/lib/NetworkManager/NetworkManager-intern.conf", Data: b})
	}
	return out
}

// ReadDir reads the files of dir ending in ext, by name, skipping names in
// seen and adding the others to it. An empty file or a link to /dev/null
// masks the name.
func (g Root) ReadDir(dir, ext string, seen map[string]bool) []ConfFile {
	ents, err := os.ReadDir(g.Path(dir))
	if err != nil {
		return nil
	}
	var out []ConfFile
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ext) || seen[e.Name()] {
			continue
		}
		seen[e.Name()] = true
		b, err := g.Read(dir, e.Name())
		if err != nil || len(b) == 0 {
			continue
		}
		out = append(out, ConfFile{Path: "/" + filepath.Join(dir, e.Name()), Data: b})
	}
	return out
}

// KernelConfig reads the running kernel's config, from /proc/config.gz or
// /boot/config-<release>.
func (g Root) KernelConfig(rel string) ([]byte, string) {
	if f, err := os.Open(g.Path("proc/config.gz")); err == nil {
		defer f.Close()
		if z, err := gzip.NewReader(f); err == nil {
			if b, err := io.ReadAll(io.LimitReader(z, 16<<20)); err == nil {
				return b, "/proc/config.gz"
			}
		}
	}
	if rel != "" {
		if b, err := g.Read("boot", "config-"+rel); err == nil {
			return b, "/boot/config-" + rel
		}
	}
	return nil, ""
}

