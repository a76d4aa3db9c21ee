package config

import (
	"reflect"
	"testing"
)

func TestScanKeyLines(t *testing.T) {
	src := `# comment = 1
a = 1
"quoted key" = 2
'literal' = 3
dotted.key = 4
b = """
not_a_key = 5
[not_a_table]
"""
c = '''
[[network]]
'''
d = [
  [1, 2],
  ["x", "]"], # ] in a comment
  { e = 1 },
]
f = { g = "}", h = [1,
  2] }
i = "\"# not a comment"  # a comment
j = """a""""
k = 1
[[network]]
name = "n1"
  master = "eno1"   
[network.sub]
name = "not n1's"
[[network]] # second
name = "n2"
ranges = [
  "10.0.0.0/8",
]
shim = "s"
[other]
name = "not a network key"
[[network.more]]
[ [ bad
`
	got := scanKeyLines(src)
	wantTop := map[string]int{
		"a": 2, "quoted key": 3, "literal": 4, "dotted": 5, "b": 6, "c": 10,
		"d": 13, "f": 18, "i": 20, "j": 21, "k": 22, "network": 23, "other": 34,
	}
	if !reflect.DeepEqual(got.top, wantTop) {
		t.Errorf("top:\n got %v\nwant %v", got.top, wantTop)
	}
	wantNets := []tableLines{
		{header: 23, keys: map[string]int{"name": 24, "master": 25, "sub": 26}},
		{header: 28, keys: map[string]int{"name": 29, "ranges": 30, "shim": 33, "more": 36}},
	}
	if !reflect.DeepEqual(got.nets, wantNets) {
		t.Errorf("nets:\n got %v\nwant %v", got.nets, wantNets)
	}
	for _, tt := range []struct {
		net  int
		key  string
		want int
	}{
		{-1, "a", 2}, {-1, "zzz", 0}, {0, "master", 25}, {1, "shim", 33}, {2, "name", 0}, {-2, "a", 0},
	} {
		if l := got.line(tt.net, tt.key); l != tt.want {
			t.Errorf("line(%d, %q) = %d, want %d", tt.net, tt.key, l, tt.want)
		}
	}
	if got.header(1) != 28 || got.header(2) != 0 || got.header(-1) != 0 {
		t.Errorf("header lookups wrong")
	}
}

func TestScanKeyLinesCRLFAndEscapes(t *testing.T) {
	src := "a = 1\r\nb = \"\"\"x\\\r\ny\"\"\"\r\nc = 'it''s'\r\nd = 2\r\n"
	got := scanKeyLines(src)
	want := map[string]int{"a": 1, "b": 2, "c": 4, "d": 5}
	// 'it''s' is not valid TOML; the scanner must still go on.
	if got.top["a"] != want["a"] || got.top["b"] != want["b"] || got.top["d"] != want["d"] {
		t.Errorf("got %v, want %v", got.top, want)
	}
}

func TestScanKeyLinesGarbage(t *testing.T) {
	for _, src := range []string{"", "[", "[[", "\"", "'''", `"""`, "a = \"\\", "a = [", "= 1", "a.", "[a.]", "a = '''x''''''"} {
		scanKeyLines(src) // must terminate without panicking
	}
}
