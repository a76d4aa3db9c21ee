package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
)

// runGCPercent is the garbage collector's target for the daemon: the heap
// may grow to 1.5 times what is live before a collection, not Go's default
// 2 times. The runtime keeps about the heap goal resident, and flatnet's
// live heap is some 3 MB of fixed buffers plus about 400 bytes per route,
// so at 10,000 routes this is the difference between 22-26 MiB resident
// and 16-20 MiB (docs/performance.md), for a few percent more CPU time in
// a cold start. An idle daemon allocates nothing, so it is not woken by
// the collector more often (the runtime still forces a collection every
// two minutes).
const runGCPercent = 50

// crashBySignal makes a crash of `flatnet run` (an unrecovered panic, a
// fatal signal) end the process by SIGABRT, as GOTRACEBACK=crash does,
// instead of the Go runtime's exit status 2: that status is the unit's
// RestartPreventExitStatus=, kept for an invalid configuration, so a crash
// would not be restarted. GOTRACEBACK in the environment wins.
func crashBySignal() {
	if _, set := os.LookupEnv("GOTRACEBACK"); set {
		return
	}
	debug.SetTraceback("crash")
}

// minGarbage is the least garbage the heap may gather between two
// collections. With runGCPercent alone, a small node's heap (some 3 MB
// live) is collected after every 1.5 MB: every hundred or so pods, and a
// pod whose event meets a collection is a slow one (cache entry → route
// p99 1.06–1.19 ms at GOGC 50, 0.52–0.86 ms at GOGC 200, in the same
// bench). The floor makes that every 4 MB, and costs nothing resident
// where the bar is set: at 10,000 routes, 1.5 times the live heap is
// about as much already.
const minGarbage = 4 << 20

// gcFloor keeps the collector's GOGC at runGCPercent or at what lets the
// heap gather minGarbage between collections, whichever is larger, from
// the live heap the last collection found.
type gcFloor struct {
	live    []metrics.Sample
	percent int
}

func newGCFloor() *gcFloor {
	return &gcFloor{live: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}, percent: runGCPercent}
}

// adjust sets GOGC from the live heap, when that moves it by more than a
// tenth (setting it stops the world briefly).
func (g *gcFloor) adjust() {
	metrics.Read(g.live)
	if g.live[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	want := gcPercentFor(g.live[0].Value.Uint64())
	if d := want - g.percent; d*10 > g.percent || -d*10 > g.percent {
		debug.SetGCPercent(want)
		g.percent = want
	}
}

// gcPercentFor is the GOGC for a live heap of live bytes: runGCPercent,
// or what lets minGarbage gather, at most 400.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return 400
	}
	return int(min(max(runGCPercent, minGarbage*100/live), 400))
}

// tuneGC sets the collector up for `flatnet run`, and returns what the
// daemon runs after each pass to keep it so (nil when GOGC in the
// environment, a unit's Environment=, says what it is).
func tuneGC() func() {
	if _, set := os.LookupEnv("GOGC"); set {
		return nil
	}
	debug.SetGCPercent(runGCPercent)
	return newGCFloor().adjust
}
