package reconcile

import (
	"cmp"
	"log/slog"
	"net/netip"

	"github.com/flatnet/flatnet/internal/hostlocal"
)

// FindingKind says what a [Finding] is about. Consumers (the log, flatnet
// status and check) switch on it; no decision depends on a message's text.
type FindingKind int

// The kinds of findings.
const (
	// FindReject: an allocated address that must never be routed (outside
	// the ranges, the gateway, a node address, not unicast); IP and Network
	// say which.
	FindReject FindingKind = iota + 1
	// FindRejectMore: a network has more such addresses than are listed
	// one by one (MaxRejectsListed).
	FindRejectMore
	// FindDuplicate: an address two networks allocate; only the first
	// routes it.
	FindDuplicate
	// FindForeign: a route flatnet does not own is in the way of an
	// allocated address.
	FindForeign
	// FindHeld: a network's state directory cannot be read; its routes are
	// held as they are.
	FindHeld
	// FindTaken: the shim's name belongs to another device.
	FindTaken
	// FindMode: a macvlan mode other than bridge; the network waits.
	FindMode
	// FindNoRanges: a network without address ranges.
	FindNoRanges
	// FindShimClash: two networks want one shim name on different masters.
	FindShimClash
	// FindUnmatched: a state directory holds allocations no known network
	// explains (Dir says which): the node cannot reach those pods.
	FindUnmatched
	// FindCNI: a CNI configuration file or cache entry that cannot be used
	// or followed, or a disagreement between them (Dir names the file).
	FindCNI
	// FindRefused: an allocated address that the node's own routing or
	// root's configuration already answers for, or that belongs to an
	// attachment flatnet does not follow; Refused says why, IP and
	// Network which. Listed like FindReject, the first MaxRejectsListed
	// of a network one by one.
	FindRefused
	// FindTrust: a network from libcni's cache that is not mirrored: its
	// state directory is another's, or its master cannot be used (Dir and
	// Network say which).
	FindTrust
	// FindMaster: a network's master is a macvlan, so the shim goes on
	// the macvlan's own master, where the kernel puts the pods too.
	FindMaster
	// FindShimHeld: a shim was made again and again in a short time;
	// flatnet holds it for a while instead of making it again.
	FindShimHeld
	// FindFilter: flatnet's nftables table is someone else's, or holds a
	// chain flatnet did not make (Dir names it; "" for the table): left
	// alone (FilterFindings).
	FindFilter

	// findEnd is one past the last kind: a new kind goes before it.
	findEnd
)

// FindingKinds are all the kinds of findings, in order: flatnet check's
// tests hold each to a line of its own.
func FindingKinds() []FindingKind {
	out := make([]FindingKind, 0, findEnd-1)
	for k := FindReject; k < findEnd; k++ {
		out = append(out, k)
	}
	return out
}

// listed reports whether findings of kind k are listed per address, the
// first MaxRejectsListed of each network, and counted beyond.
func (k FindingKind) listed() bool { return k == FindReject || k == FindRefused }

// Finding is something wrong that is not an error of flatnet's own: an
// address that must not be routed, a foreign route, a shim name taken. The
// daemon logs each one once for as long as it persists.
type Finding struct {
	Kind    FindingKind
	Level   slog.Level
	Msg     string
	Network string
	IP      netip.Addr
	Shim    string // FindTaken
	Dir     string // FindUnmatched, FindCNI: the directory or file
	// Why is the reason of a FindReject.
	Why hostlocal.Rejection
	// Refused is the reason of a FindRefused.
	Refused Refusal
}

// FindingKey identifies a finding across passes: the same key is the same
// finding, logged once while it lasts.
type FindingKey struct {
	Kind    FindingKind
	Network string
	IP      netip.Addr
	Shim    string
	Dir     string
	Msg     string // FindCNI: its text is what tells two apart
}

// Key is f's identity.
func (f Finding) Key() FindingKey {
	k := FindingKey{Kind: f.Kind, Network: f.Network, IP: f.IP, Shim: f.Shim, Dir: f.Dir}
	if f.Kind == FindCNI {
		k.Msg = f.Msg
	}
	return k
}

// compareFindings orders findings by kind, network, shim, address.
func compareFindings(a, b Finding) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Network, b.Network), cmp.Compare(a.Shim, b.Shim), cmp.Compare(a.Dir, b.Dir), a.IP.Compare(b.IP), cmp.Compare(a.Msg, b.Msg))
}
