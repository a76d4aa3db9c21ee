package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// CacheDir is the lab's libcni cache directory (flatnet's cni_cache_dirs):
// what cnitool sees as /var/lib/cni; its results/ holds an entry per
// attachment cnitool made.
func (l *Lab) CacheDir() string { return filepath.Join(l.Dir, "varlib", "cni") }

// FlatnetConfigPath is where WriteFlatnetConfig writes: <Dir>/flatnet.toml.
func (l *Lab) FlatnetConfigPath() string { return filepath.Join(l.Dir, "flatnet.toml") }

// FlatnetConfig returns a flatnet.toml for the lab: cni_conf_dir,
// state_root and cni_cache_dirs pointing into the lab (never at the host's
// /var/lib/cni) and log_level "debug", then extra
// (more keys, [[network]] tables). A top-level key in extra replaces the
// lab's value of it.
func (l *Lab) FlatnetConfig(extra string) string {
	base := [][2]string{
		{"cni_conf_dir", strconv.Quote(l.CNIConfDir)},
		{"state_root", strconv.Quote(l.StateRoot)},
		{"cni_cache_dirs", "[" + strconv.Quote(l.CacheDir()) + "]"},
		{"log_level", `"debug"`},
	}
	top := extra
	if i := regexp.MustCompile(`(?m)^\s*\[`).FindStringIndex(extra); i != nil {
		top = extra[:i[0]]
	}
	var b strings.Builder
	b.WriteString("# flatnet configuration of a test lab\n")
	for _, kv := range base {
		if regexp.MustCompile(`(?m)^\s*` + kv[0] + `\s*=`).MatchString(top) {
			continue
		}
		fmt.Fprintf(&b, "%s = %s\n", kv[0], kv[1])
	}
	if extra != "" {
		b.WriteString(strings.TrimRight(extra, "\n"))
		b.WriteString("\n")
	}
	return b.String()
}

// WriteFlatnetConfig writes FlatnetConfig(extra) to FlatnetConfigPath
// (atomically, so a running flatnet reloading it never reads half a file)
// and returns the path.
func (l *Lab) WriteFlatnetConfig(extra string) (string, error) {
	p := l.FlatnetConfigPath()
	if err := writeFileAtomic(p, []byte(l.FlatnetConfig(extra))); err != nil {
		return "", err
	}
	return p, nil
}

// StartFlatnet starts `flatnet run --config <FlatnetConfigPath>` in the node
// namespace, as process "flatnet" (log in <Dir>/flatnet.log). Write the
// configuration first. With Options.MachineID, the process sees it as
// /etc/machine-id, bind-mounted in a mount namespace of its own.
func (l *Lab) StartFlatnet(binary string) (*Process, error) {
	abs, err := filepath.Abs(binary)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("flatnet binary: %w", err)
	}
	wrap, err := l.machineIDWrap()
	if err != nil {
		return nil, err
	}
	return l.start(l.Node, "flatnet", wrap, abs, "run", "--config", l.FlatnetConfigPath())
}

// productUUID is the firmware's machine id, which flatnet reads when
// /etc/machine-id is empty.
const productUUID = "/sys/class/dmi/id/product_uuid"

// machineIDWrap returns the command that runs its arguments with
// Options.MachineID as /etc/machine-id, or with none (Options.NoMachineID),
// nil without either: unshare(1) makes a private mount namespace for that
// process alone, in which <Dir>/machine-id is bind-mounted over
// /etc/machine-id (and, empty, over productUUID where it exists) before
// the command is exec'd in place. The host's files are never written.
func (l *Lab) machineIDWrap() ([]string, error) {
	if l.Opts.MachineID == "" && !l.Opts.NoMachineID {
		return nil, nil
	}
	if l.Opts.MachineID != "" && l.Opts.NoMachineID {
		return nil, errors.New("lab: Options.MachineID and NoMachineID together")
	}
	content := ""
	if l.Opts.MachineID != "" {
		content = l.Opts.MachineID + "\n"
	}
	f := filepath.Join(l.Dir, "machine-id")
	if err := writeFileAtomic(f, []byte(content)); err != nil {
		return nil, err
	}
	script := `mount --bind "$0" /etc/machine-id && exec "$@"`
	if l.Opts.NoMachineID {
		script = `mount --bind "$0" /etc/machine-id && { ! test -e ` + productUUID + ` || mount --bind "$0" ` + productUUID + `; } && exec "$@"`
	}
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, f}, nil
}
