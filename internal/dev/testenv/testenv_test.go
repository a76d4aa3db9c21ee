package testenv

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestCIValue(t *testing.T) {
	for v, want := range map[string]bool{
		"": false, "0": false, "false": false, "False": false, "FALSE": false, "f": false,
		"no": false, "No": false, "off": false, "n": false, " false ": false,
		"true": true, "True": true, "1": true, "yes": true, "on": true, "y": true, "t": true,
		"woodpecker": true, // a CI system's name: fail rather than skip
	} {
		if got := ciValue(v); got != want {
			t.Errorf("CI=%q: CI() = %v, want %v", v, got, want)
		}
	}
}

func TestCIFromTheEnvironment(t *testing.T) {
	t.Setenv("CI", "1")
	if !CI() {
		t.Error("CI=1 is not CI")
	}
	t.Setenv("CI", "")
	if CI() {
		t.Error("an empty CI is CI")
	}
}

// recorder is a testing.TB that records how a test ended instead of
// ending the test running it.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = true
	r.msg = args[0].(string)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = format
}

func TestSkipFailsUnderCI(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	Skip(r, "no %s here", "zsh")
	if !r.failed || r.skipped {
		t.Errorf("under CI: failed %v, skipped %v", r.failed, r.skipped)
	}
	t.Setenv("CI", "false")
	r = &recorder{TB: t}
	Skip(r, "no %s here", "zsh")
	if r.failed || !r.skipped || r.msg != "no zsh here" {
		t.Errorf("outside CI: failed %v, skipped %v (%q)", r.failed, r.skipped, r.msg)
	}
}

func TestPTYIsATerminal(t *testing.T) {
	tty, ctl := PTY(t)
	for _, f := range [...]interface{ Fd() uintptr }{tty, ctl} {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
			t.Errorf("not a terminal: %v", err)
		}
	}
	if _, err := tty.WriteString("hello\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := ctl.Read(buf)
	if err != nil || n == 0 {
		t.Fatalf("reading what the terminal was sent: %d %v", n, err)
	}
	if got := string(buf[:n]); got != "hello\r\n" {
		t.Errorf("the terminal passed on %q, want \"hello\\r\\n\"", got)
	}
}
