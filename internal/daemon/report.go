package daemon

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/reconcile"
)

// logOp logs one change, as an operator reads it.
func logOp(log *slog.Logger, op reconcile.Op) {
	attrs := make([]any, 0, 14) // room for every pair below: one allocation, not one per append
	attrs = append(attrs, "dev", op.Dev)
	if op.Network != "" {
		attrs = append(attrs, "network", op.Network)
	}
	switch op.Kind {
	case reconcile.AddRoute, reconcile.ReplaceRoute, reconcile.DelRoute:
		attrs = append(attrs, "ip", op.Dst.Addr().String())
		who := ""
		if op.Owner.ContainerID != "" {
			attrs = append(attrs, "container", op.Owner.ContainerID)
			who = " for container " + short(op.Owner.ContainerID)
			if op.Owner.IfName != "" {
				attrs = append(attrs, "ifname", op.Owner.IfName)
				who += "/" + op.Owner.IfName
			}
		}
		verb := map[reconcile.OpKind]string{reconcile.AddRoute: "added", reconcile.ReplaceRoute: "replaced", reconcile.DelRoute: "removed"}[op.Kind]
		log.Info(fmt.Sprintf("route %s dev %s %s%s", op.Dst, op.Dev, verb, who), attrs...)
	case reconcile.AddShim:
		log.Info(fmt.Sprintf("shim %s created on %s (macvlan bridge, %s)", op.Dev, op.Master, op.MAC), append(attrs, "master", op.Master, "mac", op.MAC.String())...)
	case reconcile.DelShim:
		log.Info(fmt.Sprintf("shim %s removed", op.Dev), attrs...)
	case reconcile.SetUp:
		log.Info(fmt.Sprintf("shim %s was down; set up", op.Dev), attrs...)
	case reconcile.SetMTU:
		log.Info(fmt.Sprintf("shim %s MTU set to %d, the master's", op.Dev, op.MTU), attrs...)
	case reconcile.ConfigureShim:
		log.Info(fmt.Sprintf("shim %s configured: arp_filter 1 so the LAN never sees it answer for the node, arp_ignore 0 and proxy_ndp 1 so pods do%s", op.Dev, map[reconcile.Guard]string{
			reconcile.GuardFilter:  ", proxy_delay 0 so they get the answer at once",
			reconcile.GuardShim:    ", proxy_delay 0 so they get the answer at once",
			reconcile.GuardAddress: ", arp_announce 2 so its requests name its own address",
		}[op.Guard]), attrs...)
	case reconcile.AddSender:
		log.Info(fmt.Sprintf("shim %s given %s: its ARP requests name that address, never the node's", op.Dev, reconcile.SenderAddr), attrs...)
	case reconcile.DelSender:
		log.Info(fmt.Sprintf("%s removed from shim %s", reconcile.SenderAddr, op.Dev), attrs...)
	case reconcile.SetFilter:
		if len(op.Drops) == 0 && len(op.Shims) == 0 {
			log.Info(fmt.Sprintf("LAN guard's netdev chains removed (nftables table netdev %s)", reconcile.FilterTable))
			break
		}
		if len(op.Drops) > 0 {
			var parts []string
			for _, d := range op.Drops {
				parts = append(parts, d.MAC+" on "+d.Master)
			}
			log.Info("egress filter set: frames from "+strings.Join(parts, ", ")+" never reach the LAN", "dev", op.Drops[0].Master)
		}
		if len(op.Shims) > 0 {
			log.Info(fmt.Sprintf("ingress chain set on %s: its IPv6 proxy answers only pods routed through it, never the LAN", strings.Join(op.Shims, ", ")), "dev", op.Shims[0])
		}
	case reconcile.SetProbe:
		if len(op.Shims) == 0 {
			log.Info(fmt.Sprintf("LAN guard's ARP rules removed (nftables table arp %s)", reconcile.FilterTable))
			break
		}
		log.Info(fmt.Sprintf("ARP rule set for %s: the ARP requests leave as probes, naming no address of the node", strings.Join(op.Shims, ", ")), "dev", op.Shims[0])
	case reconcile.AddProxy:
		log.Info(fmt.Sprintf("shim %s answers pods' neighbour solicitations for %s (proxy)", op.Dev, op.Dst.Addr()), append(attrs, "ip", op.Dst.Addr().String())...)
	case reconcile.DelProxy:
		log.Info(fmt.Sprintf("proxy for %s on %s removed", op.Dst.Addr(), op.Dev), append(attrs, "ip", op.Dst.Addr().String())...)
	case reconcile.FlushNeighs:
		log.Info(fmt.Sprintf("shim %s has its carrier back; its neighbour entries flushed so pods are reached at once, not at the next ARP retry", op.Dev), attrs...)
	case reconcile.FlushNeigh:
		log.Debug(fmt.Sprintf("neighbour entry for %s on %s flushed", op.Dst.Addr(), op.Dev), append(attrs, "ip", op.Dst.Addr().String())...)
	}
}

// short abbreviates a container id the way operators read them.
func short(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}

// statusLine is the STATUS= line: a few words per network.
func statusLine(sts []reconcile.NetSummary, cfg config.Config) string {
	if len(sts) == 0 {
		return fmt.Sprintf("no macvlan network in %s", cfg.CNIConfDir)
	}
	var parts []string
	for _, s := range sts {
		switch {
		case s.Waiting != "":
			parts = append(parts, fmt.Sprintf("%s: %s", s.Name, s.Waiting))
		default:
			p := fmt.Sprintf("%s: %d pod routes via %s (master %s)", s.Name, s.Routed, s.Shim, s.Master)
			if s.NotRouted > 0 {
				p += fmt.Sprintf(", %d not routed", s.NotRouted)
			}
			if s.Held {
				p += ", state dir unreadable"
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}

// GuardSummary says, for the log and flatnet check, what guard g protects
// and what is lost: setting is lan_guard, k what the kernel allows of the
// guards, why what ChooseGuard said of it.
func GuardSummary(g reconcile.Guard, setting string, k reconcile.GuardKernel, why string) (slog.Level, string) {
	switch g {
	case reconcile.GuardShim:
		return slog.LevelInfo, fmt.Sprintf("LAN guard: the shims' ARP requests leave as probes naming no address of the node (nftables table arp %[1]s), and their IPv6 proxies answer only pods (an ingress chain on each shim with proxy entries, table netdev %[1]s): the LAN never learns a shim's MAC for the node, pods get the node's IPv6 answers at once, and no hook sits on the NICs' own traffic", reconcile.FilterTable)
	case reconcile.GuardFilter:
		msg := fmt.Sprintf("LAN guard: an nftables egress filter on each master drops the shim's own frames (table netdev %s), so the LAN never hears a shim, and the shim answers pods' IPv6 neighbour solicitations at once; every frame the node sends through the master passes it", reconcile.FilterTable)
		if setting == "auto" && k.Shim != nil {
			msg += fmt.Sprintf(" (the shim guard, which costs the node's own traffic nothing, is not available: %v)", k.Shim)
		}
		return slog.LevelInfo, msg
	case reconcile.GuardAddress:
		msg := fmt.Sprintf("LAN guard: the shims send their ARP requests from %s (arp_announce 2), so the LAN keeps the NIC's MAC for the node", reconcile.SenderAddr.Addr())
		if setting == "auto" && k.Shim != nil && k.Filter != nil {
			msg += fmt.Sprintf("; no shim guard: %v; no egress filter: %v. Lost without them: a pod's first IPv6 packet to the node waits up to 0.8 s for the shim's proxy answer, the shim's IPv6 neighbour messages reach the LAN, and pods with rp_filter 1 or 2 and no route to %s through their macvlan interface answer the node only after they spoke to it", k.Shim, k.Filter, reconcile.SenderAddr.Addr())
			return slog.LevelWarn, msg
		}
		return slog.LevelInfo, msg
	}
	msg := "LAN guard off: when the node first reaches a pod, the shim's ARP request tells the LAN the shim's MAC for the node's address, and with rp_filter 1 or 2 the node drops what the LAN then sends it, for seconds"
	if why != "" {
		msg = why + "; " + msg
	}
	return slog.LevelWarn, msg
}
