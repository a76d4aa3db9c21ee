package lab

import (
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/dev/testenv"
)

func TestConfListIsTheSeeds(t *testing.T) {
	l := &Lab{Opts: Options{}.withDefaults(), StateRoot: "/tmp/x/networks"}
	var got any
	if err := json.Unmarshal(l.ConfListJSON(), &got); err != nil {
		t.Fatal(err)
	}
	want := `{
	"cniVersion": "0.3.1",
	"name": "default",
	"plugins": [{
		"type": "macvlan",
		"master": "eno1",
		"mode": "bridge",
		"ipam": {
			"type": "host-local",
			"dataDir": "/tmp/x/networks",
			"ranges": [[{"subnet": "192.168.0.0/16", "rangeStart": "192.168.1.2", "rangeEnd": "192.168.1.254", "gateway": "192.168.0.1"}]],
			"routes": [{"dst": "0.0.0.0/0"}]
		}
	}]
}`
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("conflist\n got %s\nwant %s", gb, wb)
	}

	// Options: one-address range, other mode, name and master, no dataDir.
	r := SeedRange()
	r.RangeEnd = r.RangeStart
	l = &Lab{Opts: Options{Network: "lan2", Master: "ens3", Mode: "vepa", Ranges: []Range{r}, NoDataDir: true}.withDefaults()}
	s := string(l.ConfListJSON())
	for _, want := range []string{`"name": "lan2"`, `"master": "ens3"`, `"mode": "vepa"`, `"rangeEnd": "192.168.1.2"`} {
		if !strings.Contains(s, want) {
			t.Errorf("conflist lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, "dataDir") {
		t.Errorf("NoDataDir conflist has a dataDir:\n%s", s)
	}
	if l.Opts.ConfListName != "00-lan2.conflist" {
		t.Errorf("conflist name %q", l.Opts.ConfListName)
	}
}

func TestNetconf(t *testing.T) {
	l := &Lab{Opts: Options{CNIVersion: "1.0.0"}.withDefaults(), StateRoot: "/s"}
	var m map[string]any
	if err := json.Unmarshal(l.netconf(json.RawMessage(`{"cniVersion":"1.0.0"}`)), &m); err != nil {
		t.Fatal(err)
	}
	if m["name"] != "default" || m["cniVersion"] != "1.0.0" || m["type"] != "macvlan" || m["prevResult"] == nil {
		t.Errorf("netconf %v", m)
	}
	l.Opts.CNIVersion = "0.3.1"
	m = nil
	_ = json.Unmarshal(l.netconf(json.RawMessage(`{}`)), &m)
	if _, ok := m["prevResult"]; ok {
		t.Errorf("0.3.1 netconf has prevResult: %v", m)
	}
}

func TestParseResult(t *testing.T) {
	for _, res := range []string{
		`{"cniVersion":"0.3.1","interfaces":[{"name":"eth0","mac":"42:2a:12:71:d9:a3","sandbox":"/var/run/netns/x"}],"ips":[{"version":"4","interface":0,"address":"192.168.1.2/16","gateway":"192.168.0.1"}]}`,
		`{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"42:2a:12:71:d9:a3","sandbox":"/var/run/netns/x"}],"ips":[{"interface":0,"address":"fd00::2/64"},{"interface":0,"address":"192.168.1.2/16"}]}`,
	} {
		p := &Pod{Name: "p"}
		if err := p.parseResult([]byte(res)); err != nil {
			t.Fatal(err)
		}
		if p.IP != netip.MustParseAddr("192.168.1.2") || p.MAC.String() != "42:2a:12:71:d9:a3" {
			t.Errorf("%s: got %v %v", res, p.IP, p.MAC)
		}
	}
	if err := (&Pod{}).parseResult([]byte(`{"ips":[]}`)); err == nil {
		t.Error("a result without addresses was accepted")
	}
}

func TestFlatnetConfig(t *testing.T) {
	l := &Lab{CNIConfDir: "/l/net.d", StateRoot: "/l/networks"}
	got := l.FlatnetConfig("log_level = \"info\"\non_stop = \"teardown\"\n\n[[network]]\nname = \"default\"\nlog_level = \"x\"\n")
	for _, want := range []string{`cni_conf_dir = "/l/net.d"`, `state_root = "/l/networks"`, `log_level = "info"`, `on_stop = "teardown"`, "[[network]]"} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"debug"`) {
		t.Errorf("extra log_level did not replace the lab's:\n%s", got)
	}
	if got := l.FlatnetConfig(""); !strings.Contains(got, `log_level = "debug"`) {
		t.Errorf("default config:\n%s", got)
	}
}

func TestStalePID(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		testenv.Skip(t, "cannot start a process to reap: %v", err)
	}
	dead := cmd.Process.Pid // reaped, so gone (barring pid reuse)
	for name, want := range map[string]bool{
		"fnlab-" + strconv.Itoa(dead) + "-1-lan":        true,
		"fnlab-" + strconv.Itoa(os.Getpid()) + "-1-lan": false,
		"fnlab-1-1-node":  false, // init is alive
		"fnlab-x-1-node":  false,
		"other-123-1-lan": false,
	} {
		if _, stale := stalePID(name); stale != want {
			t.Errorf("stalePID(%q) = %v, want %v", name, stale, want)
		}
	}
}

func TestARPReply(t *testing.T) {
	f := make([]byte, 42)
	copy(f[12:], []byte{0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2})
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 5}
	copy(f[22:], mac)
	copy(f[28:], []byte{192, 168, 0, 5})
	copy(f[38:], []byte{192, 168, 0, 1})
	got, ok := arpReply(f, [4]byte{192, 168, 0, 5}, [4]byte{192, 168, 0, 1})
	if !ok || got.String() != mac.String() {
		t.Errorf("arpReply = %v, %v", got, ok)
	}
	if _, ok := arpReply(f, [4]byte{192, 168, 0, 6}, [4]byte{192, 168, 0, 1}); ok {
		t.Error("reply for another address accepted")
	}
	f[21] = 1 // a request
	if _, ok := arpReply(f, [4]byte{192, 168, 0, 5}, [4]byte{192, 168, 0, 1}); ok {
		t.Error("request taken as a reply")
	}
}

func TestSysctlPath(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.ip_forward":                "net/ipv4/ip_forward",
		"net/ipv4/conf/eno1.host/arp_filter": "net/ipv4/conf/eno1.host/arp_filter",
		"/proc/sys/net/ipv4/ip_forward":      "net/ipv4/ip_forward",
	} {
		if got := sysctlPath(in); got != want {
			t.Errorf("sysctlPath(%q) = %q, want %q", in, got, want)
		}
	}
}
