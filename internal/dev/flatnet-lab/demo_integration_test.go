//go:build integration

package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// TestDemo runs `make demo` as a user would (its dependency check, the
// build, `flatnet-lab demo`), with the binary built into a directory of
// the test's (BIN=): it succeeds, and its story holds: before flatnet the
// node cannot reach its pod, with flatnet it can. Then `flatnet-lab demo
// --manual`, the seed's fix by hand, which reaches the pods over IPv4
// only, in-process.
func TestDemo(t *testing.T) {
	lab.Require(t)
	bin := filepath.Join(t.TempDir(), "flatnet")
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, manual := range []bool{false, true} {
		var out bytes.Buffer
		code := 0
		if manual {
			code = demo(&out, bin, manual, nil)
		} else {
			cmd := exec.Command("make", "--no-print-directory", "-C", root, "demo", "BIN="+bin)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("make demo: %v", err)
				}
				code = ee.ExitCode()
			}
		}
		s := out.String()
		t.Logf("demo (manual %v), exit %d:\n%s", manual, code, s)
		if code != 0 || !strings.Contains(s, "all steps behaved as expected") {
			t.Errorf("demo (manual %v) exited %d", manual, code)
		}
		fix := "Start flatnet in the node"
		if manual {
			fix = "Apply the seed's manual fix in the node"
		}
		before, after, ok := strings.Cut(s, fix)
		if !ok {
			t.Fatalf("the demo never reached %q", fix)
		}
		const pod1 = "192.168.1.2"
		if !strings.Contains(before, "fails, as expected: node cannot ping "+pod1) {
			t.Errorf("before the fix the demo does not show the node failing to reach pod1")
		}
		if strings.Contains(before, "ok: node pings "+pod1) {
			t.Errorf("the node reached pod1 before the fix")
		}
		if !strings.Contains(after, "ok: node pings "+pod1) || !strings.Contains(after, "ok: HTTP from the node to pod1") {
			t.Errorf("after the fix the demo does not show the node reaching pod1")
		}
		if !manual && !strings.Contains(after, "ok: node pings fd00::1:2") {
			t.Errorf("with flatnet the demo does not show the node reaching pod1 over IPv6")
		}
		if strings.Contains(s, "FAILED") {
			t.Errorf("a step failed")
		}
	}
}
