package scripts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// packaging is the directory of the scripts under test.
var packaging = filepath.Join("..", "..", "..", "packaging")

// sh runs script with sh, the environment env alone (plus PATH when env
// has none), and returns its exit code, stdout and stderr.
func sh(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	shell, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shell, args...)
	cmd.Env = env
	if !strings.Contains(strings.Join(env, "\n"), "PATH=") {
		cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestDepsUnsupportedSystem: on a system deps.sh does not know (an
// os-release of Alpine, here), with something missing, it installs
// nothing and stops with exit 1 and one line that names what is missing
// and the packages of both families. What is missing: a PATH without the
// tools but id, so that ping (in /usr/bin) is not found; deps.sh looks in sbin by
// itself. DEPS_DRY_RUN stays set so that a script that took this system
// for another could still install nothing.
func TestDepsUnsupportedSystem(t *testing.T) {
	dir := t.TempDir()
	release := filepath.Join(dir, "os-release")
	if err := os.WriteFile(release, []byte("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The few tools deps.sh itself runs.
	for _, tool := range []string{"id"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATH=" + dir, "DEPS_OS_RELEASE=" + release, "DEPS_DRY_RUN=1", "CNI_PATH=" + dir}
	code, out, errs := sh(t, env, filepath.Join(packaging, "deps.sh"), "demo")
	lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
	if code != 1 || out != "" || len(lines) != 1 {
		t.Fatalf("deps.sh demo on Alpine: exit %d, stdout %q, stderr %q; want exit 1 and one line", code, out, errs)
	}
	for _, want := range []string{"deps: missing ", "ping", "Debian/Ubuntu: ", "iputils-ping", "Fedora/RHEL: ", "iputils"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("deps.sh's line lacks %q: %s", want, lines[0])
		}
	}
	if strings.Contains(errs, "installing") || strings.Contains(errs, "dry run") {
		t.Errorf("deps.sh took Alpine for a system it installs on: %s", errs)
	}

	// The same with an os-release deps.sh knows: it names the command it
	// would run (dry run), or, without root, the command to run as root.
	for id, want := range map[string]string{"debian": "apt-get install -y --no-install-recommends iputils-ping", "fedora": "dnf install -y iputils"} {
		if err := os.WriteFile(release, []byte("ID="+id+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errs := sh(t, env, filepath.Join(packaging, "deps.sh"), "demo")
		if !strings.Contains(errs, want) || (os.Geteuid() == 0) != (code == 0) {
			t.Errorf("deps.sh demo on %s: exit %d, %q; want %q", id, code, errs, want)
		}
	}
}
