package sd

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"ip": "IP", "err": "ERROR", "container": "CONTAINER", "ifname": "IFNAME",
		"lan_guard": "LAN_GUARD", "a.b": "A_B", "_x": "X", "1a": "A", "a1": "A1", "é": "",
	} {
		if got := fieldName(in); got != want {
			t.Errorf("fieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPriority(t *testing.T) {
	for l, want := range map[slog.Level]journal.Priority{
		slog.LevelDebug: journal.PriDebug, slog.LevelInfo: journal.PriInfo,
		slog.LevelWarn: journal.PriWarning, slog.LevelError: journal.PriErr, slog.LevelError + 4: journal.PriErr,
	} {
		if got := priority(l); got != want {
			t.Errorf("priority(%v) = %v, want %v", l, got, want)
		}
	}
}

// TestMachineIDOrder: the first file with something in it wins, trimmed;
// an empty or missing one passes to the next; none at all is "".
func TestMachineIDOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty, blank := write("empty", ""), write("blank", " \n")
	uuid := write("uuid", "4c4c4544-0042-3610-8048-b4c04f4d4e32\n")
	missing := filepath.Join(dir, "missing")
	if got := machineID(missing, empty, blank, uuid); got != "4c4c4544-0042-3610-8048-b4c04f4d4e32" {
		t.Errorf("machineID = %q, want the product UUID", got)
	}
	if got := machineID(missing, empty); got != "" {
		t.Errorf("machineID of nothing = %q, want \"\"", got)
	}
}

func TestRecordConfig(t *testing.T) {
	t.Setenv("RUNTIME_DIRECTORY", "")
	if err := RecordConfig("d1", "/etc/flatnet/flatnet.toml"); err != nil {
		t.Fatalf("outside systemd: %v", err)
	}
	dir := t.TempDir()
	t.Setenv("RUNTIME_DIRECTORY", dir+":/run/other")
	read := func() (string, bool) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "config"))
		if err != nil {
			t.Fatal(err)
		}
		return ParseLoadedConfig(b)
	}
	if err := RecordConfig("d1", "/etc/flatnet/flatnet.toml"); err != nil {
		t.Fatal(err)
	}
	if d, ok := read(); d != "d1" || !ok {
		t.Errorf("recorded %q %v, want d1", d, ok)
	}
	if err := RecordConfig("", ""); err != nil { // the built-in defaults
		t.Fatal(err)
	}
	if d, ok := read(); d != "" || !ok {
		t.Errorf("recorded %q %v for the defaults, want \"\" true", d, ok)
	}
	for _, bad := range []string{"", "d1", "a b c"} {
		if _, ok := ParseLoadedConfig([]byte(bad)); ok {
			t.Errorf("ParseLoadedConfig(%q) ok", bad)
		}
	}
}

// listenNotify stands in for systemd's notification socket, which
// NOTIFY_SOCKET names until the test ends.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", sock)
	return c
}

// TestNotifier: what systemd reads on NOTIFY_SOCKET. A status is sent once
// while it stays the same; a reload is bracketed by RELOADING=1 with the
// monotonic time systemd requires, then READY=1.
func TestNotifier(t *testing.T) {
	c := listenNotify(t)
	var n Notifier
	n.Status("a")
	n.Status("a")
	n.Status("b")
	n.Reloading()
	n.Ready()
	var got []string
	buf := make([]byte, 4096)
	for range 4 {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, string(buf[:k]))
	}
	if got[0] != "STATUS=a" || got[1] != "STATUS=b" || got[3] != "READY=1" {
		t.Errorf("notifications %q, want STATUS=a, STATUS=b, RELOADING…, READY=1", got)
	}
	if !strings.HasPrefix(got[2], "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("reload notification %q, want RELOADING=1 and MONOTONIC_USEC", got[2])
	}
}

// TestNotifierStatusGap: statuses that come faster than statusGap are not
// each sent: the first goes at once, the last one waits for its turn, and
// READY=1 (or STOPPING=1) comes after the status as it is then, never
// before it.
func TestNotifierStatusGap(t *testing.T) {
	c := listenNotify(t)
	gap := statusGap
	t.Cleanup(func() { statusGap = gap })
	read := func() string {
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:k])
	}

	statusGap = time.Hour // nothing waiting is sent by the timer
	var n Notifier
	for _, s := range []string{"1 route", "2 routes", "3 routes"} {
		n.Status(s)
	}
	n.Stopping()
	got := []string{read(), read(), read()}
	if want := []string{"STATUS=1 route", "STATUS=3 routes", "STOPPING=1"}; !slices.Equal(got, want) {
		t.Errorf("notifications %q, want %q", got, want)
	}

	statusGap = time.Millisecond // the timer sends the last status
	var m Notifier
	m.Status("a")
	m.Status("b")
	m.Status("c")
	// "b" is sent too if the test was slower than the gap between two
	// calls; "c", the last, must come with no further call.
	got = []string{read()}
	for got[len(got)-1] != "STATUS=c" && len(got) < 3 {
		got = append(got, read())
	}
	if got[0] != "STATUS=a" || got[len(got)-1] != "STATUS=c" {
		t.Errorf("notifications %q, want STATUS=a first and STATUS=c last, once the gap is over", got)
	}
}
