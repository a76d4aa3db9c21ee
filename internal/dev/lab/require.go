package lab

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/dev/testenv"
)

// Missing returns why a lab cannot be built here ("" when it can): not
// root, or iproute2, ping, nft (to read flatnet's egress filter) or the CNI
// plugins missing.
func Missing() string {
	var why []string
	if os.Geteuid() != 0 {
		why = append(why, "not root")
	}
	for _, tool := range []string{"ip", "ping", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			why = append(why, tool+" not found")
		}
	}
	if _, err := FindCNIPath(); err != nil {
		why = append(why, err.Error())
	}
	return strings.Join(why, "; ")
}

// Require skips the test when a lab cannot be built here (see Missing);
// under CI it fails the test instead (testenv.Skip), so CI never passes by
// skipping.
func Require(t testing.TB) {
	t.Helper()
	if why := Missing(); why != "" {
		testenv.Skip(t, "network lab unavailable: %s", why)
	}
}

// NewT is New for a test: Require, then New with the test's log, failing
// the test on error; the lab is closed when the test and its subtests end.
func NewT(t testing.TB, opts Options) *Lab {
	t.Helper()
	Require(t)
	if opts.Logf == nil {
		opts.Logf = func(format string, args ...any) { t.Logf("lab: "+format, args...) }
	}
	l, err := New(opts)
	if err != nil {
		t.Fatalf("building the lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	return l
}
