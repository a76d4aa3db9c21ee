package statedir

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

type note struct{ dir, name string }

// wait returns once a note matching want arrives; it fails after a
// generous deadline (this is about delivery, not speed).
func wait(t *testing.T, ch <-chan note, want note) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case n := <-ch:
			if n == want {
				return
			}
		case <-deadline:
			t.Fatalf("no notification %+v", want)
		}
	}
}

// waitWatched returns once dir has its own watch.
func waitWatched(t *testing.T, w *Watcher, dir string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		w.mu.Lock()
		_, ok := w.watched[dir]
		w.mu.Unlock()
		if ok {
			return
		}
	}
	t.Fatalf("%s never watched", dir)
}

// startWatcher runs a Watcher of dirs until the test ends; its notes
// arrive on the channel.
func startWatcher(t *testing.T, dirs ...string) (*Watcher, <-chan note) {
	t.Helper()
	ch := make(chan note, 1000)
	w, err := NewWatcher(func(d, n string) { ch <- note{d, n} })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go w.Run(ctx)
	if err := w.Set(dirs); err != nil {
		t.Fatal(err)
	}
	return w, ch
}

func TestWatcherFollowsDirectoryThatAppearsLater(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "networks", "default")
	w, ch := startWatcher(t, dir)

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	wait(t, ch, note{dir, ""}) // appeared: read it whole
	waitWatched(t, w, dir)

	if err := os.WriteFile(filepath.Join(dir, "192.168.1.2"), []byte("id\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait(t, ch, note{dir, "192.168.1.2"})

	if err := os.RemoveAll(filepath.Join(root, "networks")); err != nil {
		t.Fatal(err)
	}
	wait(t, ch, note{dir, ""}) // gone

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Back: a file written before the new watch is in place is found by the
	// rescan its (dir, "") asks for; one written after it, by its own event.
	waitWatched(t, w, dir)
	if err := os.WriteFile(filepath.Join(dir, "192.168.1.3"), []byte("id2"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait(t, ch, note{dir, "192.168.1.3"})
}

// TestWatcherOverflow: when the kernel's inotify queue overflows, events
// were lost: the watcher asks for every directory to be read whole, also
// one that had no event. The overflow is a real one, without touching
// fs.inotify.max_queued_events (a sysctl of the whole machine): the
// watcher's loop starts only once more events than the kernel queues were
// made, and the test reads what fsnotify reports on its way to the loop,
// so that an overflow is told apart from any other error of the watch.
func TestWatcherOverflow(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	max, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Fatal(err)
	}
	queued, err := strconv.Atoi(strings.TrimSpace(string(max)))
	if err != nil || queued > 1<<20 {
		t.Fatalf("fs.inotify.max_queued_events %q: %v", max, err)
	}
	ch := make(chan note, 1000)
	w, err := NewWatcher(func(d, n string) { ch <- note{d, n} })
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Set([]string{a, b}); err != nil {
		t.Fatal(err)
	}
	waitAll(t, ch, "the new watches", note{a, ""}, note{b, ""})

	// Nothing reads fsnotify's events yet: its reader takes one read's
	// worth (at most 4096 events: its buffer holds 4096 bare event
	// headers), blocks on handing over the first, and the kernel's queue
	// fills up, then overflows. One file makes one event (IN_CREATE), so
	// queued events past that read's worth are sure to overflow, however
	// late the reader woke.
	for i := range queued + 4096 + 100 {
		f, err := os.Create(filepath.Join(a, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	errs := make(chan error, 10)
	inner := w.fs.Errors
	outer := make(chan error)
	w.fs.Errors = outer
	go func() {
		for err := range inner {
			errs <- err
			outer <- err
		}
		close(outer)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go w.Run(ctx)

	// The loop reports each event it got before the overflow; only the
	// overflow's rereading brings (b, ""). Drained until the test ends.
	readB := make(chan struct{})
	go func() {
		for {
			select {
			case n := <-ch:
				if n == (note{b, ""}) {
					select {
					case <-readB:
					default:
						close(readB)
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	// The overflow comes after every event the kernel queued: tens of
	// thousands, slow to go through on a busy machine. The limits are
	// for a watcher that never reports it, not a measure of its speed.
	select {
	case err := <-errs:
		if !errors.Is(err, fsnotify.ErrEventOverflow) {
			t.Fatalf("the watch reported %v, want the kernel's queue overflow", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("no overflow reported")
	}
	select {
	case <-readB:
	case <-time.After(time.Minute):
		t.Fatal("after the overflow, b (no event of its own) was not read again")
	}
}

// waitAll returns once every note in want has arrived, in any order; it
// fails after a generous deadline.
func waitAll(t *testing.T, ch <-chan note, what string, want ...note) {
	t.Helper()
	got := map[note]bool{}
	missing := func() []note {
		var m []note
		for _, n := range want {
			if !got[n] {
				m = append(m, n)
			}
		}
		return m
	}
	for deadline := time.After(10 * time.Second); len(missing()) > 0; {
		select {
		case n := <-ch:
			got[n] = true
		case <-deadline:
			t.Fatalf("%s: notes %v; missing %v", what, got, missing())
		}
	}
}

// TestWatcherRenameBetweenWanted: one directory renamed back and forth
// between two wanted paths (a state directory renamed away and back while
// flatnet watches both names) stays watched under its current name: a file
// written after each rename is reported. inotify watches the inode, and a
// watch left under the old name made the new name's events go missing.
func TestWatcherRenameBetweenWanted(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "default"), filepath.Join(root, "default.away")
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	w, ch := startWatcher(t, a, b)
	waitAll(t, ch, "the watch", note{a, ""})
	from, to := a, b
	for i := range 30 {
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
		waitAll(t, ch, fmt.Sprintf("rename %d", i), note{to, ""})
		waitWatched(t, w, to)
		name := fmt.Sprintf("192.168.1.%d", i+2)
		if err := os.WriteFile(filepath.Join(to, name), []byte("id"), 0o644); err != nil {
			t.Fatal(err)
		}
		waitAll(t, ch, fmt.Sprintf("a file after rename %d", i), note{to, name})
		from, to = to, from
	}
}

// TestWatcherRenamedBeforeItsEvent: a directory renamed to another wanted
// name, and that name added before the watcher has read the rename's
// events (a pass that lists the state root can come first), gets a watch
// of its own: adding it drops the watch still held under the old name.
// Run starts only after, so the order is certain: fsnotify reads no
// further than the first event until someone receives it. The old name,
// made anew, is read too.
func TestWatcherRenamedBeforeItsEvent(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "default"), filepath.Join(root, "default.away")
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	ch := make(chan note, 1000)
	w, err := NewWatcher(func(d, n string) { ch <- note{d, n} })
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Set([]string{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	if err := w.Set([]string{a, b}); err != nil { // b exists now: watched
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	waitAll(t, ch, "the renamed directory", note{b, ""})
	if err := os.WriteFile(filepath.Join(b, "192.168.1.2"), []byte("id"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitAll(t, ch, "a file in the renamed directory", note{b, "192.168.1.2"})
	// The old name, still wanted, is watched again (through its parent
	// while it does not exist): made anew, it is read. Its stale watch
	// entry, which named the renamed directory, must not count as one.
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	waitAll(t, ch, "the old name made anew", note{a, ""})
}

// sdWatched returns the paths w holds a watch on, sorted.
func sdWatched(w *Watcher) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(maps.Keys(w.watched))
}

// TestWatcherUnwatchablePath: a wanted path that cannot be a directory
// (below a regular file) is an error of Set, for the daemon to log, and
// costs no inotify watch (a limited resource): not on the file, whose
// events would never be reported. Another wanted directory of the same
// Set is watched all the same.
func TestWatcherUnwatchablePath(t *testing.T) {
	root := t.TempDir()
	write(t, root, "file", "x")
	good := filepath.Join(root, "good")
	if err := os.Mkdir(good, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(func(string, string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer w.fs.Close()
	err = w.Set([]string{filepath.Join(root, "file", "net"), good})
	if !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Set: %v, want ENOTDIR", err)
	}
	if got := sdWatched(w); !slices.Equal(got, []string{good}) {
		t.Errorf("watched %q, want %s alone", got, good)
	}
}

// TestWatcherRenamedAmongMany: as TestWatcherRenamedBeforeItsEvent, with
// many other directories watched besides: however the watches are listed,
// the one held under the old name of the renamed directory is dropped
// when its new name is added, so the new name has a watch of its own, and
// fsnotify names every watch as the watcher does (a watch it names by the
// old path would lose the new path's events). Renamed back and forth, a
// few times, before any event is read.
func TestWatcherRenamedAmongMany(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "default"), filepath.Join(root, "default.away")
	dirs := []string{a, b}
	for i := range 40 {
		dirs = append(dirs, filepath.Join(root, fmt.Sprintf("other-%02d", i)))
	}
	for _, d := range append(dirs[2:], a) {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w, err := NewWatcher(func(string, string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer w.fs.Close()
	if err := w.Set(dirs); err != nil {
		t.Fatal(err)
	}
	from, to := a, b
	for range 4 {
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
		if err := w.Set(dirs); err != nil {
			t.Fatal(err)
		}
		got := sdWatched(w)
		if !slices.Contains(got, to) || slices.Contains(got, from) {
			t.Fatalf("renamed %s to %s: watched %q", filepath.Base(from), filepath.Base(to), got)
		}
		if fsn := w.fs.WatchList(); !slices.Equal(slices.Sorted(slices.Values(fsn)), got) {
			t.Fatalf("renamed %s to %s: fsnotify watches %q, the watcher %q", filepath.Base(from), filepath.Base(to), fsn, got)
		}
		from, to = to, from
	}
}

// TestWatcherChmod: a wanted directory whose mode changes is read whole
// again (who may write it decides whether it is read at all); a file of
// it whose mode changes is that entry's note alone, never taken for a
// directory to read whole.
func TestWatcherChmod(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "192.168.1.2", "c1\r\neth0")
	_, ch := startWatcher(t, dir)
	wait(t, ch, note{dir, ""})
	if err := os.Chmod(filepath.Join(dir, "192.168.1.2"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Events come in order: the file written after marks the end.
	write(t, dir, "192.168.1.3", "c2\r\neth0")
	for deadline, done := time.After(10*time.Second), false; !done; {
		select {
		case n := <-ch:
			if n.name == "" {
				t.Fatalf("a file's mode change read as a directory's: %v", n)
			}
			done = n == note{dir, "192.168.1.3"}
		case <-deadline:
			t.Fatal("no note of the file written last")
		}
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	wait(t, ch, note{dir, ""})
}
