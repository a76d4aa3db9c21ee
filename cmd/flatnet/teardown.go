package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/flatnet/flatnet/internal/check"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/daemon"
	"github.com/flatnet/flatnet/internal/inspect"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/sd"
	"github.com/flatnet/flatnet/internal/text"
)

// teardownCmd removes everything flatnet added to the node (its routes,
// the shims it created, the address and proxy entries it gave shims it
// adopted, its nftables tables), says what it removed, and leaves
// everything else: running it twice is harmless.
//
// Removal never depends on the configuration: what flatnet adds carries
// its marks (route protocol 97, the shim alias, 192.0.0.8 on a shim, the
// table's name), so a missing, unreadable or invalid file is reported and
// ignored; the package's removal scripts rely on that. A valid file only
// adds the names of shims flatnet adopted before it marked them.
func teardownCmd(cfg config.Config, cfgErr error, stdout, stderr io.Writer) int {
	if cfgErr != nil {
		fmt.Fprintf(stderr, "flatnet teardown: configuration ignored: %v\n", cfgErr)
		cfg = config.Default()
	}
	k, err := netlinkx.New()
	if err != nil {
		fmt.Fprintf(stderr, "flatnet teardown: %v\n", err)
		return exitFail
	}
	defer k.Close()
	if pids := check.FlatnetPIDs(check.Env{}); len(pids) > 0 {
		fmt.Fprintf(stderr, "flatnet teardown: flatnet run (pid %s) is running here and will put the routes and shims back; stop it first (systemctl stop flatnet)\n", joinInts(pids))
	}
	mid := sd.MachineID()
	kp := lookKept(cfg, k, mid)
	done, err := daemon.Teardown(k, nil, mid, kp.adopted...)
	routes, shims := printRemoved(stdout, done)
	for _, l := range kp.left {
		fmt.Fprintln(stdout, l)
	}
	if kp.filter != nil {
		printLeftTable(stdout, "netdev", kp.filter.Foreign, kp.filter.Other)
	}
	if kp.probes != nil {
		printLeftTable(stdout, "arp", kp.probes.Foreign, kp.probes.Other)
	}
	switch {
	case len(done) == 0 && err == nil:
		fmt.Fprintf(stdout, "nothing to remove: no route with proto flatnet (%d), no shim created by flatnet, no LAN guard table\n", reconcile.Protocol)
	case routes+shims > 0:
		fmt.Fprintf(stdout, "removed %s and %s\n", text.Plural(routes, "route", "routes"), text.Plural(shims, "shim", "shims"))
	}
	if err != nil {
		fmt.Fprintf(stderr, "flatnet teardown: some removals failed: %v\n", err)
		return exitFail
	}
	return exitOK
}

// kept is what a look at the node before teardown finds that it leaves.
type kept struct {
	// adopted are the shims of the configured networks, which flatnet
	// may use without having created them.
	adopted []string
	// left says what carries one of flatnet's marks but stays.
	left []string
	// filter and probes are flatnet's nftables tables, nil when there
	// are none: what in them is not flatnet's stays.
	filter *reconcile.Filter
	probes *reconcile.ProbeTable
}

// lookKept looks at the node for what teardown leaves. The shims flatnet
// uses but did not create stay, as do their routes if they are not
// flatnet's; only what flatnet added to them goes. What carries one of
// flatnet's marks but is not flatnet's (its alias on a device it did not
// make, protocol 97 on a device it does not manage) stays too, and is
// said. A look that fails leaves nothing to say: removal goes by the
// marks alone.
func lookKept(cfg config.Config, k *netlinkx.Kernel, mid string) kept {
	var kp kept
	o, err := inspect.Look(cfg, k)
	if err != nil {
		return kp
	}
	kp.filter, kp.probes = o.Snap.Filter, o.Snap.Probes
	for _, n := range o.Networks {
		kp.adopted = append(kp.adopted, n.Shim)
	}
	managed := reconcile.TeardownManaged(o.Snap, mid, kp.adopted...)
	for _, l := range o.Snap.Links {
		switch {
		case managed[l.Name] && !reconcile.OwnShim(l, o.Snap, mid):
			kp.left = append(kp.left, fmt.Sprintf("left %s in place: flatnet did not create it (ip link del %s removes it)", l.Name, l.Name))
		case l.Alias == reconcile.ShimAlias && !managed[l.Name]:
			kp.left = append(kp.left, fmt.Sprintf("left %s in place: it carries flatnet's alias, but flatnet did not make it (%s, not flatnet's MAC for it)", l.Name, reconcile.DescribeLink(l, o.Snap)))
		}
	}
	for _, r := range o.Snap.Routes {
		if r.Protocol == reconcile.Protocol && !managed[r.Dev] {
			kp.left = append(kp.left, fmt.Sprintf("left route %s dev %s in place: protocol %d, but not on a shim flatnet set up", r.Dst, r.Dev, reconcile.Protocol))
		}
	}
	return kp
}

// printRemoved says what done removed, one line each, and counts the
// routes and shims among it.
func printRemoved(w io.Writer, done []reconcile.Op) (routes, shims int) {
	for _, op := range done {
		switch op.Kind {
		case reconcile.DelRoute:
			routes++
			fmt.Fprintf(w, "removed route %s dev %s\n", op.Dst, op.Dev)
		case reconcile.DelShim:
			shims++
			fmt.Fprintf(w, "removed shim %s\n", op.Dev)
		case reconcile.DelSender:
			fmt.Fprintf(w, "removed address %s from %s\n", reconcile.SenderAddr, op.Dev)
		case reconcile.DelProxy:
			fmt.Fprintf(w, "removed proxy neighbour %s on %s\n", op.Dst.Addr(), op.Dev)
		case reconcile.SetFilter:
			fmt.Fprintf(w, "removed LAN guard: nftables table netdev %s\n", reconcile.FilterTable)
		case reconcile.SetProbe:
			fmt.Fprintf(w, "removed LAN guard: nftables table arp %s\n", reconcile.FilterTable)
		}
	}
	return routes, shims
}

// printLeftTable says what teardown left of flatnet's nftables table of
// family: all of it when flatnet did not create it (foreign), else the
// chains in it that are not flatnet's.
func printLeftTable(w io.Writer, family string, foreign bool, other []string) {
	if foreign {
		fmt.Fprintf(w, "left nftables table %[2]s %[1]s in place: flatnet did not create it (nft delete table %[2]s %[1]s removes it)\n", reconcile.FilterTable, family)
		return
	}
	for _, ch := range other {
		fmt.Fprintf(w, "left chain %[2]s in nftables table %[3]s %[1]s in place, and so the table: flatnet did not create it (nft delete chain %[3]s %[1]s %[2]s removes it)\n", reconcile.FilterTable, ch, family)
	}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
