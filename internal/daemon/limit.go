package daemon

import (
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/text"
)

// What the journal gets of one cause in one place (a kind of finding in
// one network or directory, the unusable entries of one state directory):
// at most logBurst lines every logWindow; the others are counted, and one
// line says how many once the window is over. Anyone who can write a
// state directory or a cache entry can make findings come and go as fast
// as they like (a bad name created and deleted in a loop); the journal
// must not follow them line for line.
const (
	logBurst  = 5
	logWindow = time.Minute
)

// logLimit keeps the count per cause and place.
type logLimit struct {
	keys    map[string]*limitWindow
	pending []limitSummary // of windows that ended with lines dropped
}

// limitWindow is one cause's current window.
type limitWindow struct {
	start   time.Time
	lines   int // logged in this window
	dropped int // not logged in this window
	level   slog.Level
	what    string // the cause and place, for the summary
}

// allow reports whether a line of cause key (described by what) may be
// logged at now, and counts it either way.
func (l *logLimit) allow(key, what string, level slog.Level, now time.Time) bool {
	if l.keys == nil {
		l.keys = map[string]*limitWindow{}
	}
	w := l.keys[key]
	if w != nil && !now.Before(w.start.Add(logWindow)) {
		l.end(key, now)
		w = nil
	}
	if w == nil {
		w = &limitWindow{start: now, level: level, what: what}
		l.keys[key] = w
	}
	w.level = max(w.level, level)
	if w.lines < logBurst {
		w.lines++
		return true
	}
	w.dropped++
	return false
}

// end closes key's window, keeping a summary when it dropped lines.
func (l *logLimit) end(key string, now time.Time) {
	w := l.keys[key]
	if w.dropped > 0 {
		l.pending = append(l.pending, limitSummary{Level: w.level, Msg: fmt.Sprintf("%s more of %s in the last %s, not logged one by one (flatnet status and flatnet check list what holds now)",
			text.Plural(w.dropped, "line", "lines"), w.what, shortWindow(now.Sub(w.start)))})
	}
	delete(l.keys, key)
}

// summaries returns, once each, a line for every cause whose window ended
// by now with lines dropped, and forgets the windows that ended.
func (l *logLimit) summaries(now time.Time) []limitSummary {
	for _, key := range slices.Sorted(maps.Keys(l.keys)) {
		if !now.Before(l.keys[key].start.Add(logWindow)) {
			l.end(key, now)
		}
	}
	out := l.pending
	l.pending = nil
	return out
}

// limitSummary is one summary line.
type limitSummary struct {
	Level slog.Level
	Msg   string
}

// shortWindow prints a window's length as an operator writes it.
func shortWindow(d time.Duration) string {
	return d.Round(time.Second).String()
}

// findingCause is the cause and place a finding is limited by, and how a
// summary names it: per kind, by network, or by the directory of the file
// it names (a flood of bad cache entries is one cause).
func findingCause(f reconcile.Finding) (key, what string) {
	switch {
	case f.Kind == reconcile.FindCNI:
		dir := filepath.Dir(f.Dir)
		return fmt.Sprintf("%d|%s", f.Kind, dir), "the messages about files in " + dir
	case f.Network != "":
		return fmt.Sprintf("%d|%s", f.Kind, f.Network), "the messages of this kind about network " + f.Network
	case f.Dir != "":
		return fmt.Sprintf("%d|%s", f.Kind, filepath.Dir(f.Dir)), "the messages of this kind about " + filepath.Dir(f.Dir)
	}
	return fmt.Sprintf("%d", f.Kind), "the messages of this kind"
}
