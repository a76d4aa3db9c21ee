package sysconf_test

import (
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/sysconf"
)

func TestParseBootTime(t *testing.T) {
	got, ok := sysconf.ParseBootTime([]byte("cpu  1 2 3\nintr 5\nctxt 9\nbtime 1764144000\nprocesses 12\n"))
	if !ok || !got.Equal(time.Unix(1764144000, 0)) {
		t.Errorf("got %v, %v", got, ok)
	}
	if _, ok := sysconf.ParseBootTime([]byte("cpu 1\n")); ok {
		t.Error("no btime parsed")
	}
}

func TestManageForeignRoutes(t *testing.T) {
	vendor := sysconf.ConfFile{Path: "/usr/lib/systemd/networkd.conf", Data: []byte("[Network]\n#ManageForeignRoutes=yes\n")}
	off := sysconf.ConfFile{Path: "/etc/systemd/networkd.conf.d/10-keep.conf", Data: []byte("[Network]\nManageForeignRoutes=no\n")}
	on := sysconf.ConfFile{Path: "/etc/systemd/networkd.conf.d/20-on.conf", Data: []byte("[Network]\nManageForeignRoutes = true\n")}
	other := sysconf.ConfFile{Path: "/etc/systemd/networkd.conf.d/30-dhcp.conf", Data: []byte("[DHCPv4]\nManageForeignRoutes=no\n")}
	for _, tc := range []struct {
		name  string
		files []sysconf.ConfFile
		want  bool
		from  string
	}{
		{"default", []sysconf.ConfFile{vendor}, true, ""},
		{"drop-in turns it off", []sysconf.ConfFile{vendor, off}, false, off.Path},
		{"a later drop-in wins", []sysconf.ConfFile{vendor, off, on}, true, on.Path},
		{"other sections do not count", []sysconf.ConfFile{other}, true, ""},
	} {
		got, from := sysconf.ManageForeignRoutes(tc.files)
		if got != tc.want || from != tc.from {
			t.Errorf("%s: got %v from %q, want %v from %q", tc.name, got, from, tc.want, tc.from)
		}
	}
}

func TestNetworkdMatch(t *testing.T) {
	shim := sysconf.ConfFile{Path: "/usr/lib/systemd/network/05-flatnet-shim.network", Data: []byte("[Match]\nKind=macvlan\nName=*.host\n\n[Link]\nUnmanaged=yes\n")}
	all := sysconf.ConfFile{Path: "/etc/systemd/network/00-all.network", Data: []byte("[Match]\nName=*\n\n[Network]\nDHCP=yes\n")}
	eth := sysconf.ConfFile{Path: "/etc/systemd/network/10-eth.network", Data: []byte("[Match]\nName=e*\n[Network]\nDHCP=yes\n")}
	notHost := sysconf.ConfFile{Path: "/etc/systemd/network/01-not-host.network", Data: []byte("[Match]\nName=!*.host\n[Network]\nDHCP=yes\n")}
	empty := sysconf.ConfFile{Path: "/etc/systemd/network/00-empty.network", Data: []byte("[Match]\n[Network]\nDHCP=yes\n")}
	veth := sysconf.ConfFile{Path: "/etc/systemd/network/02-veth.network", Data: []byte("[Match]\nKind=veth\n[Network]\nDHCP=yes\n")}
	for _, tc := range []struct {
		name      string
		files     []sysconf.ConfFile
		file      string
		unmanaged bool
		found     bool
	}{
		{"the package's file", []sysconf.ConfFile{shim, eth}, shim.Path, true, true},
		{"a file sorting first wins", []sysconf.ConfFile{all, shim}, all.Path, false, true},
		{"a negated name does not match", []sysconf.ConfFile{notHost, shim}, shim.Path, true, true},
		{"an empty [Match] is ignored", []sysconf.ConfFile{empty}, "", false, false},
		{"another kind", []sysconf.ConfFile{veth}, "", false, false},
		{"a broad name", []sysconf.ConfFile{eth}, eth.Path, false, true},
	} {
		file, un, found := sysconf.NetworkdMatch(tc.files, "eno1.host", "macvlan")
		if file != tc.file || un != tc.unmanaged || found != tc.found {
			t.Errorf("%s: got %q %v %v, want %q %v %v", tc.name, file, un, found, tc.file, tc.unmanaged, tc.found)
		}
	}
}

func TestParseNetifState(t *testing.T) {
	state, file := sysconf.ParseNetifState([]byte("# This is private data. Do not parse.\nADMIN_STATE=unmanaged\nOPER_STATE=carrier\nNETWORK_FILE=/usr/lib/systemd/network/05-flatnet-shim.network\n"))
	if state != "unmanaged" || file != "/usr/lib/systemd/network/05-flatnet-shim.network" {
		t.Errorf("got %q %q", state, file)
	}
}

func TestNMUnmanaged(t *testing.T) {
	pkg := sysconf.ConfFile{Path: "/usr/lib/NetworkManager/conf.d/flatnet.conf", Data: []byte("[device-flatnet-shim]\nmatch-device=interface-name:*.host\nmanaged=0\n")}
	keyfile := sysconf.ConfFile{Path: "/etc/NetworkManager/NetworkManager.conf", Data: []byte("[main]\nplugins=keyfile\n\n[keyfile]\nunmanaged-devices=mac:00:11:22:33:44:55;interface-name:eno1.host\n")}
	byType := sysconf.ConfFile{Path: "/etc/NetworkManager/conf.d/macvlan.conf", Data: []byte("[keyfile]\nunmanaged-devices=type:macvlan\n")}
	manageAll := sysconf.ConfFile{Path: "/etc/NetworkManager/conf.d/99-all.conf", Data: []byte("[device-all]\nmanaged=1\n")}
	except := sysconf.ConfFile{Path: "/etc/NetworkManager/conf.d/except.conf", Data: []byte("[keyfile]\nunmanaged-devices=except:interface-name:eth0\n")}
	exceptShim := sysconf.ConfFile{Path: "/etc/NetworkManager/conf.d/except.conf", Data: []byte("[keyfile]\nunmanaged-devices=*,except:interface-name:eno1.host\n")}
	plain := sysconf.ConfFile{Path: "/etc/NetworkManager/NetworkManager.conf", Data: []byte("[main]\nplugins=ifupdown,keyfile\n[ifupdown]\nmanaged=false\n")}
	appendTo := sysconf.ConfFile{Path: "/etc/NetworkManager/conf.d/20-more.conf", Data: []byte("[keyfile]\nunmanaged-devices+=interface-name:=eno1.host\n")}
	for _, tc := range []struct {
		name  string
		files []sysconf.ConfFile
		want  string
	}{
		{"the package's snippet", []sysconf.ConfFile{pkg}, pkg.Path + " [device-flatnet-shim]"},
		{"keyfile unmanaged-devices", []sysconf.ConfFile{keyfile}, keyfile.Path + " [keyfile] unmanaged-devices"},
		{"by type", []sysconf.ConfFile{byType}, byType.Path + " [keyfile] unmanaged-devices"},
		{"a later file's device section wins", []sysconf.ConfFile{pkg, manageAll}, ""},
		{"keyfile wins over device sections", []sysconf.ConfFile{byType, manageAll}, byType.Path + " [keyfile] unmanaged-devices"},
		{"only negations match the rest", []sysconf.ConfFile{except}, except.Path + " [keyfile] unmanaged-devices"},
		{"a negation wins", []sysconf.ConfFile{exceptShim}, ""},
		{"nothing about devices", []sysconf.ConfFile{plain}, ""},
		{"+= appends", []sysconf.ConfFile{keyfile, appendTo}, appendTo.Path + " [keyfile] unmanaged-devices"},
	} {
		if got := sysconf.NMUnmanaged(tc.files, "eno1.host", "macvlan"); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSysctlD(t *testing.T) {
	files := []sysconf.ConfFile{
		{Path: "/usr/lib/sysctl.d/50-default.conf", Data: []byte("net.ipv4.conf.default.arp_ignore = 1\nnet.ipv4.conf.*.arp_ignore = 1\n")},
		{Path: "/etc/sysctl.d/60-shim.conf", Data: []byte("# flatnet's shim answers ARP for the node\n-net.ipv4.conf.eno1/host.arp_ignore = 0\nnet/ipv4/conf/fn1a2b3c4d.host/arp_ignore=0\n")},
	}
	got := sysconf.SysctlD(files, []string{"eno1.host", "fn1a2b3c4d.host", "eno2.host"}, "arp_ignore")
	want := map[string]int{"eno1.host/arp_ignore": 0, "fn1a2b3c4d.host/arp_ignore": 0, "eno2.host/arp_ignore": 1}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

func TestKernelConfigMacvlan(t *testing.T) {
	for cfg, want := range map[string]string{
		"CONFIG_MACVLAN=y\nCONFIG_MACVTAP=y\n": "y",
		"# CONFIG_MACVLAN is not set\n":        "n",
		"CONFIG_MACVLAN=m\n":                   "m",
	} {
		if got := sysconf.KernelConfigMacvlan([]byte(cfg)); got != want {
			t.Errorf("%q: got %q, want %q", cfg, got, want)
		}
	}
}

func TestIsFlatnetRun(t *testing.T) {
	for cmdline, want := range map[string]bool{
		"/usr/bin/flatnet\x00run\x00":                            true,
		"/tmp/x/flatnet\x00run\x00--config\x00/tmp/flatnet.toml": true,
		"flatnet\x00check\x00":                                   false,
		"/usr/bin/flatnet-lab\x00run\x00":                        false,
		"":                                                       false,
	} {
		if got := sysconf.IsFlatnetRun([]byte(cmdline)); got != want {
			t.Errorf("%q: got %v", cmdline, got)
		}
	}
}

func TestParseSystemctlShow(t *testing.T) {
	u := sysconf.ParseSystemctlShow([]byte("MainPID=812\nLoadState=loaded\nActiveState=active\nSubState=running\nStatusText=default: 2 pod routes via eno1.host (master eno1)\n"))
	if u.MainPID != 812 || u.LoadState != "loaded" || u.ActiveState != "active" || u.SubState != "running" || u.StatusText != "default: 2 pod routes via eno1.host (master eno1)" {
		t.Errorf("got %+v", u)
	}
}

// TestGather reads a fixture tree standing for a node's /proc, /sys, /etc
// and /run.
