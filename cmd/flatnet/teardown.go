package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/flatnet/flatnet/internal/check"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/daemon"
	"github.com/flatnet/flatnet/internal/netlinkx"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// teardownCmd removes flatnet's routes and the shims it created, says what
// it removed, and leaves everything else: running it twice is harmless.
func teardownCmd(cfg config.Config, stdout, stderr io.Writer) int {
	k, err := netlinkx.New()
	if err != nil {
		fmt.Fprintf(stderr, "flatnet teardown: %v\n", err)
		return exitFail
	}
	defer k.Close()
	if pids := check.FlatnetPIDs(check.Env{}); len(pids) > 0 {
		fmt.Fprintf(stderr, "flatnet teardown: flatnet run (pid %s) is running here and will put the routes and shims back; stop it first (systemctl stop flatnet)\n", joinInts(pids))
	}
	done, err := daemon.Teardown(k, nil)
	routes, shims := 0, 0
	for _, op := range done {
		switch op.Kind {
		case reconcile.DelRoute:
			routes++
			fmt.Fprintf(stdout, "removed route %s dev %s\n", op.Dst, op.Dev)
		case reconcile.DelShim:
			shims++
			fmt.Fprintf(stdout, "removed shim %s\n", op.Dev)
		}
	}
	// Shims of the configured networks that flatnet adopted but did not
	// make stay, as do their routes if they are not flatnet's.
	if o, oerr := daemon.Observe(cfg, k); oerr == nil {
		seen := map[string]bool{}
		for _, n := range o.Networks {
			if l, ok := o.Snap.Link(n.Shim); ok && !seen[n.Shim] && l.Alias != reconcile.ShimAlias {
				seen[n.Shim] = true
				fmt.Fprintf(stdout, "left %s in place: flatnet did not create it (ip link del %s removes it)\n", n.Shim, n.Shim)
			}
		}
	}
	switch {
	case routes+shims == 0 && err == nil:
		fmt.Fprintf(stdout, "nothing to remove: no route with proto flatnet (%d) and no shim created by flatnet\n", reconcile.Protocol)
	case routes+shims > 0:
		fmt.Fprintf(stdout, "removed %s and %s\n", plural(routes, "route", "routes"), plural(shims, "shim", "shims"))
	}
	if err != nil {
		fmt.Fprintf(stderr, "flatnet teardown: some removals failed: %v\n", err)
		return exitFail
	}
	return exitOK
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
