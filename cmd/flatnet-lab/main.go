// Command flatnet-lab builds the network-namespace lab of package lab by
// hand: to demonstrate flatnet (or the seed's manual fix) step by step, to
// keep a lab up for poking at it, or to remove what killed runs left.
//
//	flatnet-lab demo [-v] [--flatnet ./bin/flatnet] [--manual]
//	flatnet-lab up [-v] [--pods 2] [--flatnet PATH]
//	flatnet-lab clean
//
// It must run as root. Everything happens in namespaces named
// fnlab-<pid>-…, which are removed at the end, on ^C too.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  flatnet-lab demo [-v] [--flatnet PATH] [--manual]   the seed's story, narrated, then removed
  flatnet-lab up [-v] [--pods N] [--flatnet PATH]     build a lab and keep it until ^C
  flatnet-lab clean                              remove the labs of processes that are gone
`

// run is main with its exit status returned.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		fs.SetOutput(stderr)
		bin := fs.String("flatnet", "./bin/flatnet", "the flatnet binary to run in the node")
		manual := fs.Bool("manual", false, "apply the seed's manual fix instead of running flatnet")
		verbose := fs.Bool("v", false, "also print every command the lab runs")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		return demo(stdout, *bin, *manual, verboseLog(*verbose, stderr))
	case "up":
		fs := flag.NewFlagSet("up", flag.ContinueOnError)
		fs.SetOutput(stderr)
		pods := fs.Int("pods", 2, "pods to create")
		bin := fs.String("flatnet", "", "start this flatnet binary in the node")
		verbose := fs.Bool("v", false, "also print every command the lab runs")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if err := up(stdout, *pods, *bin, verboseLog(*verbose, stderr)); err != nil {
			fmt.Fprintln(stderr, "flatnet-lab:", err)
			return 1
		}
		return 0
	case "clean":
		return clean(stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "flatnet-lab: unknown command %q\n%s", args[0], usage)
	return 2
}

// verboseLog returns a lab log function printing to w when on, else nil.
func verboseLog(on bool, w io.Writer) func(string, ...any) {
	if !on {
		return nil
	}
	start := time.Now()
	return func(format string, args ...any) {
		fmt.Fprintf(w, "[%7.3fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}

// interrupted returns a channel that receives SIGINT and SIGTERM.
func interrupted() chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	return c
}
