package main

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// firstPods is how many new pods the first-packet section makes per guard.
const firstPods = 20

// firstPackets measures the node's first packet to a new pod: a
// dual-stack lab like the seed's, flatnet running, then firstPods pods made
// one after another by the real plugins; once a pod is routed, the node
// pings each of its addresses once and ping's round trip is the figure. It
// includes both sides' neighbour resolution: the node resolving the pod
// through the shim, and the pod resolving the node, which for IPv6 the
// shim's proxy entry answers. flatnet runs with lan_guard = "auto" (the
// shim guard here: proxy_delay 0, the LAN's solicitations dropped on the
// shim's ingress) and, for comparison, with "filter" (proxy_delay 0, the
// shim's answers to the LAN dropped on the master's egress) and "off" (the
// kernel's proxy_delay, up to 0.8 s).
func (b *bench) firstPackets() error {
	for _, guard := range []string{"auto", "filter", "off"} {
		v4, v6, err := b.firstPacketsWith(guard)
		if err != nil {
			return fmt.Errorf("lan_guard %s: %w", guard, err)
		}
		b.res.first[guard] = [2][]time.Duration{v4, v6}
	}
	return nil
}

// firstPacketsWith runs one lab with lan_guard = guard.
func (b *bench) firstPacketsWith(guard string) (v4, v6 []time.Duration, err error) {
	b.progressf("first packet to %d new pods, lan_guard %s", firstPods, guard)
	l, err := lab.New(lab.Options{
		TempDir: b.cfg.tmpDir,
		Ranges: []lab.Range{lab.SeedRange(), {
			Subnet:     netip.MustParsePrefix("fd00::/64"),
			RangeStart: netip.MustParseAddr("fd00::1:2"), RangeEnd: netip.MustParseAddr("fd00::1:ff"),
			Gateway: netip.MustParseAddr("fd00::1"),
		}},
	})
	if err != nil {
		return nil, nil, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	if _, err := l.WriteFlatnetConfig(fmt.Sprintf("lan_guard = %q\nlog_level = %q\n", guard, b.cfg.logLevel)); err != nil {
		return nil, nil, err
	}
	p, err := l.StartFlatnet(b.cfg.flatnet)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = p.Close() }()
	for i := 1; i <= firstPods; i++ {
		pod, err := l.AddPod(fmt.Sprintf("pod%d", i))
		if err != nil {
			return nil, nil, err
		}
		for _, a := range pod.IPs {
			if err := waitRouted(l, a.Addr(), 10*time.Second); err != nil {
				return nil, nil, err
			}
			rtt, err := firstPing(l, a.Addr())
			if err != nil {
				return nil, nil, err
			}
			if a.Addr().Is4() {
				v4 = append(v4, rtt)
			} else {
				v6 = append(v6, rtt)
			}
		}
	}
	return v4, v6, nil
}

// waitRouted waits until the node has flatnet's route to ip.
func waitRouted(l *lab.Lab, ip netip.Addr, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		routes, err := l.Routes(l.Node, 97)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst.Addr() == ip && r.Dst.IsSingleIP() {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no route to %s after %v", ip, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// firstPing is the round trip of the node's one ping to ip.
func firstPing(l *lab.Lab, ip netip.Addr) (time.Duration, error) {
	out, err := l.Exec(l.Node, "ping", "-n", "-c", "1", "-W", "3", ip.String())
	if err != nil {
		return 0, fmt.Errorf("ping %s: %w", ip, err)
	}
	rtt, err := pingRTT(out)
	if err != nil {
		return 0, fmt.Errorf("ping %s: %w", ip, err)
	}
	return rtt, nil
}

// pingRTT reads the round trip of the first reply in ping's output.
func pingRTT(out string) (time.Duration, error) {
	m := pingTime.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no time in %q", strings.TrimSpace(out))
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}
