// Command pause is the sandbox ("pause") program of the lab's CRI pods: it
// holds the pod's namespaces open until it gets SIGTERM or SIGINT, then
// exits 0. The e2e tests build it statically (CGO_ENABLED=0) and the lab
// packs it into an image (lab.WriteImage), since no registry is reachable
// from a test.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// As PID 1 of the pod, the kernel delivers only signals with a handler:
	// Notify installs them.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
