package testenv

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// PTY opens a new pseudo-terminal and returns its terminal end, the
// device a program run in a terminal writes to, and its controlling end.
// Both are closed when the test ends. Without /dev/ptmx the test is skipped
// (see Skip).
func PTY(t testing.TB) (tty, ctl *os.File) {
	t.Helper()
	tty, ctl, err := openPTY()
	if err != nil {
		Skip(t, "no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() {
		tty.Close()
		ctl.Close()
	})
	return tty, ctl
}

// openPTY is what posix_openpt, unlockpt and ptsname do: open the
// multiplexer, unlock the new terminal (TIOCSPTLCK 0), ask its number
// (TIOCGPTN) and open /dev/pts/<n>. Neither end becomes the process's
// controlling terminal.
func openPTY() (tty, ctl *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	ctl = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		ctl.Close()
		return nil, nil, fmt.Errorf("unlocking the pseudo-terminal: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		ctl.Close()
		return nil, nil, fmt.Errorf("the pseudo-terminal's number: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	tty, err = os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		ctl.Close()
		return nil, nil, err
	}
	return tty, ctl, nil
}
