package statedir

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
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
		ok := w.watched[dir]
		w.mu.Unlock()
		if ok {
			return
		}
	}
	t.Fatalf("%s never watched", dir)
}

func TestWatcherFollowsDirectoryThatAppearsLater(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "networks", "default")
	ch := make(chan note, 100)
	w, err := NewWatcher(func(d, n string) { ch <- note{d, n} })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	if err := w.Set([]string{dir}); err != nil {
		t.Fatal(err)
	}

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
