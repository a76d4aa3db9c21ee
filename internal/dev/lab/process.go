package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// StopTimeout is how long Process.Stop waits before it kills.
const StopTimeout = 10 * time.Second

// Process is a process the lab started in one of its namespaces.
type Process struct {
	// Name is the name it was started with; LogPath the file holding its
	// stdout and stderr.
	Name, LogPath string
	// PID is its process id.
	PID int

	lab  *Lab
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, set before done is closed
	// halt, if set, is how kill stops the process before its SIGKILL: a
	// process that is the parent of a PID namespace's init (the CRI's
	// unshare) kills that init first, so that it is reaped by its parent
	// rather than orphaned.
	halt func()
}

// Start runs argv in a lab namespace (`ip netns exec NS argv…`, which execs
// argv in place, so PID is argv's own), with stdout and stderr in
// <Dir>/<name>.log (<name>-2.log, … when the name was used before), in its
// own process group so a terminal's ^C reaches only the lab. The process is
// killed if this one dies, and by Close.
func (l *Lab) Start(ns, name string, argv ...string) (*Process, error) {
	return l.start(ns, name, nil, argv...)
}

// start is Start with the `ip netns exec` command run by wrap, a command
// that execs its arguments in place (so PID is still argv's).
func (l *Lab) start(ns, name string, wrap []string, argv ...string) (*Process, error) {
	l.ops.RLock()
	defer l.ops.RUnlock()
	return l.startLocked(ns, name, wrap, argv...)
}

// startLocked is start for a caller holding l.ops for reading.
func (l *Lab) startLocked(ns, name string, wrap []string, argv ...string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("Start: no command")
	}
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("Start: bad name %q", name)
	}
	if err := l.checkNS(ns); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.logSeq[name]++
	logName := name + ".log"
	if n := l.logSeq[name]; n > 1 {
		logName = fmt.Sprintf("%s-%d.log", name, n)
	}
	l.mu.Unlock()
	p := &Process{Name: name, LogPath: filepath.Join(l.Dir, logName), lab: l, done: make(chan struct{})}
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	full := append(append(append([]string(nil), wrap...), "ip", "netns", "exec", ns), argv...)
	p.cmd = exec.Command(full[0], full[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", strings.Join(argv, " "), ns, err)
	}
	p.PID = p.cmd.Process.Pid
	l.logf("started %s (pid %d) in %s: %s", name, p.PID, ns, strings.Join(argv, " "))
	l.mu.Lock()
	l.procs[p] = true
	l.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		l.mu.Lock()
		delete(l.procs, p)
		l.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Signal sends sig to the process (by its PID), unless it has exited.
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return os.ErrProcessDone
	}
	return p.cmd.Process.Signal(sig)
}

// Wait waits for the process to exit and returns how (nil for status 0).
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit status, or -1 while running or when it was killed
// by a signal.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Stop sends sig and waits for the process to exit, killing it after
// StopTimeout; it returns what Wait returns (an *exec.ExitError for a
// non-zero exit or death by a signal).
func (p *Process) Stop(sig os.Signal) error {
	if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(StopTimeout):
		_ = p.kill()
		return fmt.Errorf("%s (pid %d) did not exit within %v of %v; killed", p.Name, p.PID, StopTimeout, sig)
	}
}

// Close kills the process if it is still running and waits for it.
func (p *Process) Close() error { return p.kill() }

// kill sends SIGKILL unless the process has exited, and waits.
func (p *Process) kill() error {
	if p.halt != nil && !p.Exited() {
		p.halt()
	}
	if err := p.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.done
	return nil
}

// Log returns what the process wrote so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// RouteEvent is one route change seen by a RouteWatch.
type RouteEvent struct {
	Time    time.Time    // when the watch saw it
	Deleted bool         // RTM_DELROUTE rather than RTM_NEWROUTE
	Dst     netip.Prefix // destination; invalid for default routes
	Dev     string       // output device's name ("if<N>" once it is gone)
	Proto   int          // rtnetlink protocol
	Table   int          // routing table
}

// String formats the event like `ip monitor route`.
func (e RouteEvent) String() string {
	dst := "default"
	if e.Dst.IsValid() {
		dst = e.Dst.String()
		if e.Dst.IsSingleIP() {
			dst = e.Dst.Addr().String()
		}
	}
	s := fmt.Sprintf("%s dev %s table %d proto %d", dst, e.Dev, e.Table, e.Proto)
	if e.Deleted {
		s = "Deleted " + s
	}
	return s
}

// RouteWatch records the route changes of a lab namespace, like
// `ip monitor route` running there, from the moment WatchRoutes returns.
type RouteWatch struct {
	mu     sync.Mutex
	events []RouteEvent
	done   chan struct{}
	ended  chan struct{}
	closer *closer
	lab    *Lab
	once   sync.Once
}

// WatchRoutes starts recording route changes in a lab namespace. It is
// subscribed when it returns, so no later change is missed.
func (l *Lab) WatchRoutes(ns string) (*RouteWatch, error) {
	h, err := l.handle(ns)
	if err != nil {
		return nil, err
	}
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		h.Close()
		return nil, err
	}
	defer nsh.Close()
	ch := make(chan netlink.RouteUpdate, 256)
	w := &RouteWatch{done: make(chan struct{}), ended: make(chan struct{}), lab: l}
	if err := netlink.RouteSubscribeWithOptions(ch, w.done, netlink.RouteSubscribeOptions{Namespace: &nsh}); err != nil {
		h.Close()
		return nil, err
	}
	go func() {
		defer close(w.ended)
		defer h.Close()
		names := map[int]string{}
		for u := range ch {
			e := RouteEvent{Time: time.Now(), Deleted: u.Type == unix.RTM_DELROUTE, Proto: int(u.Protocol), Table: u.Table}
			if u.Dst != nil {
				if p, ok := ipNetPrefix(u.Dst); ok && p.Bits() > 0 {
					e.Dst = p
				}
			}
			name, ok := names[u.LinkIndex]
			if !ok {
				name = fmt.Sprintf("if%d", u.LinkIndex)
				if link, err := h.LinkByIndex(u.LinkIndex); err == nil {
					name = link.Attrs().Name
					names[u.LinkIndex] = name
				}
			}
			e.Dev = name
			w.mu.Lock()
			w.events = append(w.events, e)
			w.mu.Unlock()
		}
	}()
	w.closer = l.addCloser("route watch in "+ns, w.stop)
	return w, nil
}

// Events returns the changes recorded so far.
func (w *RouteWatch) Events() []RouteEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]RouteEvent(nil), w.events...)
}

// Deleted returns the deletions recorded so far.
func (w *RouteWatch) Deleted() []RouteEvent {
	var out []RouteEvent
	for _, e := range w.Events() {
		if e.Deleted {
			out = append(out, e)
		}
	}
	return out
}

// Close stops recording.
func (w *RouteWatch) Close() error {
	w.lab.dropCloser(w.closer)
	return w.stop()
}

func (w *RouteWatch) stop() error {
	w.once.Do(func() { close(w.done) })
	<-w.ended
	return nil
}
