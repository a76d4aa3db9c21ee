package cni

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/flatnet/flatnet/internal/safepath"
)

// MaxFileSize is the largest configuration file ReadDir reads. Real ones are
// a few hundred bytes.
const MaxFileSize = 1 << 20

// ReadDir reads the CNI configuration files of dir, in the order libcni takes
// them (sorted by name). Like libcni it takes every entry with a CNI
// extension that is not a directory, following symlinks. A file that cannot
// be used (a broken symlink, a directory or device behind a symlink, a file
// over MaxFileSize, a read error) comes back with Err set, so Discover
// reports it; a file removed while the directory is read is left out.
//
// A missing dir is an error wrapping fs.ErrNotExist, so the caller can
// decide whether that means "no networks yet".
//
// A dir that others than root can write is not read (safepath.Check): the
// configuration directory defines the node, and is root's.
func ReadDir(dir string) ([]File, error) {
	if err := safepath.Check(dir); err != nil {
		return nil, fmt.Errorf("reading CNI config dir: %w", err)
	}
	return readDir(dir)
}

// readDir is ReadDir without the check of who can write dir.
func readDir(dir string) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if herr := safepath.Missing(dir); herr != nil {
			return nil, fmt.Errorf("reading CNI config dir: %w", herr) // its networks stay
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading CNI config dir: %w", err)
	}
	var files []File
	for _, e := range entries { // os.ReadDir sorts by name
		if e.IsDir() || !hasCNIExt(e.Name()) {
			continue
		}
		data, err := readFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			if e.Type()&fs.ModeSymlink == 0 {
				continue // removed since the directory was listed
			}
			err = errors.New("broken symlink")
		}
		files = append(files, File{Name: e.Name(), Data: data, Err: err})
	}
	return files, nil
}

// readFile reads a regular file of at most MaxFileSize bytes. It opens
// without blocking, so a FIFO in the directory cannot hang the caller.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch m := st.Mode(); {
	case m.IsDir():
		return nil, errors.New("a directory, not a file")
	case !m.IsRegular():
		return nil, fmt.Errorf("not a regular file (mode %s)", m.Type())
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("%d bytes, larger than the %d a CNI config may have; not read", st.Size(), MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than the %d bytes a CNI config may have; not read", MaxFileSize)
	}
	return data, nil
}
