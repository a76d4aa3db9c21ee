//go:build integration

package e2e

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/dev/lab"
	"golang.org/x/sys/unix"
)

// probeInterval is how often a prober sends an echo request: the
// resolution of the recovery times the fault tests report.
const probeInterval = time.Millisecond

// prober pings one address from a lab namespace every probeInterval with a
// raw ICMP socket and records when each reply came, so a test can tell
// when, after a fault, the address answered again.
type prober struct {
	target netip.Addr
	every  time.Duration
	id     uint16
	fd     int
	done   chan struct{}
	quiet  chan struct{} // closed to stop sending; replies are still read
	wg     sync.WaitGroup

	mu      sync.Mutex
	sent    map[uint16]time.Time // by sequence number
	replies []probeReply
}

type probeReply struct {
	sent, got time.Time
}

// startProber starts pinging target from ns every probeInterval until the
// test ends.
func startProber(t testing.TB, l *lab.Lab, ns string, target netip.Addr) *prober {
	t.Helper()
	return startProberEvery(t, l, ns, target, probeInterval)
}

// startProberEvery starts pinging target from ns every interval until the
// test ends (or settle).
func startProberEvery(t testing.TB, l *lab.Lab, ns string, target netip.Addr, every time.Duration) *prober {
	t.Helper()
	p := &prober{target: target, every: every, id: uint16(rand.N(1 << 16)), done: make(chan struct{}), quiet: make(chan struct{}), sent: map[uint16]time.Time{}}
	err := l.Do(ns, func() (err error) {
		p.fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		return err
	})
	if err != nil {
		t.Fatalf("ICMP socket in %s: %v", ns, err)
	}
	// A receive timeout lets the reader notice the end.
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	if err := unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(p.fd)
		t.Fatal(err)
	}
	p.wg.Add(2)
	go p.send()
	go p.receive()
	t.Cleanup(p.stop)
	return p
}

func (p *prober) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.wg.Wait()
	unix.Close(p.fd)
}

func (p *prober) send() {
	defer p.wg.Done()
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	to := &unix.SockaddrInet4{Addr: p.target.As4()}
	for seq := uint16(1); ; seq++ {
		msg := []byte{8, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(msg[4:], p.id)
		binary.BigEndian.PutUint16(msg[6:], seq)
		binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
		p.mu.Lock()
		p.sent[seq] = time.Now()
		p.mu.Unlock()
		_ = unix.Sendto(p.fd, msg, unix.MSG_DONTWAIT, to) // unreachable is what we measure
		select {
		case <-p.done:
			return
		case <-p.quiet:
			return
		case <-tick.C:
		}
	}
}

// count is how many requests were sent so far.
func (p *prober) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

// settle stops sending, waits until every request sent since from (the
// zero time: since the start) has its reply or timeout passed (a safety
// net: a reply that comes late is not lost), and returns how many of those
// requests went unanswered, of how many. Only then may a test assert a
// count of lost requests.
func (p *prober) settle(from time.Time, timeout time.Duration) (lost, sent int) {
	select {
	case <-p.quiet:
	default:
		close(p.quiet)
	}
	deadline := time.Now().Add(timeout)
	for {
		lost, sent = p.unanswered(from, time.Now().Add(time.Hour))
		if lost == 0 || time.Now().After(deadline) {
			return lost, sent
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *prober) receive() {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		select {
		case <-p.done:
			return
		default:
		}
		n, from, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			continue // timeout or EINTR
		}
		got := time.Now()
		src, ok := from.(*unix.SockaddrInet4)
		if !ok || netip.AddrFrom4(src.Addr) != p.target || n < 20 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		if n < ihl+8 {
			continue
		}
		icmp := buf[ihl:n]
		if icmp[0] != 0 || binary.BigEndian.Uint16(icmp[4:]) != p.id {
			continue
		}
		seq := binary.BigEndian.Uint16(icmp[6:])
		p.mu.Lock()
		if sent, ok := p.sent[seq]; ok {
			p.replies = append(p.replies, probeReply{sent: sent, got: got})
		}
		p.mu.Unlock()
	}
}

// firstReplySince returns the first reply to a request sent at or after t0.
func (p *prober) firstReplySince(t0 time.Time) (probeReply, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.replies {
		if !r.sent.Before(t0) {
			return r, true
		}
	}
	return probeReply{}, false
}

// outage waits (up to timeout, a safety net) until the target answers
// again after the fault at t0, and then for the reply to a request sent
// after that first reply came: from then on the path is known to work. It
// returns when the outage ended, the reply to the first request after the
// last one lost (t0 when none was lost), and how many were lost, of the
// requests sent from t0 up to that confirming one. A request counts as
// lost only once a request sent after it has had its reply: the lab's path
// returns replies in order, so it is no longer in flight. Nothing here
// depends on how long a reply took.
func (p *prober) outage(t testing.TB, what string, t0 time.Time, timeout time.Duration) (end time.Time, lost int) {
	t.Helper()
	var first, confirm probeReply
	waitFor(t, timeout, what+": "+p.target.String()+" answers again", func() error {
		var ok bool
		if first, ok = p.firstReplySince(t0); !ok {
			return fmt.Errorf("no echo reply from %s since the fault", p.target)
		}
		return nil
	})
	waitFor(t, timeout, what+": "+p.target.String()+" keeps answering", func() error {
		var ok bool
		if confirm, ok = p.firstReplySince(first.got); !ok {
			return fmt.Errorf("no reply to a request sent after the first reply since the fault (%v)", first.got)
		}
		return nil
	})
	return p.outageEnd(t0, confirm.sent.Add(time.Nanosecond))
}

// outageEnd looks at the requests sent from t0 until settled: it returns
// when the reply came to the first request after the last one that went
// unanswered (the end of the outage; t0 when none was lost; the zero time
// when the last one is unanswered) and how many were lost. Every request
// before settled must have had its reply by now or be lost (see outage).
func (p *prober) outageEnd(t0, settled time.Time) (end time.Time, lost int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := map[time.Time]time.Time{}
	for _, r := range p.replies {
		got[r.sent] = r.got
	}
	var sent []time.Time
	for _, s := range p.sent {
		if !s.Before(t0) && s.Before(settled) {
			sent = append(sent, s)
		}
	}
	slices.SortFunc(sent, time.Time.Compare)
	end = t0
	for i, s := range sent {
		if _, ok := got[s]; !ok {
			lost++
			end = time.Time{}
			if i+1 < len(sent) {
				end = got[sent[i+1]]
			}
		}
	}
	return end, lost
}

// unanswered counts the requests sent in [from, to) that got no reply.
func (p *prober) unanswered(from, to time.Time) (lost, sent int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	answered := map[time.Time]bool{}
	for _, r := range p.replies {
		answered[r.sent] = true
	}
	for _, s := range p.sent {
		if !s.Before(from) && s.Before(to) {
			sent++
			if !answered[s] {
				lost++
			}
		}
	}
	return lost, sent
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// recovery waits (up to timeout) until ip answers the prober again after
// the fault at t0, and until the node reaches the pod with ping and HTTP
// and has flatnet's route to it, failing the test otherwise. It returns and
// logs, in a line starting "recovery: <fault>:", how long after t0 the
// outage ended: when the reply came to the first echo request after the
// last one lost (0 when none was lost; see prober.outage, which waits for
// replies rather than looking at a window of time); with a route watch,
// also when flatnet's route to the pod came back. Those are the
// measurements the reliability doc reports; they are logged, never
// asserted.
func recovery(t testing.TB, l *lab.Lab, w *lab.RouteWatch, pr *prober, pod *lab.Pod, fault string, t0 time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	route := ""
	if w != nil {
		route = fmt.Sprintf("route back %v, ", routeBack(t, w, pod.IP, t0, timeout).Round(10*time.Microsecond))
	}
	end, lost := pr.outage(t, fault+": "+pod.Name, t0, timeout)
	d := end.Sub(t0)
	t.Logf("recovery: %s: %spod answers %v (%d echo requests lost)", fault, route, d.Round(100*time.Microsecond), lost)
	if d > time.Second {
		t.Logf("note: %s took more than 1 s to recover", fault)
	}
	reachable(t, l, pod, timeout)
	return d
}

// reachable asserts (within timeout) that the node has flatnet's route to
// the pod and reaches it with ping and HTTP.
func reachable(t testing.TB, l *lab.Lab, pod *lab.Pod, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "flatnet routes "+pod.Name, routed(l, pod.IP.String()))
	waitFor(t, timeout, "the node pings "+pod.Name, func() error { return l.Ping(l.Node, pod.IP) })
	waitFor(t, timeout, "the node fetches "+pod.Name+"'s page", func() error {
		body, err := l.HTTPGet(l.Node, "http://"+pod.IP.String()+"/")
		if err == nil && body != lab.PodPage(pod) {
			err = fmt.Errorf("got %q", body)
		}
		return err
	})
}

// routeBack returns how long after t0 the watch saw flatnet add its route
// to ip, waiting up to timeout for it.
func routeBack(t testing.TB, w *lab.RouteWatch, ip netip.Addr, t0 time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	return routeEvent(t, w, ip, false, t0, timeout)
}

// routeGone returns how long after t0 the watch saw flatnet's route to ip
// deleted, waiting up to timeout for it.
func routeGone(t testing.TB, w *lab.RouteWatch, ip netip.Addr, t0 time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	return routeEvent(t, w, ip, true, t0, timeout)
}

func routeEvent(t testing.TB, w *lab.RouteWatch, ip netip.Addr, deleted bool, t0 time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	var at time.Time
	what := map[bool]string{false: "adds", true: "deletes"}[deleted]
	waitFor(t, timeout, "flatnet "+what+" its route to "+ip.String(), func() error {
		for _, e := range w.Events() {
			if e.Deleted == deleted && e.Proto == flatnetProto && e.Dst == netip.PrefixFrom(ip, ip.BitLen()) && !e.Time.Before(t0) {
				at = e.Time
				return nil
			}
		}
		return errors.New("not yet")
	})
	return at.Sub(t0)
}

// flatnetRoutes returns the destinations of flatnet's host routes in the
// node, by address, with their devices.
func flatnetRoutes(t testing.TB, l *lab.Lab) map[netip.Addr]string {
	t.Helper()
	rs, err := l.Routes(l.Node, flatnetProto)
	if err != nil {
		t.Fatalf("listing the node's routes: %v", err)
	}
	out := map[netip.Addr]string{}
	for _, r := range rs {
		if r.Dst.IsSingleIP() {
			out[r.Dst.Addr()] = r.Dev
		}
	}
	return out
}

// countLog counts the lines of the process's log containing s.
func countLog(p *lab.Process, s string) int {
	n := 0
	for line := range strings.SplitSeq(p.Log(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// waitLog waits until the process's log has a line containing s.
func waitLog(t testing.TB, p *lab.Process, s string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "flatnet logs "+strconv.Quote(s), func() error {
		if countLog(p, s) == 0 {
			return errors.New("not in the log yet")
		}
		return nil
	})
}

// logOnce asserts the process logged each of lines exactly once.
func logOnce(t testing.TB, p *lab.Process, lines ...string) {
	t.Helper()
	for _, s := range lines {
		if n := countLog(p, s); n != 1 {
			t.Errorf("flatnet logged %q %d times, want once", s, n)
		}
	}
}

// resyncs waits until flatnet has made count more passes (its debug
// "reconciled" lines), so that a test can look at what they did: used with
// resync_interval = "1s".
func resyncs(t testing.TB, p *lab.Process, count int) {
	t.Helper()
	before := countLog(p, `msg=reconciled`)
	waitFor(t, time.Duration(count+10)*time.Second, fmt.Sprintf("%d more passes", count), func() error {
		if n := countLog(p, `msg=reconciled`) - before; n < count {
			return fmt.Errorf("%d passes so far", n)
		}
		return nil
	})
}

// hup sends SIGHUP (reload and full resync), waits for the reload and
// returns the line of the pass that followed it (flatnet logs a debug line
// "reconciled" at the end of each pass, log_level "debug" in the lab's
// configuration): what the node looks like then is that pass's work.
func hup(t testing.TB, p *lab.Process) string {
	t.Helper()
	reloads := func(lines []string) int {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, "configuration reloaded") || strings.Contains(l, "configuration not reloaded") {
				n++
			}
		}
		return n
	}
	before := reloads(strings.Split(p.Log(), "\n"))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	var pass string
	waitFor(t, deadline, "flatnet reloads on SIGHUP and makes a pass", func() error {
		lines := strings.Split(p.Log(), "\n")
		for i, l := range lines {
			if !strings.Contains(l, "configuration reloaded") && !strings.Contains(l, "configuration not reloaded") {
				continue
			}
			if reloads(lines[:i+1]) <= before {
				continue
			}
			for _, after := range lines[i+1:] {
				if strings.Contains(after, "msg=reconciled") {
					pass = after
					return nil
				}
			}
			return errors.New("reloaded; no pass logged since")
		}
		return errors.New("no reload logged yet")
	})
	return pass
}

// launchFlatnet starts flatnet with the configuration already written (see
// startFlatnet), with extra environment, and stops it at the end of the
// test like startFlatnet does.
func launchFlatnet(t testing.TB, l *lab.Lab, env ...string) *lab.Process {
	t.Helper()
	needFlatnet(t)
	argv := []string{flatnetBin, "run", "--config", l.FlatnetConfigPath()}
	if len(env) > 0 {
		// env execs flatnet in place: the PID stays flatnet's.
		argv = append(append([]string{"env"}, env...), argv...)
	}
	p, err := l.Start(l.Node, "flatnet", argv...)
	if err != nil {
		t.Fatalf("starting flatnet: %v", err)
	}
	stopOnCleanup(t, p)
	return p
}

// running asserts flatnet has not exited.
func running(t testing.TB, p *lab.Process) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("flatnet exited (status %d):\n%s", p.ExitCode(), p.Log())
	}
}

// netStatus is one network of `flatnet status --json`.
type netStatus struct {
	Name      string       `json:"name"`
	Master    string       `json:"master"`
	Shim      string       `json:"shim"`
	ShimUp    bool         `json:"shim_up"`
	Allocated int          `json:"allocated"`
	Routed    int          `json:"routed"`
	Missing   []netip.Addr `json:"missing"`
	Stale     []netip.Addr `json:"stale"`
	Conflicts []netip.Addr `json:"conflicts"`
	Waiting   string       `json:"waiting"`
	Source    string       `json:"source"`
}

// status runs `flatnet status --json` in the node and returns its networks
// and exit code.
func status(t testing.TB, l *lab.Lab) ([]netStatus, int) {
	t.Helper()
	out, err := l.Exec(l.Node, flatnetBin, "status", "--json", "--config", l.FlatnetConfigPath())
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("flatnet status: %v", err)
	}
	var s struct {
		Networks []netStatus `json:"networks"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("flatnet status --json: %v: %s", err, out)
	}
	return s.Networks, code
}

// writeAlloc writes an allocation file the way host-local does: under the
// directory's lock, created with O_EXCL, then written. It reports false
// when the address is taken.
func writeAlloc(dir string, ip netip.Addr, id string) (bool, error) {
	unlock, err := lockDir(dir)
	if err != nil {
		return false, err
	}
	defer unlock()
	f, err := os.OpenFile(filepath.Join(dir, ip.String()), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := f.WriteString(id + "\r\neth0"); err != nil {
		f.Close()
		return false, err
	}
	return true, f.Close()
}

// releaseAlloc removes an allocation file under the directory's lock, as
// host-local does on release.
func releaseAlloc(dir string, ip netip.Addr) error {
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	return os.Remove(filepath.Join(dir, ip.String()))
}

// lockDir takes host-local's lock on its directory (flock on <dir>/lock).
func lockDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// containerID makes a random container id.
func containerID() string {
	var b [32]byte
	for i := range b {
		b[i] = byte(rand.N(256))
	}
	return fmt.Sprintf("%x", b)
}
