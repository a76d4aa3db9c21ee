package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/daemon"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// statusJSON is the fixed shape of `flatnet status --json`.
type statusJSON struct {
	Networks []netJSON `json:"networks"`
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
	Conflicts []netip.Addr `json:"conflicts"`
	ShimMAC   string       `json:"shim_mac,omitempty"`
	ShimMode  string       `json:"shim_mode,omitempty"`
	StateDir  string       `json:"state_dir"`
	Waiting   string       `json:"waiting,omitempty"`
	Held      bool         `json:"held,omitempty"`
	InSync    bool         `json:"in_sync"`
}

// statusCmd prints what is mirrored and what drifted; exit 1 on drift.
func statusCmd(cfg config.Config, asJSON bool, stdout, stderr io.Writer) int {
	k, err := netlinkx.New()
	if err != nil {
		fmt.Fprintf(stderr, "flatnet status: %v\n", err)
		return exitFail
	}
	defer k.Close()
	o, err := daemon.Observe(cfg, k)
	if err != nil {
		fmt.Fprintf(stderr, "flatnet status: %v\n", err)
		return exitFail
	}
	out := statusJSON{Networks: []netJSON{}}
	code := exitOK
	for i, st := range o.Plan.Networks {
		n := netJSON{
			Name: st.Name, Master: st.Master, Shim: st.Shim, ShimUp: st.ShimUp,
			Allocated: st.Allocated, Routed: st.Routed,
			Missing: nonNil(st.Missing), Stale: nonNil(st.Stale), Conflicts: nonNil(st.Conflicts),
			StateDir: o.Networks[i].StateDir, Waiting: st.Waiting, Held: st.Held, InSync: st.InSync(),
		}
		if l, ok := o.Snap.Link(st.Shim); ok {
			n.ShimMAC, n.ShimMode = l.MAC.String(), l.Kind+" "+l.MacvlanMode
		}
		if !n.InSync {
			code = exitFail
		}
		out.Networks = append(out.Networks, n)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return code
	}
	if len(out.Networks) == 0 {
		fmt.Fprintf(stdout, "no network to mirror: no macvlan + host-local network in %s and none in the configuration\n", cfg.CNIConfDir)
		return code
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tMASTER\tSHIM\tSHIM STATE\tALLOCATED\tROUTED\tMISSING\tSTALE\tCONFLICTS")
	for _, n := range out.Networks {
		state := "up"
		switch {
		case n.Waiting != "":
			state = "waiting"
		case n.ShimMAC == "":
			state = "missing"
		case !n.ShimUp:
			state = "down"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", n.Name, n.Master, n.Shim, state, n.Allocated, n.Routed, len(n.Missing), len(n.Stale), len(n.Conflicts))
	}
	tw.Flush()
	for _, n := range out.Networks {
		if n.Waiting != "" {
			fmt.Fprintf(stdout, "%s: %s\n", n.Name, n.Waiting)
		}
		list := func(what string, ips []netip.Addr) {
			if len(ips) > 0 {
				fmt.Fprintf(stdout, "%s: %s: %s\n", n.Name, what, joinAddrs(ips, 10))
			}
		}
		list("missing routes", n.Missing)
		list("stale routes", n.Stale)
		list("routes flatnet does not own", n.Conflicts)
		if n.Held {
			fmt.Fprintf(stdout, "%s: state dir %s unreadable; routes held as they are\n", n.Name, n.StateDir)
		}
	}
	for _, f := range o.Findings {
		fmt.Fprintln(stdout, f.Msg)
	}
	return code
}

func nonNil(ips []netip.Addr) []netip.Addr {
	if ips == nil {
		return []netip.Addr{}
	}
	return ips
}

// joinAddrs lists at most max addresses and counts the rest.
func joinAddrs(ips []netip.Addr, max int) string {
	var s []string
	for i, ip := range ips {
		if i == max {
			s = append(s, fmt.Sprintf("and %d more", len(ips)-max))
			break
		}
		s = append(s, ip.String())
	}
	return strings.Join(s, ", ")
}

var _ = reconcile.Protocol
