package statedir

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// Watcher watches a set of directories, each of which may not exist yet,
// and reports changes in them. It reports (dir, name) for a change to one
// entry and (dir, "") when the whole directory must be read again.
type Watcher struct {
	fs     *fsnotify.Watcher
	notify func(dir, name string)

	mu      sync.Mutex
	want    map[string]bool // the directories asked for
	watched map[string]bool // paths with an inotify watch: wanted dirs or their ancestors
}

// NewWatcher starts an inotify instance; notify is called from the
// watcher's goroutine and must not block.
func NewWatcher(notify func(dir, name string)) (*Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &Watcher{fs: w, notify: notify, want: map[string]bool{}, watched: map[string]bool{}}, nil
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
			if w.watched[p] {
				need[p] = true
				break
			}
			err := w.fs.Add(p)
			if err == nil {
				need[p] = true
				w.watched[p] = true
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
			_ = w.fs.Remove(p) // may already be gone with its directory
			delete(w.watched, p)
		}
	}
	return errors.Join(errs...)
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
	if w.want[dir] && w.watched[dir] {
		w.notify(dir, name)
	}
	// The event may concern a wanted directory itself or one of its
	// ancestors: created, removed or renamed. Watches move then.
	structural := false
	for d := range w.want {
		if d == path || strings.HasPrefix(d, path+"/") {
			structural = true
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				delete(w.watched, d)
				w.notify(d, "") // gone: its allocations are gone too
			}
		}
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		delete(w.watched, path)
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
