package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// up builds a lab with pods (and flatnet), prints how to get in, and keeps
// it until SIGINT or SIGTERM.
func up(w io.Writer, pods int, flatnet string, logf func(string, ...any)) error {
	sig := interrupted()
	if why := lab.Missing(); why != "" {
		return fmt.Errorf("cannot build a lab here: %s", why)
	}
	l, err := lab.New(lab.Options{Logf: logf})
	if err != nil {
		return err
	}
	defer l.Close()
	for i := 1; i <= pods; i++ {
		p, err := l.AddPod(fmt.Sprintf("pod%d", i))
		if err != nil {
			return err
		}
		if _, err := l.StartPodHTTP(p); err != nil {
			return err
		}
		fmt.Fprintf(w, "pod%d  %-15s ns %s\n", i, p.IP, p.NS)
	}
	var fn *lab.Process
	if flatnet != "" {
		if _, err := l.WriteFlatnetConfig(""); err != nil {
			return err
		}
		if fn, err = l.StartFlatnet(flatnet); err != nil {
			return err
		}
		fmt.Fprintf(w, "flatnet pid %d, log %s\n", fn.PID, fn.LogPath)
	}
	fmt.Fprintf(w, `
LAN   ns %s (br0 %s)
node  ns %s (%s %s)
dir   %s (conflist %s, state %s)

  ip netns exec %s bash          # a shell on the node
  ip -n %s route
  ip netns exec %s ping %s

^C removes everything.
`, l.LAN, l.Gateway, l.Node, l.Master, l.NodeIP, l.Dir, l.ConfList, l.StateDir(),
		l.Node, l.Node, l.Node, firstPodIP(l))
	var exited <-chan struct{}
	if fn != nil {
		exited = fn.Done()
	}
	select {
	case s := <-sig:
		fmt.Fprintf(w, "\n%v: removing the lab\n", s)
	case <-exited:
		fmt.Fprintf(w, "flatnet exited (status %d); its log:\n%s\nremoving the lab\n", fn.ExitCode(), indent(fn.Log()))
	}
	start := time.Now()
	err = l.Close()
	fmt.Fprintf(w, "removed in %v\n", time.Since(start).Round(time.Millisecond))
	return err
}

// firstPodIP is an address to ping in the help text.
func firstPodIP(l *lab.Lab) string {
	for _, p := range l.Pods() {
		return p.IP.String()
	}
	return l.Gateway.String()
}

// indent prefixes each line with four spaces.
func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (nothing)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// clean removes what labs of dead processes left behind.
func clean(w, ew io.Writer) int {
	removed, err := lab.RemoveStale()
	for _, ns := range removed {
		fmt.Fprintln(w, "removed namespace", ns)
	}
	if err != nil {
		fmt.Fprintln(ew, "flatnet-lab:", err)
		return 1
	}
	if len(removed) == 0 {
		fmt.Fprintln(w, "nothing left behind")
	}
	return 0
}
