package lab

import (
	"errors"
	"os"
	"path/filepath"
)

// RemoveStaleIn removes the directories that labs of processes no longer
// alive left under root: RemoveStale's sweep, for labs made with
// Options.TempDir = root rather than os.TempDir().
func RemoveStaleIn(root string) error {
	dirs, err := filepath.Glob(filepath.Join(root, NamePrefix+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dirs {
		if _, stale := stalePID(filepath.Base(d)); stale {
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
