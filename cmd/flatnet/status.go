package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/inspect"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/text"
)

// statusJSON is `flatnet status --json`. The shape of PRODUCT.md is fixed;
// fields after it are additions.
type statusJSON struct {
	Networks []netJSON `json:"networks"`
	// Unmatched are state directories holding allocations no known
	// network explains: pods the node cannot reach. Never silent: exit 1.
	Unmatched []unmatchedJSON `json:"unmatched"`
	// Problems are what flatnet would log now: addresses it will not
	// route, CNI files it skips, shims it cannot use.
	Problems []string `json:"problems"`
}

type unmatchedJSON struct {
	Dir       string `json:"dir"`
	Allocated int    `json:"allocated"`
}

type netJSON struct {
	Name      string       `json:"name"`
	Master    string       `json:"master"`
	Shim      string       `json:"shim"`
	ShimUp    bool         `json:"shim_up"`
	Allocated int          `json:"allocated"`
	Routed    int          `json:"routed"`
	Missing   []netip.Addr `json:"missing"`
	Stale     []netip.Addr `json:"stale"`

	// Additions.
	InSync bool `json:"in_sync"`
	// ShimState is "up", "down", "missing" or "waiting".
	ShimState string `json:"shim_state"`
	ShimMAC   string `json:"shim_mac,omitempty"`
	ShimMode  string `json:"shim_mode,omitempty"` // "bridge", …, for a macvlan shim
	ShimOwner string `json:"shim_owner,omitempty"`
	// Conflicts are allocated addresses with a route flatnet does not
	// own; ConflictRoutes says what those routes are.
	Conflicts      []netip.Addr `json:"conflicts"`
	ConflictRoutes []string     `json:"conflict_routes"`
	StateDir       string       `json:"state_dir"`
	Source         string       `json:"source"`
	Waiting        string       `json:"waiting,omitempty"`
	Held           bool         `json:"held,omitempty"`
}

// statusCmd prints what is mirrored and what drifted; exit 1 on drift or a
// missing shim.
func statusCmd(cfg config.Config, asJSON bool, stdout, stderr io.Writer) int {
	k, err := netlinkx.New()
	if err != nil {
		fmt.Fprintf(stderr, "flatnet status: %v\n", err)
		return exitFail
	}
	defer k.Close()
	o, err := inspect.Look(cfg, k)
	if err != nil {
		fmt.Fprintf(stderr, "flatnet status: %v\n", err)
		return exitFail
	}
	out := buildStatus(o)
	code := exitOK
	for _, n := range out.Networks {
		if !n.InSync {
			code = exitFail
		}
	}
	if len(out.Unmatched) > 0 {
		code = exitFail
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "flatnet status: %v\n", err)
			return exitFail
		}
		return code
	}
	printStatus(stdout, out, cfg, colours(stdout))
	return code
}

// buildStatus turns an observation into the status report.
func buildStatus(o *inspect.Observation) statusJSON {
	out := statusJSON{Networks: []netJSON{}, Unmatched: []unmatchedJSON{}, Problems: []string{}}
	for _, u := range o.Unmatched {
		out.Unmatched = append(out.Unmatched, unmatchedJSON{Dir: u.Dir, Allocated: u.Allocated})
	}
	for i, st := range o.Plan.Networks {
		n := netJSON{
			Name: st.Name, Master: st.Master, Shim: st.Shim, ShimUp: st.ShimUp,
			Allocated: st.Allocated, Routed: st.Routed,
			Missing: nonNil(st.Missing), Stale: nonNil(st.Stale), Conflicts: nonNil(st.Conflicts),
			ConflictRoutes: []string{},
			StateDir:       o.Networks[i].StateDir, Source: st.Source,
			Waiting: st.Waiting, Held: st.Held, InSync: st.InSync(),
		}
		l, exists := o.Snap.Link(st.Shim)
		switch {
		case st.Waiting != "":
			n.ShimState = "waiting"
		case !exists:
			n.ShimState = "missing"
		case !l.Up:
			n.ShimState = "down"
		default:
			n.ShimState = "up"
		}
		if exists {
			n.ShimMAC, n.ShimMode = l.MAC.String(), l.MacvlanMode
			if l.Kind != "macvlan" {
				n.ShimMode = l.Kind
			}
			n.ShimOwner = "flatnet"
			if l.Alias != reconcile.ShimAlias {
				n.ShimOwner = "adopted"
			}
		}
		for _, ip := range st.Conflicts {
			for _, r := range o.Snap.Routes {
				if r.Dst.Addr() == ip && r.Dst.IsSingleIP() && r.Protocol != reconcile.Protocol {
					n.ConflictRoutes = append(n.ConflictRoutes, fmt.Sprintf("%s dev %s proto %d", r.Dst, r.Dev, r.Protocol))
				}
			}
		}
		out.Networks = append(out.Networks, n)
	}
	for _, f := range append(slices.Clone(o.Resolve), o.Plan.Findings...) {
		if f.Kind == reconcile.FindForeign || f.Kind == reconcile.FindHeld {
			continue // in the network's own lines
		}
		out.Problems = append(out.Problems, f.Msg)
	}
	for _, p := range o.CNIProblems {
		out.Problems = append(out.Problems, fmt.Sprintf("CNI config %s skipped: %v", p.File, p.Err))
	}
	for _, p := range o.CacheProblems {
		out.Problems = append(out.Problems, fmt.Sprintf("CNI cache: %v", p))
	}
	if o.CNIDirErr != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("cannot read the CNI config directory: %v", o.CNIDirErr))
	}
	for _, dir := range slices.Sorted(maps.Keys(o.Bad)) {
		out.Problems = append(out.Problems, fmt.Sprintf("%s: %s not usable as allocations (flatnet check lists them)", dir, text.Plural(len(o.Bad[dir]), "entry", "entries")))
	}
	return out
}

// printStatus prints the human table and the lines under it.
func printStatus(w io.Writer, out statusJSON, cfg config.Config, c palette) {
	if len(out.Networks) == 0 {
		fmt.Fprintf(w, "no network to mirror: no macvlan + host-local network in %s, in libcni's cache (%s) or in the configuration\n", cfg.CNIConfDir, strings.Join(cfg.CNICacheDirs, ", "))
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NETWORK\tMASTER\tSHIM\tSHIM STATE\tMODE\tMAC\tALLOCATED\tROUTED\tMISSING\tSTALE\tFOREIGN\tSTATUS")
		for _, n := range out.Networks {
			status := c.ok("in sync")
			switch {
			case n.Waiting != "":
				status = c.warn("waiting")
			case n.ShimState != "up":
				status = c.fail("shim " + n.ShimState)
			case !n.InSync:
				status = c.fail("drift")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", n.Name, dash(n.Master), n.Shim, n.ShimState, dash(n.ShimMode), dash(n.ShimMAC),
				n.Allocated, n.Routed, len(n.Missing), len(n.Stale), len(n.Conflicts), status)
		}
		tw.Flush()
	}
	drift := false
	for _, n := range out.Networks {
		if n.Waiting != "" {
			fmt.Fprintf(w, "%s: %s\n", n.Name, n.Waiting)
		}
		if n.Held {
			fmt.Fprintf(w, "%s: state dir %s cannot be read; routes held as they are\n", n.Name, n.StateDir)
		}
		if len(n.Missing) > 0 {
			fmt.Fprintf(w, "%s: %s: %s\n", n.Name, c.fail("no route yet"), text.Addrs(n.Missing, 10))
		}
		if len(n.Stale) > 0 {
			fmt.Fprintf(w, "%s: %s: %s\n", n.Name, c.warn("stale routes"), text.Addrs(n.Stale, 10))
		}
		if len(n.ConflictRoutes) > 0 {
			fmt.Fprintf(w, "%s: %s: %s\n", n.Name, c.warn("routes flatnet does not own, left alone"), strings.Join(text.Head(n.ConflictRoutes, 10), "; "))
		}
		drift = drift || !n.InSync || len(n.Conflicts) > 0
	}
	for _, u := range out.Unmatched {
		fmt.Fprintf(w, "%s: %s in a state directory no known network explains: the node cannot reach those pods\n", c.fail(u.Dir), text.Plural(u.Allocated, "allocation", "allocations"))
		drift = true
	}
	for _, p := range out.Problems {
		fmt.Fprintln(w, p)
		drift = true
	}
	if drift {
		fmt.Fprintln(w, "flatnet check names the causes and their fixes.")
	}
}

// palette colours words for a terminal; the zero value does not.
type palette struct{ on bool }

// colours returns the palette for w: colour only on a terminal, and never
// with NO_COLOR set (https://no-color.org) or TERM=dumb.
func colours(w io.Writer) palette {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return palette{}
	}
	f, ok := w.(*os.File)
	if !ok {
		return palette{}
	}
	st, err := f.Stat()
	return palette{on: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

func (p palette) paint(code, s string) string {
	if !p.on {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p palette) ok(s string) string   { return p.paint("32", s) }
func (p palette) warn(s string) string { return p.paint("33", s) }
func (p palette) fail(s string) string { return p.paint("1;31", s) }

func nonNil(ips []netip.Addr) []netip.Addr {
	if ips == nil {
		return []netip.Addr{}
	}
	return ips
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
