package cni

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/safepath"
)

// ccParse is ParseCache of data as the file libcni names after network,
// id and ifname, under /c.
func ccParse(network, id, ifname, data string) (CacheEntry, error) {
	return ParseCache(CacheFile{Path: filepath.Join("/c", "results", network+"-"+id+"-"+ifname), Data: []byte(data)})
}

// ccMacvlanList is a network list of one macvlan plugin on eno1 with
// host-local allocating from subnet.
func ccMacvlanList(name, subnet string) string {
	return netListJSON(name, macvlan(`{"type": "host-local", "subnet": "`+subnet+`"}`))
}

// TestAttachmentStringCut: messages name a container by its first 12
// characters, as docker and crictl show it; an id of 12 or fewer is shown
// whole, without the ellipsis that says something was cut.
func TestAttachmentStringCut(t *testing.T) {
	tests := []struct{ id, want string }{
		{"7bd849c5e1f0", "7bd849c5e1f0/eth0"},
		{"7bd849c5e1f0a", "7bd849c5e1f0…/eth0"},
		{"c1", "c1/eth0"},
	}
	for _, tt := range tests {
		if got := (Attachment{ContainerID: tt.id, IfName: "eth0"}).String(); got != tt.want {
			t.Errorf("Attachment{ContainerID: %q}.String() = %q, want %q", tt.id, got, tt.want)
		}
	}
}

// TestParseCacheLimits: what libcni accepts is read up to its limits: an
// interface name of 15 bytes (IFNAMSIZ-1) and an entry of exactly
// MaxCacheFileSize bytes are an attachment; one byte more is refused.
func TestParseCacheLimits(t *testing.T) {
	conf := ccMacvlanList("n", "10.0.0.0/24")
	if e, err := ccParse("n", "c", "a23456789012345", string(cacheJSON("n", "c", "a23456789012345", conf, ""))); err != nil || e.IfName != "a23456789012345" || e.Network == nil {
		t.Errorf("15-byte ifName: %+v, %v", e, err)
	}
	good := cacheJSON("n", "c", "eth0", conf, "")
	pad := func(size int) string { // good, with white space inside the object up to size bytes
		return "{" + strings.Repeat(" ", size-len(good)) + string(good[1:])
	}
	if e, err := ccParse("n", "c", "eth0", pad(MaxCacheFileSize)); err != nil || e.Network == nil {
		t.Errorf("an entry of MaxCacheFileSize bytes: %+v, %v", e, err)
	}
	if _, err := ccParse("n", "c", "eth0", pad(MaxCacheFileSize+1)); !errors.Is(err, ErrCacheUnreadable) {
		t.Errorf("an entry over MaxCacheFileSize bytes: %v, want ErrCacheUnreadable", err)
	}
}

// TestReadCacheFileSizes: ReadCacheFile reads a file of exactly
// MaxCacheFileSize bytes whole, refuses one byte more, and reads an empty
// file (libcni caught creating it) as empty, not as an error: ParseCache
// then says it is being written.
func TestReadCacheFileSizes(t *testing.T) {
	dir := t.TempDir()
	results := filepath.Join(dir, CacheResultsDir)
	if err := os.Mkdir(results, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int{"max": MaxCacheFileSize, "over": MaxCacheFileSize + 1, "empty": 0} {
		if err := os.WriteFile(filepath.Join(results, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if f := ReadCacheFile(dir, "max"); f.Err != nil || len(f.Data) != MaxCacheFileSize {
		t.Errorf("a file of MaxCacheFileSize bytes: %d bytes, %v", len(f.Data), f.Err)
	}
	if f := ReadCacheFile(dir, "over"); !errors.Is(f.Err, ErrCacheUnreadable) || f.Data != nil {
		t.Errorf("a file over MaxCacheFileSize bytes: %d bytes, %v", len(f.Data), f.Err)
	}
	f := ReadCacheFile(dir, "empty")
	if f.Err != nil || len(f.Data) != 0 {
		t.Fatalf("an empty file: %q, %v", f.Data, f.Err)
	}
	if _, err := ParseCache(f); !errors.Is(err, ErrCacheIncomplete) {
		t.Errorf("ParseCache of an empty file: %v, want ErrCacheIncomplete", err)
	}
}

// TestReadCacheEntryGone: a file listed in results/ but gone when it is
// opened (a CNI DEL while the directory is read) is left out, and the
// files after it are still read. /proc/self/fd is such a directory: the
// descriptor that lists it is closed before its entries are opened.
func TestReadCacheEntryGone(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/proc/self/fd", filepath.Join(dir, CacheResultsDir)); err != nil {
		t.Fatal(err)
	}
	// Descriptors that stay open all along, up to 100 at least: "99",
	// among them, sorts after the one the listing uses (the lowest free,
	// not 99), so there are files to read after the one gone.
	var held []string
	for len(held) < 1000 {
		fd, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		held = append(held, strconv.Itoa(int(fd.Fd())))
		if fd.Fd() >= 100 {
			break
		}
	}
	files, err := ReadCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, f := range files {
		if errors.Is(f.Err, os.ErrNotExist) {
			t.Errorf("%s: gone, yet returned: %v", f.Path, f.Err)
		}
		read[filepath.Base(f.Path)] = true
	}
	for _, name := range held {
		if !read[name] {
			t.Errorf("descriptor %s, open all along, not read (read %d files)", name, len(files))
		}
	}
}

// TestCheckNetNS: an attachment is gone when its namespace file (the
// runtime's netns, else the result's sandbox) no longer exists, and only
// then: a pod whose namespace is there is routed, and one without any
// path, or whose path lies in a directory the service's sandbox hides, is
// never taken for gone.
func TestCheckNetNS(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "cni-live")
	if err := os.WriteFile(live, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "cni-gone")
	// The service's sandbox hides dir/run: what is missing in it may be
	// there, out of sight.
	hidden := filepath.Join(dir, "run")
	if err := os.Mkdir(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv(safepath.HiddenEnv, hidden)
	tests := []struct {
		name, netns, sandbox string
		want                 bool
	}{
		{"netns there", live, "", false},
		{"netns gone", gone, "", true},
		{"netns there, sandbox gone", live, gone, false},
		{"sandbox gone", "", gone, true},
		{"sandbox there", "", live, false},
		{"no path", "", "", false},
		{"netns in a hidden directory", filepath.Join(hidden, "netns", "cni-x"), "", false},
	}
	for _, tt := range tests {
		e := CacheEntry{Attachment: Attachment{NetNS: tt.netns, Sandbox: tt.sandbox}}
		e.CheckNetNS()
		if e.Gone != tt.want {
			t.Errorf("%s: Gone = %v, want %v", tt.name, e.Gone, tt.want)
		}
	}
}

// TestParseCacheResult: the addresses, MAC and sandbox of an attachment
// are those of the pod's own interface (the one named ifName, else the
// first inside a sandbox), never of a host-side one a plugin lists (a
// veth's or a bridge's peer); an address whose "interface" index names no
// interface is ignored; an IPv4 address written IPv4-mapped is the IPv4
// address with its IPv4 prefix length.
func TestParseCacheResult(t *testing.T) {
	type iface map[string]any
	host := iface{"name": "veth1", "mac": "02:00:00:00:00:01"}
	eth0 := iface{"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": "/var/run/netns/a"}
	net1 := iface{"name": "net1", "mac": "02:00:00:00:00:03", "sandbox": "/var/run/netns/b"}
	const noIndex = -100 // an address without "interface"
	ip := func(address string, index int) map[string]any {
		m := map[string]any{"address": address}
		if index != noIndex {
			m["interface"] = index
		}
		return m
	}
	pfx := func(s ...string) []Addr {
		var out []Addr
		for _, p := range s {
			out = append(out, Addr{Prefix: netip.MustParsePrefix(p)})
		}
		return out
	}
	tests := []struct {
		name         string
		ifaces       []iface
		ips          []map[string]any
		wantAddrs    []Addr
		wantMAC      string
		wantSandbox  string
		extraResults map[string]any
	}{
		{"host-side interface first", []iface{host, eth0}, []map[string]any{ip("10.0.0.9/24", 0), ip("10.0.0.2/24", 1)},
			pfx("10.0.0.2/24"), "02:00:00:00:00:02", "/var/run/netns/a", nil},
		{"the one named ifName, not a later one", []iface{eth0, net1}, []map[string]any{ip("10.0.0.2/24", 0)},
			pfx("10.0.0.2/24"), "02:00:00:00:00:02", "/var/run/netns/a", nil},
		{"the one named ifName, after another", []iface{net1, eth0}, []map[string]any{ip("10.0.0.2/24", 1)},
			pfx("10.0.0.2/24"), "02:00:00:00:00:02", "/var/run/netns/a", nil},
		{"the only one in a sandbox, under another name", []iface{host, net1}, []map[string]any{ip("10.0.0.3/24", 1)},
			pfx("10.0.0.3/24"), "02:00:00:00:00:03", "/var/run/netns/b", nil},
		{"index out of range", []iface{eth0}, []map[string]any{ip("10.0.0.7/24", 5), ip("10.0.0.6/24", 1), ip("10.0.0.8/24", -1), ip("10.0.0.2/24", 0)},
			pfx("10.0.0.2/24"), "02:00:00:00:00:02", "/var/run/netns/a", nil},
		{"no index", nil, []map[string]any{ip("10.0.0.2/24", noIndex)}, pfx("10.0.0.2/24"), "", "", nil},
		{"IPv4-mapped", []iface{eth0}, []map[string]any{{"address": "::ffff:10.1.2.3/120", "gateway": "::ffff:10.1.2.1", "interface": 0}},
			[]Addr{{Prefix: netip.MustParsePrefix("10.1.2.3/24"), Gateway: netip.MustParseAddr("10.1.2.1")}}, "02:00:00:00:00:02", "/var/run/netns/a", nil},
		{"IPv4-mapped, 0.2.0", nil, nil,
			[]Addr{{Prefix: netip.MustParsePrefix("10.1.2.3/16")}}, "", "", map[string]any{"ip4": map[string]any{"ip": "::ffff:10.1.2.3/112"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			result := map[string]any{"cniVersion": "1.0.0", "interfaces": tt.ifaces, "ips": tt.ips}
			for k, v := range tt.extraResults {
				result[k] = v
			}
			data := with(string(cacheJSON("n", "c", "eth0", ccMacvlanList("n", "10.0.0.0/24"), "")), "result", result)
			e, err := ccParse("n", "c", "eth0", data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(e.Addrs, tt.wantAddrs) || e.MAC.String() != tt.wantMAC || e.Sandbox != tt.wantSandbox {
				t.Errorf("addrs %v mac %q sandbox %q, want %v %q %q", e.Addrs, e.MAC, e.Sandbox, tt.wantAddrs, tt.wantMAC, tt.wantSandbox)
			}
		})
	}
}

// TestCombineRunTimeRangesAsWritten: an attachment made with run-time
// ipRanges is compared with others by its configuration as written, its
// own ranges included: it agrees with the file that holds the same
// configuration, and two cached configurations that write different ranges
// are two configurations, whatever ranges the runtime passed.
func TestCombineRunTimeRangesAsWritten(t *testing.T) {
	plugin := func(subnet string) string {
		return `{"type": "macvlan", "master": "eno1", "capabilities": {"ipRanges": true}, "ipam": {"type": "host-local", "subnet": "` + subnet + `"}}`
	}
	args := func(subnet string) string { return `{"ipRanges": [[{"subnet": "` + subnet + `"}]]}` }
	parse := func(id, subnet, runtime string, mtime int64) CacheEntry {
		t.Helper()
		e, err := ParseCache(cacheFile("/c", "rt", id, "eth0", netListJSON("rt", plugin(subnet)), args(runtime), mtime))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	confNets, _ := Discover([]File{{Name: "10-rt.conflist", Data: []byte(netListJSON("rt", plugin("10.20.0.0/24")))}})
	d := Combine(confNets, nil, []CacheEntry{parse("c1", "10.20.0.0/24", "10.30.0.0/24", 1)})
	if got := paths(d.Attachments["rt"]); len(d.Refused) != 0 || !reflect.DeepEqual(got, []string{"/c/results/rt-c1-eth0"}) {
		t.Errorf("the file's configuration, with run-time ranges: attachments %q, refused %v, problems %v", got, d.Refused, d.Problems)
	}
	d = Combine(nil, nil, []CacheEntry{parse("c1", "10.20.0.0/24", "10.30.0.0/24", 1), parse("c2", "10.21.0.0/24", "10.30.0.0/24", 2)})
	if got := paths(d.Refused["rt"]); !reflect.DeepEqual(got, []string{"/c/results/rt-c2-eth0"}) || len(d.Attachments["rt"]) != 1 {
		t.Errorf("two configurations writing different ranges: attachments %v, refused %q", d.Attachments, got)
	}
}
