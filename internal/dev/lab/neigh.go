package lab

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Neighbour is an entry of a namespace's neighbour table (ARP for IPv4,
// NDP for IPv6), as `ip neigh` shows it.
type Neighbour struct {
	IP    netip.Addr
	Dev   string
	MAC   net.HardwareAddr // nil while unresolved
	State string           // "REACHABLE", "STALE", "FAILED", ...
}

// String formats the entry like `ip neigh`.
func (n Neighbour) String() string {
	mac := ""
	if n.MAC != nil {
		mac = " lladdr " + n.MAC.String()
	}
	return fmt.Sprintf("%s dev %s%s %s", n.IP, n.Dev, mac, n.State)
}

// Neighbours lists a lab namespace's neighbour table, IPv4 and IPv6, by
// running `ip -j neigh show` there.
func (l *Lab) Neighbours(ns string) ([]Neighbour, error) {
	out, err := l.Exec(ns, "ip", "-j", "neigh", "show")
	if err != nil {
		return nil, err
	}
	return parseNeigh([]byte(out))
}

// parseNeigh reads `ip -j neigh show`.
func parseNeigh(b []byte) ([]Neighbour, error) {
	var raw []struct {
		Dst    string   `json:"dst"`
		Dev    string   `json:"dev"`
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("ip -j neigh: %w: %s", err, b)
	}
	out := make([]Neighbour, 0, len(raw))
	for _, r := range raw {
		ip, err := netip.ParseAddr(r.Dst)
		if err != nil {
			continue
		}
		n := Neighbour{IP: ip, Dev: r.Dev, State: strings.Join(r.State, ",")}
		if r.LLAddr != "" {
			n.MAC, _ = net.ParseMAC(r.LLAddr)
		}
		out = append(out, n)
	}
	return out, nil
}

// FlushNeighbour removes a lab namespace's neighbour entry for ip, if any,
// so that the next packet to ip solicits it afresh.
func (l *Lab) FlushNeighbour(ns string, ip netip.Addr) error {
	_, err := l.Exec(ns, "ip", "neigh", "flush", "to", ip.String())
	return err
}
