package check_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flatnet/flatnet/internal/check"
	"github.com/flatnet/flatnet/internal/inspect"
	"github.com/flatnet/flatnet/internal/reconcile"
)

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

	f := check.Facts{Observation: inspect.Observation{
		Networks: []reconcile.Network{{Name: "default", Master: "eno1", Shim: "eno1.host", StateDir: "/var/lib/cni/networks/default"}},
		Snap: &reconcile.Snapshot{Links: []reconcile.Link{
			{Index: 2, Name: "eno1", Up: true},
			{Index: 3, Name: "eno1.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: true},
		}},
	}}
	var asked []string
	check.Gather(&f, check.Env{
		Root: root,
		Systemctl: func(args ...string) ([]byte, error) {
			asked = args
			return []byte("LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=700\nStatusText=default: 1 pod routes via eno1.host (master eno1)\n"), nil
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

	// Without the macvlan link, /proc/modules says it.
	f.Snap.Links = f.Snap.Links[:1]
	check.Gather(&f, check.Env{Root: root, Systemctl: func(...string) ([]byte, error) { return nil, errors.New("no bus") }})
	if f.Macvlan.State != "loaded" || f.Daemon.UnitErr == nil {
		t.Errorf("macvlan %+v, unit error %v", f.Macvlan, f.Daemon.UnitErr)
	}
}
