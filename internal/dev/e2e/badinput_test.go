//go:build integration

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"github.com/flatnet/flatnet/internal/dev/testenv"
)

// Bad input: the daemon keeps running, every valid allocation stays routed
// (no route of a pod is ever deleted), and each bad entry is logged once,
// not once per resync. Each subtest runs flatnet with resync_interval =
// "1s" and also sends SIGHUP, then counts the log lines.

func TestBadInput(t *testing.T) {
	t.Run("state_dir_names", badStateDirNames)
	t.Run("empty_then_written", badEmptyThenWritten)
	t.Run("huge_file", badHugeFile)
	t.Run("junk_files", badJunkFiles)
	t.Run("config_at_start", badConfigAtStart)
	t.Run("config_at_reload", badConfigAtReload)
	t.Run("cni_configs", badCNIConfigs)
}

// unharmed asserts what bad input must never cost: flatnet runs, every pod
// is reachable and no route was deleted since the watch began.
func (f *faultLab) unharmed(t *testing.T) {
	t.Helper()
	f.allReachable(t)
	if d := f.w.Deleted(); len(d) > 0 {
		t.Errorf("routes deleted: %v", d)
	}
	want := map[string]bool{}
	for _, p := range f.pods {
		want[p.IP.String()] = true
	}
	for ip := range flatnetRoutes(t, f.l) {
		if !want[ip.String()] {
			t.Errorf("flatnet routes %s, which is no pod's", ip)
		}
	}
}

// settleAndCount makes flatnet look at everything again a few times (the
// resync timer, then SIGHUP) and asserts each line was logged exactly once.
func (f *faultLab) settleAndCount(t *testing.T, lines []string) {
	t.Helper()
	for _, s := range lines {
		waitLog(t, f.fn, s, deadline)
	}
	resyncs(t, f.fn, 3)
	hup(t, f.fn)
	resyncs(t, f.fn, 2)
	logOnce(t, f.fn, lines...)
}

// the state dir: names that are not IPs, non-canonical IPs, addresses that
// must never be routed, a directory, a symlink and a FIFO named as IPs.
func badStateDirNames(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, `resync_interval = "1s"`, 2)
	dir := f.l.StateDir()
	content := []byte(containerID() + "\r\neth0")
	notIP := func(name string) string { return "ignoring " + name + " in " + dir + ": name" }
	never := func(ip, why string) string { return "not routing " + ip + " of network default: " + why }
	cases := map[string]string{
		"not-an-ip":          notIP("not-an-ip"),
		"192.168.001.002":    notIP("192.168.001.002"),
		"::ffff:192.168.1.2": notIP("::ffff:192.168.1.2"),
		"fd00:0::9":          notIP("fd00:0::9"),
		"192.168.1.2%eth0":   notIP("192.168.1.2%eth0"),
		"10.1.2.3":           never("10.1.2.3", "outside the network's ranges"),
		"192.168.0.1":        never("192.168.0.1", "the gateway"),
		"192.168.0.5":        never("192.168.0.5", "a node address"),
		"fd00::5":            never("fd00::5", "a node address"),
		"192.168.0.0":        never("192.168.0.0", "the network or broadcast address of 192.168.0.0/16"),
		"192.168.255.255":    never("192.168.255.255", "the network or broadcast address of 192.168.0.0/16"),
		"224.0.0.1":          never("224.0.0.1", "not a unicast address"),
		"255.255.255.255":    never("255.255.255.255", "not a unicast address"),
		"0.0.0.0":            never("0.0.0.0", "not a unicast address"),
		"127.0.0.1":          never("127.0.0.1", "not a unicast address"),
		"169.254.1.1":        never("169.254.1.1", "not a unicast address"),
		"::":                 never("::", "not a unicast address"),
	}
	for name := range cases {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Entries named as good addresses in range that are not regular files.
	outside := filepath.Join(f.l.Dir, "outside")
	if err := os.WriteFile(outside, content, 0o644); err != nil {
		t.Fatal(err)
	}
	special := map[string]func(string) error{
		"192.168.1.200": func(p string) error { return os.Mkdir(p, 0o755) },
		"192.168.1.201": func(p string) error { return os.Symlink(outside, p) },
		"192.168.1.202": func(p string) error { return syscall.Mkfifo(p, 0o644) },
	}
	// host-local itself blocks reading a FIFO when it releases an
	// address: remove it before the lab's pods are deleted.
	t.Cleanup(func() { os.Remove(filepath.Join(dir, "192.168.1.202")) })
	for name, mk := range special {
		if err := mk(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		cases[name] = "ignoring " + name + " in " + dir + ": not a regular file"
	}
	// Unreadable content (not host-local's): never routed.
	if err := os.WriteFile(filepath.Join(dir, "192.168.1.203"), []byte{0, 1, 2, 3, '\n', 0xff}, 0o644); err != nil {
		t.Fatal(err)
	}
	var rejected, ignored []string
	for _, s := range cases {
		if strings.HasPrefix(s, "not routing") {
			rejected = append(rejected, s)
		} else {
			ignored = append(ignored, s)
		}
	}
	// The journal gets a few lines of each cause (unusable entries of a
	// directory, addresses of a network not routed), each once, also over
	// resyncs and a reload; flatnet status lists every address.
	waitFor(t, deadline, "the first lines of each cause", func() error {
		for _, c := range [][]string{rejected, ignored} {
			if n := countAny(f.fn, c); n < logBurst {
				return fmt.Errorf("%d of %d lines", n, logBurst)
			}
		}
		return nil
	})
	resyncs(t, f.fn, 3)
	hup(t, f.fn)
	resyncs(t, f.fn, 2)
	for _, c := range [][]string{rejected, ignored} {
		if n := countAny(f.fn, c); n != logBurst {
			t.Errorf("%d lines of %q and the like, want %d", n, c[0], logBurst)
		}
		for _, s := range c {
			if n := countLog(f.fn, s); n > 1 {
				t.Errorf("flatnet logged %q %d times", s, n)
			}
		}
	}
	stdout, _ := runFlatnet(t, f.l, "status", "--json")
	for _, s := range rejected {
		if !strings.Contains(stdout, s) {
			t.Errorf("flatnet status does not say %q:\n%s", s, stdout)
		}
	}
	f.unharmed(t)
}

// logBurst is how many lines of one cause flatnet logs a minute
// (daemon.logBurst).
const logBurst = 5

// countAny counts the lines of p's log that contain any of lines.
func countAny(p *lab.Process, lines []string) int {
	n := 0
	for line := range strings.SplitSeq(p.Log(), "\n") {
		for _, s := range lines {
			if strings.Contains(line, s) {
				n++
				break
			}
		}
	}
	return n
}

// files appearing empty and written later (host-local creates with O_EXCL,
// then writes): routed once written, never reported.
func badEmptyThenWritten(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, `resync_interval = "1s"`, 1)
	dir := f.l.StateDir()
	path := filepath.Join(dir, "192.168.1.100")
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	resyncs(t, f.fn, 2)
	hup(t, f.fn)
	if err := notRouted(f.l, "192.168.1.100")(); err != nil {
		t.Errorf("an empty file is routed: %v", err)
	}
	if n := countLog(f.fn, "192.168.1.100"); n != 0 {
		t.Errorf("the empty file was logged %d times:\n%s", n, f.fn.Log())
	}
	t0 := time.Now()
	if _, err := fh.WriteString(containerID() + "\r\neth0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, deadline, "the written file is routed", routed(f.l, "192.168.1.100"))
	t.Logf("empty file written: routed after %v", time.Since(t0).Round(time.Millisecond))
	if n := countLog(f.fn, "ignoring 192.168.1.100"); n != 0 {
		t.Errorf("the file in progress was reported as bad %d times", n)
	}
	f.allReachable(t)
	if d := f.w.Deleted(); len(d) > 0 {
		t.Errorf("routes deleted: %v", d)
	}
}

// memKiB reports flatnet's VmRSS and VmHWM (peak) in KiB.
func memKiB(t testing.TB, p *lab.Process) (rss, peak int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		key string
		v   *int
	}{{"VmRSS", &rss}, {"VmHWM", &peak}} {
		m := regexp.MustCompile(`(?m)^` + k.key + `:\s+(\d+) kB`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no %s in /proc/%d/status", k.key, p.PID)
		}
		fmt.Sscan(string(m[1]), k.v)
	}
	return rss, peak
}

// memBound is the resident memory flatnet must stay under whatever the
// state dir holds: generous, a guard against reading what it should not.
const memBound = 64 << 10 // KiB

// a 100 MiB file named as an allocation, and one named otherwise: never
// read, logged once, memory unchanged.
func badHugeFile(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, `resync_interval = "1s"`, 2)
	dir := f.l.StateDir()
	rss0, _ := memKiB(t, f.fn)
	for _, name := range []string{"192.168.1.210", "huge.bin"} {
		fh, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := fh.Truncate(100 << 20); err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteAt([]byte(containerID()+"\r\neth0"), 0); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	f.settleAndCount(t, []string{
		"ignoring 192.168.1.210 in " + dir + ": larger than",
		"ignoring huge.bin in " + dir + ": name",
	})
	rss, peak := memKiB(t, f.fn)
	t.Logf("memory: 100 MiB files: VmRSS %d KiB before, %d KiB after, peak %d KiB", rss0, rss, peak)
	if peak > memBound {
		t.Errorf("flatnet's peak RSS %d KiB is over %d KiB", peak, memBound)
	}
	f.unharmed(t)
}

// 100,000 junk files: the daemon keeps up, memory stays bounded, the log
// names the first entries and counts the others, once.
func badJunkFiles(t *testing.T) {
	testenv.SkipShort(t, "creating 100,000 files takes half a minute")
	f := newFaultLab(t, lab.Options{}, `resync_interval = "1s"`, 2)
	dir := f.l.StateDir()
	rss0, _ := memKiB(t, f.fn)
	const n = 100_000
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				name := fmt.Sprintf("junk-%06d", i)
				if i%10 == 0 {
					// Some look like allocations of a range long gone.
					name = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(containerID()+"\r\neth0"), 0o644); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	made := time.Since(start)
	// The pass after SIGHUP reads the whole directory, every file in it:
	// from then on the counts stop changing.
	hup(t, f.fn)
	resyncs(t, f.fn, 2)
	t.Logf("%d junk files made in %v while flatnet ran", n, made.Round(time.Millisecond))
	rss, peak := memKiB(t, f.fn)
	t.Logf("memory: %d junk files: VmRSS %d KiB before, %d KiB after, peak %d KiB", n, rss0, rss, peak)
	if rss > memBound || peak > memBound {
		t.Errorf("flatnet's RSS %d KiB (peak %d KiB) is over %d KiB", rss, peak, memBound)
	}
	summaries := []string{
		"more than 100 unusable entries in " + dir,
		"not routing more than 100 addresses of network default",
	}
	logOnce(t, f.fn, summaries...)
	logged := f.fn.Log()
	resyncs(t, f.fn, 3)
	hup(t, f.fn)
	resyncs(t, f.fn, 1)
	if more := strings.TrimPrefix(f.fn.Log(), logged); strings.Contains(more, "junk-") || strings.Contains(more, "not routing") || strings.Contains(more, "unusable") {
		t.Errorf("junk logged again on resync:\n%s", more)
	}
	lines := 0
	for line := range strings.SplitSeq(logged, "\n") {
		if line != "" && !strings.Contains(line, "level=DEBUG") {
			lines++
		}
	}
	t.Logf("flatnet's log: %d lines above debug level", lines)
	if lines > 500 {
		t.Errorf("%d junk files made %d lines of log; the log must stay readable", n, lines)
	}
	f.unharmed(t)
}

// configuration: every validation error names the key and the line; a bad
// file at start exits 2 with that message.
func badConfigAtStart(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{})
	type at struct {
		line int
		key  string
	}
	cases := []struct {
		name, file string
		want       []at // each error: its line, and the key it names
	}{
		{"duration", "resync_interval = \"5 minutes\"\n", []at{{1, "resync_interval"}}},
		{"short duration", "log_level = \"info\"\nresync_interval = \"10ms\"\n", []at{{2, "resync_interval"}}},
		{"unknown key", "resync_intervall = \"5m\"\n", []at{{1, "resync_intervall"}}},
		{"log level", "\nlog_level = \"verbose\"\n", []at{{2, "log_level"}}},
		{"on_stop", "on_stop = \"destroy\"\n", []at{{1, "on_stop"}}},
		{"relative path", "state_root = \"var/lib\"\n", []at{{1, "state_root"}}},
		{"cidr", "[[network]]\nname = \"default\"\nranges = [\"192.168.1.0/33\"]\n", []at{{3, "network[1].ranges"}}},
		{"shim too long", "[[network]]\nname = \"default\"\nshim = \"averyveryverylongname\"\n", []at{{3, "network[1].shim"}}},
		{"shim is master", "[[network]]\nname = \"default\"\nmaster = \"eno1\"\nshim = \"eno1\"\n", []at{{4, "network[1].shim"}}},
		{"syntax", "resync_interval = \n", []at{{1, ""}}},
		{"several", "on_stop = \"never\"\n\n[[network]]\nname = \"default\"\nbogus = 1\nranges = [\"10.0.0.1/8\"]\n",
			[]at{{1, "on_stop"}, {5, "bogus"}, {6, "network[1].ranges"}}},
	}
	for i, c := range cases {
		path := filepath.Join(l.Dir, fmt.Sprintf("bad%d.toml", i))
		if err := os.WriteFile(path, []byte(c.file), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := l.Start(l.Node, "flatnet-bad", flatnetBin, "run", "--config", path)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Done():
		case <-time.After(deadline):
			_ = p.Close()
			t.Errorf("%s: flatnet run kept running with %q", c.name, c.file)
			continue
		}
		out := p.Log()
		if p.ExitCode() != 2 {
			t.Errorf("%s: exit %d, want 2; output:\n%s", c.name, p.ExitCode(), out)
		}
		for _, w := range c.want {
			found := false
			for line := range strings.SplitSeq(out, "\n") {
				found = found || strings.Contains(line, fmt.Sprintf("%s:%d: ", path, w.line)) && strings.Contains(line, w.key)
			}
			if !found {
				t.Errorf("%s: no message names %s:%d and %q:\n%s", c.name, path, w.line, w.key, out)
			}
		}
		t.Logf("%s: %s", c.name, strings.TrimSpace(out))
	}
}

// configuration: a bad file at reload keeps the running configuration and
// says why; a good one is taken.
func badConfigAtReload(t *testing.T) {
	f := newFaultLab(t, lab.Options{}, `on_stop = "keep"`, 2)
	// A good change is taken...
	if _, err := f.l.WriteFlatnetConfig("on_stop = \"keep\"\nresync_interval = \"1s\"\n"); err != nil {
		t.Fatal(err)
	}
	hup(t, f.fn)
	waitLog(t, f.fn, "configuration reloaded", deadline)
	resyncs(t, f.fn, 2) // the new interval is in force
	// ... a bad one is not, and the message says where and why.
	cfg := f.l.FlatnetConfig("on_stop = \"teardown\"\nresync_interval = \"1 s\"\n")
	line := 1 + strings.Count(cfg[:strings.Index(cfg, "resync_interval")], "\n")
	if err := os.WriteFile(f.l.FlatnetConfigPath(), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	hup(t, f.fn)
	want := fmt.Sprintf("%s:%d: resync_interval:", f.l.FlatnetConfigPath(), line)
	waitLog(t, f.fn, "configuration not reloaded; the running one stays", deadline)
	if !strings.Contains(f.fn.Log(), want) {
		t.Errorf("the refusal does not name %q:\n%s", want, f.fn.Log())
	}
	resyncs(t, f.fn, 2) // still running, with the old interval
	f.unharmed(t)
	// The running on_stop = "keep" holds: SIGTERM keeps the routes.
	before := flatnetRoutes(t, f.l)
	if err := f.fn.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("flatnet on SIGTERM: %v", err)
	}
	if after := flatnetRoutes(t, f.l); len(after) != len(before) {
		t.Errorf("routes before SIGTERM %v, after %v: the refused on_stop = teardown was applied", before, after)
	}
}

// CNI configs: unparseable JSON, a conflist with no macvlan, a macvlan mode
// that does not exist, ranges that do not parse: each skipped with a clear
// message once, the other networks unaffected; also while running, and a
// good file turning bad keeps its networks.
func badCNIConfigs(t *testing.T) {
	needFlatnet(t)
	l := lab.NewT(t, lab.Options{})
	files := map[string]string{
		"10-broken.conflist":   `{"cniVersion": "0.3.1", "name": "broken", "plugins": [`,
		"20-bridge.conflist":   `{"cniVersion": "0.3.1", "name": "bridgenet", "plugins": [{"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/16"}]]}}]}`,
		"30-mode.conflist":     `{"cniVersion": "0.3.1", "name": "modenet", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "source", "ipam": {"type": "dhcp"}}]}`,
		"40-badrange.conflist": `{"cniVersion": "0.3.1", "name": "badrange", "plugins": [{"type": "macvlan", "master": "eno1", "ipam": {"type": "host-local", "ranges": [[{"subnet": "192.168.300.0/24"}]]}}]}`,
		"50-binary.conf":       "\x00\x01\x02\xff",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(l.CNIConfDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := &faultLab{l: l, shim: l.Master + ".host"}
	f.pods = []*lab.Pod{mustPod(t, l, "pod1"), mustPod(t, l, "pod2")}
	// The runtime directory systemd would give the unit, shared with
	// flatnet status below: the daemon's memory of the node is there.
	t.Setenv("RUNTIME_DIRECTORY", t.TempDir())
	f.fn = startFlatnet(t, l, `resync_interval = "1s"`)
	for _, p := range f.pods {
		reachable(t, l, p, deadline)
	}
	f.h = nodeHandle(t, l)
	var err error
	if f.w, err = l.WatchRoutes(l.Node); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		"CNI config 10-broken.conflist skipped:",
		"CNI config 20-bridge.conflist",
		"CNI config 30-mode.conflist skipped:",
		"CNI config 40-badrange.conflist skipped:",
		"CNI config 50-binary.conf skipped:",
	}
	// While running: a new bad file, and the good one broken by a
	// half-finished edit.
	if err := os.WriteFile(filepath.Join(l.CNIConfDir, "60-late.conflist"), []byte(`{"name": 7}`), 0o644); err != nil {
		t.Fatal(err)
	}
	lines = append(lines, "CNI config 60-late.conflist skipped:")
	good, err := os.ReadFile(l.ConfList)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.ConfList, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	lines = append(lines, "CNI config "+filepath.Base(l.ConfList)+": ")
	f.settleAndCount(t, lines)
	f.unharmed(t)
	// flatnet status sees what the daemon does: the broken file's network
	// kept, its pods routed, and the file's problem.
	d, _ := statusJSON(t, l)
	routed := map[netip.Addr]bool{}
	for _, n := range d.Networks {
		for _, a := range n.Addresses {
			if n.Name == l.Opts.Network && a.Routed {
				routed[a.IP] = true
			}
		}
	}
	for _, p := range f.pods {
		if !routed[p.IP] {
			t.Errorf("flatnet status does not show pod %s of network %s routed while its file is broken: %+v", p.IP, l.Opts.Network, d)
		}
	}
	if !slices.ContainsFunc(d.Problems, func(s string) bool {
		return strings.Contains(s, filepath.Base(l.ConfList)) && strings.Contains(s, "kept as it defined them before")
	}) {
		t.Errorf("flatnet status does not name the broken file, whose networks are kept: %q", d.Problems)
	}
	if err := os.WriteFile(l.ConfList, good, 0o644); err != nil {
		t.Fatal(err)
	}
	resyncs(t, f.fn, 2)
	logOnce(t, f.fn, lines...)
	f.unharmed(t)
	for _, s := range lines {
		for line := range strings.SplitSeq(f.fn.Log(), "\n") {
			if strings.Contains(line, s) {
				t.Logf("logged: %s", line)
			}
		}
	}
}
