package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, fixed
// at 100 in the kernel's ABI on every architecture Linux ships.
const userHZ = 100

// procStat is what the benchmark reads of /proc/<pid>/stat.
type procStat struct {
	pgrp int
	cpu  time.Duration // utime + stime, in USER_HZ ticks
}

// readStat reads /proc/<pid>/stat (whole-process CPU times).
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// comm, the second field, may hold spaces and parentheses: the fields
	// that follow start after its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	var st procStat
	st.pgrp, _ = strconv.Atoi(f[2])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	sys, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpu = time.Duration(ut+sys) * time.Second / userHZ
	return st, nil
}

// statusFields reads the "Key: value" lines of a /proc status file that
// are in keys, as numbers (the first word of the value).
func statusFields(path string, keys ...string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, want := range keys {
			if k == want {
				if f := strings.Fields(v); len(f) > 0 {
					out[k], _ = strconv.ParseInt(f[0], 10, 64)
				}
			}
		}
	}
	return out, nil
}

// memory is a process's resident set now and at its peak, in bytes.
type memory struct{ rss, hwm int64 }

// readMemory reads VmRSS and VmHWM of pid.
func readMemory(pid int) (memory, error) {
	f, err := statusFields(fmt.Sprintf("/proc/%d/status", pid), "VmRSS", "VmHWM")
	if err != nil {
		return memory{}, err
	}
	return memory{rss: f["VmRSS"] << 10, hwm: f["VmHWM"] << 10}, nil
}

// wakeups counts the voluntary and involuntary context switches of every
// thread of pid, by "thread N" (the Nth thread by id; thread 1 is the
// main thread): each is the thread going to sleep (or being put off the
// CPU) after it ran, so the count of its wake-ups.
func wakeups(pid int) (map[string]int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		return nil, fmt.Errorf("no threads of pid %d: %v", pid, err)
	}
	tids := make([]int, 0, len(tasks))
	for _, t := range tasks {
		if tid, err := strconv.Atoi(filepath.Base(t)); err == nil {
			tids = append(tids, tid)
		}
	}
	slices.Sort(tids)
	out := map[string]int64{}
	for i, tid := range tids {
		f, err := statusFields(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid), "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
		if err != nil {
			continue // the thread just ended
		}
		out[fmt.Sprintf("thread %d", i+1)] = f["voluntary_ctxt_switches"] + f["nonvoluntary_ctxt_switches"]
	}
	return out, nil
}

// sumValues adds up a map's values.
func sumValues(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// runTime is the CPU time every thread of pid has spent running, from
// /proc/<pid>/task/*/schedstat: nanoseconds, unlike /proc/<pid>/stat.
func runTime(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

// groupMembers lists the processes of process group pgrp: a shell
// pipeline the benchmark started (with its own group) and its children.
func groupMembers(pgrp int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && st.pgrp == pgrp {
			out = append(out, pid)
		}
	}
	return out
}

// groupMemory sums the resident memory of a process group's members.
func groupMemory(pgrp int) memory {
	var m memory
	for _, pid := range groupMembers(pgrp) {
		if pm, err := readMemory(pid); err == nil {
			m.rss += pm.rss
			m.hwm += pm.hwm
		}
	}
	return m
}

// groupWakeups sums the context switches of a process group's members.
func groupWakeups(pgrp int) int64 {
	var n int64
	for _, pid := range groupMembers(pgrp) {
		if w, err := wakeups(pid); err == nil {
			n += sumValues(w)
		}
	}
	return n
}

// groupCPU sums the CPU time of a process group's members.
func groupCPU(pgrp int) time.Duration {
	var d time.Duration
	for _, pid := range groupMembers(pgrp) {
		if st, err := readStat(pid); err == nil {
			d += st.cpu
		}
	}
	return d
}

// signalGroup sends sig to each member of process group pgrp other than
// its leader, one by one by pid.
func signalGroup(pgrp int, sig syscall.Signal) {
	for _, pid := range groupMembers(pgrp) {
		if pid != pgrp {
			_ = syscall.Kill(pid, sig)
		}
	}
}
