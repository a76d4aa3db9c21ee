package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/dev/testenv"
)

func TestCompletionPrintsTheScripts(t *testing.T) {
	for shell, file := range map[string]string{"bash": "completion/flatnet.bash", "zsh": "completion/_flatnet"} {
		var out, errb bytes.Buffer
		if code := run([]string{"completion", shell}, &out, &errb); code != exitOK {
			t.Fatalf("completion %s: exit %d: %s", shell, code, errb.String())
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if out.String() != string(want) {
			t.Errorf("completion %s does not print %s", shell, file)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"completion", "fish"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "bash and zsh") {
		t.Errorf("completion fish: exit %d, %q", code, errb.String())
	}
	if code := run([]string{"completion"}, &out, &errb); code != exitUsage {
		t.Errorf("completion without a shell: exit %d", code)
	}
}

// TestBashCompletion sources the bash script and completes a few words.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		testenv.Skip(t, "no bash: %v", err)
	}
	script, err := filepath.Abs("completion/flatnet.bash")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "flatnet.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		words string // COMP_WORDS; the last is the word being completed
		want  string
	}{
		{`flatnet st`, "status"},
		{`flatnet t`, "teardown"},
		{`flatnet check --`, "--config --json"},
		{`flatnet run --`, "--config"},
		{`flatnet completion ""`, "bash zsh"},
		{`flatnet status --config ` + strings.TrimSuffix(cfg, "ml"), cfg},
	} {
		words := strings.Fields(tc.words)
		prog := `source "$1"; COMP_WORDS=(` + tc.words + `); COMP_CWORD=` + strconv.Itoa(len(words)-1) + `; _flatnet; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, "-c", prog, "bash", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", tc.words, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("%s<TAB>: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestZshCompletionParses(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		testenv.Skip(t, "no zsh: %v", err)
	}
	if out, err := exec.Command(zsh, "-n", "completion/_flatnet").CombinedOutput(); err != nil {
		t.Errorf("zsh -n: %v: %s", err, out)
	}
}
