package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScanKeyLinesEdges: what the scanner must get right on accepted
// TOML: blank lines before headers, consecutive headers, escaped quoted
// keys, a quoted key before a multi-line value, a multi-line string that
// ends a line, every bare-key byte, a string holding a bracket; and text
// that ends anywhere.
func TestScanKeyLinesEdges(t *testing.T) {
	src := "a = 1\n" +
		"\n" +
		"[[network]]\n" +
		"[[network]]\n" +
		"name = \"n2\"\n" +
		"[other]\n" +
		"x = 1\n"
	got := scanKeyLines(src)
	if len(got.nets) != 2 || got.nets[0].header != 3 || got.nets[1].header != 4 || got.nets[1].keys["name"] != 5 {
		t.Errorf("headers: %+v", got.nets)
	}
	src = `"k\u0065y" = 1
"q" = """
fake = 1
"""
x = """a"""
y = 1
"x\\" = 2
azZ09AZ_- = 3
s = "\"[" # [
t = 4
`
	got = scanKeyLines(src)
	for key, line := range map[string]int{"key": 1, "q": 2, "x": 5, "y": 6, `x\`: 7, "azZ09AZ_-": 8, "s": 9, "t": 10} {
		if got.top[key] != line {
			t.Errorf("key %q on line %d, want %d (all: %v)", key, got.top[key], line, got.top)
		}
	}
	if _, ok := got.top["fake"]; ok {
		t.Errorf("a line inside a multi-line string taken for a key")
	}
	for _, src := range []string{"a = 1\n  ", "abc", "a = 1 # c", "a = '''x", "a = \"\"\"x\\", "[[network]]\nname"} {
		scanKeyLines(src) // must terminate without panicking
	}
}

// TestLoadSizeAndDigest: a file of exactly MaxFileSize bytes loads, with
// its digest; one byte more does not.
func TestLoadSizeAndDigest(t *testing.T) {
	dir := t.TempDir()
	body := "log_level = \"info\"\n"
	body += "#" + strings.Repeat("x", MaxFileSize-len(body)-2) + "\n"
	path := filepath.Join(dir, "flatnet.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, true)
	if err != nil {
		t.Fatalf("a file of MaxFileSize bytes: %v", err)
	}
	if c.Digest == "" || c.Digest != Digest([]byte(body)) {
		t.Errorf("digest %q", c.Digest)
	}
	if err := os.WriteFile(path, []byte(body+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, true); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a file of MaxFileSize+1 bytes: %v", err)
	}
	if err := os.WriteFile(path, []byte("bogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(path, true); err == nil || c.Digest != "" {
		t.Errorf("a bad file: %v, digest %q", err, c.Digest)
	}
}

// TestNetworksShimClash: one shim on several masters is one error per
// network that repeats it; the same shim on the same master, or on an
// unnamed master, is none.
func TestNetworksShimClash(t *testing.T) {
	_, err := Parse([]byte(`
[[network]]
name = "a"
master = "eno1"
shim = "s.host"
[[network]]
name = "b"
master = "eno2"
shim = "s.host"
[[network]]
name = "c"
master = "eno3"
shim = "s.host"
`), "f.toml")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if n := strings.Count(msg, "one shim serves one master"); n != 2 {
		t.Errorf("%d errors, want one for network[2] and one for network[3]:\n%s", n, msg)
	}
	_, err = Parse([]byte(`
[[network]]
name = "a"
master = "eno1"
shim = "s.host"
[[network]]
name = "b"
master = "eno1"
shim = "s.host"
[[network]]
name = "c"
shim = "s.host"
`), "f.toml")
	if err != nil && strings.Contains(err.Error(), "one shim serves one master") {
		t.Errorf("a clash reported: %v", err)
	}
}

// TestCacheDirsDuplicate: a duplicate path is one error, and the paths
// after it are still checked.
func TestCacheDirsDuplicate(t *testing.T) {
	_, err := Parse([]byte(`cni_cache_dirs = ["/a", "/a", "b", "/c", "/c"]`+"\n"), "f.toml")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Count(msg, "is already") != 2 || !strings.Contains(msg, `"b" is not an absolute path`) {
		t.Errorf("errors:\n%s", msg)
	}
}

// TestClosest: within two edits, the first of equally close keys; long
// inputs are compared only up to 64 bytes each.
func TestClosest(t *testing.T) {
	if got := closest("aa", []string{"ab", "ac"}); got != "ab" {
		t.Errorf("closest = %q, want the first of two at one edit", got)
	}
	a := strings.Repeat("k", 64)
	if d := editDistance(a, a[:63]+"x"); d != 1 {
		t.Errorf("editDistance of 64-byte keys = %d, want 1", d)
	}
	if d := editDistance(a+"k", a); d != 129 {
		t.Errorf("editDistance of a 65-byte key = %d, want the sum of the lengths", d)
	}
}
