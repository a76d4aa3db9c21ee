package check_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/check"
	"github.com/flatnet/flatnet/internal/reconcile"
)

func TestParseBootTime(t *testing.T) {
	got, ok := check.ParseBootTime([]byte("cpu  1 2 3\nintr 5\nctxt 9\nbtime 1764144000\nprocesses 12\n"))
	if !ok || !got.Equal(time.Unix(1764144000, 0)) {
		t.Errorf("got %v, %v", got, ok)
	}
	if _, ok := check.ParseBootTime([]byte("cpu 1\n")); ok {
		t.Error("no btime parsed")
	}
}

func TestManageForeignRoutes(t *testing.T) {
	vendor := check.ConfFile{Path: "/usr/lib/systemd/networkd.conf", Data: []byte("[Network]\n#ManageForeignRoutes=yes\n")}
	off := check.ConfFile{Path: "/etc/systemd/networkd.conf.d/10-keep.conf", Data: []byte("[Network]\nManageForeignRoutes=no\n")}
	on := check.ConfFile{Path: "/etc/systemd/networkd.conf.d/20-on.conf", Data: []byte("[Network]\nManageForeignRoutes = true\n")}
	other := check.ConfFile{Path: "/etc/systemd/networkd.conf.d/30-dhcp.conf", Data: []byte("[DHCPv4]\nManageForeignRoutes=no\n")}
	for _, tc := range []struct {
		name  string
		files []check.ConfFile
		want  bool
		from  string
	}{
		{"default", []check.ConfFile{vendor}, true, ""},
		{"drop-in turns it off", []check.ConfFile{vendor, off}, false, off.Path},
		{"a later drop-in wins", []check.ConfFile{vendor, off, on}, true, on.Path},
		{"other sections do not count", []check.ConfFile{other}, true, ""},
	} {
		got, from := check.ManageForeignRoutes(tc.files)
		if got != tc.want || from != tc.from {
			t.Errorf("%s: got %v from %q, want %v from %q", tc.name, got, from, tc.want, tc.from)
		}
	}
}

func TestNetworkdMatch(t *testing.T) {
	shim := check.ConfFile{Path: "/usr/lib/systemd/network/05-flatnet-shim.network", Data: []byte("[Match]\nKind=macvlan\nName=*.host\n\n[Link]\nUnmanaged=yes\n")}
	all := check.ConfFile{Path: "/etc/systemd/network/00-all.network", Data: []byte("[Match]\nName=*\n\n[Network]\nDHCP=yes\n")}
	eth := check.ConfFile{Path: "/etc/systemd/network/10-eth.network", Data: []byte("[Match]\nName=e*\n[Network]\nDHCP=yes\n")}
	notHost := check.ConfFile{Path: "/etc/systemd/network/01-not-host.network", Data: []byte("[Match]\nName=!*.host\n[Network]\nDHCP=yes\n")}
	empty := check.ConfFile{Path: "/etc/systemd/network/00-empty.network", Data: []byte("[Match]\n[Network]\nDHCP=yes\n")}
	veth := check.ConfFile{Path: "/etc/systemd/network/02-veth.network", Data: []byte("[Match]\nKind=veth\n[Network]\nDHCP=yes\n")}
	for _, tc := range []struct {
		name      string
		files     []check.ConfFile
		file      string
		unmanaged bool
		found     bool
	}{
		{"the package's file", []check.ConfFile{shim, eth}, shim.Path, true, true},
		{"a file sorting first wins", []check.ConfFile{all, shim}, all.Path, false, true},
		{"a negated name does not match", []check.ConfFile{notHost, shim}, shim.Path, true, true},
		{"an empty [Match] is ignored", []check.ConfFile{empty}, "", false, false},
		{"another kind", []check.ConfFile{veth}, "", false, false},
		{"a broad name", []check.ConfFile{eth}, eth.Path, false, true},
	} {
		file, un, found := check.NetworkdMatch(tc.files, "eno1.host", "macvlan")
		if file != tc.file || un != tc.unmanaged || found != tc.found {
			t.Errorf("%s: got %q %v %v, want %q %v %v", tc.name, file, un, found, tc.file, tc.unmanaged, tc.found)
		}
	}
}

func TestParseNetifState(t *testing.T) {
	state, file := check.ParseNetifState([]byte("# This is private data. Do not parse.\nADMIN_STATE=unmanaged\nOPER_STATE=carrier\nNETWORK_FILE=/usr/lib/systemd/network/05-flatnet-shim.network\n"))
	if state != "unmanaged" || file != "/usr/lib/systemd/network/05-flatnet-shim.network" {
		t.Errorf("got %q %q", state, file)
	}
}

func TestNMUnmanaged(t *testing.T) {
	pkg := check.ConfFile{Path: "/usr/lib/NetworkManager/conf.d/flatnet.conf", Data: []byte("[device-flatnet-shim]\nmatch-device=interface-name:*.host\nmanaged=0\n")}
	keyfile := check.ConfFile{Path: "/etc/NetworkManager/NetworkManager.conf", Data: []byte("[main]\nplugins=keyfile\n\n[keyfile]\nunmanaged-devices=mac:00:11:22:33:44:55;interface-name:eno1.host\n")}
	byType := check.ConfFile{Path: "/etc/NetworkManager/conf.d/macvlan.conf", Data: []byte("[keyfile]\nunmanaged-devices=type:macvlan\n")}
	manageAll := check.ConfFile{Path: "/etc/NetworkManager/conf.d/99-all.conf", Data: []byte("[device-all]\nmanaged=1\n")}
	except := check.ConfFile{Path: "/etc/NetworkManager/conf.d/except.conf", Data: []byte("[keyfile]\nunmanaged-devices=except:interface-name:eth0\n")}
	exceptShim := check.ConfFile{Path: "/etc/NetworkManager/conf.d/except.conf", Data: []byte("[keyfile]\nunmanaged-devices=*,except:interface-name:eno1.host\n")}
	plain := check.ConfFile{Path: "/etc/NetworkManager/NetworkManager.conf", Data: []byte("[main]\nplugins=ifupdown,keyfile\n[ifupdown]\nmanaged=false\n")}
	appendTo := check.ConfFile{Path: "/etc/NetworkManager/conf.d/20-more.conf", Data: []byte("[keyfile]\nunmanaged-devices+=interface-name:=eno1.host\n")}
	for _, tc := range []struct {
		name  string
		files []check.ConfFile
		want  string
	}{
		{"the package's snippet", []check.ConfFile{pkg}, pkg.Path + " [device-flatnet-shim]"},
		{"keyfile unmanaged-devices", []check.ConfFile{keyfile}, keyfile.Path + " [keyfile] unmanaged-devices"},
		{"by type", []check.ConfFile{byType}, byType.Path + " [keyfile] unmanaged-devices"},
		{"a later file's device section wins", []check.ConfFile{pkg, manageAll}, ""},
		{"keyfile wins over device sections", []check.ConfFile{byType, manageAll}, byType.Path + " [keyfile] unmanaged-devices"},
		{"only negations match the rest", []check.ConfFile{except}, except.Path + " [keyfile] unmanaged-devices"},
		{"a negation wins", []check.ConfFile{exceptShim}, ""},
		{"nothing about devices", []check.ConfFile{plain}, ""},
		{"+= appends", []check.ConfFile{keyfile, appendTo}, appendTo.Path + " [keyfile] unmanaged-devices"},
	} {
		if got := check.NMUnmanaged(tc.files, "eno1.host", "macvlan"); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSysctlD(t *testing.T) {
	files := []check.ConfFile{
		{Path: "/usr/lib/sysctl.d/50-default.conf", Data: []byte("net.ipv4.conf.default.arp_ignore = 1\nnet.ipv4.conf.*.arp_ignore = 1\n")},
		{Path: "/etc/sysctl.d/60-shim.conf", Data: []byte("# flatnet's shim answers ARP for the node\n-net.ipv4.conf.eno1/host.arp_ignore = 0\nnet/ipv4/conf/fn1a2b3c4d.host/arp_ignore=0\n")},
	}
	got := check.SysctlD(files, []string{"eno1.host", "fn1a2b3c4d.host", "eno2.host"}, "arp_ignore")
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
		if got := check.KernelConfigMacvlan([]byte(cfg)); got != want {
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
		if got := check.IsFlatnetRun([]byte(cmdline)); got != want {
			t.Errorf("%q: got %v", cmdline, got)
		}
	}
}

func TestParseSystemctlShow(t *testing.T) {
	u := check.ParseSystemctlShow([]byte("MainPID=812\nLoadState=loaded\nActiveState=active\nSubState=running\nStatusText=default: 2 pod routes via eno1.host (master eno1)\n"))
	if u.MainPID != 812 || u.LoadState != "loaded" || u.ActiveState != "active" || u.SubState != "running" || u.StatusText != "default: 2 pod routes via eno1.host (master eno1)" {
		t.Errorf("got %+v", u)
	}
}

// TestGather reads a fixture tree standing for a node's /proc, /sys, /etc
// and /run.
func TestGather(t *testing.T) {
	root := t.TempDir()
	write := func(p, content string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, dev := range []string{"all", "default", "eno1", "eno1.host"} {
		for _, k := range []string{"arp_ignore", "arp_filter", "arp_announce", "rp_filter"} {
			write("proc/sys/net/ipv4/conf/"+dev+"/"+k, "0\n")
		}
	}
	write("proc/sys/net/ipv4/conf/all/arp_ignore", "1\n")
	write("proc/stat", "cpu 1\nbtime 1764144000\n")
	write("proc/1/comm", "systemd\n")
	link("proc/self/ns/net", "net:[4026531840]")
	// flatnet run, in this namespace; networkd in another; NetworkManager here.
	write("proc/700/comm", "flatnet\n")
	write("proc/700/cmdline", "/usr/bin/flatnet\x00run\x00")
	link("proc/700/ns/net", "net:[4026531840]")
	write("proc/701/comm", "systemd-network\n")
	link("proc/701/ns/net", "net:[4026532999]")
	write("proc/702/comm", "NetworkManager\n")
	link("proc/702/ns/net", "net:[4026531840]")
	write("proc/modules", "bridge 1 0 - Live 0x0\nmacvlan 32768 0 - Live 0x0\n")
	write("usr/lib/NetworkManager/conf.d/flatnet.conf", "[device-flatnet-shim]\nmatch-device=interface-name:*.host\nmanaged=0\n")
	write("etc/sysctl.d/60-shim.conf", "net.ipv4.conf.eno1/host.arp_ignore = 0\n")
	old := time.Unix(1764144000-3600, 0)
	write("var/lib/cni/networks/default/192.168.1.2", "c1\r\neth0")
	write("var/lib/cni/networks/default/192.168.1.3", "c2\r\neth0")
	write("var/lib/cni/networks/default/lock", "")
	write("var/lib/cni/networks/default/last_reserved_ip.0", "192.168.1.3")
	if err := os.Chtimes(filepath.Join(root, "var/lib/cni/networks/default/192.168.1.2"), old, old); err != nil {
		t.Fatal(err)
	}

	f := check.Facts{
		Networks: []reconcile.Network{{Name: "default", Master: "eno1", Shim: "eno1.host", StateDir: "/var/lib/cni/networks/default"}},
		Snap: &reconcile.Snapshot{Links: []reconcile.Link{
			{Index: 2, Name: "eno1", Up: true},
			{Index: 3, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: true},
		}},
	}
	var asked []string
	check.Gather(&f, check.Env{
		Root: root,
		Systemctl: func(args ...string) ([]byte, error) {
			asked = args
			return []byte("LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=700\nStatusText=default: 1 pod routes via eno1.host (master eno1)\n"), nil
		},
		Devices: func(names []string) map[string]check.Device {
			out := map[string]check.Device{}
			for _, n := range names {
				out[n] = check.Device{Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.0.5/16")}}
			}
			return out
		},
	})

	if f.Sysctls["all/arp_ignore"] != "1" || f.Sysctls["eno1.host/rp_filter"] != "0" {
		t.Errorf("sysctls: %v", f.Sysctls)
	}
	if f.SysctlD["eno1.host/arp_ignore"] != 0 {
		t.Errorf("sysctl.d: %v", f.SysctlD)
	}
	if !f.BootTime.Equal(time.Unix(1764144000, 0)) {
		t.Errorf("boot time %v", f.BootTime)
	}
	if sf := f.StateFiles["/var/lib/cni/networks/default"]; len(sf) != 2 || !sf[0].ModTime.Equal(old) {
		t.Errorf("state files: %+v", sf)
	}
	if f.Macvlan.State != "in use" {
		t.Errorf("macvlan: %+v", f.Macvlan)
	}
	if f.Networkd.Running {
		t.Error("networkd of another namespace counted")
	}
	if !f.NM.Running || f.NM.Unmanaged["eno1.host"] != "/usr/lib/NetworkManager/conf.d/flatnet.conf [device-flatnet-shim]" {
		t.Errorf("NetworkManager: %+v", f.NM)
	}
	if !slices.Equal(f.Daemon.PIDs, []int{700}) || !f.Daemon.Systemd || f.Daemon.Unit == nil || !f.Daemon.Unit.MainPIDHere {
		t.Errorf("daemon: %+v, unit %+v", f.Daemon, f.Daemon.Unit)
	}
	if !slices.Contains(asked, "flatnet.service") {
		t.Errorf("systemctl asked %v", asked)
	}
	if len(f.Devices["eno1"].Addrs) != 1 {
		t.Errorf("devices: %v", f.Devices)
	}

	// Without the macvlan link, /proc/modules says it.
	f.Snap.Links = f.Snap.Links[:1]
	check.Gather(&f, check.Env{Root: root, Systemctl: func(...string) ([]byte, error) { return nil, errors.New("no bus") }})
	if f.Macvlan.State != "loaded" || f.Daemon.UnitErr == nil {
		t.Errorf("macvlan %+v, unit error %v", f.Macvlan, f.Daemon.UnitErr)
	}
}
