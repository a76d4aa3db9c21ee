package daemon

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/statedir"
	"github.com/flatnet/flatnet/internal/text"
)

// unmatchedGrace is how long a directory of the state root that no
// network explains may hold allocations before the journal says so. A
// network defined at run time (Multus) is explained by its cache entry,
// which libcni writes only once the whole ADD is done, after host-local
// wrote the allocation: the first pod of such a network is not an error.
// It is also how long a new, empty such directory is watched: host-local
// makes the directory first and writes the allocation after.
const unmatchedGrace = 5 * time.Second

// unmatched follows the directories of the state root that no network
// explains (see pass.unexplained), to report those that hold allocations:
// pods the node cannot reach. The cost of one is O(1) in the number of
// the others: a directory that appears, changes or goes is counted alone
// (a state root's event is an update pass, never a full one), and only a
// directory that holds allocations, or appeared within unmatchedGrace, is
// watched, so that thousands of empty directories cost no inotify watch.
type unmatched struct {
	dirs map[string]*unknownDir
	// findings are those of the directories that held allocations for
	// unmatchedGrace; recheckAt is when the next grace ends (zero: none).
	findings  []reconcile.Finding
	recheckAt time.Time
}

// unknownDir is one unexplained directory.
type unknownDir struct {
	count    int       // its allocations, at the last count
	appeared time.Time // when flatnet first saw it
	since    time.Time // since when it has held allocations; zero when it holds none
}

func newUnmatched() *unmatched { return &unmatched{dirs: map[string]*unknownDir{}} }

// reset makes dirs the unexplained directories (a full pass listed the
// state root); countAll counts them once the new ones are watched.
func (u *unmatched) reset(dirs []string, now time.Time) {
	keep := make(map[string]*unknownDir, len(dirs))
	for _, d := range dirs {
		ud := u.dirs[d]
		if ud == nil {
			ud = &unknownDir{appeared: now}
		}
		keep[d] = ud
	}
	u.dirs = keep
}

// countAll counts every unexplained directory.
func (u *unmatched) countAll(now time.Time) {
	for d, ud := range u.dirs {
		ud.recount(d, now)
	}
	u.settle(now)
}

// entry takes an event of the state root naming dir: a directory that
// appeared, changed or went. explained reports a directory some network
// explains.
func (u *unmatched) entry(dir string, explained bool, now time.Time) {
	if explained || !statedir.IsDir(dir) {
		delete(u.dirs, dir)
	} else {
		ud := u.dirs[dir]
		if ud == nil {
			ud = &unknownDir{appeared: now}
			u.dirs[dir] = ud
		}
		ud.recount(dir, now)
	}
	u.settle(now)
}

// recount counts dir again, an unexplained directory one of whose entries
// changed; the others are not.
func (u *unmatched) recount(dir string, now time.Time) {
	if ud := u.dirs[dir]; ud != nil {
		ud.recount(dir, now)
	}
	u.settle(now)
}

// has reports whether dir is an unexplained directory.
func (u *unmatched) has(dir string) bool { _, ok := u.dirs[dir]; return ok }

func (ud *unknownDir) recount(dir string, now time.Time) {
	ud.count = statedir.Allocated(dir)
	switch {
	case ud.count == 0:
		ud.since = time.Time{}
	case ud.since.IsZero():
		ud.since = now
	}
}

// settle works out the findings and the next recheck at now.
func (u *unmatched) settle(now time.Time) {
	u.findings, u.recheckAt = u.findings[:0], time.Time{}
	next := func(at time.Time) {
		if at.After(now) && (u.recheckAt.IsZero() || at.Before(u.recheckAt)) {
			u.recheckAt = at
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(u.dirs)) {
		ud := u.dirs[dir]
		next(ud.appeared.Add(unmatchedGrace)) // its watch may go then
		if ud.count == 0 {
			continue
		}
		if due := ud.since.Add(unmatchedGrace); due.After(now) {
			next(due)
			continue
		}
		u.findings = append(u.findings, reconcile.Finding{Kind: reconcile.FindUnmatched, Level: slog.LevelError, Dir: dir,
			Msg: fmt.Sprintf("%s holds %s that no known network explains: the node cannot reach those pods (flatnet check says how to add the network)", dir, text.Plural(ud.count, "allocation", "allocations"))})
	}
}

// watched are the unexplained directories to watch at now: those that
// hold allocations (their count follows them), and those that appeared
// within unmatchedGrace (host-local writes the allocation just after it
// makes the directory). An empty one is counted again only when the state
// root's event names it, or by the next full pass.
func (u *unmatched) watched(now time.Time) []string {
	var out []string
	for dir, ud := range u.dirs {
		if ud.count > 0 || now.Before(ud.appeared.Add(unmatchedGrace)) {
			out = append(out, dir)
		}
	}
	slices.Sort(out)
	return out
}
