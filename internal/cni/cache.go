package cni

// Discovery from libcni's result cache.
//
// Networks that exist only at run time (a Multus NetworkAttachmentDefinition,
// a configuration a runtime keeps outside /etc/cni/net.d) never reach the
// configuration directory, but every attachment libcni makes leaves a cache
// entry holding the exact configuration it was made with. What is known of
// that cache, and from where (versions checked against their sources):
//
//   - Format. libcni (github.com/containernetworking/cni, libcni/api.go,
//     cachedInfo and cacheAdd, v0.8.0 to v1.3.1) writes, on every successful
//     ADD, <cacheDir>/results/<networkName>-<containerID>-<ifName>, mode
//     0600 in a 0700 directory, with os.WriteFile (in place, not atomic: a
//     reader can see it empty or cut short). It is one JSON object:
//     "kind": "cniCacheV1", "containerId", "config" (the configuration's
//     bytes, so base64 in JSON), "ifName", "networkName", and when set
//     "netns", "cniArgs" ([[key, value]...]), "capabilityArgs" (the runtime's
//     capability arguments, such as "ipRanges"), "result" (the plugin chain's
//     result). DEL removes the file. GetCachedAttachments (v1.2.0 on) lists
//     the same directory and keeps entries of kind cniCacheV1 with an ifName
//     and a networkName.
//   - "config" is what the runtime handed libcni: a network list's bytes
//     (AddNetworkList: containerd through go-cni, CRI-O through ocicni,
//     podman's CNI backend, cnitool, Multus for list delegates) or a single
//     plugin configuration's (AddNetwork: Multus for delegates whose
//     configuration has no "plugins"). A .conf file loaded by a runtime is
//     up-converted to a list first (ConfListFromConf), so its entry holds
//     a list. Both forms are read here, by the same rules as the
//     configuration directory (parseConfList, parseConf). The "runtimeConfig"
//     libcni injects per plugin is not in "config": it is rebuilt from
//     "capabilityArgs" and the plugin's "capabilities", as libcni's
//     injectRuntimeConfig does, so ipRanges a runtime passes at run time are
//     followed for cached attachments.
//   - Older libcni: v0.7.x (setCachedResult) wrote only the result JSON to
//     the same path, without kind, network name or configuration; v0.6 and
//     earlier wrote nothing. Such entries are recognised (no "kind", a
//     "cniVersion") and skipped: they cannot say which network they belong
//     to (ErrCacheLegacy).
//   - Where. libcni's default cache dir is /var/lib/cni (libcni.CacheDir).
//     containerd (go-cni: NewCNIConfig, no cache dir option), CRI-O
//     (internal/config/cnimgr calls ocicni.InitCNI, which passes no cache
//     dir), podman's CNI backend (containers/common libnetwork/cni:
//     NewCNIConfig) and cnitool (v1.3.0 and v1.3.1: NewCNIConfig; there is
//     no environment variable for the cache dir) all use it. Multus
//     (multus-cni pkg/multus/multus.go, v3.7.2 to v4.3) calls
//     libcni.NewCNIConfigWithCacheDir(binDirs, netconf.CNIDir, exec) for
//     every delegate, and CNIDir defaults to /var/lib/cni/multus
//     (pkg/types/conf.go, defaultCNIDir; "cniDir" in Multus's configuration
//     changes it); the thick-plugin daemonset mounts that host path into
//     its daemon. Multus up to v3.7.1 used libcni.NewCNIConfig, so its
//     delegates' entries are in /var/lib/cni/results. So a Multus node has the delegates' entries, macvlan ones
//     included, in /var/lib/cni/multus/results, and the runtime's entry for
//     Multus itself (type "multus", or "multus-shim" for the thick plugin)
//     in /var/lib/cni/results. Entries of plugin types other than macvlan
//     (multus, bridge, loopback, ...) are ignored without a word.
//   - Not in the cache: plugins a v1.3 network list loads from a
//     subdirectory of the configuration directory (only the list's own
//     bytes are cached); such an entry shows no macvlan plugin.
//
// A cached attachment of a macvlan plugin becomes a Network exactly as the
// same configuration in a file would (master, mode, IPAM, and for
// host-local its dataDir, ranges and defaults), with File set to the cache
// file's path; its result's addresses are the attachment's (Addrs).
// Combine merges those with the configuration directory's networks; see
// there for who wins.

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/text"
)

// Where libcni and Multus keep their caches, and what is in them.
const (
	DefaultCacheDir  = "/var/lib/cni"        // libcni.CacheDir: containerd, CRI-O, podman, cnitool
	MultusCacheDir   = "/var/lib/cni/multus" // Multus's default cniDir, for its delegates
	CacheResultsDir  = "results"             // the entries are in <cache dir>/results
	CacheKind        = "cniCacheV1"          // the only kind libcni writes (v0.8.0 to v1.3.1)
	MaxCacheFileSize = 1 << 20               // real entries are a few KiB
)

// CacheFile is one file of a cache directory's results/, as read.
type CacheFile struct {
	Path    string    // <cache dir>/results/<name>
	Data    []byte    // content
	ModTime time.Time // when it was last written
	Err     error     // set when it could not be read (ErrCacheUnreadable)
}

// Attachment is one cached attachment: a container's interface on a
// network, which keeps the network known while it lasts.
type Attachment struct {
	Path        string    // the cache file
	ContainerID string    // the runtime's container (sandbox) id
	IfName      string    // the interface inside the container
	NetNS       string    // the namespace path the runtime gave; it may be gone
	ModTime     time.Time // the cache file's: when the attachment was made
	// Addrs are the addresses the cached result gives the pod's own
	// interface (whatever the IPAM: host-local, static, whereabouts,
	// dhcp; the macvlan plugin passes its IPAM's result on).
	Addrs []Addr
	// MAC and Sandbox are the pod interface's MAC address and network
	// namespace as the result gives them, when it does.
	MAC     net.HardwareAddr
	Sandbox string
	// Gone is set when the attachment's network namespace no longer
	// exists (CheckNetNS): a pod whose DEL never ran (a crash, a node that
	// lost power; libcni's cache survives a reboot). Its addresses are
	// never routed.
	Gone bool
}

// Addr is an address of a cached result.
type Addr struct {
	Prefix  netip.Prefix // the address and the length of its subnet
	Gateway netip.Addr   // the result's gateway for it; invalid when none
}

// String is the attachment as messages name it: the container id cut to 12
// characters, and the interface: "7bd849c5e1f0…/eth0".
func (a Attachment) String() string {
	id := a.ContainerID
	if len(id) > 12 {
		id = id[:12] + "…"
	}
	return text.Printable(id + "/" + a.IfName)
}

// CacheEntry is what one cache file says.
type CacheEntry struct {
	Attachment
	NetworkName string   // the network the attachment is on
	Types       []string // the cached configuration's plugin types, in order; empty when it holds none
	// Network is the macvlan network of the attachment, as
	// Discover would find it in a file holding the cached configuration,
	// with the runtime's ipRanges applied and File set to Path; nil when
	// the configuration has no macvlan plugin.
	Network *Network

	written netKey // the network as its configuration is written, for comparisons
}

// netKey is what two configurations of one network must share to be the
// same for flatnet: where the pods sit and where and from what host-local
// allocates.
type netKey struct {
	master, mode, dataDir string
	ranges                string // as written, without run-time ipRanges; "" when they give none
}

// keyOf is n's netKey; n's ranges count as written. A mode or dataDir left
// out is the plugin's default, so the same as one that says it.
func keyOf(n Network) netKey {
	return netKey{master: n.Master, mode: cmp.Or(n.Mode, "bridge"), dataDir: cmp.Or(n.DataDir, DefaultDataDir), ranges: rangesString(n.Ranges)}
}

// rangesString lists ranges for comparison and messages.
func rangesString(rs []hostlocal.Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
		if r.Gateway.IsValid() {
			s[i] += " gateway " + r.Gateway.String()
		}
	}
	return strings.Join(s, ", ")
}

// cacheEnvelope is libcni's cachedInfo, field for field and type for type,
// so that what libcni cannot decode is refused here too.
type cacheEnvelope struct {
	Kind           string                     `json:"kind"`
	ContainerID    string                     `json:"containerId"`
	Config         []byte                     `json:"config"`
	IfName         string                     `json:"ifName"`
	NetworkName    string                     `json:"networkName"`
	NetNS          string                     `json:"netns,omitempty"`
	CniArgs        [][2]string                `json:"cniArgs,omitempty"`
	CapabilityArgs map[string]json.RawMessage `json:"capabilityArgs,omitempty"`
	// Result is libcni's map[string]interface{}: decodeEnvelope checks
	// that it is an object (or null), readResult reads it once.
	Result json.RawMessage `json:"result,omitempty"`
}

// ParseCache reads one cache file. It returns the entry and nil when the
// file is a cached attachment: entry.Network is then its macvlan +
// host-local network, or nil for any other plugin (bridge, multus, ...),
// which is nothing to report. Otherwise the error says why, and matches one
// of: ErrCacheUnreadable, ErrCacheIncomplete, ErrCacheMalformed,
// ErrCacheMisnamed, ErrCacheLegacy, ErrCacheKind, or ErrUnfollowable (an
// *UnfollowableError: a macvlan attachment flatnet cannot follow; the entry
// is returned with it, Network nil). Ignorable tells the errors not worth
// reporting. A file ReadCacheFile found gone comes back with its
// fs.ErrNotExist as it was: its attachment is over.
func ParseCache(f CacheFile) (CacheEntry, error) { return parseCache(f, nil) }

// parseCache is ParseCache, taking what it made of a configuration before
// from memo (and keeping what it makes now), when memo is not nil.
func parseCache(f CacheFile, memo *configMemo) (CacheEntry, error) {
	env, err := decodeEnvelope(f)
	if err != nil {
		return CacheEntry{}, err
	}
	e := CacheEntry{
		Attachment: Attachment{
			Path:        f.Path,
			ContainerID: env.ContainerID,
			IfName:      env.IfName,
			NetNS:       env.NetNS,
			ModTime:     f.ModTime,
		},
		NetworkName: env.NetworkName,
	}
	e.Addrs, e.MAC, e.Sandbox = readResult(env.Result, env.IfName)
	if want := env.NetworkName + "-" + env.ContainerID + "-" + env.IfName; filepath.Base(f.Path) != want {
		return CacheEntry{}, fmt.Errorf("%w: it holds network %q, container %s, interface %q, which libcni caches as %q",
			ErrCacheMisnamed, env.NetworkName, env.ContainerID, env.IfName, want)
	}
	if len(env.Config) == 0 {
		return CacheEntry{}, fmt.Errorf(`%w: no "config"`, ErrCacheMalformed)
	}
	if memo.recall(&e, env) {
		return e, nil
	}
	if err := e.readConfig(env); err != nil {
		if errors.Is(err, ErrUnfollowable) {
			return e, err
		}
		return CacheEntry{}, err
	}
	memo.keep(e, env)
	return e, nil
}

// configMemo remembers what ParseCache made of cached configurations.
// Every attachment of one network (the pods of one NAD) carries the same
// configuration, and parsing it is most of what an entry costs (about
// 70 % of ParseCache's CPU, BenchmarkCacheDiscovery): the daemon's cache
// reader keeps one, so that a pod's entry costs its envelope and result
// only. Only configurations read without error are kept. A nil memo
// remembers nothing.
type configMemo struct {
	m   map[string]parsedConfig
	key []byte // the last key made: a lookup makes its key here, not in a new string
}

func newConfigMemo() *configMemo { return &configMemo{m: map[string]parsedConfig{}} }

// maxMemo bounds a memo: past it, it starts afresh (configurations come
// and go with NADs; a node sees a handful).
const maxMemo = 256

// parsedConfig is what readConfig made of a configuration.
type parsedConfig struct {
	types   []string
	network *Network // File left out: the entry's own
	written netKey
}

// makeKey puts into m.key what readConfig reads of env: the network's
// name, the configuration and the runtime's capability arguments
// (encoding/json writes a map's keys sorted, so equal arguments give
// equal keys).
func (m *configMemo) makeKey(env cacheEnvelope) {
	m.key = append(append(append(m.key[:0], env.NetworkName...), 0), env.Config...)
	if len(env.CapabilityArgs) > 0 {
		caps, _ := json.Marshal(env.CapabilityArgs)
		m.key = append(append(m.key, 0), caps...)
	}
}

// recall fills e from memo as readConfig would, and reports whether it
// could. The entry gets copies: nothing of it is shared with another.
func (m *configMemo) recall(e *CacheEntry, env cacheEnvelope) bool {
	if m == nil {
		return false
	}
	m.makeKey(env)
	pc, ok := m.m[string(m.key)] // no string is made for the lookup
	m.dropBig()
	if !ok {
		return false
	}
	e.Types, e.written = slices.Clone(pc.types), pc.written
	if pc.network != nil {
		n := *pc.network
		n.Ranges, n.File = slices.Clone(n.Ranges), e.Path
		e.Network = &n
	}
	return true
}

// keep remembers what readConfig made of env's configuration for e.
func (m *configMemo) keep(e CacheEntry, env cacheEnvelope) {
	if m == nil {
		return
	}
	if len(m.m) >= maxMemo {
		clear(m.m)
	}
	pc := parsedConfig{types: slices.Clone(e.Types), written: e.written}
	if e.Network != nil {
		n := *e.Network
		n.Ranges, n.File = slices.Clone(n.Ranges), ""
		pc.network = &n
	}
	m.makeKey(env)
	m.m[string(m.key)] = pc
	m.dropBig()
}

// dropBig lets go of a key buffer that a big configuration grew.
func (m *configMemo) dropBig() {
	if cap(m.key) > maxKeptBuf {
		m.key = nil
	}
}

// decodeEnvelope decodes a cache file into libcni's envelope and checks
// what libcni checks of it.
func decodeEnvelope(f CacheFile) (cacheEnvelope, error) {
	var env cacheEnvelope
	if f.Err != nil {
		if errors.Is(f.Err, ErrCacheUnreadable) || errors.Is(f.Err, fs.ErrNotExist) {
			return env, f.Err
		}
		return env, fmt.Errorf("%w: %w", ErrCacheUnreadable, f.Err)
	}
	data := bytes.TrimSpace(f.Data)
	if len(data) == 0 {
		return env, fmt.Errorf("%w: empty", ErrCacheIncomplete)
	}
	if len(data) > MaxCacheFileSize {
		return env, fmt.Errorf("%w: %d bytes, over the %d a cache entry may have", ErrCacheUnreadable, len(data), MaxCacheFileSize)
	}
	if err := json.Unmarshal(data, &env); err != nil {
		// encoding/json checks the syntax of the whole input before it
		// decodes anything, so a cut-short file always says so.
		var syn *json.SyntaxError
		if errors.As(err, &syn) && syn.Error() == "unexpected end of JSON input" {
			return env, fmt.Errorf("%w: cut short after %d bytes", ErrCacheIncomplete, len(data))
		}
		var b64 base64.CorruptInputError
		if errors.As(err, &b64) {
			return env, fmt.Errorf(`%w: "config" is not base64 (%v)`, ErrCacheMalformed, err)
		}
		return env, fmt.Errorf("%w: %w", ErrCacheMalformed, jsonError(err, data))
	}
	if r := bytes.TrimSpace(env.Result); len(r) > 0 && r[0] != '{' && string(r) != "null" {
		// What libcni's map refuses; decoded as one only here, so that the
		// error is the one encoding/json gives for it.
		var asMap struct {
			Result map[string]json.RawMessage `json:"result"`
		}
		err := json.Unmarshal(data, &asMap)
		if err == nil {
			err = errors.New(`"result" is not an object`)
		}
		return env, fmt.Errorf("%w: %w", ErrCacheMalformed, jsonError(err, data))
	}
	if env.Kind != CacheKind {
		// libcni 0.8 on write "kind"; 0.7 wrote a bare result, which has
		// a "cniVersion" and no "kind".
		var head map[string]json.RawMessage
		_ = json.Unmarshal(data, &head) // an object: env decoded
		if _, ok := lookup(head, "kind"); ok {
			return env, fmt.Errorf("%w %q (libcni writes %q); not read", ErrCacheKind, env.Kind, CacheKind)
		}
		if _, ok := lookup(head, "cniVersion"); ok {
			return env, ErrCacheLegacy
		}
		return env, fmt.Errorf(`%w: no "kind"`, ErrCacheMalformed)
	}
	switch {
	case env.NetworkName == "":
		return env, fmt.Errorf(`%w: no "networkName"`, ErrCacheMalformed)
	case !config.ValidNetworkName(env.NetworkName):
		return env, fmt.Errorf(`%w: "networkName" %q is not a valid CNI network name`, ErrCacheMalformed, env.NetworkName)
	case env.ContainerID == "":
		return env, fmt.Errorf(`%w: no "containerId"`, ErrCacheMalformed)
	case !config.ValidNetworkName(env.ContainerID):
		return env, fmt.Errorf(`%w: "containerId" %q is not one libcni accepts`, ErrCacheMalformed, env.ContainerID)
	case env.IfName == "":
		return env, fmt.Errorf(`%w: no "ifName"`, ErrCacheMalformed)
	case !libcniIfName(env.IfName):
		return env, fmt.Errorf(`%w: "ifName" %q is not an interface name libcni accepts`, ErrCacheMalformed, env.IfName)
	}
	return env, nil
}

// readConfig reads the entry's cached configuration: its plugin types and,
// for macvlan, its Network as the plugins saw it. The error is ParseCache's.
func (e *CacheEntry) readConfig(env cacheEnvelope) error {
	list, ok, err := cachedList(env.Config)
	if err != nil {
		return fmt.Errorf("%w: config: %w", ErrCacheMalformed, err)
	}
	if !ok {
		return nil // a list whose plugins are not in the cache
	}
	if list.name != env.NetworkName {
		return fmt.Errorf("%w: config: it defines network %q, not %q", ErrCacheMalformed, list.name, env.NetworkName)
	}
	for _, p := range list.plugins {
		var head pluginHead
		_ = json.Unmarshal(p, &head) // checked by cachedList
		e.Types = append(e.Types, head.Type)
	}
	if !slices.Contains(e.Types, "macvlan") {
		return nil
	}

	// The network as the plugins saw it: libcni adds the runtime's
	// capability arguments the plugin asked for as its "runtimeConfig".
	run, injected := list, false
	run.plugins = make([][]byte, len(list.plugins))
	for i, p := range list.plugins {
		q, err := injectRuntimeConfig(p, env.CapabilityArgs)
		if err != nil {
			return fmt.Errorf("%w: config: plugin %d: %w", ErrCacheMalformed, i, err)
		}
		run.plugins[i] = q
		injected = injected || !bytes.Equal(p, q)
	}
	nets, err := listNetworks(run)
	if err != nil {
		return &UnfollowableError{Network: env.NetworkName, Attachment: e.Attachment, Err: err}
	}
	if len(nets) == 0 {
		return nil
	}
	n := nets[0]
	n.File = e.Path
	e.Network = &n
	e.written = keyOf(n)
	if injected {
		e.written.ranges = ""
		if asWritten, err := listNetworks(list); err == nil && len(asWritten) > 0 {
			e.written.ranges = rangesString(asWritten[0].Ranges)
		}
	}
	return nil
}

// lookup finds key in a decoded JSON object the way encoding/json matches
// struct fields: an exact match first, else one that differs in case only.
func lookup(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// libcniIfName is libcni's utils.ValidateInterfaceName: 1 to 15 bytes, not
// "." or "..", no '/', ':' or white space.
func libcniIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r == ':' || unicode.IsSpace(r) })
}

// cachedList reads a cached configuration: a network list, or a single
// plugin configuration (Multus's AddNetwork). ok is false for a list whose
// plugins libcni loaded from a subdirectory, which the cache does not hold.
func cachedList(config []byte) (list netList, ok bool, err error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(config, &probe); err != nil {
		return netList{}, false, jsonError(err, config)
	}
	_, hasPlugins := probe["plugins"]
	_, hasType := lookup(probe, "type")
	switch {
	case hasPlugins:
		list, err = parseConfList(config)
	case hasType:
		list, err = parseConf(config)
	default:
		_, hasName := probe["name"]
		if !hasName {
			return netList{}, false, errors.New(`neither a network list ("plugins") nor a plugin configuration ("type")`)
		}
		return netList{}, false, nil
	}
	if err != nil {
		return netList{}, false, err
	}
	return list, true, nil
}

// injectRuntimeConfig is libcni's injectRuntimeConfig: for every capability
// the plugin declares true, the runtime's argument of that name goes into
// the plugin's "runtimeConfig", which then replaces any the configuration
// had. Without such arguments the plugin is returned as it was.
func injectRuntimeConfig(plugin []byte, capArgs map[string]json.RawMessage) ([]byte, error) {
	if len(capArgs) == 0 {
		return plugin, nil
	}
	var caps struct {
		Capabilities map[string]bool `json:"capabilities"`
	}
	if err := json.Unmarshal(plugin, &caps); err != nil {
		return nil, jsonError(err, plugin)
	}
	rc := map[string]json.RawMessage{}
	for c, on := range caps.Capabilities {
		if v, ok := capArgs[c]; ok && on {
			rc[c] = v
		}
	}
	if len(rc) == 0 {
		return plugin, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(plugin, &m); err != nil {
		return nil, jsonError(err, plugin)
	}
	rcJSON, err := json.Marshal(rc)
	if err != nil {
		return nil, err
	}
	m["runtimeConfig"] = rcJSON
	return json.Marshal(m)
}

// cniResult is what flatnet reads of a CNI result: CNI 0.3.0 and later
// ("interfaces", "ips" with the index of their interface), and 0.1.0 and
// 0.2.0 ("ip4", "ip6").
type cniResult struct {
	Interfaces []struct {
		Name    string `json:"name"`
		Mac     string `json:"mac"`
		Sandbox string `json:"sandbox"`
	} `json:"interfaces"`
	IPs []struct {
		Address   string `json:"address"`
		Gateway   string `json:"gateway"`
		Interface *int   `json:"interface"`
	} `json:"ips"`
	IP4, IP6 *struct {
		IP      string `json:"ip"`
		Gateway string `json:"gateway"`
	}
}

// readResult reads a cached result: the addresses of the pod's own
// interface (an address whose "interface" names a host-side interface, one
// without a sandbox, such as a bridge's, is not the pod's), and that
// interface's MAC and sandbox. A result that does not parse gives nothing:
// the attachment is then one without an address to route.
func readResult(result json.RawMessage, ifName string) ([]Addr, net.HardwareAddr, string) {
	var r cniResult
	if len(result) == 0 || json.Unmarshal(result, &r) != nil {
		return nil, nil, ""
	}
	var mac net.HardwareAddr
	sandbox := ""
	for _, i := range r.Interfaces {
		if i.Sandbox == "" || (i.Name != ifName && sandbox != "") {
			continue
		}
		sandbox = i.Sandbox
		mac, _ = net.ParseMAC(i.Mac)
	}
	var out []Addr
	add := func(address, gateway string) {
		p, err := netip.ParsePrefix(address)
		if err != nil {
			return
		}
		a := Addr{Prefix: netip.PrefixFrom(p.Addr().Unmap(), p.Bits())}
		if p.Addr().Is4In6() {
			a.Prefix = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		if g, err := netip.ParseAddr(gateway); err == nil {
			a.Gateway = g.Unmap()
		}
		out = append(out, a)
	}
	for _, ip := range r.IPs {
		if ip.Interface != nil && (*ip.Interface < 0 || *ip.Interface >= len(r.Interfaces) || r.Interfaces[*ip.Interface].Sandbox == "") {
			continue
		}
		add(ip.Address, ip.Gateway)
	}
	for _, ip := range []*struct {
		IP      string `json:"ip"`
		Gateway string `json:"gateway"`
	}{r.IP4, r.IP6} {
		if ip != nil {
			add(ip.IP, ip.Gateway)
		}
	}
	return out, mac, sandbox
}

// UnfollowableError is a cached macvlan attachment flatnet cannot follow:
// errors.Is(err, ErrUnfollowable) holds, and Err says why.
type UnfollowableError struct {
	Network    string
	Attachment Attachment
	Err        error
}

func (e *UnfollowableError) Error() string {
	return fmt.Sprintf("attachment %s: %v", e.Attachment, e.Err)
}

// Is makes errors.Is(e, ErrUnfollowable) true.
func (e *UnfollowableError) Is(target error) bool { return target == ErrUnfollowable }

// Unwrap returns why.
func (e *UnfollowableError) Unwrap() error { return e.Err }
