package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// cell is one measurement in the table: v for ratios, s as printed.
type cell struct {
	v  float64
	s  string
	ok bool
}

func durCell(d time.Duration) cell {
	return cell{v: float64(d), s: fmtDur(d), ok: true}
}

func textCell(s string) cell { return cell{s: s} }

// row is a line of the table: flatnet, the script, ip -batch.
type row struct {
	name    string
	c       [3]cell
	target  string
	verdict string
}

// fmtDur prints a duration in milliseconds with three significant digits.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 10000:
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f s", ms/1000)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// ratio prints a ÷ b.
func ratio(a, b cell) string {
	if !a.ok || !b.ok || b.v == 0 {
		return ""
	}
	r := a.v / b.v
	if r >= 10 {
		return fmt.Sprintf("%.0f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

// quantile is the nearest-rank q-quantile of ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// median of the runs by f.
func median(cs []cold, f func(cold) time.Duration) time.Duration {
	ds := make([]time.Duration, len(cs))
	for i, c := range cs {
		ds[i] = f(c)
	}
	return quantile(ds, 0.5)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// rows turns the results into the table.
func (b *bench) rows() []row {
	r := b.res
	var out []row
	latRows := func(label string, m map[string][]time.Duration, target time.Duration) {
		if len(m) == 0 {
			return
		}
		for _, q := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p99", 0.99}, {"max", 1}} {
			rw := row{name: fmt.Sprintf("%s, %s", label, q.name)}
			for i, sys := range []string{sysFlatnet, sysScript} {
				if ds := m[sys]; len(ds) > 0 {
					rw.c[i] = durCell(quantile(ds, q.q))
				}
			}
			if target > 0 && q.name == "p99" && rw.c[0].ok {
				// And never worse than the script.
				rw.target = "≤ " + fmtDur(target) + ", ≤ script"
				rw.verdict = verdict(time.Duration(rw.c[0].v) <= target && (!rw.c[1].ok || rw.c[0].v <= rw.c[1].v))
			}
			out = append(out, rw)
		}
	}
	latRows(fmt.Sprintf("allocation → route (%d, one at a time)", len(r.lat[sysFlatnet])), r.lat, time.Millisecond)

	if len(r.burstAdd) > 0 {
		n := b.cfg.burst
		rw := row{name: fmt.Sprintf("burst of %d: last file → last route", n)}
		rt := row{name: fmt.Sprintf("burst of %d: first file → last route", n)}
		rd := row{name: fmt.Sprintf("%d releases: last removal → last route gone", n)}
		for i, sys := range []string{sysFlatnet, sysScript, sysBatch} {
			if a, ok := r.burstAdd[sys]; ok {
				rw.c[i] = durCell(a.lastToEnd)
				rt.c[i] = durCell(a.total)
			}
			if d, ok := r.burstDel[sys]; ok {
				rd.c[i] = durCell(d.lastToEnd)
			}
		}
		if rw.c[0].ok {
			rw.target = "≤ 100 ms"
			rw.verdict = verdict(time.Duration(rw.c[0].v) <= 100*time.Millisecond)
		}
		out = append(out, rw, rt, rd)
	}

	for _, n := range b.cfg.cold {
		runs := r.cold[n]
		if len(runs) == 0 {
			continue
		}
		ra := row{name: fmt.Sprintf("cold start, %d: exec → all routes", n)}
		ry := row{name: fmt.Sprintf("cold start, %d: exec → READY=1", n)}
		rc := row{name: fmt.Sprintf("cold start, %d: CPU time", n)}
		if fs := runs[sysFlatnet]; len(fs) > 0 {
			ra.c[0] = durCell(median(fs, func(c cold) time.Duration { return c.routes }))
			ry.c[0] = durCell(median(fs, func(c cold) time.Duration { return c.ready }))
			rc.c[0] = durCell(median(fs, func(c cold) time.Duration { return c.cpu }))
		}
		ra.c[1] = textCell("never (events only)")
		if bs := runs[sysBatch]; len(bs) > 0 {
			ra.c[2] = durCell(median(bs, func(c cold) time.Duration { return c.routes }))
			rc.c[2] = durCell(median(bs, func(c cold) time.Duration { return c.cpu }))
		}
		if ra.c[0].ok && ra.c[2].ok {
			ra.target = "≤ 1.2× ip -batch"
			ra.verdict = verdict(ra.c[0].v <= 1.2*ra.c[2].v)
		}
		if rc.c[0].ok && rc.c[2].ok {
			rc.target = "≤ 1.5× ip -batch"
			rc.verdict = verdict(rc.c[0].v <= 1.5*rc.c[2].v)
		}
		out = append(out, ra, ry, rc)
	}

	if m, ok := r.mem[sysFlatnet]; ok {
		rr := row{name: fmt.Sprintf("resident memory at %d routes (VmRSS)", b.cfg.loadN), target: "< 20 MiB", verdict: verdict(m.rss < 20<<20)}
		rh := row{name: "peak resident memory (VmHWM)"}
		rr.c[0] = cell{v: float64(m.rss), s: mib(m.rss), ok: true}
		rh.c[0] = cell{v: float64(m.hwm), s: mib(m.hwm), ok: true}
		if s, ok := r.mem[sysScript]; ok {
			rr.c[1] = cell{v: float64(s.rss), s: mib(s.rss), ok: true}
			rh.c[1] = cell{v: float64(s.hwm), s: mib(s.hwm), ok: true}
		}
		out = append(out, rr, rh)
	}
	if i, ok := r.idle[sysFlatnet]; ok {
		secs := b.cfg.idle.Round(time.Second)
		rc := row{name: fmt.Sprintf("idle %v: CPU time (utime+stime)", secs)}
		// Thread 2 of a Go program is the runtime's sysmon, which sleeps at
		// most a minute (runtime/proc.go: forcegcperiod/2) even when idle.
		sysmon := r.idleThreads["thread 2"]
		rw := row{name: fmt.Sprintf("idle %v: wake-ups (context switches)", secs), target: "0 but the Go runtime's sysmon", verdict: verdict(i.wakeups-sysmon == 0)}
		rc.c[0] = durCell(i.cpu)
		rw.c[0] = cell{v: float64(i.wakeups), s: fmt.Sprintf("%d (sysmon %d)", i.wakeups, sysmon), ok: true}
		if s, ok := r.idle[sysScript]; ok {
			rc.c[1] = durCell(s.cpu)
			rw.c[1] = cell{v: float64(s.wakeups), s: fmt.Sprint(s.wakeups), ok: true}
		}
		out = append(out, rc, rw)
	}
	for _, n := range slices.Sorted(maps.Keys(r.latLoaded)) {
		latRows(fmt.Sprintf("allocation → route with %d routes present", n), r.latLoaded[n], time.Millisecond)
	}
	for _, n := range slices.Sorted(maps.Keys(r.latResult)) {
		latRows(fmt.Sprintf("cache entry (result only) → route with %d routes present", n), map[string][]time.Duration{sysFlatnet: r.latResult[n]}, time.Millisecond)
	}
	if f, ok := r.first["auto"]; ok {
		for i, fam := range []string{"IPv4", "IPv6"} {
			for _, q := range []struct {
				name string
				q    float64
			}{{"p50", 0.5}, {"p99", 0.99}, {"max", 1}} {
				rw := row{name: fmt.Sprintf("node's first ping to a new pod, %s (%d pods), %s", fam, len(f[i]), q.name)}
				rw.c[0] = durCell(quantile(f[i], q.q))
				if q.name == "p99" {
					rw.target = "≤ 10 ms"
					rw.verdict = verdict(time.Duration(rw.c[0].v) <= 10*time.Millisecond)
				}
				out = append(out, rw)
			}
		}
	}
	return out
}

// print writes the heading, the table and the notes.
func (b *bench) print(w io.Writer, took time.Duration) {
	version := "unknown"
	if out, err := exec.Command(b.cfg.flatnet, "version").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	fmt.Fprintf(w, "\nflatnet benchmark (%s), %s\n", b.cfg.label, time.Now().Format("2006-01-02 15:04"))
	fmt.Fprintf(w, "machine: %s\n", machine())
	fmt.Fprintf(w, "binary:  %s\n", version)
	fmt.Fprintf(w, "state:   %s (%s)\n", b.dir, fsType(b.dir))
	fmt.Fprintf(w, "run:     %v; cold starts: median of %d interleaved runs; load average %s at the start, %s at the end\n\n",
		took.Round(time.Second), b.cfg.reps, b.load0, loadAvg())

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tflatnet\tinotifywait script\tip -batch\tflatnet ÷ script\tflatnet ÷ ip -batch\ttarget\t")
	fmt.Fprintln(tw, "-------\t-------\t------------------\t---------\t----------------\t-------------------\t------\t")
	for _, r := range b.rows() {
		cells := make([]string, 3)
		for i, c := range r.c {
			cells[i] = c.s
			if cells[i] == "" {
				cells[i] = "-"
			}
		}
		target := r.target
		if r.verdict != "" {
			target += ": " + r.verdict
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.name, cells[0], cells[1], cells[2], ratio(r.c[0], r.c[1]), ratio(r.c[0], r.c[2]), target)
	}
	_ = tw.Flush()

	var notes []string
	if a, ok := b.res.burstAdd[sysFlatnet]; ok {
		notes = append(notes, fmt.Sprintf("writing the burst's %d files took %v (flatnet run), %v (script run)", b.cfg.burst, fmtDur(a.write), fmtDur(b.res.burstAdd[sysScript].write)))
	}
	if len(b.res.idleThreads) > 0 {
		var parts []string
		for k, v := range b.res.idleThreads {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		slices.Sort(parts)
		notes = append(notes, "flatnet's idle wake-ups by thread (thread 1 is the main thread, thread 2 the Go runtime's sysmon): "+strings.Join(parts, ", "))
	}
	for _, g := range []struct{ guard, what string }{{"filter", "the egress filter, proxy_delay 0"}, {"off", "the kernel's proxy_delay"}} {
		if f, ok := b.res.first[g.guard]; ok {
			notes = append(notes, fmt.Sprintf("first ping to a new pod with lan_guard = %s (%s): IPv4 p50 %s, p99 %s; IPv6 p50 %s, p99 %s, max %s", g.guard, g.what,
				fmtDur(quantile(f[0], 0.5)), fmtDur(quantile(f[0], 0.99)), fmtDur(quantile(f[1], 0.5)), fmtDur(quantile(f[1], 0.99)), fmtDur(quantile(f[1], 1))))
		}
	}
	notes = append(notes, b.res.notes...)
	if b.cfg.csv != "" {
		if err := b.writeCSV(b.cfg.csv); err != nil {
			notes = append(notes, fmt.Sprintf("writing %s: %v", b.cfg.csv, err))
		}
		if g := b.res.guard; g != nil {
			path := strings.TrimSuffix(b.cfg.csv, ".csv") + "-guard.csv"
			if err := g.writeGuardCSV(path); err != nil {
				notes = append(notes, fmt.Sprintf("writing %s: %v", path, err))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintf(w, "  * %s\n", n)
		}
	}
	if g := b.res.guard; g != nil {
		g.printGuard(w)
	}
}

// writeCSV writes the table's numbers for machines: one line per measure,
// durations in milliseconds, memory in MiB, counts as they are; empty
// where a system has no figure.
func (b *bench) writeCSV(path string) error {
	var sb strings.Builder
	w := csv.NewWriter(&sb)
	_ = w.Write([]string{"measure", sysFlatnet, sysScript, sysBatch, "target", "verdict"})
	for _, r := range b.rows() {
		rec := []string{r.name}
		for _, c := range r.c {
			rec = append(rec, c.number())
		}
		rec = append(rec, r.target, r.verdict)
		_ = w.Write(rec)
	}
	w.Flush()
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// number is the cell's value in the unit the table prints it in.
func (c cell) number() string {
	switch {
	case !c.ok:
		return ""
	case strings.HasSuffix(c.s, " MiB"):
		return fmt.Sprintf("%.2f", c.v/(1<<20))
	case strings.HasSuffix(c.s, " ms"), strings.HasSuffix(c.s, " s"):
		return fmt.Sprintf("%.3f", c.v/float64(time.Millisecond))
	}
	return fmt.Sprint(c.v)
}

// loadAvg is the first three fields of /proc/loadavg: on a shared machine,
// how much else was running.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
