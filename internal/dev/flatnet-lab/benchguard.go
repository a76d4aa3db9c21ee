package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/reconcile"
	"golang.org/x/sys/unix"
)

// The guard section measures what each lan_guard costs the node's own
// traffic: a dual-stack lab like the seed's (so that the shim guard has
// its ingress chain too), one pod, flatnet started with each guard in turn
// and stopped again (on_stop keep: what it set up stays, and flatnet does
// not run during a measurement), then iperf3:
//
//   - the node to the LAN host (the LAN namespace's bridge), UDP with
//     64-byte payloads as fast as one sender goes, and TCP, one stream:
//     the traffic every frame of which an egress filter on the master
//     sees;
//   - the pod to the node and the node to the pod, UDP 64 bytes: the
//     traffic through the shim, the shim guard's ingress chain sees the
//     first.
//
// Rounds interleave the guards (each round starts with another), and each
// guard's figure is compared with off's of the same round: the ratios'
// median and spread are what the table says. The sender's CPU per packet
// comes from iperf3's own account (its process, user and system, which on
// a veth includes the receiving side's work done in its context).
//
// Then the cost per packet on a NIC that costs nothing itself: a veth
// whose peer is down (the kernel drops the packet as soon as the driver
// gets it), in a namespace of its own, with the very rules flatnet writes
// (reconcile's scripts), a UDP sender in this process measuring its own
// thread's CPU time per packet. A real NIC's driver costs more per packet
// than that, and less than a veth, whose transmit runs the whole receive
// side: its ratio lies between the two.

// guardModes are the lan_guard values measured, in the table's order.
var guardModes = []string{"off", "address", "filter", "shim"}

// guardTrafficKinds are the traffics measured with iperf3, in the
// table's order.
var guardTrafficKinds = []string{"lan-udp", "lan-tcp", "pod-node-udp", "node-pod-udp"}

// guardRun is one iperf3 measurement.
type guardRun struct {
	rate    float64 // packets/s (UDP) or bits/s (TCP)
	nsPerPk float64 // the sender's CPU per packet, UDP only
}

// guardResults are the guard section's measurements.
type guardResults struct {
	rounds int
	secs   int
	// runs are the iperf3 figures by traffic kind, mode, round.
	runs map[string]map[string][]guardRun
	// sink are the CPU ns per packet on the NIC that drops everything, by
	// mode, round.
	sink  map[string][]float64
	notes []string
}

// guardConfig is how much the guard section measures.
func (b *bench) guardConfig() (rounds, secs int, sinkTime time.Duration) {
	if b.cfg.quick {
		return 3, 1, 300 * time.Millisecond
	}
	return 7, 2, time.Second
}

// guardCost runs the guard section.
func (b *bench) guardCost() (err error) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		return errors.New("iperf3 not found (packaging/deps.sh test installs it; Debian: apt install iperf3)")
	}
	rounds, secs, sinkTime := b.guardConfig()
	res := &guardResults{rounds: rounds, secs: secs, runs: map[string]map[string][]guardRun{}, sink: map[string][]float64{}}
	for _, k := range guardTrafficKinds {
		res.runs[k] = map[string][]guardRun{}
	}
	b.res.guard = res
	b.progressf("guard: what each lan_guard costs the node's own traffic, %d rounds of %s", rounds, strings.Join(guardModes, ", "))
	l, err := lab.New(lab.Options{
		TempDir: b.cfg.tmpDir,
		Ranges: []lab.Range{lab.SeedRange(), {
			Subnet:     netip.MustParsePrefix("fd00::/64"),
			RangeStart: netip.MustParseAddr("fd00::1:2"), RangeEnd: netip.MustParseAddr("fd00::1:ff"),
			Gateway: netip.MustParseAddr("fd00::1"),
		}},
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	pod, err := l.AddPod("pod1")
	if err != nil {
		return err
	}
	lanSrv, err := l.Start(l.LAN, "iperf3-lan", "iperf3", "-s", "-p", "5201")
	if err != nil {
		return err
	}
	defer func() { _ = lanSrv.Close() }()
	podSrv, err := l.Start(pod.NS, "iperf3-pod", "iperf3", "-s", "-p", "5201")
	if err != nil {
		return err
	}
	defer func() { _ = podSrv.Close() }()
	nodeSrv, err := l.Start(l.Node, "iperf3-node", "iperf3", "-s", "-p", "5201")
	if err != nil {
		return err
	}
	defer func() { _ = nodeSrv.Close() }()
	time.Sleep(200 * time.Millisecond) // the servers listen
	for r := range rounds {
		for i := range guardModes {
			mode := guardModes[(i+r)%len(guardModes)]
			if err := b.guardMode(l, mode); err != nil {
				return fmt.Errorf("lan_guard %s: %w", mode, err)
			}
			for _, k := range guardTrafficKinds {
				run, err := guardIperf(l, pod, k, secs)
				if err != nil {
					return fmt.Errorf("lan_guard %s, %s: %w", mode, k, err)
				}
				res.runs[k][mode] = append(res.runs[k][mode], run)
			}
		}
		b.progressf("guard: round %d of %d done", r+1, rounds)
	}
	return b.guardSink(l, rounds, sinkTime)
}

// guardMode starts flatnet in l with lan_guard = mode, waits until the
// node holds what that guard sets up (and nothing of the others), and
// stops flatnet, which leaves it there.
func (b *bench) guardMode(l *lab.Lab, mode string) error {
	if _, err := l.WriteFlatnetConfig(fmt.Sprintf("lan_guard = %q\nlog_level = %q\n", mode, b.cfg.logLevel)); err != nil {
		return err
	}
	p, err := l.StartFlatnet(b.cfg.flatnet)
	if err != nil {
		return err
	}
	defer func() { _ = p.Close() }()
	shim := l.Master + ".host"
	deadline := time.Now().Add(20 * time.Second)
	for {
		ruleset, err1 := l.Exec(l.Node, "nft", "list", "ruleset")
		addrs, err2 := l.Exec(l.Node, "ip", "-4", "addr", "show", "dev", shim)
		if err := errors.Join(err1, err2); err == nil {
			arp, netdev := strings.Contains(ruleset, "table arp flatnet"), strings.Contains(ruleset, "table netdev flatnet")
			egress := strings.Contains(ruleset, `hook egress device "`+l.Master+`"`)
			ingress := strings.Contains(ruleset, `hook ingress device "`+shim+`"`)
			sender := strings.Contains(addrs, reconcile.SenderAddr.String())
			var ok bool
			switch mode {
			case "off":
				ok = !arp && !netdev && !sender
			case "address":
				ok = !arp && !netdev && sender
			case "filter":
				ok = !arp && egress && !ingress && !sender
			case "shim":
				ok = arp && ingress && !egress && !sender
			}
			if ok {
				break
			}
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("the node does not hold what lan_guard %s sets up:\n%s", mode, lastLines(p.Log(), 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p.Stop(syscall.SIGTERM)
}

// iperfOut is what the guard section reads of iperf3's JSON.
type iperfOut struct {
	End struct {
		Sum struct {
			Seconds float64 `json:"seconds"`
			Packets float64 `json:"packets"`
		} `json:"sum"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		CPU struct {
			HostTotal float64 `json:"host_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
	Error string `json:"error"`
}

// guardIperf runs one iperf3 test of kind for secs seconds.
func guardIperf(l *lab.Lab, pod *lab.Pod, kind string, secs int) (guardRun, error) {
	var ns, dst string
	udp := true
	switch kind {
	case "lan-udp":
		ns, dst = l.Node, l.Gateway.String()
	case "lan-tcp":
		ns, dst, udp = l.Node, l.Gateway.String(), false
	case "pod-node-udp":
		ns, dst = pod.NS, l.NodeIP.String()
	case "node-pod-udp":
		ns, dst = l.Node, pod.IP.String()
	}
	argv := []string{"iperf3", "-c", dst, "-p", "5201", "-t", strconv.Itoa(secs), "-J"}
	if udp {
		argv = append(argv, "-u", "-l", "64", "-b", "0")
	}
	var out string
	var err error
	for try := 0; try < 3; try++ { // a server still busy with the last test refuses the next for a moment
		if out, err = l.Exec(ns, argv...); err == nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	var o iperfOut
	i := strings.Index(out, "{")
	if i < 0 {
		return guardRun{}, fmt.Errorf("iperf3 %s: %v: %s", strings.Join(argv[1:], " "), err, strings.TrimSpace(out))
	}
	if jerr := json.Unmarshal([]byte(out[i:]), &o); jerr != nil || o.Error != "" {
		return guardRun{}, fmt.Errorf("iperf3 %s: %v %v %s", strings.Join(argv[1:], " "), err, jerr, o.Error)
	}
	if !udp {
		return guardRun{rate: o.End.SumReceived.BitsPerSecond}, nil
	}
	if o.End.Sum.Packets == 0 || o.End.Sum.Seconds == 0 {
		return guardRun{}, fmt.Errorf("iperf3 %s: no packets", strings.Join(argv[1:], " "))
	}
	return guardRun{
		rate:    o.End.Sum.Packets / o.End.Sum.Seconds,
		nsPerPk: o.End.CPU.HostTotal / 100 * o.End.Sum.Seconds * 1e9 / o.End.Sum.Packets,
	}, nil
}

// The NIC that costs nothing: a veth in a namespace of its own, its peer
// down, a shim on it, and a neighbour entry for the address sent to.
const (
	sinkNIC  = "sink0"
	sinkShim = "sink0.host"
	sinkDst  = "10.254.0.9"
)

// guardSink measures the CPU per packet of a UDP sender through the NIC
// that drops what it gets, with each guard's rules on it, interleaved.
func (b *bench) guardSink(l *lab.Lab, rounds int, each time.Duration) error {
	ns, err := l.NewNamespace("sink")
	if err != nil {
		return err
	}
	for _, c := range [][]string{
		{"ip", "link", "add", sinkNIC, "type", "veth", "peer", "name", sinkNIC + "p"},
		{"ip", "link", "set", sinkNIC, "up"},
		{"ip", "addr", "add", "10.254.0.5/24", "dev", sinkNIC},
		{"ip", "neigh", "add", sinkDst, "lladdr", "02:00:00:00:00:09", "dev", sinkNIC, "nud", "permanent"},
		{"ip", "link", "add", sinkShim, "link", sinkNIC, "type", "macvlan", "mode", "bridge"},
		{"ip", "link", "set", sinkShim, "up"},
	} {
		if _, err := l.Exec(ns, c...); err != nil {
			return err
		}
	}
	mac, err := l.MAC(ns, sinkShim)
	if err != nil {
		return err
	}
	// The rules flatnet writes, as its own scripts print them.
	scripts := map[string][]string{
		"filter": {reconcile.FilterScript([]reconcile.Drop{{Master: sinkNIC, MAC: mac.String()}})},
		"shim":   {reconcile.ProbeScript([]string{sinkShim}), reconcile.FilterScript(nil, sinkShim)},
	}
	sinkModes := []string{"off", "filter", "shim"}
	b.progressf("guard: CPU per packet on a NIC that drops what it gets, %d rounds of %s", rounds, strings.Join(sinkModes, ", "))
	// One untimed run warms the path.
	if _, err := sinkSend(l, ns, each/4); err != nil {
		return err
	}
	for r := range rounds {
		for i := range sinkModes {
			mode := sinkModes[(i+r)%len(sinkModes)]
			if _, err := l.Exec(ns, "nft", "flush", "ruleset"); err != nil {
				return err
			}
			for _, s := range scripts[mode] {
				if _, err := l.Exec(ns, "nft", nftText(s)); err != nil {
					return fmt.Errorf("the %s rules on %s: %w", mode, sinkNIC, err)
				}
			}
			per, err := sinkSend(l, ns, each)
			if err != nil {
				return err
			}
			b.res.guard.sink[mode] = append(b.res.guard.sink[mode], per)
		}
	}
	_, err = l.Exec(ns, "nft", "flush", "ruleset")
	return err
}

// nftText is the nft(8) command text of one of reconcile's scripts, `nft
// '<text>' # <comment>`: what nft takes as its one argument.
func nftText(script string) string {
	text := strings.TrimPrefix(script, "nft '")
	if i := strings.Index(text, "' #"); i >= 0 {
		return text[:i]
	}
	return strings.TrimSuffix(text, "'")
}

// sinkSend sends 64-byte UDP datagrams to sinkDst from namespace ns for
// about d and returns the sending thread's CPU time per datagram, in ns.
func sinkSend(l *lab.Lab, ns string, d time.Duration) (float64, error) {
	var per float64
	err := l.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: 9, Addr: netip.MustParseAddr(sinkDst).As4()}); err != nil {
			return err
		}
		buf := make([]byte, 64)
		c0, t0 := threadCPU(), time.Now()
		n := 0
		for time.Since(t0) < d {
			for range 256 {
				_, _ = unix.Write(fd, buf)
			}
			n += 256
		}
		per = float64(threadCPU()-c0) / float64(n)
		return nil
	})
	return per, err
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// stats are a sample's median and extremes.
type stats struct{ med, lo, hi float64 }

func statsOf(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{med: med, lo: s[0], hi: s[len(s)-1]}
}

// pairedRatios are mode's figures over off's of the same round.
func pairedRatios(mode, off []float64) []float64 {
	var out []float64
	for i := range min(len(mode), len(off)) {
		if off[i] > 0 {
			out = append(out, mode[i]/off[i])
		}
	}
	return out
}

// guardRow is a line of the guard table.
type guardRow struct {
	name   string
	cells  []string // by guardModes
	ratios []string // filter ÷ off, shim ÷ off
	target string
}

// guardTarget is the goal for the default guard on the node's own traffic:
// it keeps at least this share of what the node sends with no guard.
const guardTarget = 0.98

// guardRows turns the guard section's results into its table.
func (g *guardResults) guardRows() []guardRow {
	var out []guardRow
	rate := func(kind string, f func(guardRun) float64) map[string][]float64 {
		m := map[string][]float64{}
		for mode, runs := range g.runs[kind] {
			for _, r := range runs {
				m[mode] = append(m[mode], f(r))
			}
		}
		return m
	}
	add := func(name string, m map[string][]float64, unit func(float64) string, target bool) {
		if len(m["off"]) == 0 {
			return
		}
		r := guardRow{name: name}
		for _, mode := range guardModes {
			s := statsOf(m[mode])
			if len(m[mode]) == 0 {
				r.cells = append(r.cells, "-")
				continue
			}
			r.cells = append(r.cells, fmt.Sprintf("%s (%s–%s)", unit(s.med), unit(s.lo), unit(s.hi)))
		}
		for _, mode := range []string{"filter", "shim"} {
			rs := statsOf(pairedRatios(m[mode], m["off"]))
			r.ratios = append(r.ratios, fmt.Sprintf("%.3f (%.2f–%.2f)", rs.med, rs.lo, rs.hi))
			if mode == "shim" && target {
				r.target = fmt.Sprintf("shim ≥ %.2f: %s", guardTarget, verdict(rs.med >= guardTarget))
			}
		}
		out = append(out, r)
	}
	pps := func(v float64) string { return fmt.Sprintf("%.0fk", v/1000) }
	gbps := func(v float64) string { return fmt.Sprintf("%.1f", v/1e9) }
	ns := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	byRate := func(r guardRun) float64 { return r.rate }
	byCPU := func(r guardRun) float64 { return r.nsPerPk }
	add("node → LAN host, UDP 64 B: packets/s", rate("lan-udp", byRate), pps, true)
	add("node → LAN host, TCP one stream: Gbit/s", rate("lan-tcp", byRate), gbps, true)
	add("node → LAN host, UDP 64 B: sender CPU ns/packet", rate("lan-udp", byCPU), ns, false)
	add("pod → node, UDP 64 B: packets/s", rate("pod-node-udp", byRate), pps, false)
	add("node → pod, UDP 64 B: packets/s", rate("node-pod-udp", byRate), pps, false)
	if len(g.sink["off"]) > 0 {
		m := map[string][]float64{}
		for mode, v := range g.sink {
			m[mode] = v
		}
		add("NIC that costs nothing, UDP 64 B: sender CPU ns/packet", m, ns, false)
	}
	return out
}

// printGuard writes the guard section's table and its notes.
func (g *guardResults) printGuard(w io.Writer) {
	rows := g.guardRows()
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nLAN guard: the node's own traffic under each lan_guard (median (min–max) of %d interleaved rounds of %d s; ratios: each round's over off's of the same round)\n\n", g.rounds, g.secs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "traffic\t%s\tfilter ÷ off\tshim ÷ off\ttarget\t\n", strings.Join(guardModes, "\t"))
	fmt.Fprintf(tw, "-------\t%s\t------------\t----------\t------\t\n", strings.Repeat("-\t", len(guardModes)-1)+"-")
	for _, r := range rows {
		cells := r.cells
		if len(cells) < len(guardModes) {
			cells = append(cells, make([]string, len(guardModes)-len(cells))...)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r.name, strings.Join(cells, "\t"), strings.Join(r.ratios, "\t"), r.target)
	}
	_ = tw.Flush()
	notes := []string{
		"off: no guard; address: 192.0.0.8 on the shim (no hook); filter: the egress chain on the master (every frame the node sends passes it); shim: the arp table's rule (ARP only) and the shim's ingress chain (what the shim receives)",
		"sender CPU per packet is iperf3's own account of its process (user and system); on a veth it includes the receiving side's work run in the sender's context",
	}
	if off, filter := statsOf(g.sink["off"]), statsOf(g.sink["filter"]); off.med > 0 && filter.med > 0 {
		shim := statsOf(g.sink["shim"])
		lan := statsOf(g.lanNs("off"))
		notes = append(notes, fmt.Sprintf("per packet: the egress filter adds %.0f ns on a NIC that costs nothing (%.0f → %.0f ns, ×%.3f), the shim guard %+.0f ns; on the lab's veth a packet costs the sender %.0f ns, so the filter's share there is about %.1f %%, on a NIC that costs nothing about %.1f %%: a real NIC's driver lies between the two, its share with it",
			filter.med-off.med, off.med, filter.med, filter.med/off.med, shim.med-off.med, lan.med, 100*(filter.med-off.med)/(lan.med+filter.med-off.med), 100*(filter.med-off.med)/filter.med))
	}
	notes = append(notes, g.notes...)
	fmt.Fprintln(w)
	for _, n := range notes {
		fmt.Fprintf(w, "  * %s\n", n)
	}
}

// lanNs are the node → LAN UDP runs' sender CPU per packet under mode.
func (g *guardResults) lanNs(mode string) []float64 {
	var out []float64
	for _, r := range g.runs["lan-udp"][mode] {
		out = append(out, r.nsPerPk)
	}
	return out
}

// writeGuardCSV writes the guard table's cells to path.
func (g *guardResults) writeGuardCSV(path string) error {
	var sb strings.Builder
	w := csv.NewWriter(&sb)
	_ = w.Write(append(append([]string{"traffic"}, guardModes...), "filter/off", "shim/off", "target"))
	for _, r := range g.guardRows() {
		rec := append([]string{r.name}, r.cells...)
		rec = append(rec, r.ratios...)
		_ = w.Write(append(rec, r.target))
	}
	w.Flush()
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}
