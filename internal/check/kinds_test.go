package check_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/check"
	"github.com/flatnet/flatnet/internal/cni"
	"github.com/flatnet/flatnet/internal/config"
	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/flatnet/flatnet/internal/statedir"
)

// kindCase is a node whose plan (or look) holds a finding or an op of one
// kind, and the line check gives it.
type kindCase struct {
	name string
	mod  func(*scenario)
	// after changes the facts once worked out (replan for the states).
	after func(*check.Facts)
	// from says where the kind is when not in the plan: "resolve" (the
	// networks' findings), "look" (the daemon makes the finding from what
	// the look holds too: Unmatched, CacheProblems), "injected" (a look
	// never makes it; the plan is given it).
	from string
	line want
	// ok, when set, says why the line is ok and has no fix.
	ok string
}

// findingCases hold every FindingKind to the line that reports it. A kind
// added to reconcile without a case here fails TestEveryKindHasALine.
var findingCases = map[reconcile.FindingKind][]kindCase{
	reconcile.FindReject: {{name: "an allocation of the gateway",
		mod:  func(s *scenario) { s.allocs["192.168.0.1"] = stateAt },
		line: want{name: "allocations default", status: check.Warn, detail: []string{"192.168.0.1 (the gateway)"}, fix: []string{"not written by host-local"}}}},
	reconcile.FindRejectMore: {{name: "more rejected allocations than are listed",
		mod: func(s *scenario) {
			for i := range reconcile.MaxRejectsListed + 1 {
				s.allocs[fmt.Sprintf("192.168.2.%d", i+1)] = stateAt
			}
		},
		line: want{name: "allocations default", status: check.Warn, detail: []string{fmt.Sprintf("more than %d allocations are not routed", reconcile.MaxRejectsListed)}, fix: []string{"outside the network's ranges"}}}},
	reconcile.FindDuplicate: {{name: "two networks allocate one address",
		mod: func(s *scenario) {
			twin := strings.Replace(confList("eno1", "", seedRange), `"default"`, `"twin"`, 1)
			s.f.CNIFiles = append(s.f.CNIFiles, cni.File{Name: "10-twin.conflist", Data: []byte(twin)})
		},
		after: func(f *check.Facts) { replan(f, map[string][]string{"/var/lib/cni/networks/twin": {"192.168.1.2"}}) },
		line:  want{name: "allocations twin", status: check.Warn, detail: []string{"192.168.1.2 (another network routes it)"}, fix: []string{"pools that do not overlap"}}}},
	reconcile.FindForeign: {{name: "a foreign route to a pod",
		mod:  func(s *scenario) { s.setRoute(reconcile.Route{Dst: pfx("192.168.1.2/32"), Dev: "eno1", Protocol: 4}) },
		line: want{name: "foreign routes default", status: check.Fail, detail: []string{"192.168.1.2/32 dev eno1 proto static"}, fix: []string{"ip route del 192.168.1.2/32 dev eno1 proto static"}}}},
	reconcile.FindHeld: {{name: "a state directory that cannot be read",
		after: func(f *check.Facts) {
			replan(f, nil, func(states map[string]reconcile.DirState) {
				states["/var/lib/cni/networks/default"] = reconcile.DirState{Err: errors.New("permission denied")}
			})
		},
		line: want{name: "routes default", status: check.Fail, detail: []string{"cannot be read", "permission denied"}, fix: []string{"readable by root"}}}},
	reconcile.FindTaken: {{name: "the shim's name taken by another device",
		mod: func(s *scenario) {
			s.setLink("eno1.host", func(l *reconcile.Link) { l.Kind, l.MacvlanMode, l.ParentIndex, l.Alias = "dummy", "", 0, "" })
		},
		line: want{name: "shim eno1.host", status: check.Fail, detail: []string{"not mirrored"}, fix: []string{"ip link del eno1.host"}}}},
	reconcile.FindMode: {
		{name: "macvlan mode private in a CNI file", from: "resolve",
			mod:  func(s *scenario) { s.conflist(confList("eno1", "private", seedRange)) },
			line: want{name: "cni 00-default.conflist", status: check.Fail, detail: []string{`mode "private"`}, fix: []string{`"mode": "bridge"`}}},
		{name: "macvlan mode private in libcni's cache", from: "resolve",
			mod:   func(s *scenario) { s.conflist(confList("eno1", "private", seedRange)) },
			after: func(f *check.Facts) { f.CNIFiles, f.CNI = nil, nil },
			line:  want{name: "network default", status: check.Fail, detail: []string{"macvlan mode private"}, fix: []string{`"mode": "bridge"`, "NetworkAttachmentDefinition"}}},
	},
	reconcile.FindNoRanges: {{name: "a [[network]] without ranges", from: "resolve",
		mod:  func(s *scenario) { s.f.Config = parseConfig("[[network]]\nname = \"other\"\n") },
		line: want{name: "network other", status: check.Fail, detail: []string{"no address ranges"}, fix: []string{"ranges ="}}}},
	reconcile.FindShimClash: {{name: "two networks want one shim on two masters", from: "resolve",
		mod: func(s *scenario) {
			s.f.Config = parseConfig("[[network]]\nname = \"storage\"\nmaster = \"eno2\"\nshim = \"eno1.host\"\nranges = [\"10.10.0.0/16\"]\n")
			s.f.Snap.Links = append(s.f.Snap.Links, reconcile.Link{Index: 4, Name: "eno2", Up: true, LowerUp: true, MTU: 1500})
		},
		line: want{name: "network storage", status: check.Fail, detail: []string{"wants shim eno1.host on eno2"}, fix: []string{`shim = "<another name>"`}}}},
	reconcile.FindUnmatched: {{name: "a state directory no network explains", from: "look",
		mod: func(s *scenario) {
			s.f.Unmatched = []statedir.Unmatched{{Dir: "/var/lib/cni/networks/nadnet", Allocated: 2}}
		},
		line: want{name: "unmatched nadnet", status: check.Fail, detail: []string{"/var/lib/cni/networks/nadnet"}, fix: []string{`[[network]] name = "nadnet"`}}}},
	reconcile.FindCNI: {{name: "a cache entry that cannot be used", from: "look",
		mod: func(s *scenario) {
			s.f.CacheProblems = []cni.Problem{{File: "/var/lib/cni/results/junk", Err: errors.New("not JSON")}}
		},
		line: want{name: "cni cache junk", status: check.Warn, detail: []string{"not JSON"}, fix: []string{"rm /var/lib/cni/results/junk"}}}},
	reconcile.FindRefused: {{name: "an allocation of a pod whose namespace is gone",
		after: func(f *check.Facts) {
			f.Networks[0].Gone = []string{"c-192.168.1.3"}
			replan(f, nil)
		},
		line: want{name: "allocations default", status: check.Warn, detail: []string{"192.168.1.3", "stale"}, fix: []string{"crictl rmp"}}}},
	reconcile.FindTrust: {{name: "a master that is a macvlan whose own master is not on the node", from: "resolve",
		mod: func(s *scenario) {
			s.conflist(confList("mv0", "", seedRange))
			s.f.Snap.Links = append(s.f.Snap.Links, reconcile.Link{Index: 7, Name: "mv0", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 99, Up: true, MTU: 1500})
		},
		line: want{name: "network default", status: check.Warn, detail: []string{"not mirrored"}, fix: []string{"[[network]]"}}}},
	reconcile.FindMaster: {{name: "a master that is a macvlan", from: "resolve",
		mod: func(s *scenario) {
			s.conflist(confList("mv0", "", seedRange))
			s.f.Snap.Links = append(s.f.Snap.Links, reconcile.Link{Index: 7, Name: "mv0", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: true, MTU: 1500})
		},
		line: want{name: "network default", status: check.OK, detail: []string{"the shim goes there too"}},
		ok:   "information (slog.LevelInfo): the shim goes on the macvlan's own master, where the pods are; nothing is wrong"}},
	reconcile.FindShimHeld: {{name: "a shim made again and again", from: "injected",
		after: func(f *check.Facts) {
			f.Plan.Findings = append(f.Plan.Findings, reconcile.Finding{Kind: reconcile.FindShimHeld, Network: "default", Shim: "eno1.host",
				Msg: "shim eno1.host was made 5 times in the last 5m0s: flatnet holds it until 12:00:00 instead of making it again (something removes or moves it as soon as it is made)"})
		},
		line: want{name: "shim eno1.host", status: check.Fail, detail: []string{"holds it until 12:00:00"}, fix: []string{"ip monitor link"}}}},
	reconcile.FindFilter: {
		{name: "another party's chain in flatnet's netdev table, named after no device",
			mod:  func(s *scenario) { s.f.Snap.Filter.Other = []string{"mystuff"} },
			line: want{name: "nftables netdev flatnet mystuff", status: check.Warn, detail: []string{"chain mystuff"}, fix: []string{"nft delete chain netdev flatnet mystuff"}}},
		{name: "a table netdev flatnet not flatnet's, under the shim guard without IPv6",
			mod:  func(s *scenario) { shimGuard(s); s.f.Snap.Filter = &reconcile.Filter{Foreign: true} },
			line: want{name: "nftables netdev flatnet", status: check.Fail, detail: []string{"not made by flatnet"}, fix: []string{"nft delete table netdev flatnet"}}},
		{name: "a table netdev flatnet not flatnet's, under the egress filter (the lan guard line)",
			mod:  func(s *scenario) { s.f.Snap.Filter = &reconcile.Filter{Foreign: true} },
			line: want{name: "lan guard eno1.host", status: check.Fail, detail: []string{"not made by flatnet"}, fix: []string{"nft delete table netdev flatnet"}}},
	},
}

// opCases hold every OpKind a plan may leave pending to the line that
// reports it: a pending op is something not as flatnet keeps it.
var opCases = map[reconcile.OpKind][]kindCase{
	reconcile.AddShim: {{name: "the shim is gone", mod: func(s *scenario) { s.dropLink("eno1.host") },
		line: want{name: "shim eno1.host", status: check.Fail, detail: []string{"does not exist"}, fix: []string{"journalctl -u flatnet"}}}},
	reconcile.DelShim: {
		{name: "flatnet's shim no longer in bridge mode", mod: func(s *scenario) { s.setLink("eno1.host", func(l *reconcile.Link) { l.MacvlanMode = "private" }) },
			line: want{name: "shim eno1.host", status: check.Fail, detail: []string{"no longer a bridge-mode macvlan"}, fix: []string{"systemctl restart flatnet"}}},
		{name: "a shim of flatnet's no network uses", mod: oldShim,
			line: want{name: "pending old.host", status: check.Warn, detail: []string{"no network uses it"}, fix: []string{"ip link del old.host"}}},
	},
	reconcile.ConfigureShim: {{name: "proxy_delay not 0 on a shim without IPv6, under the shim guard",
		mod: func(s *scenario) {
			shimGuard(s)
			s.setLink("eno1.host", func(l *reconcile.Link) { l.ProxyDelay0 = false })
		},
		line: want{name: "pending eno1.host", status: check.Warn, detail: []string{"sysctls"}, fix: []string{"sysctl -w net.ipv4.conf.eno1/host.arp_filter=1", "proxy_delay=0"}}}},
	reconcile.SetUp: {{name: "the shim is down", mod: func(s *scenario) { s.setLink("eno1.host", func(l *reconcile.Link) { l.Up = false }) },
		line: want{name: "shim eno1.host", status: check.Fail, detail: []string{"is down"}, fix: []string{"ip link set eno1.host up"}}}},
	reconcile.SetMTU: {{name: "the shim's MTU", mod: func(s *scenario) { s.setLink("eno1.host", func(l *reconcile.Link) { l.MTU = 1400 }) },
		line: want{name: "shim eno1.host", status: check.Warn, detail: []string{"MTU 1400"}, fix: []string{"mtu 1500"}}}},
	reconcile.AddRoute: {{name: "a route missing", mod: func(s *scenario) { s.allocs["192.168.1.9"] = stateAt },
		line: want{name: "routes default", status: check.Fail, detail: []string{"192.168.1.9"}, fix: []string{"journalctl -u flatnet"}}}},
	reconcile.ReplaceRoute: {{name: "flatnet's route with another source address",
		mod: func(s *scenario) {
			s.setRoute(reconcile.Route{Dst: pfx("192.168.1.2/32"), Dev: "eno1.host", Protocol: reconcile.Protocol, Src: addr("10.9.9.9")})
		},
		line: want{name: "routes default", status: check.Fail, detail: []string{"192.168.1.2"}, fix: []string{"journalctl -u flatnet"}}}},
	reconcile.DelRoute: {
		{name: "a stale route", mod: func(s *scenario) { delete(s.allocs, "192.168.1.3") },
			line: want{name: "routes default", status: check.Warn, detail: []string{"192.168.1.3"}, fix: []string{"ip route del 192.168.1.3/32"}}},
		{name: "a route of flatnet's through a shim no network uses",
			mod: func(s *scenario) {
				oldShim(s)
				s.f.Snap.Routes = append(s.f.Snap.Routes, reconcile.Route{Dst: pfx("10.1.1.1/32"), Dev: "old.host", Protocol: reconcile.Protocol})
			},
			line: want{name: "pending old.host", status: check.Warn, detail: []string{"1 route of flatnet's through old.host leads", "10.1.1.1"}, fix: []string{"ip route del 10.1.1.1/32 dev old.host"}}},
	},
	reconcile.FlushNeigh:  {{ok: "a look never plans it (it follows an address released and allocated again between two passes, Input.Reused), and it changes nothing that works: the route is right, the old neighbour entry would time out"}},
	reconcile.FlushNeighs: {{ok: "a look never plans it (it follows a master's carrier coming back, Input.CarrierBack), and it only spares pods a neighbour retry"}},
	reconcile.AddProxy: {{name: "no proxy entry for the node's IPv6 address", mod: func(s *scenario) { dualStack(s); s.f.Snap.Proxies = nil },
		line: want{name: "ndp eno1.host", status: check.Fail, detail: []string{"fd00::5"}, fix: []string{"ip -6 neigh add proxy fd00::5 dev eno1.host"}}}},
	reconcile.DelProxy: {{name: "a proxy entry for an address the node no longer holds",
		mod: func(s *scenario) {
			dualStack(s)
			s.f.Snap.Proxies = append(s.f.Snap.Proxies, reconcile.Proxy{Dev: "eno1.host", IP: addr("fd00::99")})
		},
		line: want{name: "pending eno1.host", status: check.Warn, detail: []string{"1 proxy neighbour entry", "fd00::99"}, fix: []string{"ip -6 neigh del proxy fd00::99 dev eno1.host"}}}},
	reconcile.SetFilter: {
		{name: "the egress filter is gone", mod: func(s *scenario) { s.f.Snap.Filter = nil },
			line: want{name: "lan guard eno1.host", status: check.Fail, detail: []string{"no egress filter"}, fix: []string{"systemctl reload flatnet"}}},
		{name: "a drop of a shim that is gone",
			mod: func(s *scenario) {
				s.f.Snap.Filter.Drops = append(s.f.Snap.Filter.Drops, reconcile.Drop{Master: "eno1", MAC: "02:00:00:00:00:99"})
			},
			line: want{name: "pending nftables netdev flatnet", status: check.Warn, detail: []string{"not what flatnet writes"}, fix: []string{"nft list table netdev flatnet"}}},
	},
	reconcile.AddSender: {{name: "the shim's own address is gone",
		mod: func(s *scenario) {
			s.f.Guard, s.f.Config.LANGuard, s.f.Snap.Filter = reconcile.GuardAddress, "address", nil
			s.setLink("eno1.host", func(l *reconcile.Link) { l.ARPAnnounce = 2 })
		},
		line: want{name: "lan guard eno1.host", status: check.Fail, detail: []string{"lacks 192.0.0.8/32"}, fix: []string{"systemctl reload flatnet"}}}},
	reconcile.DelSender: {{name: "the shim keeps its own address under the egress filter",
		mod:  func(s *scenario) { s.setLink("eno1.host", func(l *reconcile.Link) { l.Sender = true }) },
		line: want{name: "pending eno1.host", status: check.Warn, detail: []string{"192.0.0.8/32"}, fix: []string{"ip addr del 192.0.0.8/32 dev eno1.host"}}}},
	reconcile.SetProbe: {
		{name: "the shim guard's ARP rule is gone", mod: func(s *scenario) { shimGuard(s); s.f.Snap.Probes = nil },
			line: want{name: "lan guard eno1.host", status: check.Fail, detail: []string{"not made probes"}, fix: []string{"systemctl reload flatnet"}}},
		{name: "a probe chain left under the egress filter",
			mod: func(s *scenario) {
				s.f.Snap.Probes = &reconcile.ProbeTable{Shields: []reconcile.Shield{{Shim: "eno1.host"}}}
			},
			line: want{name: "pending nftables arp flatnet", status: check.Warn, detail: []string{"not what flatnet writes"}, fix: []string{"nft list table arp flatnet"}}},
	},
}

// TestEveryKindHasALine: for every kind of finding, and every kind of op
// a plan may leave pending, a node whose look holds one gets a line that
// says what is wrong and how to fix it, unless the case says why not.
func TestEveryKindHasALine(t *testing.T) {
	for _, k := range reconcile.FindingKinds() {
		cases := findingCases[k]
		if len(cases) == 0 {
			t.Errorf("finding kind %d has no case: give it a line in internal/check (read from the plan's finding), then a case in findingCases", k)
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("finding %d %s", k, tc.name), func(t *testing.T) {
				f := kindFacts(tc)
				var in []reconcile.Finding
				switch tc.from {
				case "resolve":
					in = f.Resolve
				case "look":
				default:
					in = f.Plan.Findings
				}
				if tc.from != "look" && !slices.ContainsFunc(in, func(fd reconcile.Finding) bool { return fd.Kind == k }) {
					t.Fatalf("the case makes no finding of kind %d; plan: %v, resolve: %v", k, f.Plan.Findings, f.Resolve)
				}
				checkLine(t, f, tc)
			})
		}
	}
	for _, k := range reconcile.OpKinds() {
		cases := opCases[k]
		if len(cases) == 0 {
			t.Errorf("op kind %d has no case: make check report a plan holding it (or say why it is fine pending), then add a case in opCases", k)
		}
		for _, tc := range cases {
			if tc.mod == nil && tc.after == nil {
				if tc.ok == "" {
					t.Errorf("op kind %d: a case without a node says why the kind is fine pending", k)
				}
				continue
			}
			t.Run(fmt.Sprintf("op %d %s", k, tc.name), func(t *testing.T) {
				f := kindFacts(tc)
				if !slices.ContainsFunc(f.Plan.Ops, func(op reconcile.Op) bool { return op.Kind == k }) {
					t.Fatalf("the case plans no op of kind %d: %v", k, f.Plan.Ops)
				}
				checkLine(t, f, tc)
			})
		}
	}
}

func kindFacts(tc kindCase) check.Facts {
	s := healthy()
	if tc.mod != nil {
		tc.mod(s)
	}
	f := s.facts()
	if tc.after != nil {
		tc.after(&f)
	}
	return f
}

// checkLine asserts tc's line, and a fix on every line that is not ok.
func checkLine(t *testing.T, f check.Facts, tc kindCase) {
	t.Helper()
	rs := check.Run(f)
	if !found(rs, tc.line) {
		t.Errorf("want %s %q with detail %q and fix %q", tc.line.status, tc.line.name, tc.line.detail, tc.line.fix)
	}
	if tc.line.status == check.OK && tc.ok == "" {
		t.Errorf("the line is ok: the case must say why")
	}
	for _, r := range rs {
		if r.Status != check.OK && r.Fix == "" {
			t.Errorf("%s %s has no fix", r.Status, r.Name)
		}
		if strings.Contains(r.Detail, "\n") || strings.Contains(r.Fix, "\n") {
			t.Errorf("%s takes more than one line", r.Name)
		}
	}
	if t.Failed() {
		for _, r := range rs {
			t.Logf("%-4s %-24s %s — fix: %s", r.Status, r.Name, r.Detail, r.Fix)
		}
	}
}

// oldShim gives the node a shim flatnet made (its alias, its MAC) that no
// network uses.
func oldShim(s *scenario) {
	eno1, _ := s.f.Snap.Link("eno1")
	s.f.Snap.Links = append(s.f.Snap.Links, reconcile.Link{Index: 9, Name: "old.host", Kind: "macvlan", MacvlanMode: "bridge", ParentIndex: 2, Up: true, MTU: 1500,
		MAC: reconcile.ShimMAC(reconcile.ShimSeed("test", eno1), "old.host"), Alias: reconcile.ShimAlias, ARPFilter: true, ProxyNDP: true, ProxyDelay0: true})
	s.f.Snap.Filter.Drops = append(s.f.Snap.Filter.Drops, reconcile.Drop{Master: "eno1", MAC: reconcile.ShimMAC(reconcile.ShimSeed("test", eno1), "old.host").String()})
}

// replan computes f's plan again from its state files, with more
// allocations by directory and the states changed by mods.
func replan(f *check.Facts, more map[string][]string, mods ...func(map[string]reconcile.DirState)) {
	states := map[string]reconcile.DirState{}
	for _, n := range f.Networks {
		ds := reconcile.DirState{Allocs: map[netip.Addr]hostlocal.Owner{}}
		for _, sf := range f.StateFiles[n.StateDir] {
			ds.Allocs[sf.IP] = hostlocal.Owner{ContainerID: "c-" + sf.IP.String(), IfName: "eth0"}
		}
		for _, ip := range more[n.StateDir] {
			ds.Allocs[addr(ip)] = hostlocal.Owner{ContainerID: "c2-" + ip, IfName: "eth0"}
		}
		states[n.StateDir] = ds
	}
	for _, m := range mods {
		m(states)
	}
	f.Plan = reconcile.Compute(reconcile.Input{Networks: f.Networks, States: states, Snap: f.Snap, MachineID: "test", Guard: f.Guard})
}

func parseConfig(s string) config.Config {
	cfg, err := config.Parse([]byte(s), "/etc/flatnet/flatnet.toml")
	if err != nil {
		panic(err)
	}
	return cfg
}
