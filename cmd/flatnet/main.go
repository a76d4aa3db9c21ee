// Command flatnet lets a Kubernetes node reach its own pods on a CNI macvlan
// network: it keeps a bridge-mode macvlan shim on the master NIC and a host
// route through it for every address host-local has allocated.
//
// Usage:
//
//	flatnet run      [--config FILE]           the daemon, in the foreground
//	flatnet status   [--config FILE] [--json]  what is mirrored, what drifted
//	flatnet check    [--config FILE] [--json]  diagnose node and CNI config
//	flatnet teardown [--config FILE]           remove flatnet's routes and shims
//	flatnet completion bash|zsh                print a shell completion script
//	flatnet version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/daemon"
	"github.com/flatnet/flatnet/internal/sd"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // runtime failure, drift, a failed check
	exitUsage = 2 // bad arguments or configuration
)

const usage = `flatnet lets a node reach its own pods on a CNI macvlan network.

Usage:
  flatnet run      [--config FILE]           run the daemon in the foreground
  flatnet status   [--config FILE] [--json]  show what is mirrored and what drifted
  flatnet check    [--config FILE] [--json]  diagnose the node and the CNI config
  flatnet teardown [--config FILE]           remove flatnet's routes and shims
  flatnet completion bash|zsh                print a shell completion script
  flatnet version                            print version, commit and Go version

The configuration file defaults to ` + config.DefaultPath + `; every key is optional.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "version", "--version":
		fmt.Fprintf(stdout, "flatnet %s (commit %s, %s %s/%s)\n", version, buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "completion":
		return completionCmd(args, stdout, stderr)
	}
	fs := flag.NewFlagSet("flatnet "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "configuration `file`")
	asJSON := false
	if cmd == "status" || cmd == "check" {
		fs.BoolVar(&asJSON, "json", false, "print JSON for machines")
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "flatnet %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return exitUsage
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*cfgPath, explicit)
	switch cmd {
	case "check":
		// A configuration that does not load is one of the things check reports.
		return checkCmd(*cfgPath, cfg, err, asJSON, stdout, stderr)
	case "teardown":
		// Removal never depends on the configuration.
		return teardownCmd(cfg, err, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "flatnet: %v\n", err)
		return exitUsage
	}

	switch cmd {
	case "run":
		afterPass := tuneGC()
		crashBySignal()
		level := new(slog.LevelVar)
		level.Set(cfg.LogLevel)
		log := sd.NewLogger(stderr, level)
		d := daemon.New(daemon.Options{
			Config: cfg, ConfigPath: *cfgPath, ConfigRequired: explicit,
			Log: log, Level: level, Notifier: &sd.Notifier{}, AfterPass: afterPass,
		})
		if err := d.Run(context.Background()); err != nil {
			log.Error("flatnet stopped", "err", err)
			return exitFail
		}
		return exitOK
	case "status":
		return statusCmd(cfg, asJSON, stdout, stderr)
	}
	fmt.Fprintf(stderr, "flatnet: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// buildCommit is the commit set at link time, else the one Go recorded.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
