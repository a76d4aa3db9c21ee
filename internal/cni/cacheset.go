package cni

import (
	"errors"
	"hash/maphash"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

// CacheSet is the daemon's copy of libcni's caches: the parsed entries of
// every cache directory's results/, kept across reads. An entry caught
// half-written keeps what its file said before (the write that completes it
// brings another event); a file removed (CNI DEL) takes its entry with it;
// every other bad file is a Problem. A file read again unchanged is not
// parsed again: libcni's in-place write brings IN_CREATE then IN_MODIFY,
// and the read for the first mostly sees the whole file already.
type CacheSet struct {
	// entries by path. An entry is never changed once it is here: a
	// change puts a new one in its place, so that the EntryChanges handed
	// out (and the Index that keeps them) share it without a copy.
	entries map[string]*CacheEntry
	bad     map[string]Problem // by path
	memo    *configMemo        // the configurations parsed, for the next entries of their networks
	// buf is the memory the event path reads files into, again and again
	// (what an entry keeps of its file is copied out by the parse).
	buf []byte
	// sums hold a hash of the content each entry was parsed from, for
	// the entries parsed without error: a file read again unchanged (the
	// write's IN_MODIFY after its IN_CREATE) is not parsed again. The seed
	// is the process's own, so no one can make two contents collide.
	sums map[string]uint64
	seed maphash.Seed
	// badGen counts the changes of bad, so that a reader can tell
	// cheaply whether the problems changed.
	badGen uint64
}

// NewCacheSet returns an empty set.
func NewCacheSet() *CacheSet {
	return &CacheSet{entries: map[string]*CacheEntry{}, bad: map[string]Problem{}, memo: newConfigMemo(), sums: map[string]uint64{}, seed: maphash.MakeSeed()}
}

// ReadAll reads the cache directories dirs anew, whole. A directory that
// does not exist (yet) holds nothing.
func (s *CacheSet) ReadAll(dirs []string) {
	old := s.entries
	s.entries, s.bad = map[string]*CacheEntry{}, map[string]Problem{}
	s.badGen++
	for _, dir := range dirs {
		files, err := ReadCache(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				// Unreadable, or others can write it: what it said before
				// holds, as for a half-written entry.
				s.bad[dir] = Problem{File: dir, Err: err}
				results := ResultsDir(dir) + string(filepath.Separator)
				for path, e := range old {
					if strings.HasPrefix(path, results) {
						s.entries[path] = e
					}
				}
			}
			continue
		}
		for _, f := range files {
			s.take(f, old)
		}
	}
	for path := range s.sums {
		if _, ok := s.entries[path]; !ok {
			delete(s.sums, path)
		}
	}
}

// ReadNames reads the files names of the results/ directory of cache
// directory dir, for the events that named them.
//
// Who can write the directory was checked by the whole read (ReadAll),
// which a change of its owner or mode brings (the watch's IN_ATTRIB), and
// is not checked again per file: this is the path every pod takes.
//
// It returns what changed, file by file (the entry a file held before and
// holds now), for Index.Apply.
func (s *CacheSet) ReadNames(dir string, names []string) []EntryChange {
	var changes []EntryChange
	for _, name := range names {
		f := readCacheFile(dir, name, s.buf)
		if c := cap(f.Data); c > cap(s.buf) && c <= maxKeptBuf {
			s.buf = f.Data[:0]
		}
		c := EntryChange{Old: s.entries[f.Path]}
		if errors.Is(f.Err, fs.ErrNotExist) {
			delete(s.entries, f.Path)
			delete(s.sums, f.Path)
			if _, ok := s.bad[f.Path]; ok {
				delete(s.bad, f.Path)
				s.badGen++
			}
		} else {
			s.take(f, s.entries)
		}
		c.New = s.entries[f.Path]
		if c.Old != nil || c.New != nil {
			changes = append(changes, c)
		}
	}
	return changes
}

// maxKeptBuf bounds the read buffer a CacheSet keeps between reads
// (entries are a few KiB; MaxCacheFileSize is far more).
const maxKeptBuf = 64 << 10

// take parses f into the set; old has what f said before.
func (s *CacheSet) take(f CacheFile, old map[string]*CacheEntry) {
	var sum uint64
	if f.Err == nil {
		sum = maphash.Bytes(s.seed, f.Data)
		if prev, ok := old[f.Path]; ok {
			if was, ok := s.sums[f.Path]; ok && was == sum {
				// What parsing it again would give, but for the time
				// and whether its namespace is still there.
				gone := prev.netnsGone()
				if f.ModTime.Equal(prev.ModTime) && gone == prev.Gone {
					s.entries[f.Path] = prev
					return
				}
				e := new(CacheEntry)
				*e = *prev
				e.ModTime, e.Gone = f.ModTime, gone
				s.entries[f.Path] = e
				return
			}
		}
	}
	was, had := s.sums[f.Path]
	delete(s.sums, f.Path)
	e, err := parseCache(f, s.memo)
	e.CheckNetNS()
	if _, ok := s.bad[f.Path]; ok {
		s.badGen++
	}
	delete(s.bad, f.Path)
	switch {
	case err == nil || errors.Is(err, ErrUnfollowable):
		s.entries[f.Path] = &e
		if err == nil && f.Err == nil {
			s.sums[f.Path] = sum
		}
		if err != nil {
			s.bad[f.Path] = Problem{File: f.Path, Err: err}
			s.badGen++
		}
	case errors.Is(err, ErrCacheIncomplete):
		if prev, ok := old[f.Path]; ok {
			s.entries[f.Path] = prev
			if had {
				s.sums[f.Path] = was
			}
		}
	case Ignorable(err):
		delete(s.entries, f.Path)
	default:
		delete(s.entries, f.Path)
		s.bad[f.Path] = Problem{File: f.Path, Err: err}
		s.badGen++
	}
}

// ProblemsChanged is a number that changes whenever Problems may have.
func (s *CacheSet) ProblemsChanged() uint64 { return s.badGen }

// Entries are the entries held, in path order. An entry an
// UnfollowableError was returned for is among them with its Network nil.
func (s *CacheSet) Entries() []CacheEntry {
	paths := make([]string, 0, len(s.entries))
	for p := range s.entries {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	out := make([]CacheEntry, len(paths))
	for i, p := range paths {
		out[i] = *s.entries[p]
	}
	return out
}

// Problems are the files that could not be used, in path order.
func (s *CacheSet) Problems() []Problem {
	out := make([]Problem, 0, len(s.bad))
	for _, p := range s.bad {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Problem) int {
		if a.File < b.File {
			return -1
		}
		if a.File > b.File {
			return 1
		}
		return 0
	})
	return out
}

// ResultsDir is the directory of a cache directory whose files are the
// entries: what to watch.
func ResultsDir(cacheDir string) string { return filepath.Join(cacheDir, "results") }
