package cni

import "errors"

// Kinds of problem Discover reports, for errors.Is: callers decide on the
// kind, never on the message, which is written for people and may change.
var (
	// ErrNotHostLocal: a macvlan network whose IPAM is not host-local, or
	// that has no IPAM. flatnet can only follow host-local's files, so the
	// node cannot reach these pods through flatnet.
	ErrNotHostLocal = errors.New("macvlan IPAM is not host-local")

	// ErrDuplicate: a configuration file defines a network that an earlier
	// file (in libcni's order) already defines; the earlier one wins.
	ErrDuplicate = errors.New("network already defined")
)

// silent carries a sentinel into an error without adding to its text:
// fmt.Errorf("... %s%w", x, silent{ErrX}) reads as before, and errors.Is
// finds ErrX.
type silent struct{ err error }

func (s silent) Error() string { return "" }
func (s silent) Unwrap() error { return s.err }
