package cni

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// ccCacheDir is a cache directory with an empty results/, and a function
// that writes (or, for nil data, removes) one of its files.
func ccCacheDir(t *testing.T) (string, func(name string, data []byte)) {
	t.Helper()
	dir := t.TempDir()
	results := filepath.Join(dir, CacheResultsDir)
	if err := os.Mkdir(results, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, func(name string, data []byte) {
		t.Helper()
		path := filepath.Join(results, name)
		if data == nil {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// ccProblemFiles lists the files of s's problems, in the order Problems
// gives them, and fails unless each matches want's sentinel for it.
func ccProblemFiles(t *testing.T, s *CacheSet, want map[string]error) []string {
	t.Helper()
	var files []string
	for _, p := range s.Problems() {
		files = append(files, filepath.Base(p.File))
		if w, ok := want[filepath.Base(p.File)]; !ok || !errors.Is(p.Err, w) {
			t.Errorf("problem %s: %v, want one matching %v", p.File, p.Err, w)
		}
	}
	if len(files) != len(want) {
		t.Errorf("problems %q, want %d", files, len(want))
	}
	return files
}

// TestCacheSetProblemsChanged: ProblemsChanged moves whenever the problems
// do, however many change in one read: the daemon reports the problems
// anew only when it moves, so a change that brought it back to a value
// already seen would go unreported. Good entries are no problem; a macvlan
// attachment flatnet cannot follow is one, and its entry is kept.
func TestCacheSetProblemsChanged(t *testing.T) {
	dir, write := ccCacheDir(t)
	good := cacheJSON("n", "c", "eth0", ccMacvlanList("n", "10.0.0.0/24"), "")
	malformed := []byte(`{"kind": "cniCacheV1"}`)
	otherKind := []byte(`{"kind": "cniCacheV2"}`)
	unfollowable := cacheJSON("u", "c", "eth0", netListJSON("u", `{"type": "macvlan", "master": "eno1", "linkInContainer": true, "ipam": {"type": "host-local", "subnet": "10.0.1.0/24"}}`), "")
	write("n-c-eth0", good)
	write("bad-c-eth0", malformed)

	s := NewCacheSet()
	gen := s.ProblemsChanged()
	step := func(what string, want map[string]error) {
		t.Helper()
		if g := s.ProblemsChanged(); g == gen {
			t.Errorf("%s: ProblemsChanged stayed %d", what, g)
		} else {
			gen = g
		}
		ccProblemFiles(t, s, want)
	}
	s.ReadAll([]string{dir})
	step("first read, one bad file", map[string]error{"bad-c-eth0": ErrCacheMalformed})

	write("bad-c-eth0", otherKind)
	s.ReadNames(dir, []string{"bad-c-eth0"})
	step("a bad file bad for another reason", map[string]error{"bad-c-eth0": ErrCacheKind})

	write("bad-c-eth0", nil)
	write("u-c-eth0", unfollowable)
	s.ReadNames(dir, []string{"bad-c-eth0", "u-c-eth0"})
	step("a bad file gone, an unfollowable one come", map[string]error{"u-c-eth0": ErrUnfollowable})
	if es := s.Entries(); len(es) != 2 || es[1].Path != filepath.Join(dir, CacheResultsDir, "u-c-eth0") || es[1].Network != nil {
		t.Errorf("entries %+v, want n's and u's, u's without a network", es)
	}

	write("u-c-eth0", malformed)
	s.ReadNames(dir, []string{"u-c-eth0"})
	step("an unfollowable file become malformed", map[string]error{"u-c-eth0": ErrCacheMalformed})

	write("u-c-eth0", unfollowable)
	s.ReadNames(dir, []string{"u-c-eth0"})
	step("a malformed file become unfollowable", map[string]error{"u-c-eth0": ErrUnfollowable})

	write("u-c-eth0", cacheJSON("u", "c", "eth0", ccMacvlanList("u", "10.0.1.0/24"), ""))
	s.ReadNames(dir, []string{"u-c-eth0"})
	step("an unfollowable file become good", map[string]error{})
}

// TestCacheSetReadNamesChanges: ReadNames reports a change for each file
// whose entry came, changed or went, and none for a file that held no
// entry before or after (gone before it was read, or a legacy entry).
func TestCacheSetReadNamesChanges(t *testing.T) {
	dir, write := ccCacheDir(t)
	s := NewCacheSet()
	s.ReadAll([]string{dir})
	write("n-c-eth0", cacheJSON("n", "c", "eth0", ccMacvlanList("n", "10.0.0.0/24"), ""))
	write("legacy", []byte(`{"cniVersion": "0.3.1", "ips": []}`))
	ch := s.ReadNames(dir, []string{"n-c-eth0", "never", "legacy"})
	if len(ch) != 1 || ch[0].Old != nil || ch[0].New == nil || ch[0].New.ContainerID != "c" {
		t.Fatalf("a new entry, a file gone before it was read, a legacy entry: changes %+v, want the new entry only", ch)
	}
	write("n-c-eth0", nil)
	ch = s.ReadNames(dir, []string{"n-c-eth0", "never"})
	if len(ch) != 1 || ch[0].Old == nil || ch[0].New != nil {
		t.Fatalf("an entry removed: changes %+v, want the old entry only", ch)
	}
}

// TestCacheSetReadAllDirs: every cache directory is read, whatever the
// ones before it hold: a directory no runtime has made yet holds nothing
// and hides nothing of the next.
func TestCacheSetReadAllDirs(t *testing.T) {
	dir, write := ccCacheDir(t)
	write("n-c-eth0", cacheJSON("n", "c", "eth0", ccMacvlanList("n", "10.0.0.0/24"), ""))
	s := NewCacheSet()
	s.ReadAll([]string{filepath.Join(t.TempDir(), "missing"), dir})
	if es := s.Entries(); len(es) != 1 || es[0].ContainerID != "c" {
		t.Fatalf("entries %+v, want the second directory's", es)
	}
	if p := s.Problems(); len(p) != 0 {
		t.Fatalf("a missing cache directory is no problem: %v", p)
	}
}

// TestCacheSetProblemsOrder: Problems come in path order, whatever the
// order the set holds them in, so that reports and logs are stable.
func TestCacheSetProblemsOrder(t *testing.T) {
	dir, write := ccCacheDir(t)
	names := []string{"a-c-eth0", "b-c-eth0", "c-c-eth0", "d-c-eth0", "e-c-eth0", "f-c-eth0"}
	want := map[string]error{}
	for _, name := range names {
		write(name, []byte(`{"kind": "x"}`))
		want[name] = ErrCacheKind
	}
	s := NewCacheSet()
	s.ReadAll([]string{dir})
	for range 20 {
		if got := ccProblemFiles(t, s, want); !slices.Equal(got, names) {
			t.Fatalf("problems in the order %q, want %q", got, names)
		}
	}
}
