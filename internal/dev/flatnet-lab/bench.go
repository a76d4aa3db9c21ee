package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"golang.org/x/sys/unix"
)

// benchConfig is what `flatnet-lab bench` measures, and how much.
type benchConfig struct {
	flatnet  string        // the binary
	singles  int           // allocations one at a time, on an empty node
	loaded   int           // allocations one at a time with loadNs routes present
	loadN    int           // routes present for the memory and idle measurements
	loadNs   []int         // routes present for the loaded latency measurements, rising
	burst    int           // allocations written at once, then released
	cold     []int         // allocations present at start
	reps     int           // runs of each cold start, interleaved; the median counts
	idle     time.Duration // idle window
	sections []string      // which parts to run
	wrap     []string      // argv prefix for flatnet (profiling only)
	label    string        // how the table names the run
	tmpDir   string        // where the lab's directory (and the state dir) goes
	logDir   string        // where to keep the processes' logs; "" drops them
	csv      string        // where to write the table as CSV; "" for nowhere
	logLevel string        // flatnet's log_level
	quick    bool
}

// The bench's systems, as the table names them.
const (
	sysFlatnet = "flatnet"
	sysScript  = "inotifywait script"
	sysBatch   = "ip -batch"
)

// Sections of the benchmark.
var benchSections = []string{"latency", "burst", "cold", "steady", "first", "guard"}

// mirrorScript is baseline (a): what an operator would write by hand.
const mirrorScript = `#!/bin/bash
# Mirror host-local's allocations into routes the obvious way: every event
# in the state dir becomes one ip command.
dir=$1 shim=$2
inotifywait -m -e create,delete,moved_to,close_write --format '%e %f' "$dir" |
while read -r event ip; do
	case $ip in
	lock | last_reserved_ip.* | .*) continue ;;
	esac
	case $event in
	DELETE*) ip route del "$ip/32" dev "$shim" ;;
	*) ip route replace "$ip/32" dev "$shim" ;;
	esac
done
`

// bench is one run: its lab, clocks and results.
type bench struct {
	cfg      benchConfig
	progress io.Writer
	l        *lab.Lab
	mon      *routeMon
	notify   *notifyListener
	shim     string
	dir      string // the state dir
	script   string // the script's path
	flatCfg  string // flatnet.toml
	next     netip.Addr

	running []*lab.Process // flatnet runs not stopped yet

	mu     sync.Mutex
	groups map[int]bool // process groups of running scripts
	once   sync.Once

	res   results
	load0 string // load average at the start
}

// results are the measurements, by system.
type results struct {
	lat       map[string][]time.Duration
	latLoaded map[int]map[string][]time.Duration // by routes present
	// latResult are flatnet's latencies for attachments known only from
	// libcni's cached result (static, whereabouts, dhcp IPAM: no state
	// file), by routes present (0: none).
	latResult          map[int][]time.Duration
	burstAdd, burstDel map[string]burst
	cold               map[int]map[string][]cold
	mem                map[string]memory
	idle               map[string]idle
	idleThreads        map[string]int64 // flatnet's wake-ups by thread
	// first holds the node's first ping to new pods, IPv4 then IPv6, by
	// lan_guard.
	first map[string][2][]time.Duration
	// guard is what each lan_guard costs the node's own traffic.
	guard *guardResults
	notes []string
}

type burst struct {
	write     time.Duration // first file to last file
	lastToEnd time.Duration // last file to last route
	total     time.Duration // first file to last route
	cpu       time.Duration // ip -batch only
}

type cold struct {
	routes time.Duration // exec to the last route
	ready  time.Duration // exec to READY=1 (flatnet)
	cpu    time.Duration // CPU time until then
	hwm    int64         // peak resident memory (flatnet)
}

type idle struct {
	cpu     time.Duration
	wakeups int64
}

// runBench runs the benchmark and prints the table to w, progress to
// progress. It returns the exit status.
func runBench(w, progress io.Writer, cfg benchConfig, logf func(string, ...any)) int {
	if why := lab.Missing(); why != "" {
		fmt.Fprintf(progress, "flatnet-lab bench: cannot build a lab here: %s\n", why)
		return 1
	}
	for _, tool := range []string{"inotifywait", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(progress, "flatnet-lab bench: %s not found (Debian: apt install inotify-tools bash)\n", tool)
			return 1
		}
	}
	abs, err := filepath.Abs(cfg.flatnet)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		fmt.Fprintf(progress, "flatnet-lab bench: no flatnet binary at %s (%v); build it: make build\n", cfg.flatnet, err)
		return 1
	}
	cfg.flatnet = abs

	b := &bench{cfg: cfg, progress: progress, groups: map[int]bool{}}
	b.res = results{
		lat: map[string][]time.Duration{}, latLoaded: map[int]map[string][]time.Duration{}, latResult: map[int][]time.Duration{},
		burstAdd: map[string]burst{}, burstDel: map[string]burst{},
		cold: map[int]map[string][]cold{}, mem: map[string]memory{}, idle: map[string]idle{},
		first: map[string][2][]time.Duration{},
	}
	// ^C or a kill: stop what we started, remove the lab, then exit.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(progress, "\n%v: stopping and removing the lab\n", s)
		b.cleanup()
		if s == syscall.SIGTERM {
			os.Exit(143)
		}
		os.Exit(130)
	}()
	defer signal.Stop(sig)
	defer b.cleanup()

	start := time.Now()
	b.load0 = loadAvg()
	if err := b.setup(logf); err != nil {
		fmt.Fprintf(progress, "flatnet-lab bench: setting up: %v\n", err)
		return 1
	}
	failed := false
	for _, s := range []struct {
		name string
		fn   func() error
	}{
		{"latency", b.latency},
		{"burst", b.bursts},
		{"cold", b.coldStarts},
		{"steady", b.steady},
		{"first", b.firstPackets},
		{"guard", b.guardCost},
	} {
		if !slices.Contains(cfg.sections, s.name) {
			continue
		}
		if err := s.fn(); err != nil {
			fmt.Fprintf(progress, "flatnet-lab bench: %s: %v\n", s.name, err)
			b.res.notes = append(b.res.notes, fmt.Sprintf("%s: %v", s.name, err))
			failed = true
			// Put the lab back in order for the next section.
			if err := b.stopAll(); err != nil {
				fmt.Fprintf(progress, "flatnet-lab bench: %v\n", err)
				return 1
			}
		}
	}
	b.progressf("done in %v", time.Since(start).Round(time.Second))
	b.print(w, time.Since(start))
	if failed {
		return 1
	}
	return 0
}

func (b *bench) progressf(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: %s\n", fmt.Sprintf(format, args...))
}

// setup builds the lab: a node whose NIC eno1 is on 10.0.0.0/8, the
// shim made by hand (so every system starts from the same node), the
// state dir, the clocks and the script.
func (b *bench) setup(logf func(string, ...any)) error {
	b.progressf("building the lab in %s (%s)", b.cfg.tmpDir, fsType(b.cfg.tmpDir))
	_ = lab.RemoveStaleIn(b.cfg.tmpDir)
	l, err := lab.New(lab.Options{
		TempDir:     b.cfg.tmpDir,
		NoIPv6:      true,
		GatewayAddr: netip.MustParsePrefix("10.0.0.1/8"),
		NodeAddr:    netip.MustParsePrefix("10.0.0.5/8"),
		Ranges:      []lab.Range{{Subnet: netip.MustParsePrefix("10.0.0.0/8"), Gateway: netip.MustParseAddr("10.0.0.1")}},
		Logf:        logf,
	})
	if err != nil {
		return err
	}
	b.l = l
	b.shim = l.Master + ".host"
	b.dir = l.StateDir()
	b.next = netip.MustParseAddr("10.1.0.1")
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	if _, err := l.Exec(l.Node, "ip", "link", "add", b.shim, "link", l.Master, "type", "macvlan", "mode", "bridge"); err != nil {
		return err
	}
	if _, err := l.Exec(l.Node, "ip", "link", "set", b.shim, "up"); err != nil {
		return err
	}
	if b.flatCfg, err = l.WriteFlatnetConfig(fmt.Sprintf("log_level = %q", b.cfg.logLevel)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.CNIConfDir, "50-nadstatic.conflist"), []byte(nadStatic), 0o644); err != nil {
		return err
	}
	b.script = filepath.Join(l.Dir, "mirror-routes.sh")
	if err := os.WriteFile(b.script, []byte(mirrorScript), 0o755); err != nil {
		return err
	}
	if b.notify, err = listenNotify(filepath.Join(l.Dir, "notify.sock")); err != nil {
		return err
	}
	if b.mon, err = newRouteMon(l, l.Node); err != nil {
		return err
	}
	// Let flatnet adopt the shim once (it sets the shim's sysctls), so that
	// every measured start is the same: a restart on a node whose shim is
	// there and ready, as after an upgrade.
	p, err := b.startReady()
	if err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	return b.stop(p)
}

// cleanup stops what the bench started and removes the lab, once.
func (b *bench) cleanup() {
	b.once.Do(func() {
		b.mu.Lock()
		for pg := range b.groups {
			signalGroup(pg, syscall.SIGKILL)
		}
		b.mu.Unlock()
		if b.mon != nil {
			b.mon.Close()
		}
		if b.notify != nil {
			b.notify.Close()
		}
		if b.cfg.logDir != "" && b.l != nil {
			b.keepLogs()
		}
		if err := b.l.Close(); err != nil {
			fmt.Fprintf(b.progress, "bench: removing the lab: %v\n", err)
		}
	})
}

// keepLogs copies the lab's process logs to cfg.logDir.
func (b *bench) keepLogs() {
	logs, _ := filepath.Glob(filepath.Join(b.l.Dir, "*.log"))
	if err := os.MkdirAll(b.cfg.logDir, 0o755); err != nil {
		fmt.Fprintf(b.progress, "bench: keeping logs: %v\n", err)
		return
	}
	for _, f := range logs {
		data, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(b.cfg.logDir, filepath.Base(f)), data, 0o644)
		}
		if err != nil {
			fmt.Fprintf(b.progress, "bench: keeping logs: %v\n", err)
		}
	}
	b.progressf("logs kept in %s", b.cfg.logDir)
}

// nextIPs hands out n fresh addresses.
func (b *bench) nextIPs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = b.next
		b.next = b.next.Next()
	}
	return out
}

// owner is what host-local writes into an allocation file: a 64-hex
// container id, CRLF, the interface name.
func owner() []byte {
	var id [32]byte
	_, _ = rand.Read(id[:])
	return []byte(hex.EncodeToString(id[:]) + "\r\neth0")
}

// alloc writes an allocation file as host-local does: create it with
// O_EXCL (an empty file exists for a moment), then write it.
func (b *bench) alloc(ip netip.Addr, content []byte) error {
	fd, err := unix.Open(filepath.Join(b.dir, ip.String()), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("allocating %s: %w", ip, err)
	}
	_, err = unix.Write(fd, content)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", ip, err)
	}
	return nil
}

// release removes an allocation file, as host-local does.
func (b *bench) release(ip netip.Addr) error {
	return unix.Unlink(filepath.Join(b.dir, ip.String()))
}

// fill writes n allocation files (untimed) and returns their addresses.
func (b *bench) fill(n int) ([]netip.Addr, error) {
	ips := b.nextIPs(n)
	for _, ip := range ips {
		if err := b.alloc(ip, owner()); err != nil {
			return nil, err
		}
	}
	return ips, nil
}

// clear removes every allocation file and every route through the shim;
// nothing may be running.
func (b *bench) clear() error {
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(b.dir, e.Name())); err != nil {
			return err
		}
	}
	results := filepath.Join(b.l.CacheDir(), "results")
	cached, _ := os.ReadDir(results)
	for _, e := range cached {
		if err := os.Remove(filepath.Join(results, e.Name())); err != nil {
			return err
		}
	}
	if _, err := b.l.Exec(b.l.Node, "ip", "-4", "route", "flush", "dev", b.shim); err != nil {
		return err
	}
	b.mon.quiet(300*time.Millisecond, time.Now().Add(30*time.Second))
	b.mon.reset()
	return nil
}

// stopAll stops every system still running and clears the node.
func (b *bench) stopAll() error {
	b.mu.Lock()
	groups := make([]int, 0, len(b.groups))
	for pg := range b.groups {
		groups = append(groups, pg)
	}
	b.mu.Unlock()
	for _, pg := range groups {
		signalGroup(pg, syscall.SIGKILL)
	}
	for _, p := range b.running {
		_ = p.Close()
	}
	b.running = nil
	return b.clear()
}

// startFlatnet starts flatnet in the node with NOTIFY_SOCKET set, as
// systemd would; t0 is taken just before the exec.
func (b *bench) startFlatnet() (*lab.Process, time.Time, error) {
	b.notify.drain()
	argv := append(slices.Clone(b.cfg.wrap), "env", "NOTIFY_SOCKET="+b.notify.path, b.cfg.flatnet, "run", "--config", b.flatCfg)
	t0 := time.Now()
	p, err := b.l.Start(b.l.Node, "flatnet", argv...)
	if err != nil {
		return nil, t0, err
	}
	b.running = append(b.running, p)
	return p, t0, nil
}

// stop stops a process with SIGTERM and forgets it.
func (b *bench) stop(p *lab.Process) error {
	b.running = slices.DeleteFunc(b.running, func(q *lab.Process) bool { return q == p })
	if err := p.Stop(syscall.SIGTERM); err != nil && len(b.cfg.wrap) == 0 { // a wrapper (perf) may exit by the signal
		return fmt.Errorf("stopping %s: %w\n%s", p.Name, err, lastLines(p.Log(), 10))
	}
	return nil
}

// startScript starts baseline (a) and waits until its watch is set.
func (b *bench) startScript() (*lab.Process, error) {
	p, err := b.l.Start(b.l.Node, "script", "bash", b.script, b.dir, b.shim)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.groups[p.PID] = true
	b.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Log(), "Watches established") {
		if p.Exited() || time.Now().After(deadline) {
			b.stopScript(p)
			return nil, fmt.Errorf("the script did not start watching:\n%s", lastLines(p.Log(), 10))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p, nil
}

// stopScript stops the script's pipeline: inotifywait and the loop first
// (each by pid), then the shell.
func (b *bench) stopScript(p *lab.Process) {
	signalGroup(p.PID, syscall.SIGTERM)
	_ = p.Stop(syscall.SIGTERM)
	time.Sleep(20 * time.Millisecond)
	signalGroup(p.PID, syscall.SIGKILL)
	b.mu.Lock()
	delete(b.groups, p.PID)
	b.mu.Unlock()
}

// waitReady waits for flatnet's READY=1.
func (b *bench) waitReady(p *lab.Process, deadline time.Time) (time.Time, error) {
	select {
	case t := <-b.notify.ready:
		return t, nil
	case <-p.Done():
		return time.Time{}, fmt.Errorf("flatnet exited (status %d) before READY=1:\n%s", p.ExitCode(), lastLines(p.Log(), 15))
	case <-time.After(time.Until(deadline)):
		return time.Time{}, fmt.Errorf("no READY=1 from flatnet within its deadline:\n%s", lastLines(p.Log(), 15))
	}
}

// singles allocates n addresses one at a time, each once the previous
// one's route was seen, and returns the latencies: file created to the
// route's RTM_NEWROUTE.
func (b *bench) singles(n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for _, ip := range b.nextIPs(n) {
		content := owner()
		t0 := time.Now()
		if err := b.alloc(ip, content); err != nil {
			return out, err
		}
		t, err := b.mon.waitAdd(ip, t0.Add(10*time.Second))
		if err != nil {
			return out, fmt.Errorf("route to %s after %d allocations: %w", ip, len(out), err)
		}
		out = append(out, t.Sub(t0))
	}
	return out, nil
}

// nadStatic is the configuration of a network with static IPAM: its
// pods' addresses are in their cached results alone, as whereabouts' and
// dhcp's are. It is in the configuration directory (setup writes it):
// the lab's host-local network takes the whole LAN, and a network only
// the cache defines may not route addresses inside a range root's
// configuration gives another network.
const nadStatic = `{"cniVersion": "1.0.0", "name": "nadstatic", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "bridge", "ipam": {"type": "static"}}]}`

// cacheEntry writes libcni's cache entry of an attachment of nadstatic
// with address ip as libcni does (os.WriteFile: in place), its netns one
// that exists (the node's).
func (b *bench) cacheEntry(ip netip.Addr) (string, error) {
	path, data, err := b.cacheEntryData(ip)
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, data, 0o600)
}

// cacheEntryData is cacheEntry's file and content, made before the timing
// starts, as an allocation's content is (singles): the rows time the
// write to the route, not the writer's JSON encoding.
func (b *bench) cacheEntryData(ip netip.Addr) (string, []byte, error) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	cid := hex.EncodeToString(id[:])
	e, err := json.Marshal(map[string]any{
		"kind": "cniCacheV1", "containerId": cid, "ifName": "net1", "networkName": "nadstatic",
		"config": []byte(nadStatic), "netns": filepath.Join(lab.NetnsDir, b.l.Node),
		"result": map[string]any{"cniVersion": "1.0.0",
			"interfaces": []any{map[string]any{"name": "net1", "mac": "02:00:00:00:00:01", "sandbox": filepath.Join(lab.NetnsDir, b.l.Node)}},
			"ips":        []any{map[string]any{"address": ip.String() + "/8", "interface": 0}}},
	})
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(b.l.CacheDir(), "results", "nadstatic-"+cid+"-net1"), e, nil
}

// resultSingles attaches n pods of nadstatic one at a time, each once the
// previous one's route was seen, and returns the latencies: cache entry
// written to the route's RTM_NEWROUTE. The first entry is untimed.
func (b *bench) resultSingles(n int) ([]time.Duration, error) {
	ips := b.nextIPs(n + 1)
	if _, err := b.cacheEntry(ips[0]); err != nil {
		return nil, err
	}
	if _, err := b.mon.waitAdd(ips[0], time.Now().Add(10*time.Second)); err != nil {
		return nil, fmt.Errorf("route to %s, the first attachment of nadstatic: %w", ips[0], err)
	}
	out := make([]time.Duration, 0, n)
	for _, ip := range ips[1:] {
		path, data, err := b.cacheEntryData(ip)
		if err != nil {
			return out, err
		}
		t0 := time.Now()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return out, err
		}
		t, err := b.mon.waitAdd(ip, t0.Add(10*time.Second))
		if err != nil {
			return out, fmt.Errorf("route to %s after %d cache entries: %w", ip, len(out), err)
		}
		out = append(out, t.Sub(t0))
	}
	return out, nil
}

// burstOf writes n allocations as fast as one writer can, then releases
// them all the same way.
func (b *bench) burstOf(n int) (add, del burst, err error) {
	ips := b.nextIPs(n)
	contents := make([][]byte, n)
	for i := range contents {
		contents[i] = owner()
	}
	b.mon.reset()
	t0 := time.Now()
	for i, ip := range ips {
		if err := b.alloc(ip, contents[i]); err != nil {
			return add, del, err
		}
	}
	tw := time.Now()
	last, err := b.mon.waitAll(ips, false, tw.Add(120*time.Second))
	if err != nil {
		return add, del, err
	}
	add = burst{write: tw.Sub(t0), lastToEnd: last.Sub(tw), total: last.Sub(t0)}

	b.mon.reset()
	t0 = time.Now()
	for _, ip := range ips {
		if err := b.release(ip); err != nil {
			return add, del, err
		}
	}
	tw = time.Now()
	last, err = b.mon.waitAll(ips, true, tw.Add(120*time.Second))
	if err != nil {
		return add, del, err
	}
	del = burst{write: tw.Sub(t0), lastToEnd: last.Sub(tw), total: last.Sub(t0)}
	return add, del, nil
}

// ipBatch runs baseline (b): one `ip -batch` with a route command per
// address, and times it from the exec to the last route's notification.
func (b *bench) ipBatch(name string, ips []netip.Addr, del bool) (cold, error) {
	var sb strings.Builder
	for _, ip := range ips {
		if del {
			fmt.Fprintf(&sb, "route del %s/32 dev %s proto 97\n", ip, b.shim)
		} else {
			fmt.Fprintf(&sb, "route add %s/32 dev %s scope link proto 97\n", ip, b.shim)
		}
	}
	file := filepath.Join(b.l.Dir, name+".batch")
	if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
		return cold{}, err
	}
	b.mon.reset()
	t0 := time.Now()
	p, err := b.l.Start(b.l.Node, name, "ip", "-batch", file)
	if err != nil {
		return cold{}, err
	}
	last, err := b.mon.waitAll(ips, del, t0.Add(300*time.Second))
	<-p.Done()
	if err != nil {
		return cold{}, err
	}
	if p.ExitCode() != 0 {
		return cold{}, fmt.Errorf("ip -batch failed:\n%s", lastLines(p.Log(), 5))
	}
	return cold{routes: last.Sub(t0), cpu: p.CPUTime()}, nil
}

// latency: single allocations on an empty node, flatnet then the script.
func (b *bench) latency() error {
	b.progressf("latency: %d single allocations with flatnet", b.cfg.singles)
	if err := b.clear(); err != nil {
		return err
	}
	p, err := b.startReady()
	if err != nil {
		return err
	}
	if b.res.lat[sysFlatnet], err = b.singles(b.cfg.singles); err != nil {
		return err
	}
	b.progressf("latency: %d single attachments known from libcni's cache alone, flatnet", b.cfg.singles)
	if b.res.latResult[0], err = b.resultSingles(b.cfg.singles); err != nil {
		// A flatnet that follows host-local alone (an older one, measured
		// as a baseline) routes none: say so, measure the rest.
		b.res.notes = append(b.res.notes, fmt.Sprintf("attachments known from libcni's cache alone: %v", err))
		delete(b.res.latResult, 0)
	}
	if err := b.stop(p); err != nil {
		return err
	}
	if err := b.clear(); err != nil {
		return err
	}

	b.progressf("latency: %d single allocations with the inotifywait script", b.cfg.singles)
	s, err := b.startScript()
	if err != nil {
		return err
	}
	lat, err := b.singles(b.cfg.singles)
	b.stopScript(s)
	if err != nil {
		return err
	}
	b.res.lat[sysScript] = lat
	return b.clear()
}

// bursts: n allocations at once, then their release, for each system.
func (b *bench) bursts() error {
	n := b.cfg.burst
	b.progressf("burst: %d allocations and releases with flatnet", n)
	if err := b.clear(); err != nil {
		return err
	}
	p, err := b.startReady()
	if err != nil {
		return err
	}
	add, del, err := b.burstOf(n)
	if err != nil {
		return err
	}
	b.res.burstAdd[sysFlatnet], b.res.burstDel[sysFlatnet] = add, del
	if err := b.stop(p); err != nil {
		return err
	}
	if err := b.clear(); err != nil {
		return err
	}

	b.progressf("burst: %d allocations and releases with the inotifywait script", n)
	s, err := b.startScript()
	if err != nil {
		return err
	}
	add, del, err = b.burstOf(n)
	b.stopScript(s)
	if err != nil {
		return err
	}
	b.res.burstAdd[sysScript], b.res.burstDel[sysScript] = add, del
	if err := b.clear(); err != nil {
		return err
	}

	b.progressf("burst: %d routes added and deleted with ip -batch", n)
	ips := b.nextIPs(n)
	c, err := b.ipBatch("ip-batch-burst", ips, false)
	if err != nil {
		return err
	}
	b.res.burstAdd[sysBatch] = burst{lastToEnd: c.routes, total: c.routes, cpu: c.cpu}
	c, err = b.ipBatch("ip-batch-release", ips, true)
	if err != nil {
		return err
	}
	b.res.burstDel[sysBatch] = burst{lastToEnd: c.routes, total: c.routes, cpu: c.cpu}
	return b.clear()
}

// coldStarts: flatnet and ip -batch from exec to every route, with the
// allocations already there, interleaved run by run.
func (b *bench) coldStarts() error {
	for _, n := range b.cfg.cold {
		b.progressf("cold start: writing %d allocation files", n)
		if err := b.clear(); err != nil {
			return err
		}
		ips, err := b.fill(n)
		if err != nil {
			return err
		}
		b.res.cold[n] = map[string][]cold{}
		for rep := range b.cfg.reps {
			order := []string{sysBatch, sysFlatnet}
			if rep%2 == 1 {
				order = []string{sysFlatnet, sysBatch}
			}
			for _, sys := range order {
				b.progressf("cold start: %d routes, %s (run %d of %d)", n, sys, rep+1, b.cfg.reps)
				var c cold
				if sys == sysBatch {
					c, err = b.ipBatch("ip-batch-cold", ips, false)
				} else {
					c, err = b.coldFlatnet(ips)
				}
				if err != nil {
					return err
				}
				b.res.cold[n][sys] = append(b.res.cold[n][sys], c)
				if _, err := b.l.Exec(b.l.Node, "ip", "-4", "route", "flush", "dev", b.shim); err != nil {
					return err
				}
				b.mon.quiet(300*time.Millisecond, time.Now().Add(60*time.Second))
			}
		}
	}
	return b.clear()
}

// coldFlatnet starts flatnet on a node with ips allocated and no routes,
// and stops it once they are all routed.
func (b *bench) coldFlatnet(ips []netip.Addr) (cold, error) {
	b.mon.reset()
	p, t0, err := b.startFlatnet()
	if err != nil {
		return cold{}, err
	}
	deadline := t0.Add(300 * time.Second)
	ready, err := b.waitReady(p, deadline)
	if err != nil {
		return cold{}, err
	}
	cpu := runTime(p.PID)
	last, err := b.mon.waitAll(ips, false, deadline)
	if err != nil {
		return cold{}, err
	}
	m, _ := readMemory(p.PID)
	if err := b.stop(p); err != nil {
		return cold{}, err
	}
	return cold{routes: last.Sub(t0), ready: ready.Sub(t0), cpu: cpu, hwm: m.hwm}, nil
}

// steady: flatnet holding loadN routes: memory, an idle window (beside
// the script, idle on the same directory), then single allocations on the
// loaded node, for flatnet and the script.
func (b *bench) steady() error {
	n := b.cfg.loadN
	b.progressf("steady state: %d allocations, flatnet started on them", n)
	if err := b.clear(); err != nil {
		return err
	}
	ips, err := b.fill(n)
	if err != nil {
		return err
	}
	p, t0, err := b.startFlatnet()
	if err != nil {
		return err
	}
	if _, err := b.waitReady(p, t0.Add(120*time.Second)); err != nil {
		return err
	}
	if _, err := b.mon.waitAll(ips, false, t0.Add(120*time.Second)); err != nil {
		return err
	}
	s, err := b.startScript()
	if err != nil {
		return err
	}
	// Let start-up work (a second pass after adopting the shim, the
	// runtime's first collections) finish before looking.
	time.Sleep(2 * time.Second)
	mem, err := readMemory(p.PID)
	if err != nil {
		return err
	}
	b.res.mem[sysFlatnet] = mem
	if f, err := statusFields(fmt.Sprintf("/proc/%d/status", p.PID), "RssAnon", "RssFile"); err == nil {
		b.res.notes = append(b.res.notes, fmt.Sprintf("flatnet's VmRSS at %d routes: %s anonymous (heap, stacks, runtime), %s file-backed (its binary)", n, mib(f["RssAnon"]<<10), mib(f["RssFile"]<<10)))
	}
	b.res.mem[sysScript] = groupMemory(s.PID)

	b.progressf("steady state: idle for %v", b.cfg.idle)
	st0, err := readStat(p.PID)
	if err != nil {
		return err
	}
	w0, err := wakeups(p.PID)
	if err != nil {
		return err
	}
	sc0, sw0 := groupCPU(s.PID), groupWakeups(s.PID)
	time.Sleep(b.cfg.idle)
	st1, err := readStat(p.PID)
	if err != nil {
		return err
	}
	w1, err := wakeups(p.PID)
	if err != nil {
		return err
	}
	sc1, sw1 := groupCPU(s.PID), groupWakeups(s.PID)
	b.res.idleThreads = map[string]int64{}
	for k, v := range w1 {
		if d := v - w0[k]; d > 0 {
			b.res.idleThreads[k] = d
		}
	}
	b.res.idle[sysFlatnet] = idle{cpu: st1.cpu - st0.cpu, wakeups: sumValues(b.res.idleThreads)}
	b.res.idle[sysScript] = idle{cpu: sc1 - sc0, wakeups: sw1 - sw0}
	if mem, err := readMemory(p.PID); err == nil {
		b.res.notes = append(b.res.notes, fmt.Sprintf("flatnet VmRSS after the idle window: %s", mib(mem.rss)))
	}
	b.stopScript(s)

	if err := b.stop(p); err != nil { // its routes stay (on_stop = keep)
		return err
	}
	for _, m := range b.cfg.loadNs {
		var more []netip.Addr
		if m > n {
			if more, err = b.fill(m - n); err != nil {
				return err
			}
			n = m
		}
		if err := b.loadedLatency(n, more); err != nil {
			return err
		}
	}
	return b.clear()
}

// loadedLatency measures single allocations with n allocations present,
// fresh of them just written and the others routed already: flatnet
// started on them, then the script.
func (b *bench) loadedLatency(n int, fresh []netip.Addr) error {
	b.progressf("steady state: %d single allocations with %d routes, flatnet", b.cfg.loaded, n)
	p, t0, err := b.startFlatnet()
	if err != nil {
		return err
	}
	if _, err := b.waitReady(p, t0.Add(120*time.Second)); err != nil {
		return err
	}
	// The routes of the earlier allocations are in place already (on_stop
	// = keep): only those of the allocations just written are announced.
	if _, err := b.mon.waitAll(fresh, false, t0.Add(120*time.Second)); err != nil {
		return err
	}
	b.res.latLoaded[n] = map[string][]time.Duration{}
	b.mon.reset()
	if b.res.latLoaded[n][sysFlatnet], err = b.singles(b.cfg.loaded); err != nil {
		return err
	}
	b.progressf("steady state: %d single attachments from libcni's cache alone with %d routes, flatnet", b.cfg.loaded, n)
	if b.res.latResult[n], err = b.resultSingles(b.cfg.loaded); err != nil {
		b.res.notes = append(b.res.notes, fmt.Sprintf("attachments known from libcni's cache alone, %d routes present: %v", n, err))
		delete(b.res.latResult, n)
	}
	if err := b.stop(p); err != nil { // its routes stay (on_stop = keep)
		return err
	}
	b.progressf("steady state: %d single allocations with %d routes, the inotifywait script", b.cfg.loaded, n)
	s, err := b.startScript()
	if err != nil {
		return err
	}
	b.mon.reset()
	lat, err := b.singles(b.cfg.loaded)
	b.stopScript(s)
	if err != nil {
		return err
	}
	b.res.latLoaded[n][sysScript] = lat
	return nil
}

// notifyListener is the service manager's end of NOTIFY_SOCKET.
type notifyListener struct {
	conn  *net.UnixConn
	path  string
	ready chan time.Time
}

func listenNotify(path string) (*notifyListener, error) {
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	n := &notifyListener{conn: c, path: path, ready: make(chan time.Time, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := c.ReadFromUnix(buf)
			t := time.Now()
			if err != nil {
				return
			}
			for line := range strings.SplitSeq(string(buf[:k]), "\n") {
				if line == "READY=1" {
					select {
					case n.ready <- t:
					default:
					}
				}
			}
		}
	}()
	return n, nil
}

// drain forgets READY=1 messages of earlier runs.
func (n *notifyListener) drain() {
	for {
		select {
		case <-n.ready:
		default:
			return
		}
	}
}

func (n *notifyListener) Close() { _ = n.conn.Close() }

// machine describes the machine for the table's heading.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	_ = unix.Uname(&u)
	return fmt.Sprintf("%s, %d CPUs, Linux %s", model, runtime.NumCPU(), unix.ByteSliceToString(u.Release[:]))
}

// fsType names the filesystem holding dir.
func fsType(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown filesystem"
	}
	switch st.Type {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	}
	return fmt.Sprintf("filesystem 0x%x", st.Type)
}

// defaultTmpDir is /dev/shm when it is a tmpfs, else the usual temporary
// directory: on tmpfs, creating a file costs microseconds everywhere, so
// a burst is a burst and the disk of the machine does not set the pace.
func defaultTmpDir() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		return "/dev/shm"
	}
	return os.TempDir()
}

// startReady starts flatnet and waits (up to 30 s) for its READY=1.
func (b *bench) startReady() (*lab.Process, error) {
	p, _, err := b.startFlatnet()
	if err != nil {
		return nil, err
	}
	if _, err := b.waitReady(p, time.Now().Add(30*time.Second)); err != nil {
		return nil, err
	}
	return p, nil
}
