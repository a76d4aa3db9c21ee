package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// DHCPServer is dnsmasq serving DHCP (and nothing else) on the LAN bridge,
// for pods whose IPAM is the CNI dhcp plugin (StartDHCPServer).
type DHCPServer struct {
	// First and Last bound the addresses it leases.
	First, Last netip.Addr
	// Leases is its lease file, Conf its configuration.
	Leases, Conf string
	// Proc is dnsmasq, a process of the lab: stopped by PID.
	Proc *Process
}

// StartDHCPServer runs dnsmasq in the LAN namespace as a DHCP server on the
// bridge, leasing first–last with the LAN's prefix length, the LAN gateway
// as router, for an hour. dnsmasq reads no configuration of the host
// (--conf-file names the lab's), serves no DNS (port 0), keeps its leases
// and pid file in the lab's directory and logs to <Dir>/dnsmasq.log. It
// runs with --no-daemon: in the foreground as the lab's child, and as
// root with its credentials unchanged. Without it (even with
// --keep-in-foreground) dnsmasq changes its group and capabilities, which
// clears the parent-death signal Start gives every process, so it would
// outlive a test that is killed. It returns once dnsmasq says it serves
// the range.
func (l *Lab) StartDHCPServer(first, last netip.Addr) (*DHCPServer, error) {
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		return nil, fmt.Errorf("StartDHCPServer needs dnsmasq: %w", err)
	}
	lan := l.Opts.GatewayAddr
	if !lan.Contains(first) || !lan.Contains(last) || last.Less(first) || !first.Is4() {
		return nil, fmt.Errorf("StartDHCPServer: %s–%s is not an IPv4 range of the LAN %s", first, last, lan.Masked())
	}
	s := &DHCPServer{First: first, Last: last, Leases: filepath.Join(l.Dir, "dnsmasq.leases"), Conf: filepath.Join(l.Dir, "dnsmasq.conf")}
	mask := net.IP(net.CIDRMask(lan.Bits(), 32)).String()
	conf := strings.Join([]string{
		"# dnsmasq of a flatnet test lab: DHCP on the LAN bridge only",
		"port=0",
		"interface=" + l.Bridge,
		"bind-interfaces",
		"no-resolv",
		"no-hosts",
		"dhcp-authoritative",
		"log-dhcp",
		fmt.Sprintf("dhcp-range=%s,%s,%s,1h", first, last, mask),
		"dhcp-option=option:router," + lan.Addr().String(),
		"dhcp-leasefile=" + s.Leases,
		"pid-file=" + filepath.Join(l.Dir, "dnsmasq.pid"),
		"",
	}, "\n")
	if err := os.WriteFile(s.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := l.Start(l.LAN, "dnsmasq", "dnsmasq", "--no-daemon", "--conf-file="+s.Conf)
	if err != nil {
		return nil, err
	}
	s.Proc = p
	ready := "DHCP, IP range " + first.String()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.Log(), ready) {
		if p.Exited() || time.Now().After(deadline) {
			err := errors.New("did not say it serves the range")
			if p.Exited() {
				err = fmt.Errorf("exited: %v", p.Wait())
			}
			_ = p.Close()
			return nil, fmt.Errorf("dnsmasq %w; its log:\n%s", err, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s, nil
}

// Leased reports whether the lease file holds addr.
func (s *DHCPServer) Leased(addr netip.Addr) (bool, error) {
	b, err := os.ReadFile(s.Leases)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// expiry MAC address hostname client-id, one lease a line
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == addr.String() {
			return true, nil
		}
	}
	return false, nil
}
