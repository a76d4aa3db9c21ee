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

// TestParseFrame: an ARP reply and a neighbour solicitation, as a
// capture reads them.
func TestParseFrame(t *testing.T) {
	f := make([]byte, 42)
	copy(f[12:], []byte{0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2})
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 5}
	copy(f[6:], mac)
	copy(f[22:], mac)
	copy(f[28:], []byte{192, 168, 0, 5})
	copy(f[38:], []byte{192, 168, 0, 1})
	got, ok := parseFrame(f)
	if !ok || got.ARPOp != 2 || got.ARPSender.String() != "192.168.0.5" || got.ARPTarget.String() != "192.168.0.1" || got.Src.String() != mac.String() {
		t.Errorf("parseFrame = %+v, %v", got, ok)
	}
	if _, ok := parseFrame(f[:10]); ok {
		t.Error("a runt was taken")
	}

	ip6 := make([]byte, 14+40)
	copy(ip6[12:], []byte{0x86, 0xdd, 0x60})
	ip6[14+4+1] = 32 // payload length
	ip6[14+6] = 58   // ICMPv6
	ip6[14+7] = 255
	src := netip.MustParseAddr("fe80::1").As16()
	copy(ip6[14+8:], src[:])
	ns := []byte{135, 0, 0, 0, 0, 0, 0, 0}
	tgt := netip.MustParseAddr("fd00::5").As16()
	ns = append(ns, tgt[:]...)
	ns = append(ns, 1, 1, 2, 0, 0, 0, 0, 1)
	got, ok = parseFrame(append(ip6, ns...))
	if !ok || got.ICMP6Type != 135 || got.NDTarget.String() != "fd00::5" || got.IP6Src.String() != "fe80::1" {
		t.Errorf("parseFrame = %+v, %v", got, ok)
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
