package lab

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

var (
	openMu   sync.Mutex
	openLabs = map[*Lab]bool{}
	sigOnce  sync.Once
)

func register(l *Lab) {
	openMu.Lock()
	openLabs[l] = true
	openMu.Unlock()
}

func unregister(l *Lab) {
	openMu.Lock()
	delete(openLabs, l)
	openMu.Unlock()
}

// CloseAll closes every lab of this process that is still open.
func CloseAll() error {
	openMu.Lock()
	labs := make([]*Lab, 0, len(openLabs))
	for l := range openLabs {
		labs = append(labs, l)
	}
	openMu.Unlock()
	var first error
	for _, l := range labs {
		if err := l.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// HandleInterrupt makes SIGINT and SIGTERM close every open lab and exit
// with status 130 (SIGINT) or 143 (SIGTERM). Calling it again does nothing.
func HandleInterrupt() {
	sigOnce.Do(func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		go func() {
			sig := <-c
			fmt.Fprintf(os.Stderr, "\n%v: removing the lab's namespaces\n", sig)
			if err := CloseAll(); err != nil {
				fmt.Fprintf(os.Stderr, "removing the lab: %v\n", err)
			}
			code := 130
			if sig == syscall.SIGTERM {
				code = 143
			}
			os.Exit(code)
		}()
	})
}
