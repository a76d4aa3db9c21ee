//go:build flatnet_debug_wedge

package daemon

import (
	"os"
	"os/signal"
	"syscall"
)

// A test build only (go build -tags flatnet_debug_wedge): SIGUSR2 wedges
// the loop (see loop), which e2e's TestWatchdogStopsWhenWedged uses to
// prove that the watchdog's pings stop with it. flatnet itself is never
// built with this tag.
func init() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	debugWedge = c
}
