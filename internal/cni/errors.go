package cni

import "errors"

// The kinds of problem this package reports. Every Problem's Err, and every
// error ParseCache returns, matches one of them with errors.Is; the messages
// themselves are written for people and may change.
var (
	// ErrDuplicate: a configuration file defines a network that an earlier
	// file (in libcni's order) already defines; the earlier one wins.
	ErrDuplicate = errors.New("network already defined")

	// ErrCacheUnreadable: a file in a cache's results/ that could not be
	// read: a symlink (never followed), a directory, a device, a file over
	// MaxCacheFileSize, or an I/O error. libcni writes none of these.
	ErrCacheUnreadable = errors.New("cannot be read")

	// ErrCacheIncomplete: an empty or truncated cache file. libcni writes
	// its cache files in place (os.WriteFile), so a reader can catch one
	// half-written; the write that completes it comes next. Not a problem
	// on its own: keep what the file said before. See Ignorable.
	ErrCacheIncomplete = errors.New("being written")

	// ErrCacheMalformed: not a cache entry libcni could have written: not
	// JSON, not an object, a field of the wrong type or missing, an invalid
	// network name, container id or interface name, a configuration that
	// is not valid JSON or names another network.
	ErrCacheMalformed = errors.New("not a libcni cache entry")

	// ErrCacheMisnamed: a valid entry in a file whose name is not the
	// "<network>-<container id>-<ifname>" libcni gives it (a copy, say).
	ErrCacheMisnamed = errors.New("misnamed cache entry")

	// ErrCacheLegacy: an entry written by libcni 0.7, which cached the
	// plugin's result alone, without the network configuration or even the
	// network name. Nothing in it can be followed; skipped. See Ignorable.
	ErrCacheLegacy = errors.New("written by libcni 0.7, without the network configuration")

	// ErrCacheKind: a JSON object whose "kind" is not "cniCacheV1", the only
	// kind libcni 0.8 to 1.3 write: a format flatnet does not know.
	ErrCacheKind = errors.New("unknown kind of cache entry")

	// ErrUnfollowable: a cached macvlan attachment flatnet cannot follow
	// (linkInContainer, an unknown mode, a configuration its IPAM would
	// refuse); the error is an *UnfollowableError saying why.
	ErrUnfollowable = errors.New("cannot be followed")

	// ErrConflict: a network defined in the CNI configuration directory
	// whose cached attachments were made with another configuration; the
	// file wins. The error is a *ConflictError.
	ErrConflict = errors.New("configuration file and cache disagree")

	// ErrCacheConflict: a network known only from the cache whose cached
	// attachments were made with different configurations; the oldest
	// attachment's holds, the others are refused. The error is a
	// *ConflictError.
	ErrCacheConflict = errors.New("cached attachments disagree")

	// ErrNameTaken: cached macvlan attachments under a name that the
	// configuration directory gives a network of another plugin; they are
	// refused. The error is a *NameTakenError.
	ErrNameTaken = errors.New("network name taken by the configuration directory")
)

// Ignorable reports whether a cache error is no problem to report:
// ErrCacheIncomplete (a file being written: keep what it said before, and
// read it again on its next write) and ErrCacheLegacy (nothing to follow in
// it). Every other error of ParseCache is worth a line in the journal and in
// flatnet check.
func Ignorable(err error) bool {
	return errors.Is(err, ErrCacheIncomplete) || errors.Is(err, ErrCacheLegacy)
}

// silent carries a sentinel into an error without adding to its text:
// fmt.Errorf("... %s%w", x, silent{ErrX}) reads as before, and errors.Is
// finds ErrX.
type silent struct{ err error }

func (s silent) Error() string { return "" }
func (s silent) Unwrap() error { return s.err }
