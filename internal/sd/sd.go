// Package sd is flatnet's adapter to systemd: service notifications
// (READY, STATUS, WATCHDOG, RELOADING, STOPPING) and a log/slog handler that
// writes native journal entries with structured fields when stderr is
// connected to the journal. Outside systemd every call is a no-op and logs
// go to stderr as text.
package sd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/coreos/go-systemd/v22/journal"
)

// Notifier sends state changes to the service manager.
type Notifier struct {
	mu     sync.Mutex
	status string      // the status last asked for
	sent   string      // the status last sent
	at     time.Time   // when it was sent
	timer  *time.Timer // set while a status waits for its turn
}

// statusGap is the least time between two STATUS= lines. Every pod that
// comes or goes changes the status line's counts; sending each would cost
// a socket, a connect and a send per pod, on the path of the next pod's
// event, and wake the service manager as often. A status that comes
// sooner waits for the gap's end, and only the last one then is sent. A
// variable for tests.
var statusGap = 250 * time.Millisecond

func (n *Notifier) send(state string) {
	_, _ = daemon.SdNotify(false, state) // no NOTIFY_SOCKET: not under systemd, nothing to do
}

// Ready tells systemd start-up (or a reload) is complete, after the
// status as it is now.
func (n *Notifier) Ready() { n.after(daemon.SdNotifyReady) }

// Reloading tells systemd a reload has begun; Ready ends it.
func (n *Notifier) Reloading() {
	n.after(daemon.SdNotifyReloading + "\nMONOTONIC_USEC=" + daemon.SdNotifyMonotonicUsec())
}

// Stopping tells systemd the service is shutting down, after the status
// as it is now.
func (n *Notifier) Stopping() { n.after(daemon.SdNotifyStopping) }

// Watchdog pings the watchdog.
func (n *Notifier) Watchdog() { n.send(daemon.SdNotifyWatchdog) }

// Status sets the one-line status `systemctl status` shows, when it
// changed: at once, or at the end of statusGap after the last one sent.
func (n *Notifier) Status(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.status = s
	switch wait := statusGap - time.Since(n.at); {
	case n.timer != nil || s == n.sent:
	case wait <= 0: // also the first: time.Since(time.Time{}) saturates
		n.flushLocked()
	default:
		var t *time.Timer
		t = time.AfterFunc(wait, func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			if n.timer == t { // not one a Ready or Stopping stopped too late
				n.flushLocked()
			}
		})
		n.timer = t
	}
}

// after sends state once the status asked for last has been sent.
func (n *Notifier) after(state string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.flushLocked()
	n.send(state)
}

// flushLocked sends the status asked for last, if it was not sent.
func (n *Notifier) flushLocked() {
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	if n.status == n.sent {
		return
	}
	n.send("STATUS=" + n.status)
	n.sent, n.at = n.status, time.Now()
}

// WatchdogInterval is how often to ping the watchdog: half its timeout,
// or 0 when there is no watchdog.
func WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}

// NewLogger returns the logger for the daemon: native journal entries when
// stderr goes to the journal, else text on w.
func NewLogger(w io.Writer, level *slog.LevelVar) *slog.Logger {
	if ok, _ := journal.StderrIsJournalStream(); ok && journal.Enabled() {
		return slog.New(&journalHandler{level: level})
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// journalHandler writes each record as one journal entry: the message as
// MESSAGE, each attribute as an upper-case field (network= -> NETWORK=).
type journalHandler struct {
	level  slog.Leveler
	attrs  []slog.Attr
	prefix string
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{"SYSLOG_IDENTIFIER": "flatnet"}
	add := func(a slog.Attr) {
		key := fieldName(h.prefix + a.Key)
		if key != "" && !a.Equal(slog.Attr{}) {
			vars[key] = a.Value.Resolve().String()
		}
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	msg := r.Message
	if e := vars["ERROR"]; e != "" {
		// journalctl shows MESSAGE only: the reason belongs in it too.
		msg += ": " + e
	}
	err := journal.Send(msg, priority(r.Level), vars)
	if err != nil {
		// The journal socket went away: say it on stderr rather than lose it.
		fmt.Fprintf(os.Stderr, "%s %s\n", r.Level, r.Message)
	}
	return nil
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix = h.prefix + name + "_"
	return &c
}

// fieldName makes a journal field name: upper case letters, digits and
// underscores, not starting with an underscore or a digit.
func fieldName(k string) string {
	if k == "err" {
		return "ERROR" // slog's usual key, the journal's usual name
	}
	var b strings.Builder
	for _, c := range strings.ToUpper(k) {
		switch {
		case c >= 'A' && c <= 'Z', c == '_', c >= '0' && c <= '9' && b.Len() > 0:
			b.WriteRune(c)
		default:
			if b.Len() > 0 {
				b.WriteByte('_')
			}
		}
	}
	return strings.TrimLeft(b.String(), "_")
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}

// MachineID is /etc/machine-id, the seed of the shims' MAC addresses. A
// node without one (rare: containers, odd images) falls back to the DMI
// product UUID; with neither it is "", and each shim's MAC is then seeded
// by its master's permanent address (reconcile.ShimMAC), which, unlike the
// boot id, survives a reboot.
func MachineID() string {
	return machineID("/etc/machine-id", "/sys/class/dmi/id/product_uuid")
}

func machineID(paths ...string) string {
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

// LoadedConfig is the file, in the runtime directory systemd gives the
// unit (RuntimeDirectory=flatnet), where the daemon records the
// configuration it runs with: "<digest> <path>" (config.Digest; "-" for
// the built-in defaults). flatnet check compares it with the file on disk.
const LoadedConfig = "/run/flatnet/config"

// RecordConfig writes what LoadedConfig holds into $RUNTIME_DIRECTORY,
// when systemd set it; outside systemd it writes nothing.
func RecordConfig(digest, path string) error {
	dir := os.Getenv("RUNTIME_DIRECTORY")
	if dir == "" {
		return nil
	}
	if digest == "" {
		digest, path = "-", "-"
	}
	p := filepath.Join(strings.SplitN(dir, ":", 2)[0], filepath.Base(LoadedConfig))
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(digest+" "+path+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// RuntimeDir is the directory the daemon's runtime files are in: the
// first of $RUNTIME_DIRECTORY, which systemd sets for the unit's
// RuntimeDirectory= (and the tools share when run beside a daemon started
// outside systemd), else /run/flatnet.
func RuntimeDir() string {
	if dir := os.Getenv("RUNTIME_DIRECTORY"); dir != "" {
		return strings.SplitN(dir, ":", 2)[0]
	}
	return filepath.Dir(LoadedConfig)
}

// RecordRuntimeFile writes name into $RUNTIME_DIRECTORY, atomically, when
// it is set; outside systemd (and without it) it writes nothing.
func RecordRuntimeFile(name string, data []byte) error {
	if os.Getenv("RUNTIME_DIRECTORY") == "" {
		return nil
	}
	p := filepath.Join(RuntimeDir(), name)
	tmp := p + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// ParseLoadedConfig reads what RecordConfig wrote: the digest, "" for
// the built-in defaults.
func ParseLoadedConfig(b []byte) (digest string, ok bool) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", false
	}
	if f[0] == "-" {
		return "", true
	}
	return f[0], true
}
