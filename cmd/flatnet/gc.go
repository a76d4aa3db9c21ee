package main

import (
	"os"
	"runtime/debug"
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

// tuneGC sets the collector up for `flatnet run`. GOGC in the environment
// (a unit's Environment=) wins.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(runGCPercent)
}
