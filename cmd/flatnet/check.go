package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/flatnet/flatnet/internal/check"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/inspect"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/text"
)

// checkJSON is `flatnet check --json`.
type checkJSON struct {
	Checks []check.Result `json:"checks"`
	OK     int            `json:"ok"`
	Warn   int            `json:"warn"`
	Fail   int            `json:"fail"`
}

// checkCmd diagnoses the node and the CNI configuration; exit 1 when any
// check fails. A configuration that does not load is one failed check;
// the others then run with the defaults.
func checkCmd(path string, cfg config.Config, cfgErr error, asJSON bool, stdout, stderr io.Writer) int {
	if cfgErr != nil {
		cfg = config.Default()
	}
	f := check.Facts{ConfigPath: path, ConfigErr: cfgErr, Config: cfg}
	k, err := netlinkx.New()
	if err == nil {
		defer k.Close()
		var o *inspect.Observation
		if o, err = inspect.Look(cfg, k); err == nil {
			f.Observation = *o
		}
	}
	f.KernelErr = err
	check.Gather(&f, check.Env{})
	results := check.Run(f)
	ok, warn, fail := check.Counts(results)
	code := exitOK
	if fail > 0 {
		code = exitFail
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(checkJSON{Checks: results, OK: ok, Warn: warn, Fail: fail}); err != nil {
			fmt.Fprintf(stderr, "flatnet check: %v\n", err)
			return exitFail
		}
		return code
	}
	printChecks(stdout, results, colours(stdout))
	return code
}

// printChecks prints one line per check: its status, its name, what it
// found and, for a warn or fail, the fix.
func printChecks(w io.Writer, rs []check.Result, c palette) {
	width := 0
	for _, r := range rs {
		width = max(width, len(r.Name))
	}
	width = min(width, 28)
	for _, r := range rs {
		status := c.ok("ok  ")
		switch r.Status {
		case check.Warn:
			status = c.warn("WARN")
		case check.Fail:
			status = c.fail("FAIL")
		}
		line := fmt.Sprintf("%s  %-*s  %s", status, width, r.Name, r.Detail)
		if r.Fix != "" {
			line += " — fix: " + r.Fix
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	ok, warn, fail := check.Counts(rs)
	fmt.Fprintf(w, "%s: %d ok, %s, %s\n", text.Plural(len(rs), "check", "checks"), ok, text.Plural(warn, "warning", "warnings"), text.Plural(fail, "failure", "failures"))
}
