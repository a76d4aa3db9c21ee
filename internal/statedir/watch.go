package statedir

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/fsnotify/fsnotify"
)

// Watcher watches a set of directories, each of which may not exist yet,
// and reports changes in them. It reports (dir, name) for a change to one
// entry and (dir, "") when the whole directory must be read again.
//
// inotify watches inodes, and fsnotify keeps one path per watch: adding a
// path whose directory is already watched under another path (a directory
// renamed, default -> default.away, while both paths are wanted) returns
// the old watch, still named by the old path, and fsnotify removes it when
// it reads the rename's IN_MOVE_SELF. So the watcher drops a watch itself
// as soon as an event says its path was renamed or removed, and before it
// adds a path, drops any watched path that named the same directory and no
// longer does. (Two live paths of one directory, through a symlink, still
// share one watch, whose events name the first.)
type Watcher struct {
	fs     *fsnotify.Watcher
	notify func(dir, name string)

	mu      sync.Mutex
	want    map[string]bool   // the directories asked for
	watched map[string]fileID // paths with an inotify watch (wanted dirs or their ancestors), with the directory watched
}

// fileID names a directory whatever its path.
type fileID struct{ dev, ino uint64 }

// idOf returns the fileID of path's directory.
func idOf(path string) (fileID, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, true
}

// NewWatcher starts an inotify instance; notify is called from the
// watcher's goroutine and must not block.
func NewWatcher(notify func(dir, name string)) (*Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &Watcher{fs: w, notify: notify, want: map[string]bool{}, watched: map[string]fileID{}}, nil
}

// Set makes dirs the directories watched. Directories newly watched are
// reported as (dir, "") so that they are read after their watch is set.
func (w *Watcher) Set(dirs []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	want := map[string]bool{}
	for _, d := range dirs {
		want[filepath.Clean(d)] = true
	}
	w.want = want
	return w.syncLocked()
}

// syncLocked puts a watch on each wanted directory, or on its nearest
// existing ancestor, and drops watches no longer needed.
func (w *Watcher) syncLocked() error {
	need := map[string]bool{}
	var errs []error
	for d := range w.want {
		for p, tries := d, 0; ; p = filepath.Dir(p) {
			id, exists := idOf(p)
			if was, ok := w.watched[p]; ok {
				if exists && was == id {
					need[p] = true
					break
				}
				// Renamed or removed while watched, its event not read
				// yet: the watch follows the directory, not the name.
				w.drop(p)
			}
			if exists {
				w.dropRenamed(id)
			}
			err := w.fs.Add(p)
			if err == nil {
				need[p] = true
				w.watched[p] = id
				if p == d {
					w.notify(d, "") // new watch: read what is already there
					break
				}
				// An ancestor: the path below it may have been created
				// between our failed look and this watch, and its event
				// is lost. Look again from the bottom.
				if _, err := os.Lstat(childToward(p, d)); err == nil && tries < 8 {
					p, tries = filepath.Join(d, "x"), tries+1 // the loop's step makes it d
					continue
				}
				break
			}
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) || p == filepath.Dir(p) {
				errs = append(errs, err)
				break
			}
		}
	}
	for p := range w.watched {
		if !need[p] {
			w.drop(p)
		}
	}
	return errors.Join(errs...)
}

// dropRenamed drops the watches of paths that named directory id and no
// longer do: it was renamed while watched, and adding its new name would
// get the old watch back (see Watcher).
func (w *Watcher) dropRenamed(id fileID) {
	for q, qid := range w.watched {
		if qid != id {
			continue
		}
		if now, _ := idOf(q); now != id {
			w.drop(q)
		}
	}
}

// drop removes path's watch, when it has one (it may already be gone
// with its directory); a file of a watched directory has none.
func (w *Watcher) drop(path string) {
	if _, ok := w.watched[path]; ok {
		_ = w.fs.Remove(path)
		delete(w.watched, path)
	}
}

// Run handles events until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	defer w.fs.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			w.handle(ev)
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			_ = err // overflow or a dying watch: lost events, read everything again
			w.mu.Lock()
			for d := range w.want {
				w.notify(d, "")
			}
			_ = w.syncLocked()
			w.mu.Unlock()
		}
	}
}

func (w *Watcher) handle(ev fsnotify.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	path := filepath.Clean(ev.Name)
	dir, name := filepath.Dir(path), filepath.Base(path)
	if _, ok := w.watched[dir]; ok && w.want[dir] {
		w.notify(dir, name)
	}
	if w.want[path] && ev.Has(fsnotify.Chmod) {
		// A wanted directory's owner or mode changed: read it whole again,
		// which checks who can write it (safepath).
		w.notify(path, "")
	}
	// The event may concern a wanted directory itself or one of its
	// ancestors: created, removed or renamed. Watches move then.
	structural := false
	for d := range w.want {
		if d == path || strings.HasPrefix(d, path+"/") {
			structural = true
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				w.drop(d)
				w.notify(d, "") // gone: its allocations are gone too
			}
		}
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.drop(path)
	}
	if structural {
		_ = w.syncLocked()
	}
}

// childToward is the entry of directory p on the way down to d.
func childToward(p, d string) string {
	for c := d; ; c = filepath.Dir(c) {
		if filepath.Dir(c) == p || c == filepath.Dir(c) {
			return c
		}
	}
}
