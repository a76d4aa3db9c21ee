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

// removeStaleCgroups removes the cgroups that the runtimes of labs of
// processes no longer alive left (see CRI): "/<lab prefix>cri" in every
// hierarchy, with the cgroups of the containers under it.
func removeStaleCgroups() error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var errs []error
	for _, m := range mounts {
		dirs, err := filepath.Glob(filepath.Join(m, NamePrefix+"*"))
		if err != nil {
			continue
		}
		for _, d := range dirs {
			name := filepath.Base(d)
			if _, stale := stalePID(name); !stale || seen[name] {
				continue
			}
			seen[name] = true
			if err := removeCgroupTree("/" + name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
