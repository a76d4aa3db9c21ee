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
// traffic, in a dual-stack lab like the seed's (so that the shim guard has
// its ingress chain too) with one pod, in two parts.
//
// Rates. flatnet is started with each lan_guard in turn and stopped again
// (on_stop keep: what it set up stays, and flatnet does not run during a
// measurement); then iperf3 from the node to the LAN host (the LAN
// namespace's bridge): UDP with 64-byte payloads as fast as one sender
// goes, and TCP, one stream, the traffic every frame of which an egress
// filter on the master sees. Rounds interleave the guards (each round
// starts with another), and each guard's rate is compared with off's of
// the same round: the ratios' median and spread are what the table says.
// Rates are what the node got, and on a machine shared with other work
// they move with that work.
//
// CPU per packet. The rules flatnet writes (reconcile's own scripts, the
// guard's chains as flatnet makes them) are put in place and taken out
// again in quick turns, and between turns a UDP sender of this process
// sends 64-byte datagrams for a slice of time to a socket nobody reads
// (the kernel drops them at its full receive queue: no ICMP back), timing
// its own thread's CPU: what each packet costs, the receiving side's work
// included on a veth (the kernel runs it in the sender's context). Waiting
// for a CPU does not count in it, and the turns are short, so the guards
// compared in one turn saw the same machine: each turn's ratio to off is
// what the table summarises, with the quartiles. Besides off, the egress
// filter and the shim guard, an empty egress chain on the master: what a
// hook costs that is there but has nothing to do. From the node to the LAN
// host; from the pod to the node and back, the traffic through the shim;
// and on a NIC that costs nothing itself: a veth whose peer is down (the
// kernel drops the packet as soon as the driver gets it), in a namespace
// of its own. A real NIC's driver costs more per packet than that, and
// less than a veth, whose transmit runs the whole receive side: a hook's
// share of a real NIC's packet lies between the two.

// guardModes are the lan_guard values whose rates are measured, in the
// table's order.
var guardModes = []string{"off", "address", "filter", "shim"}

// cpuModes are the rule sets of the CPU measurements, in the table's
// order: none, the egress filter, an empty egress chain on the master, the
// shim guard.
var cpuModes = []string{"off", "filter", "empty", "shim"}

// rateKinds are the traffics whose rates are measured; cpuKinds those whose
// CPU per packet is.
var (
	rateKinds = []string{"lan-udp", "lan-tcp"}
	cpuKinds  = []string{"lan", "pod-node", "node-pod", "sink"}
)

// sinkPort is where the datagrams of the CPU measurements go: a socket
// bound there, never read, on the receiving side.
const sinkPort = 9999

// guardResults are the guard section's measurements.
type guardResults struct {
	rounds, secs int
	turns        int
	slice        time.Duration
	// rates are the iperf3 figures (packets/s, bits/s) by traffic kind,
	// lan_guard, round.
	rates map[string]map[string][]float64
	// cpu are the CPU ns per packet by traffic kind, rule set, turn.
	cpu map[string]map[string][]float64
}

// guardConfig is how much the guard section measures: rounds of rates,
// iperf3's seconds; turns of CPU, and each turn's slice of sending.
func (b *bench) guardConfig() (rounds, secs, turns int, slice time.Duration) {
	if b.cfg.quick {
		return 2, 1, 12, 50 * time.Millisecond
	}
	return 5, 2, 60, 100 * time.Millisecond
}

// guardCost runs the guard section.
func (b *bench) guardCost() (err error) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		return errors.New("iperf3 not found (packaging/deps.sh test installs it; Debian: apt install iperf3)")
	}
	rounds, secs, turns, slice := b.guardConfig()
	res := &guardResults{rounds: rounds, secs: secs, turns: turns, slice: slice,
		rates: map[string]map[string][]float64{}, cpu: map[string]map[string][]float64{}}
	for _, k := range rateKinds {
		res.rates[k] = map[string][]float64{}
	}
	for _, k := range cpuKinds {
		res.cpu[k] = map[string][]float64{}
	}
	b.res.guard = res
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
	srv, err := l.Start(l.LAN, "iperf3-lan", "iperf3", "-s", "-p", "5201")
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }()
	time.Sleep(200 * time.Millisecond) // the server listens

	b.progressf("guard: the node's rates to the LAN under each lan_guard, %d rounds of %s", rounds, strings.Join(guardModes, ", "))
	for r := range rounds {
		for i := range guardModes {
			mode := guardModes[(i+r)%len(guardModes)]
			if err := b.guardMode(l, mode); err != nil {
				return fmt.Errorf("lan_guard %s: %w", mode, err)
			}
			for _, k := range rateKinds {
				v, err := iperfRate(l, k == "lan-udp", secs)
				if err != nil {
					return fmt.Errorf("lan_guard %s, %s: %w", mode, k, err)
				}
				res.rates[k][mode] = append(res.rates[k][mode], v)
			}
		}
	}
	// What flatnet left (the last guard's) goes: the CPU part puts each
	// rule set in place itself.
	if err := b.guardMode(l, "off"); err != nil {
		return err
	}
	return b.guardCPU(l, pod)
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
	} `json:"end"`
	Error string `json:"error"`
}

// iperfRate runs iperf3 from the node to the LAN host for secs seconds:
// UDP (64-byte payloads, as fast as it goes; packets/s sent) or TCP, one
// stream (bits/s received).
func iperfRate(l *lab.Lab, udp bool, secs int) (float64, error) {
	argv := []string{"iperf3", "-c", l.Gateway.String(), "-p", "5201", "-t", strconv.Itoa(secs), "-J"}
	if udp {
		argv = append(argv, "-u", "-l", "64", "-b", "0")
	}
	var out string
	var err error
	for range 3 { // a server still busy with the last test refuses the next for a moment
		if out, err = l.Exec(l.Node, argv...); err == nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	var o iperfOut
	i := strings.Index(out, "{")
	if i < 0 {
		return 0, fmt.Errorf("iperf3 %s: %v: %s", strings.Join(argv[1:], " "), err, strings.TrimSpace(out))
	}
	if jerr := json.Unmarshal([]byte(out[i:]), &o); jerr != nil || o.Error != "" {
		return 0, fmt.Errorf("iperf3 %s: %v %v %s", strings.Join(argv[1:], " "), err, jerr, o.Error)
	}
	if !udp {
		return o.End.SumReceived.BitsPerSecond, nil
	}
	if o.End.Sum.Packets == 0 || o.End.Sum.Seconds == 0 {
		return 0, fmt.Errorf("iperf3 %s: no packets", strings.Join(argv[1:], " "))
	}
	return o.End.Sum.Packets / o.End.Sum.Seconds, nil
}

// The NIC that costs nothing: a veth in a namespace of its own, its peer
// down, a shim on it, and a neighbour entry for the address sent to.
const (
	sinkNIC  = "sink0"
	sinkShim = "sink0.host"
	sinkDst  = "10.254.0.9"
)

// ruleSets are the nft(8) texts that put each of cpuModes in place on a
// node whose master is master and whose shim, shim, has MAC mac: the rules
// flatnet writes, from its own scripts.
func ruleSets(master, shim, mac string) map[string]string {
	return map[string]string{
		"off":    "flush ruleset",
		"filter": "flush ruleset; " + nftText(reconcile.FilterScript([]reconcile.Drop{{Master: master, MAC: mac}})),
		"empty":  fmt.Sprintf(`flush ruleset; table netdev flatnet { chain %[1]s { type filter hook egress device "%[1]s" priority filter; }; }`, master),
		"shim":   "flush ruleset; " + nftText(reconcile.ProbeScript([]string{shim})) + "; " + nftText(reconcile.FilterScript(nil, shim)),
	}
}

// guardCPU measures the CPU per packet of each traffic of cpuKinds under
// each rule set, in turns.
func (b *bench) guardCPU(l *lab.Lab, pod *lab.Pod) error {
	g := b.res.guard
	shim := l.Master + ".host"
	mac, err := l.MAC(l.Node, shim)
	if err != nil {
		return err
	}
	for _, ns := range []string{l.LAN, l.Node, pod.NS} {
		fd, err := sinkSocket(l, ns)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
	}
	sink, err := l.NewNamespace("sink")
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
		if _, err := l.Exec(sink, c...); err != nil {
			return err
		}
	}
	sinkMAC, err := l.MAC(sink, sinkShim)
	if err != nil {
		return err
	}
	type traffic struct {
		rulesNS, from string
		dst           netip.AddrPort
		rules         map[string]string
	}
	node := ruleSets(l.Master, shim, mac.String())
	traffics := map[string]traffic{
		"lan":      {l.Node, l.Node, netip.AddrPortFrom(l.Gateway, sinkPort), node},
		"pod-node": {l.Node, pod.NS, netip.AddrPortFrom(l.NodeIP, sinkPort), node},
		"node-pod": {l.Node, l.Node, netip.AddrPortFrom(pod.IP, sinkPort), node},
		"sink":     {sink, sink, netip.AddrPortFrom(netip.MustParseAddr(sinkDst), 9), ruleSets(sinkNIC, sinkShim, sinkMAC.String())},
	}
	for _, kind := range cpuKinds {
		tr := traffics[kind]
		b.progressf("guard: CPU per packet, %s, %d turns of %s", kind, g.turns, strings.Join(cpuModes, ", "))
		if _, err := sendUDP(l, tr.from, tr.dst, g.slice); err != nil { // warms the path, untimed
			return err
		}
		for t := range g.turns {
			for i := range cpuModes {
				mode := cpuModes[(i+t)%len(cpuModes)]
				if _, err := l.Exec(tr.rulesNS, "nft", tr.rules[mode]); err != nil {
					return fmt.Errorf("the %s rules: %w", mode, err)
				}
				per, err := sendUDP(l, tr.from, tr.dst, g.slice)
				if err != nil {
					return err
				}
				g.cpu[kind][mode] = append(g.cpu[kind][mode], per)
			}
		}
		if _, err := l.Exec(tr.rulesNS, "nft", "flush ruleset"); err != nil {
			return err
		}
	}
	return nil
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

// sinkSocket binds a UDP socket to sinkPort in ns, which nobody reads.
func sinkSocket(l *lab.Lab, ns string) (int, error) {
	var fd int
	err := l.Do(ns, func() (err error) {
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: sinkPort}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	return fd, err
}

// sendUDP sends 64-byte UDP datagrams to dst from namespace ns for about
// d and returns the sending thread's CPU time per datagram, in ns.
func sendUDP(l *lab.Lab, ns string, dst netip.AddrPort, d time.Duration) (float64, error) {
	var per float64
	err := l.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}); err != nil {
			return err
		}
		buf := make([]byte, 64)
		c0, t0 := threadCPU(), time.Now()
		n := 0
		for time.Since(t0) < d {
			for range 64 {
				_, _ = unix.Write(fd, buf)
			}
			n += 64
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

// stats are a sample's median, quartiles and extremes.
type stats struct{ med, q1, q3, lo, hi float64 }

func statsOf(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(q float64) float64 { // linear between the closest ranks
		x := q * float64(len(s)-1)
		i := int(x)
		if i+1 >= len(s) {
			return s[len(s)-1]
		}
		return s[i] + (x-float64(i))*(s[i+1]-s[i])
	}
	return stats{med: at(0.5), q1: at(0.25), q3: at(0.75), lo: s[0], hi: s[len(s)-1]}
}

// pairedRatios are mode's figures over off's of the same round or turn.
func pairedRatios(mode, off []float64) []float64 {
	var out []float64
	for i := range min(len(mode), len(off)) {
		if off[i] > 0 {
			out = append(out, mode[i]/off[i])
		}
	}
	return out
}

// pairedDiffs are mode's figures less off's of the same turn.
func pairedDiffs(mode, off []float64) []float64 {
	var out []float64
	for i := range min(len(mode), len(off)) {
		out = append(out, mode[i]-off[i])
	}
	return out
}

// guardRow is a line of one of the guard tables.
type guardRow struct {
	name   string
	cells  []string // by mode
	ratios []string // by mode but off: ÷ off
	target string
}

// guardTarget is the goal for the default guard on the node's own traffic:
// it keeps at least this share of what the node sends with no guard, and
// costs at most 1/guardTarget of its CPU per packet.
const guardTarget = 0.98

// cpuNames name the CPU rows.
var cpuNames = map[string]string{
	"lan":      "node → LAN host",
	"pod-node": "pod → node (through the shim)",
	"node-pod": "node → pod (through the shim)",
	"sink":     "node → a NIC that costs nothing",
}

// rateRows are the rates table's lines.
func (g *guardResults) rateRows() []guardRow {
	var out []guardRow
	for _, k := range rateKinds {
		m := g.rates[k]
		if len(m["off"]) == 0 {
			continue
		}
		unit, name := func(v float64) string { return fmt.Sprintf("%.0fk", v/1000) }, "node → LAN host, UDP 64 B: packets/s"
		if k == "lan-tcp" {
			unit, name = func(v float64) string { return fmt.Sprintf("%.1f", v/1e9) }, "node → LAN host, TCP one stream: Gbit/s"
		}
		r := guardRow{name: name}
		for _, mode := range guardModes {
			s := statsOf(m[mode])
			r.cells = append(r.cells, fmt.Sprintf("%s (%s–%s)", unit(s.med), unit(s.lo), unit(s.hi)))
			if mode == "off" {
				continue
			}
			rs := statsOf(pairedRatios(m[mode], m["off"]))
			r.ratios = append(r.ratios, fmt.Sprintf("%.2f (%.2f–%.2f)", rs.med, rs.lo, rs.hi))
			if mode == "shim" {
				r.target = fmt.Sprintf("shim ≥ %.2f: %s", guardTarget, verdict(rs.med >= guardTarget))
			}
		}
		out = append(out, r)
	}
	return out
}

// cpuRows are the CPU table's lines.
func (g *guardResults) cpuRows() []guardRow {
	var out []guardRow
	for _, k := range cpuKinds {
		m := g.cpu[k]
		if len(m["off"]) == 0 {
			continue
		}
		r := guardRow{name: cpuNames[k] + ", UDP 64 B: CPU ns/packet"}
		for _, mode := range cpuModes {
			s := statsOf(m[mode])
			r.cells = append(r.cells, fmt.Sprintf("%.0f (%.0f)", s.med, s.lo))
			if mode == "off" {
				continue
			}
			rs := statsOf(pairedRatios(m[mode], m["off"]))
			r.ratios = append(r.ratios, fmt.Sprintf("%.3f (%.3f–%.3f)", rs.med, rs.q1, rs.q3))
			if mode == "shim" && k == "lan" {
				r.target = fmt.Sprintf("shim ≤ %.2f: %s", 2-guardTarget, verdict(rs.med <= 2-guardTarget))
			}
		}
		out = append(out, r)
	}
	return out
}

// printGuard writes the guard section's tables and their notes.
func (g *guardResults) printGuard(w io.Writer) {
	table := func(head string, modes []string, rows []guardRow) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n\n", head)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		ratios := make([]string, 0, len(modes)-1)
		for _, m := range modes[1:] {
			ratios = append(ratios, m+" ÷ off")
		}
		fmt.Fprintf(tw, "traffic\t%s\t%s\ttarget\t\n", strings.Join(modes, "\t"), strings.Join(ratios, "\t"))
		fmt.Fprintf(tw, "-------\t%s\t%s\t------\t\n", strings.Repeat("-\t", len(modes)-1)+"-", strings.Repeat("-\t", len(ratios)-1)+"-")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r.name, strings.Join(r.cells, "\t"), strings.Join(r.ratios, "\t"), r.target)
		}
		_ = tw.Flush()
	}
	table(fmt.Sprintf("LAN guard: the node's rates under each lan_guard (median (min–max) of %d interleaved rounds of %d s; ÷ off: each round's over off's of the same round)", g.rounds, g.secs),
		guardModes, g.rateRows())
	table(fmt.Sprintf("LAN guard: CPU per packet under each guard's rules (median (min) of %d turns of %v each; ÷ off: each turn's over off's of the same turn, median (quartiles))", g.turns, g.slice),
		cpuModes, g.cpuRows())
	notes := []string{
		"rates: off no guard; address 192.0.0.8 on the shim (no hook); filter the egress chain on the master, which every frame the node sends passes; shim the arp table's rule (ARP only) and the shim's ingress chain (what the shim receives). They are what the node got from a machine it may share",
		"CPU per packet: one sender thread's CPU time per datagram, the receiving side's work on a veth included (the kernel runs it in the sender's context); the rules as flatnet writes them; empty: an egress chain on the master with no rule, what a hook costs with nothing to do",
	}
	if d := statsOf(pairedDiffs(g.cpu["sink"]["filter"], g.cpu["sink"]["off"])); len(g.cpu["sink"]["off"]) > 0 {
		off, lan := statsOf(g.cpu["sink"]["off"]), statsOf(g.cpu["lan"]["off"])
		e := statsOf(pairedDiffs(g.cpu["sink"]["empty"], g.cpu["sink"]["off"]))
		s := statsOf(pairedDiffs(g.cpu["sink"]["shim"], g.cpu["sink"]["off"]))
		notes = append(notes, fmt.Sprintf("per packet (each turn's difference to off, median): the egress filter adds %.0f ns, an empty egress chain %.0f ns, the shim guard %+.0f ns; a packet costs %.0f ns to a NIC that costs nothing and %.0f ns through the lab's veth, so the filter takes about %.1f %% of a packet there and %.1f %% on the veth: a real NIC's driver lies between the two, and the filter's share with it",
			d.med, e.med, s.med, off.med, lan.med, 100*d.med/(off.med+d.med), 100*d.med/(lan.med+d.med)))
	}
	fmt.Fprintln(w)
	for _, n := range notes {
		fmt.Fprintf(w, "  * %s\n", n)
	}
}

// writeGuardCSV writes the guard tables' cells to path.
func (g *guardResults) writeGuardCSV(path string) error {
	var sb strings.Builder
	w := csv.NewWriter(&sb)
	for _, t := range []struct {
		modes []string
		rows  []guardRow
	}{{guardModes, g.rateRows()}, {cpuModes, g.cpuRows()}} {
		head := append([]string{"traffic"}, t.modes...)
		for _, m := range t.modes[1:] {
			head = append(head, m+"/off")
		}
		_ = w.Write(append(head, "target"))
		for _, r := range t.rows {
			rec := append(append([]string{r.name}, r.cells...), r.ratios...)
			_ = w.Write(append(rec, r.target))
		}
	}
	w.Flush()
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}
