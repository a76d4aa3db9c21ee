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

	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
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
	// IPAM is the network's IPAM plugin type.
	IPAM string `json:"ipam"`
	// Addresses are the network's allocations, each with where flatnet
	// learned it (a host-local state file, libcni's cached result), its
	// container, and whether the node routes it through the shim.
	Addresses []addrJSON `json:"addresses"`
	// Attachments are the network's attachments in libcni's cache, with
	// their container and what flatnet makes of them.
	Attachments []attJSON `json:"attachments"`
}

type addrJSON struct {
	IP        netip.Addr `json:"ip"`
	Sources   []string   `json:"sources"` // "state file", "cache result"
	Container string     `json:"container"`
	IfName    string     `json:"ifname,omitempty"`
	Routed    bool       `json:"routed"`
}

type attJSON struct {
	Container string       `json:"container"`
	IfName    string       `json:"ifname"`
	NetNS     string       `json:"netns,omitempty"`
	Cache     string       `json:"cache"`
	Addresses []netip.Addr `json:"addresses"`
	// State is "routed" (every address), "not routed" (some address is
	// not: see the network's problems), "gone" (its network namespace is:
	// a stale entry, never routed) or "no address" (nothing to route: a
	// macvlan without IPAM).
	State string `json:"state"`
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
		n.IPAM = o.Networks[i].IPAM
		n.Addresses, n.Attachments = addresses(o, o.Networks[i])
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
		if slices.ContainsFunc(o.CNI, func(n cni.Network) bool { return n.File == p.File }) {
			// The daemon's memory: a file that stopped parsing.
			out.Problems = append(out.Problems, fmt.Sprintf("CNI config %s: %v (its networks are kept as it defined them before)", p.File, p.Err))
			continue
		}
		out.Problems = append(out.Problems, fmt.Sprintf("CNI config %s skipped: %v", p.File, p.Err))
	}
	for _, p := range o.CacheProblems {
		out.Problems = append(out.Problems, fmt.Sprintf("CNI cache: %v", p))
	}
	if o.CNIDirErr != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("cannot read the CNI config directory: %v", o.CNIDirErr))
	}
	if o.MemoryErr != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("cannot read the daemon's memory of the node, so networks it keeps from before (of a CNI file that stopped parsing, or known only from libcni's cache) may be missing here: %v", o.MemoryErr))
	}
	for _, dir := range slices.Sorted(maps.Keys(o.Bad)) {
		out.Problems = append(out.Problems, fmt.Sprintf("%s: %s not usable as allocations (flatnet check lists them)", dir, text.Plural(len(o.Bad[dir]), "entry", "entries")))
	}
	return out
}

// addresses lists nw's allocations with their sources, and its cached
// attachments, from the observation.
func addresses(o *inspect.Observation, nw reconcile.Network) ([]addrJSON, []attJSON) {
	routed := map[netip.Addr]bool{}
	for _, r := range o.Snap.Routes {
		if r.Protocol == reconcile.Protocol && r.Dev == nw.Shim && r.Dst.IsSingleIP() {
			routed[r.Dst.Addr()] = true
		}
	}
	byIP := map[netip.Addr]*addrJSON{}
	get := func(ip netip.Addr, owner hostlocal.Owner) *addrJSON {
		a := byIP[ip]
		if a == nil {
			a = &addrJSON{IP: ip, Sources: []string{}, Container: owner.ContainerID, IfName: owner.IfName, Routed: routed[ip]}
			byIP[ip] = a
		}
		return a
	}
	if nw.StateDir != "" {
		for ip, owner := range o.States[nw.StateDir].Allocs {
			a := get(ip, owner)
			a.Sources = append(a.Sources, "state file")
		}
	}
	for ip, l := range o.Results[nw.Name] {
		a := get(ip, l.Owner)
		a.Sources = append(a.Sources, "cache result")
	}
	addrs := make([]addrJSON, 0, len(byIP))
	for _, ip := range slices.SortedFunc(maps.Keys(byIP), netip.Addr.Compare) {
		addrs = append(addrs, *byIP[ip])
	}
	atts := []attJSON{}
	for _, a := range o.Disco.Attachments[nw.Name] {
		j := attJSON{Container: a.ContainerID, IfName: a.IfName, NetNS: a.NetNS, Cache: a.Path, Addresses: []netip.Addr{}, State: "routed"}
		for _, x := range a.Addrs {
			j.Addresses = append(j.Addresses, x.Prefix.Addr())
			if !routed[x.Prefix.Addr()] {
				j.State = "not routed"
			}
		}
		switch {
		case a.Gone:
			j.State = "gone"
		case len(a.Addrs) == 0:
			j.State = "no address"
		}
		atts = append(atts, j)
	}
	return addrs, atts
}

// printStatus prints the human table and the lines under it.
func printStatus(w io.Writer, out statusJSON, cfg config.Config, c palette) {
	if len(out.Networks) == 0 {
		fmt.Fprintf(w, "no network to mirror: no macvlan network in %s, in libcni's cache (%s) or in the configuration\n", cfg.CNIConfDir, strings.Join(cfg.CNICacheDirs, ", "))
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
		files, results := 0, 0
		for _, a := range n.Addresses {
			for _, src := range a.Sources {
				if src == "state file" {
					files++
				} else {
					results++
				}
			}
		}
		if results > 0 {
			fmt.Fprintf(w, "%s: addresses learnt from %d state files and %d cached results (flatnet status --json lists each)\n", n.Name, files, results)
		}
		for _, a := range n.Attachments {
			who := text.Printable(shortID(a.Container) + "/" + a.IfName)
			switch a.State {
			case "gone":
				fmt.Fprintf(w, "%s: %s %s: its network namespace %s is gone (its CNI DEL never ran); not routed\n", n.Name, c.warn("stale attachment"), who, a.NetNS)
			case "no address":
				fmt.Fprintf(w, "%s: %s %s: no address known (IPAM %s)\n", n.Name, c.warn("not routable"), who, dash(n.IPAM))
			}
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

// shortID cuts a container id to 12 characters, as runtimes print it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
