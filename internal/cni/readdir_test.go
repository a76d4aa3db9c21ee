package cni

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("20-b.conf", "b")
	write("10-a.conflist", "a")
	write("30-c.json", "c")
	write("README", "r")
	write("40-d.conf.bak", "d")
	write("big.conf", strings.Repeat(" ", MaxFileSize+1))
	write("max.conf", strings.Repeat(" ", MaxFileSize))
	if err := os.Mkdir(filepath.Join(dir, "50-dir.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("10-a.conflist", filepath.Join(dir, "60-link.conflist")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("50-dir.conf", filepath.Join(dir, "70-dirlink.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "80-dangling.conf")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "90-fifo.conf"), 0o644); err != nil {
		t.Fatal(err)
	}

	files, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	type result struct{ name, data, err string }
	want := []result{
		{"10-a.conflist", "a", ""},
		{"20-b.conf", "b", ""},
		{"30-c.json", "c", ""},
		{"60-link.conflist", "a", ""},
		{"70-dirlink.conf", "", "a directory, not a file"},
		{"80-dangling.conf", "", "broken symlink"},
		{"90-fifo.conf", "", "not a regular file"},
		{"big.conf", "", "larger than"},
		{"max.conf", strings.Repeat(" ", MaxFileSize), ""},
	}
	if len(files) != len(want) {
		var names []string
		for _, f := range files {
			names = append(names, f.Name)
		}
		t.Fatalf("ReadDir returned %q", names)
	}
	for i, w := range want {
		f := files[i]
		if f.Name != w.name || string(f.Data) != w.data {
			t.Errorf("file %d = %q %.20q, want %q %.20q", i, f.Name, f.Data, w.name, w.data)
		}
		switch {
		case w.err == "" && f.Err != nil:
			t.Errorf("%s: unexpected error %v", f.Name, f.Err)
		case w.err != "" && (f.Err == nil || !strings.Contains(f.Err.Error(), w.err)):
			t.Errorf("%s: error %v, want one containing %q", f.Name, f.Err, w.err)
		}
	}

	// Discover reports the files that could not be read.
	_, problems := Discover(files)
	reported := map[string]bool{}
	for _, p := range problems {
		reported[p.File] = true
	}
	for _, name := range []string{"70-dirlink.conf", "80-dangling.conf", "90-fifo.conf", "big.conf"} {
		if !reported[name] {
			t.Errorf("no problem for %s in %v", name, problems)
		}
	}
}

func TestReadDirMissing(t *testing.T) {
	files, err := ReadDir(filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, fs.ErrNotExist) || files != nil {
		t.Fatalf("ReadDir(missing) = %v, %v; want fs.ErrNotExist", files, err)
	}
}

func TestReadDirEmpty(t *testing.T) {
	files, err := ReadDir(t.TempDir())
	if err != nil || len(files) != 0 {
		t.Fatalf("ReadDir(empty) = %v, %v", files, err)
	}
}
