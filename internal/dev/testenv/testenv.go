// Package testenv is how flatnet's tests deal with what the machine they
// run on lacks. A test that cannot run here (no root, no CNI plugins, no
// zsh, no pseudo-terminal, -short) calls Skip, which skips it on a
// developer's machine and fails it under CI, so a CI run never passes by
// skipping. Every skip in the tree goes through it; the one exception,
// Unsupported, is for a kernel built without a feature.
package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// CI reports whether the tests run under continuous integration: the
// environment variable CI read as a boolean. Unset, empty, and the usual
// spellings of false ("0", "false", "no", "off", in any case) mean no;
// anything else ("true", "1", "yes", or a CI system's name) means yes, so
// an unexpected value fails rather than skips.
func CI() bool {
	return ciValue(os.Getenv("CI"))
}

func ciValue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "f", "false", "n", "no", "off":
		return false
	}
	return true
}

// Skip skips the test, saying why, or fails it under CI (see CI): what a
// test needs must be there when CI runs it.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("%s (CI=%s, so this fails instead of skipping)", why, os.Getenv("CI"))
		return
	}
	t.Skip(why)
}

// Unsupported skips a test of a kernel feature this kernel was built
// without, under CI too: unlike a tool or a plugin, no package installs
// it. The skip says so in the test log; a test beside it must cover the
// same path on a device every kernel has (TestVirtualMaster's VXLAN case
// beside its VLAN case).
func Unsupported(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Skipf("this kernel cannot run it: "+format, args...)
}

// SkipShort is Skip when the tests run with -short.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		Skip(t, "%s; run without -short", why)
	}
}
