package main

import (
	"bytes"
	"encoding/csv"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                        "0.00 ms",
		ms(0.05):                 "0.05 ms",
		ms(1.234):                "1.23 ms",
		ms(9.999):                "10.00 ms",
		ms(12.34):                "12.3 ms",
		ms(123.4):                "123 ms",
		ms(9999):                 "9999 ms",
		12345 * time.Millisecond: "12.3 s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
	if got := mib(3 << 19); got != "1.5 MiB" {
		t.Errorf("mib = %q", got)
	}
}

func TestQuantile(t *testing.T) {
	if quantile(nil, 0.5) != 0 {
		t.Error("quantile of nothing is not 0")
	}
	ds := []time.Duration{5, 1, 4, 2, 3} // out of order, and not sorted in place
	for q, want := range map[float64]time.Duration{0: 1, 0.2: 1, 0.21: 2, 0.5: 3, 0.99: 5, 1: 5} {
		if got := quantile(ds, q); got != want {
			t.Errorf("quantile(%v, %v) = %v, want %v (nearest rank)", ds, q, got, want)
		}
	}
	if ds[0] != 5 {
		t.Errorf("quantile sorted its argument: %v", ds)
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	if got := quantile(hundred, 0.99); got != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99", got)
	}
	runs := []cold{{routes: 30}, {routes: 10}, {routes: 20}}
	if got := median(runs, func(c cold) time.Duration { return c.routes }); got != 20 {
		t.Errorf("median = %v, want 20", got)
	}
}

func TestRatio(t *testing.T) {
	for _, c := range []struct {
		a, b cell
		want string
	}{
		{durCell(ms(3)), durCell(ms(2)), "1.50×"},
		{durCell(ms(250)), durCell(ms(10)), "25×"},
		{durCell(ms(1)), durCell(ms(4)), "0.25×"},
		{durCell(ms(1)), textCell("never"), ""},
		{textCell("-"), durCell(ms(1)), ""},
		{durCell(ms(1)), cell{ok: true}, ""}, // zero
	} {
		if got := ratio(c.a, c.b); got != c.want {
			t.Errorf("ratio(%q, %q) = %q, want %q", c.a.s, c.b.s, got, c.want)
		}
	}
}

func TestCellNumber(t *testing.T) {
	for _, c := range []struct {
		c    cell
		want string
	}{
		{durCell(ms(1.5)), "1.500"},
		{durCell(12 * time.Second), "12000.000"},
		{cell{v: 3 << 20, s: mib(3 << 20), ok: true}, "3.00"},
		{cell{v: 7, s: "7 (sysmon 7)", ok: true}, "7"},
		{textCell("never (events only)"), ""},
	} {
		if got := c.c.number(); got != c.want {
			t.Errorf("number(%q) = %q, want %q", c.c.s, got, c.want)
		}
	}
}

// testBench is a bench with results as a run would leave them.
func testBench() *bench {
	b := &bench{cfg: benchConfig{flatnet: "/nonexistent/flatnet", label: "test run", burst: 3, cold: []int{10}, reps: 1, loadN: 5, idle: 10 * time.Second}}
	b.res = results{
		lat: map[string][]time.Duration{
			sysFlatnet: {ms(1), ms(1), ms(1.5), ms(3)},
			sysScript:  {ms(4), ms(4), ms(6), ms(9)},
		},
		latLoaded: map[int]map[string][]time.Duration{5: {sysFlatnet: {ms(1)}}},
		burstAdd: map[string]burst{
			sysFlatnet: {write: ms(2), lastToEnd: ms(50), total: ms(60)},
			sysScript:  {write: ms(2), lastToEnd: ms(500), total: ms(600)},
			sysBatch:   {lastToEnd: ms(5), total: ms(6)},
		},
		burstDel: map[string]burst{sysFlatnet: {lastToEnd: ms(40)}},
		cold: map[int]map[string][]cold{10: {
			sysFlatnet: {{routes: ms(30), ready: ms(20), cpu: ms(10)}},
			sysBatch:   {{routes: ms(10), cpu: ms(5)}},
		}},
		mem:         map[string]memory{sysFlatnet: {rss: 12 << 20, hwm: 15 << 20}},
		idle:        map[string]idle{sysFlatnet: {cpu: ms(2), wakeups: 6}},
		idleThreads: map[string]int64{"thread 2": 6},
		first: map[string][2][]time.Duration{
			"auto": {{ms(0.2), ms(0.3)}, {ms(0.4), ms(12)}},
		},
	}
	return b
}

func TestBenchRows(t *testing.T) {
	rows := testBench().rows()
	byName := map[string]row{}
	for _, r := range rows {
		byName[r.name] = r
	}
	for name, want := range map[string]struct{ flatnet, script, batch, target, verdict string }{
		"allocation → route (4, one at a time), p50":         {"1.00 ms", "4.00 ms", "", "", ""},
		"allocation → route (4, one at a time), p99":         {"3.00 ms", "9.00 ms", "", "≤ 1.00 ms, ≤ script", "MISSED"},
		"allocation → route (4, one at a time), max":         {"3.00 ms", "9.00 ms", "", "", ""},
		"burst of 3: last file → last route":                 {"50.0 ms", "500 ms", "5.00 ms", "≤ 100 ms", "met"},
		"burst of 3: first file → last route":                {"60.0 ms", "600 ms", "6.00 ms", "", ""},
		"3 releases: last removal → last route gone":         {"40.0 ms", "", "", "", ""},
		"cold start, 10: exec → all routes":                  {"30.0 ms", "never (events only)", "10.0 ms", "≤ 1.2× ip -batch", "MISSED"},
		"cold start, 10: exec → READY=1":                     {"20.0 ms", "", "", "", ""},
		"resident memory at 5 routes (VmRSS)":                {"12.0 MiB", "", "", "< 20 MiB", "met"},
		"idle 10s: wake-ups (context switches)":              {"6 (sysmon 6)", "", "", "0 but the Go runtime's sysmon", "met"},
		"node's first ping to a new pod, IPv6 (2 pods), p99": {"12.0 ms", "", "", "≤ 10 ms", "MISSED"},
		"node's first ping to a new pod, IPv4 (2 pods), p99": {"0.30 ms", "", "", "≤ 10 ms", "met"},
	} {
		r, ok := byName[name]
		if !ok {
			t.Errorf("no row %q", name)
			continue
		}
		got := [5]string{r.c[0].s, r.c[1].s, r.c[2].s, r.target, r.verdict}
		if got != [5]string{want.flatnet, want.script, want.batch, want.target, want.verdict} {
			t.Errorf("row %q = %q, want %q", name, got, want)
		}
	}
	// Sections without results make no rows.
	b := testBench()
	b.res = results{}
	if rows := b.rows(); len(rows) != 0 {
		t.Errorf("rows without results: %v", rows)
	}
}

func TestBenchPrintAndCSV(t *testing.T) {
	b := testBench()
	b.dir = t.TempDir()
	b.cfg.csv = filepath.Join(b.dir, "bench.csv")
	var out bytes.Buffer
	b.print(&out, 90*time.Second)
	s := out.String()
	for _, want := range []string{
		"flatnet benchmark (test run)",
		"binary:  unknown", // no binary to ask its version
		"measure  ",
		"flatnet ÷ script",
		"burst of 3: last file → last route",
		"≤ 100 ms: met",
		"writing the burst's 3 files took 2.00 ms (flatnet run), 2.00 ms (script run)",
		"thread 2 6",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the table lacks %q:\n%s", want, s)
		}
	}
	// The ratio columns: flatnet's 50 ms burst against the script's 500 ms
	// and ip -batch's 5 ms.
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(line, "burst of 3: last file") {
			if f := strings.Join(strings.Fields(line), " "); !strings.Contains(f, "0.10× 10×") {
				t.Errorf("burst row's ratios: %q", f)
			}
		}
	}
	b2, err := os.ReadFile(b.cfg.csv)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b2)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(b.rows())+1 || strings.Join(recs[0], ",") != "measure,flatnet,inotifywait script,ip -batch,target,verdict" {
		t.Fatalf("csv: %d records, header %q", len(recs), recs[0])
	}
	found := false
	for _, r := range recs[1:] {
		if r[0] == "burst of 3: last file → last route" {
			found = true
			if r[1] != "50.000" || r[2] != "500.000" || r[3] != "5.000" || r[5] != "met" {
				t.Errorf("csv burst row: %q", r)
			}
		}
	}
	if !found {
		t.Error("no burst row in the csv")
	}
}

func TestPingRTT(t *testing.T) {
	out := `PING 192.168.1.2 (192.168.1.2) 56(84) bytes of data.
64 bytes from 192.168.1.2: icmp_seq=1 ttl=64 time=0.052 ms

--- 192.168.1.2 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.052/0.052/0.052/0.000 ms
`
	if got, err := pingRTT(out); err != nil || got != 52*time.Microsecond {
		t.Errorf("pingRTT = %v, %v; want 52µs", got, err)
	}
	v6 := "64 bytes from fd00::1:2: icmp_seq=1 ttl=64 time=1004 ms\n"
	if got, err := pingRTT(v6); err != nil || got != 1004*time.Millisecond {
		t.Errorf("pingRTT(IPv6, slow) = %v, %v", got, err)
	}
	if _, err := pingRTT("1 packets transmitted, 0 received, 100% packet loss, time 0ms\n"); err == nil {
		t.Error("a ping without a reply gave a time")
	}
}

func TestDemoHelpers(t *testing.T) {
	out := `PING 192.168.1.2 (192.168.1.2) 56(84) bytes of data.
64 bytes from 192.168.1.2: icmp_seq=1 ttl=64 time=0.061 ms
From 192.168.0.5 icmp_seq=2 Destination Host Unreachable

--- 192.168.1.2 ping statistics ---
2 packets transmitted, 1 received, +1 errors, 50% packet loss, time 201ms
`
	want := "64 bytes from 192.168.1.2: icmp_seq=1 ttl=64 time=0.061 ms\nFrom 192.168.0.5 icmp_seq=2 Destination Host Unreachable\n2 packets transmitted, 1 received, +1 errors, 50% packet loss, time 201ms"
	if got := pingSummary(out); got != want {
		t.Errorf("pingSummary:\n%s\nwant\n%s", got, want)
	}
	if got := lastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("lastLines = %q", got)
	}
	if got := indentBy("a\nb", "  "); got != "  a\n  b" {
		t.Errorf("indentBy = %q", got)
	}
	nic, shim := net.HardwareAddr{2, 0, 0, 0, 0, 5}, net.HardwareAddr{2, 0, 0, 0, 0, 6}
	if got := macList([]net.HardwareAddr{nic, shim, {2, 0, 0, 0, 0, 7}}, nic, shim, "eno1", "eno1.host"); got != "02:00:00:00:00:05 (eno1), 02:00:00:00:00:06 (eno1.host), 02:00:00:00:00:07 (?)" {
		t.Errorf("macList = %q", got)
	}
	if got := macList(nil, nic, shim, "eno1", "eno1.host"); got != "nobody" {
		t.Errorf("macList(nil) = %q", got)
	}
	ps := []netip.Prefix{netip.MustParsePrefix("192.168.1.2/16"), netip.MustParsePrefix("fd00::1:2/64")}
	if got := prefixList(ps); got != "192.168.1.2/16 and fd00::1:2/64" {
		t.Errorf("prefixList = %q", got)
	}
	var b bytes.Buffer
	d := &narrator{w: &b}
	d.fail("x %d", 1)
	d.ok("fine")
	if len(d.failures) != 1 || !strings.Contains(b.String(), "FAILED: x 1") || !strings.Contains(b.String(), "ok: fine") || strings.Contains(b.String(), "\x1b[") {
		t.Errorf("narrator: %q, failures %v", b.String(), d.failures)
	}
}

func TestCommandLine(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage:") {
		t.Errorf("no command: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "flatnet-lab demo") {
		t.Errorf("help: exit %d, %q", code, out.String())
	}
	cfg, _, ok := benchFlags([]string{"--quick", "--only", "latency,first", "--idle", "3s"}, &errb)
	if !ok || !cfg.quick || cfg.singles != 300 || cfg.idle != 3*time.Second || strings.Join(cfg.sections, ",") != "latency,first" {
		t.Errorf("bench flags: %+v, %v", cfg, ok)
	}
	errb.Reset()
	if _, _, ok := benchFlags([]string{"--only", "latency,nope"}, &errb); ok || !strings.Contains(errb.String(), `unknown part "nope"`) {
		t.Errorf("bench --only nope: %v, %q", ok, errb.String())
	}
	if _, _, ok := benchFlags([]string{"extra"}, &errb); ok {
		t.Error("bench with an extra argument was accepted")
	}
}
