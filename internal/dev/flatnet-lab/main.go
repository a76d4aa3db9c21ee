// Command flatnet-lab builds the network-namespace lab of package lab by
// hand: to demonstrate flatnet (or the seed's manual fix) step by step, to
// keep a lab up for poking at it, or to remove what killed runs left.
//
//	flatnet-lab demo [-v] [--flatnet ./bin/flatnet] [--manual]
//	flatnet-lab up [-v] [--pods 2] [--flatnet PATH]
//	flatnet-lab bench [-v] [--flatnet ./bin/flatnet] [--quick]
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
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  flatnet-lab demo [-v] [--flatnet PATH] [--manual]   the seed's story, narrated, then removed
  flatnet-lab up [-v] [--pods N] [--flatnet PATH]     build a lab and keep it until ^C
  flatnet-lab bench [-v] [--flatnet PATH] [--quick]  flatnet beside its baselines, one table
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
	case "bench":
		cfg, logf, ok := benchFlags(args[1:], stderr)
		if !ok {
			return 2
		}
		return runBench(stdout, stderr, cfg, logf)
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

// benchFlags parses the bench's command line.
func benchFlags(args []string, stderr io.Writer) (benchConfig, func(string, ...any), bool) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("flatnet", "./bin/flatnet", "the flatnet binary to measure")
	quick := fs.Bool("quick", false, "a smaller run (about a minute): fewer samples, one run per cold start, 10s idle")
	verbose := fs.Bool("v", false, "also print every command the lab runs")
	sections := fs.String("only", strings.Join(benchSections, ","), "the parts to run, of "+strings.Join(benchSections, ","))
	dir := fs.String("dir", defaultTmpDir(), "where the lab's directory goes, the state dir with it (/dev/shm: tmpfs, so the disk does not set the pace)")
	csvOut := fs.String("csv", "", "also write the table's numbers to this CSV file")
	logLevel := fs.String("log-level", "info", "flatnet's log_level (info is what a node runs)")
	logs := fs.String("logs", "", "keep the logs of flatnet and the baselines in this directory")
	idle := fs.Duration("idle", 0, "the idle window (default 60s, 10s with --quick)")
	wrap := fs.String("wrap", "", "run flatnet under this command (space-separated), e.g. \"perf record -g -o /tmp/perf.data --\"; "+
		"memory and idle figures are then the wrapper's")
	if err := fs.Parse(args); err != nil {
		return benchConfig{}, nil, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "flatnet-lab bench: unexpected argument %q\n", fs.Arg(0))
		return benchConfig{}, nil, false
	}
	cfg := benchConfig{
		flatnet: *bin, quick: *quick, label: "full run",
		singles: 1000, loaded: 300, loadN: 10000, burst: 1000,
		cold: []int{10000, 65000}, reps: 3, idle: 60 * time.Second, tmpDir: *dir, logDir: *logs, csv: *csvOut, logLevel: *logLevel,
	}
	if *quick {
		cfg.label = "quick run"
		cfg.singles, cfg.loaded, cfg.reps, cfg.idle = 300, 100, 1, 10*time.Second
	}
	if *idle > 0 {
		cfg.idle = *idle
	}
	for s := range strings.SplitSeq(*sections, ",") {
		if !slices.Contains(benchSections, s) {
			fmt.Fprintf(stderr, "flatnet-lab bench: --only: unknown part %q (have %s)\n", s, strings.Join(benchSections, ","))
			return benchConfig{}, nil, false
		}
		cfg.sections = append(cfg.sections, s)
	}
	if *wrap != "" {
		cfg.wrap = strings.Fields(*wrap)
	}
	return cfg, verboseLog(*verbose, stderr), true
}
