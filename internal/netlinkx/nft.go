package netlinkx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// What we learned of nftables' netdev egress hook and google/nftables:
//
//   - The egress hook (NF_NETDEV_EGRESS) exists from Linux 5.16 with
//     CONFIG_NETFILTER_EGRESS; older kernels refuse a chain on it with
//     EOPNOTSUPP. It sees every frame a device transmits through
//     dev_queue_xmit, including a macvlan's broadcasts on their way from
//     the macvlan to the wire (macvlan_queue_xmit hands them to the lower
//     device), but not what a bridge-mode macvlan delivers to a sibling,
//     which never takes the lower device's transmit path.
//   - A netdev chain is bound to a device. Older kernels destroy the chain
//     with its device; newer ones (seen on 6.18) keep it and hook it again
//     when a device of that name appears. The reconciler compares the
//     table with what it wants after every link change, so both behave.
//   - google/nftables reads a chain's hook number back but not its device
//     (NFTA_HOOK_DEV is only written), so flatnet names each chain after
//     the master it is bound to and reads the master from the name.
//   - A batch is one transaction: "delete chain X; add chain X ..."
//     replaces a chain in one commit, as "add table; delete table; add
//     table ..." (what flatnet wrote before its mark) replaced the table,
//     and a batch with any failing message commits nothing and notifies
//     no one, which is what ProbeFilter uses.
//   - So whose a chain is can only be told from its shape and its rules:
//     an egress chain someone else binds to another device under a
//     master's name looks like flatnet's. Tables are told apart by
//     flatnet's mark, their comment, which google/nftables cannot handle:
//     see nft_table.go.
//   - The shim guard (reconcile.GuardShim) needs no hook on the master:
//     its ARP rule is in the arp family, whose output hook (NF_ARP_OUT,
//     1) sees the ARP packets the node sends and nothing else, and its
//     ingress chain is bound to the shim. The arp family has no device in
//     its chains; the rule matches the shim by name (meta oifname, the 16
//     bytes of IFNAMSIZ, as nft(8) writes it) and writes 0.0.0.0 over the
//     ARP sender address (payload write at network header + 14; ARP has
//     no checksum). Those rules exist for a device that does not exist
//     yet, so a new shim's requests are probes from its first one.
//   - nftables' fib in the netdev family runs the kernel's route lookup:
//     at the ingress hook, "fib saddr . iif oif missing" is rpfilter. At
//     the egress hook it must not be used: the kernel takes hook 1 for
//     NF_INET_LOCAL_IN there, where newer kernels read the input device,
//     which egress has not. For an ICMPv6 packet from the unspecified
//     address to a link-local one (duplicate address detection) fib
//     returns the input device without a lookup, on purpose: the shim
//     guard drops those solicitations with a rule of their own.
//   - A batch with several failing messages reports each of them (the
//     kernel goes on to the end of the batch to find them all), so a
//     probe that fails one message on purpose can tell that failure from
//     any other (deliberateOnly).

// nftConn opens a connection to nf_tables in this network namespace.
func nftConn() (*nftables.Conn, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("opening nftables: %w", err)
	}
	return c, nil
}

// filterTable is flatnet's netdev table.
func filterTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyNetdev, Name: reconcile.FilterTable}
}

// probeTable is flatnet's arp table.
func probeTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyARP, Name: reconcile.FilterTable}
}

// chainHookARPOut is the arp family's output hook, NF_ARP_OUT (x/sys/unix
// has no name for it; google/nftables' ChainHookOutput is the inet one, 3).
var chainHookARPOut = nftables.ChainHookRef(1)

// ProbeFilter reports whether this kernel can filter a device's egress
// (nil) or why not. It leaves no trace: the batch it sends is made to fail
// at its end, so the kernel checks the egress chain and commits nothing.
func ProbeFilter() error {
	c, err := nftConn()
	if err != nil {
		return err
	}
	probe := &nftables.Table{Family: nftables.TableFamilyNetdev, Name: reconcile.FilterTable + "-probe"}
	c.AddTable(probe)
	c.AddChain(&nftables.Chain{
		Name: "lo", Table: probe, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookEgress, Priority: nftables.ChainPriorityFilter, Device: "lo",
	})
	// Deleting a table that does not exist fails: the whole batch is
	// refused, after the chain above was checked.
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyNetdev, Name: reconcile.FilterTable + "-probe-absent"})
	err = c.Flush()
	switch {
	case err == nil:
		// Not expected, but then the probe table exists: remove it.
		c.DelTable(probe)
		_ = c.Flush()
		return nil
	case errors.Is(err, unix.EOPNOTSUPP):
		return errors.New("the kernel has no nftables netdev egress hook (Linux 5.16 or later with CONFIG_NETFILTER_EGRESS)")
	case errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EPROTONOSUPPORT):
		return nil // only the deliberate failure
	}
	return fmt.Errorf("probing nftables: %w", err)
}

// ProbeShim reports whether this kernel can keep the shim guard's rules
// (nil) or why not: an arp output chain with the rule that makes a
// device's ARP requests probes, and a netdev ingress chain with the rules
// that keep a proxy from answering the LAN (fib among them). Like
// ProbeFilter it commits nothing: the batch fails on purpose at its end,
// after the kernel checked every rule.
func ProbeShim() error {
	// The kernel keeps a table's userdata, flatnet's mark, from 5.10 on;
	// before, it drops it without an error, and flatnet would take its own
	// tables for another party's from the next pass. (The egress filter
	// needs 5.16 anyway.)
	if rel, ok := kernelAtLeast(5, 10); !ok {
		return fmt.Errorf("kernel %s keeps no table comment, flatnet's mark on its tables (Linux 5.10 or later)", rel)
	}
	c, err := nftConn()
	if err != nil {
		return err
	}
	arp := &nftables.Table{Family: nftables.TableFamilyARP, Name: reconcile.FilterTable + "-probe"}
	netdev := &nftables.Table{Family: nftables.TableFamilyNetdev, Name: reconcile.FilterTable + "-probe"}
	c.AddTable(arp)
	out := c.AddChain(probeChain(arp, "lo"))
	c.AddRule(&nftables.Rule{Table: arp, Chain: out, Exprs: probeExprs("lo")})
	c.AddTable(netdev)
	in := c.AddChain(solicitChain(netdev, "lo"))
	for _, r := range solicitRules {
		c.AddRule(&nftables.Rule{Table: netdev, Chain: in, Exprs: r.exprs})
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyNetdev, Name: reconcile.FilterTable + "-probe-absent"})
	err = c.Flush()
	switch {
	case err == nil:
		c.DelTable(arp)
		c.DelTable(netdev)
		_ = c.Flush()
		return nil
	case deliberateOnly(err):
		return nil
	}
	return fmt.Errorf("the kernel refuses the shim guard's nftables rules (an arp output chain that rewrites ARP requests, a netdev ingress chain with fib; Linux 5.10 or later with nf_tables' arp and netdev families, CONFIG_NFT_FIB_NETDEV): %w", err)
}

// kernelAtLeast reports whether the running kernel's release is major.minor
// or later, and the release. A release it cannot read counts as later.
func kernelAtLeast(major, minor int) (string, bool) {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "", true
	}
	rel := unix.ByteSliceToString(u.Release[:])
	return rel, releaseAtLeast(rel, major, minor)
}

// releaseAtLeast reports whether the kernel release rel ("5.4.0-150-generic",
// "6.18.44-fc") is major.minor or later; one it cannot parse counts as later.
func releaseAtLeast(rel string, major, minor int) bool {
	var ma, mi int
	if n, _ := fmt.Sscanf(rel, "%d.%d", &ma, &mi); n != 2 {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

// deliberateOnly reports whether err, a batch's errors, is the one
// deliberate failure of a probe (ENOENT, from deleting a table that does
// not exist) and nothing else.
func deliberateOnly(err error) bool {
	var leaves []error
	var walk func(error)
	walk = func(e error) {
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			if x := u.Unwrap(); x != nil {
				walk(x)
			} else {
				leaves = append(leaves, e)
			}
		default:
			leaves = append(leaves, e)
		}
	}
	walk(err)
	return len(leaves) == 1 && errors.Is(leaves[0], unix.ENOENT)
}

// nftTable is one of flatnet's tables as read: its handle and userdata,
// and its chains with their rules.
type nftTable struct {
	tableInfo
	chains []nftChain
}

// nftChain is a chain of the table, with its rules.
type nftChain struct {
	*nftables.Chain
	rules []*nftables.Rule
}

// readTable reads the table named reconcile.FilterTable in the family of
// tbl: nil when there is none (or no nf_tables at all).
func readTable(c *nftables.Conn, tbl *nftables.Table) (*nftTable, error) {
	info, err := getTable(byte(tbl.Family))
	if err != nil || info == nil {
		return nil, err
	}
	t := &nftTable{tableInfo: *info}
	chains, err := c.ListChainsOfTableFamily(tbl.Family)
	if err != nil {
		return nil, fmt.Errorf("listing nftables chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != reconcile.FilterTable {
			continue
		}
		rules, err := c.GetRules(tbl, ch)
		if err != nil {
			return nil, fmt.Errorf("listing the rules of chain %s: %w", ch.Name, err)
		}
		t.chains = append(t.chains, nftChain{Chain: ch, rules: rules})
	}
	return t, nil
}

// readFilter reads flatnet's netdev table: nil when there is none (or no
// nf_tables at all).
func readFilter() (*reconcile.Filter, error) {
	c, err := nftConn()
	if err != nil {
		return nil, nil
	}
	t, err := readTable(c, filterTable())
	if err != nil {
		return nil, err
	}
	f, _ := judge(t)
	return f, nil
}

// readProbes reads flatnet's arp table: nil when there is none.
func readProbes() (*reconcile.ProbeTable, error) {
	c, err := nftConn()
	if err != nil {
		return nil, nil
	}
	t, err := readTable(c, probeTable())
	if err != nil {
		return nil, err
	}
	p, _ := judgeProbes(t)
	return p, nil
}

// flatnetMark reports whether a comment is flatnet's mark.
func flatnetMark(comment string, ok bool) bool {
	return ok && strings.HasPrefix(comment, reconcile.FilterMark)
}

// judge tells whose the netdev table t is and what of it is flatnet's
// (see reconcile.Filter): the Filter, and the names of flatnet's chains.
// nil for no table.
func judge(t *nftTable) (*reconcile.Filter, map[string]bool) {
	if t == nil {
		return nil, nil
	}
	f, ours := &reconcile.Filter{}, map[string]bool{}
	if flatnetMark(udataComment(t.udata)) {
		for _, ch := range t.chains {
			if drops, ok := flatnetChain(ch, true); ok {
				ours[ch.Name] = true
				f.Drops = append(f.Drops, drops...)
				continue
			}
			if packets, ok := solicitChainOf(ch); ok {
				ours[ch.Name] = true
				f.Solicits = append(f.Solicits, reconcile.Shield{Shim: ch.Name, Packets: packets})
				continue
			}
			if emptied(ch, nftables.ChainHookIngress) {
				ours[ch.Name] = true // no Solicit: the plan writes it again
				continue
			}
			f.Other = append(f.Other, ch.Name)
		}
		slices.Sort(f.Other)
		slices.SortFunc(f.Solicits, func(a, b reconcile.Shield) int { return strings.Compare(a.Shim, b.Shim) })
		return f, ours
	}
	// No mark: the table of an older flatnet (every chain one it made,
	// none empty, and no userdata at all), or not flatnet's.
	legacy := len(t.udata) == 0 && len(t.chains) > 0
	var all []reconcile.Drop
	for _, ch := range t.chains {
		drops, ok := flatnetChain(ch, false)
		if !ok || len(drops) == 0 {
			legacy = false
			break
		}
		all = append(all, drops...)
	}
	if !legacy {
		return &reconcile.Filter{Foreign: true}, nil
	}
	for _, ch := range t.chains {
		ours[ch.Name] = true
	}
	return &reconcile.Filter{Drops: all, Legacy: true}, ours
}

// judgeProbes tells whose the arp table t is and what of it is flatnet's
// (see reconcile.ProbeTable), and the names of flatnet's chains. nil for
// no table. It has no older form: any table without the mark is foreign.
func judgeProbes(t *nftTable) (*reconcile.ProbeTable, map[string]bool) {
	if t == nil {
		return nil, nil
	}
	if !flatnetMark(udataComment(t.udata)) {
		return &reconcile.ProbeTable{Foreign: true}, nil
	}
	p, ours := &reconcile.ProbeTable{}, map[string]bool{}
	for _, ch := range t.chains {
		if packets, ok := probeChainOf(ch); ok {
			ours[ch.Name] = true
			p.Shields = append(p.Shields, reconcile.Shield{Shim: ch.Name, Packets: packets})
			continue
		}
		if emptied(ch, chainHookARPOut) {
			ours[ch.Name] = true // no Shield: the plan writes it again
			continue
		}
		p.Other = append(p.Other, ch.Name)
	}
	slices.Sort(p.Other)
	slices.SortFunc(p.Shields, func(a, b reconcile.Shield) int { return strings.Compare(a.Shim, b.Shim) })
	return p, ours
}

// emptied reports whether ch, in flatnet's marked table, is a base chain
// of flatnet's shape on hook with no rule left: one of flatnet's after `nft
// flush table` or `nft flush chain`, which keep the chains and empty them.
// It is flatnet's to write again, as an emptied egress chain is
// (flatnetChain).
func emptied(ch nftChain, hook *nftables.ChainHook) bool {
	return baseChain(ch.Chain, hook) && len(ch.rules) == 0
}

// flatnetChain reads ch as an egress chain flatnet made: an egress filter
// chain of flatnet's shape whose rules are all flatnet's drops (marked
// ones when marked), with the master the chain's name. ok is false for
// any other chain.
func flatnetChain(ch nftChain, marked bool) (drops []reconcile.Drop, ok bool) {
	if !baseChain(ch.Chain, nftables.ChainHookEgress) {
		return nil, false
	}
	for _, r := range ch.rules {
		mac, packets, ok := parseDrop(r.Exprs)
		if !ok || marked && !flatnetMark(udataComment(r.UserData)) {
			return nil, false
		}
		drops = append(drops, reconcile.Drop{Master: ch.Name, MAC: mac, Packets: packets})
	}
	return drops, true
}

// baseChain reports whether ch is a base chain as flatnet makes them: type
// filter, hook hook, priority filter (0), policy accept. google/nftables
// does not read a chain's device back (see above).
func baseChain(ch *nftables.Chain, hook *nftables.ChainHook) bool {
	return ch.Type == nftables.ChainTypeFilter &&
		ch.Hooknum != nil && *ch.Hooknum == *hook &&
		ch.Priority != nil && *ch.Priority == *nftables.ChainPriorityFilter &&
		(ch.Policy == nil || *ch.Policy == nftables.ChainPolicyAccept)
}

// dropExprs is the rule `ether saddr MAC counter drop`, as nft(8) writes
// it (so that `nft list` prints it so): the device type check nft adds
// before reading an Ethernet header, then the source MAC.
func dropExprs(mac net.HardwareAddr) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: mac},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// parseDrop recognises `ether saddr MAC [counter] drop` and returns the MAC
// and the counter's packets.
func parseDrop(es []expr.Any) (mac string, packets uint64, ok bool) {
	// nft's device type check first, when there.
	if len(es) > 2 {
		if m, ok := es[0].(*expr.Meta); ok && m.Key == expr.MetaKeyIIFTYPE {
			if c, ok := es[1].(*expr.Cmp); !ok || c.Op != expr.CmpOpEq || !bytes.Equal(c.Data, binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)) {
				return "", 0, false
			}
			es = es[2:]
		}
	}
	var got net.HardwareAddr
	verdict := false
	for i, e := range es {
		switch e := e.(type) {
		case *expr.Payload:
			if i != 0 || e.Base != expr.PayloadBaseLLHeader || e.Offset != 6 || e.Len != 6 {
				return "", 0, false
			}
		case *expr.Cmp:
			if i != 1 || e.Op != expr.CmpOpEq || len(e.Data) != 6 {
				return "", 0, false
			}
			got = net.HardwareAddr(bytes.Clone(e.Data))
		case *expr.Counter:
			packets = e.Packets
		case *expr.Verdict:
			if e.Kind != expr.VerdictDrop || i != len(es)-1 {
				return "", 0, false
			}
			verdict = true
		default:
			return "", 0, false
		}
	}
	if got == nil || !verdict {
		return "", 0, false
	}
	return got.String(), packets, true
}

// ifname is name as nft(8) compares an interface name: IFNAMSIZ bytes,
// padded with NULs.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// probeChain is the shim guard's output chain for shim in the arp table
// tbl.
func probeChain(tbl *nftables.Table, shim string) *nftables.Chain {
	return &nftables.Chain{Name: shim, Table: tbl, Type: nftables.ChainTypeFilter, Hooknum: chainHookARPOut, Priority: nftables.ChainPriorityFilter}
}

// probeExprs is the rule `oifname SHIM arp operation request arp saddr ip
// set 0.0.0.0 counter`, as nft(8) writes it: the shim's ARP requests leave
// as probes.
func probeExprs(shim string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(shim)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 1}}, // ARPOP_REQUEST
		&expr.Immediate{Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 14, Len: 4},
		&expr.Counter{},
	}
}

// probeChainOf reads ch as a probe chain flatnet made: the arp output
// chain named after its shim, holding the one marked probe rule for it,
// and returns the rule's counter.
func probeChainOf(ch nftChain) (packets uint64, ok bool) {
	if !baseChain(ch.Chain, chainHookARPOut) || len(ch.rules) != 1 || !flatnetMark(udataComment(ch.rules[0].UserData)) {
		return 0, false
	}
	return sameExprs(ch.rules[0].Exprs, probeExprs(ch.Name))
}

// solicitChain is the shim guard's ingress chain for shim in the netdev
// table tbl.
func solicitChain(tbl *nftables.Table, shim string) *nftables.Chain {
	return &nftables.Chain{
		Name: shim, Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityFilter, Device: shim,
	}
}

// nsPrefix is `icmpv6 type nd-neighbor-solicit` as nft(8) writes it in
// the netdev family: the protocol, the transport protocol, the type.
func nsPrefix() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(unix.ETH_P_IPV6)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{135}}, // ND_NEIGHBOR_SOLICIT
	}
}

// solicitRules are the rules of a shim's ingress chain, in order, as
// nft(8) writes them (reconcile.SolicitScript prints them), each with its
// comment.
var solicitRules = []struct {
	exprs   []expr.Any
	comment string
}{
	{ // meta pkttype != host ip6 saddr fe80::/10 counter drop
		append(nsPrefix(),
			&expr.Meta{Key: expr.MetaKeyPKTTYPE, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.PACKET_HOST}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: net.ParseIP("ffc0::"), Xor: make([]byte, 16)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net.ParseIP("fe80::")},
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}),
		reconcile.SolicitLinkLocalComment,
	},
	{ // ip6 saddr :: counter drop
		append(nsPrefix(),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 16)},
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}),
		reconcile.SolicitDADComment,
	},
	{ // fib saddr . iif oif missing counter drop
		append(nsPrefix(),
			&expr.Fib{Register: 1, ResultOIF: true, FlagSADDR: true, FlagIIF: true, FlagPRESENT: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}),
		reconcile.SolicitRouteComment,
	},
}

// solicitChainOf reads ch as a shim's ingress chain flatnet made: the
// ingress chain named after its shim holding exactly solicitRules, each
// marked, and returns the packets they dropped.
func solicitChainOf(ch nftChain) (packets uint64, ok bool) {
	if !baseChain(ch.Chain, nftables.ChainHookIngress) || len(ch.rules) != len(solicitRules) {
		return 0, false
	}
	for i, r := range ch.rules {
		if !flatnetMark(udataComment(r.UserData)) {
			return 0, false
		}
		n, ok := sameExprs(r.Exprs, solicitRules[i].exprs)
		if !ok {
			return 0, false
		}
		packets += n
	}
	return packets, true
}

// sameExprs reports whether got is the rule want, counters aside (their
// values are what it returns), as the kernel gives it back.
func sameExprs(got, want []expr.Any) (packets uint64, ok bool) {
	if len(got) != len(want) {
		return 0, false
	}
	for i := range got {
		if c, isCounter := got[i].(*expr.Counter); isCounter {
			if _, wantCounter := want[i].(*expr.Counter); !wantCounter {
				return 0, false
			}
			packets += c.Packets
			continue
		}
		if !exprEqual(got[i], want[i]) {
			return 0, false
		}
	}
	return packets, true
}

// exprEqual compares two expressions field by field, as the kernel
// returns them: a payload read names no source register, a write no
// destination, whatever was sent.
func exprEqual(a, b expr.Any) bool {
	switch x := a.(type) {
	case *expr.Meta:
		y, ok := b.(*expr.Meta)
		return ok && x.Key == y.Key && x.SourceRegister == y.SourceRegister && x.Register == y.Register
	case *expr.Cmp:
		y, ok := b.(*expr.Cmp)
		return ok && x.Op == y.Op && x.Register == y.Register && bytes.Equal(x.Data, y.Data)
	case *expr.Payload:
		y, ok := b.(*expr.Payload)
		if !ok || x.OperationType != y.OperationType || x.Base != y.Base || x.Offset != y.Offset || x.Len != y.Len || x.CsumType != y.CsumType {
			return false
		}
		if x.OperationType == expr.PayloadWrite {
			return x.SourceRegister == y.SourceRegister
		}
		return x.DestRegister == y.DestRegister
	case *expr.Bitwise:
		y, ok := b.(*expr.Bitwise)
		return ok && x.SourceRegister == y.SourceRegister && x.DestRegister == y.DestRegister && x.Len == y.Len && bytes.Equal(x.Mask, y.Mask) && bytes.Equal(x.Xor, y.Xor)
	case *expr.Immediate:
		y, ok := b.(*expr.Immediate)
		return ok && x.Register == y.Register && bytes.Equal(x.Data, y.Data)
	case *expr.Fib:
		y, ok := b.(*expr.Fib)
		return ok && *x == *y
	case *expr.Verdict:
		y, ok := b.(*expr.Verdict)
		return ok && x.Kind == y.Kind && x.Chain == y.Chain
	}
	return false
}

// setFilter makes flatnet's chains in flatnet's netdev table hold exactly
// drops (egress chains, one per master) and the ingress chains of the
// shims in solicits, and touches nothing else: another party's chain
// stays as it is, and a table flatnet did not make (Foreign) is an error,
// never written. The chains are written in one transaction: each of
// flatnet's chains wanted is deleted and made anew in it, so no device
// that keeps a chain is ever without it; flatnet's chains not wanted go.
// The table is made, with its mark, when there is none (an empty table of
// its own first: it has no effect on traffic), and deleted when it is left
// without a chain.
//
// What cannot be helped: between reading the table and writing it, a
// chain another party adds to flatnet's table is deleted with the table
// when flatnet deletes it (the kernel has no "delete if empty").
func setFilter(drops []reconcile.Drop, solicits []string) error {
	masters, err := filterMasters(drops)
	if err != nil {
		return err
	}
	c, err := nftConn()
	if err != nil {
		return err
	}
	t, err := readTable(c, filterTable())
	if err != nil {
		return err
	}
	f, ours := judge(t)
	if err := filterWritable(f, append(slices.Clone(masters), solicits...)); err != nil {
		return err
	}
	empty := len(drops) == 0 && len(solicits) == 0
	t, done, err := readyFilterTable(t, f, empty)
	if err != nil || done {
		return err
	}
	tbl := filterTable()
	switch {
	case t == nil: // made just now, empty
	case empty && len(f.Other) == 0:
		c.DelTable(tbl) // only flatnet's chains in it: it goes with them
	default:
		for _, ch := range t.chains {
			if ours[ch.Name] {
				// The wanted ones are made anew below, in this transaction.
				c.DelChain(&nftables.Chain{Name: ch.Name, Table: tbl})
			}
		}
	}
	addFilterChains(c, tbl, drops, solicits)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing nftables table netdev %s: %w", reconcile.FilterTable, err)
	}
	return nil
}

// filterMasters are the masters of drops, once each, in order; an error
// when a drop's MAC does not parse, before anything is written.
func filterMasters(drops []reconcile.Drop) ([]string, error) {
	var masters []string
	for _, d := range drops {
		if _, err := net.ParseMAC(d.MAC); err != nil {
			return nil, fmt.Errorf("filter for %s: %w", d.Master, err)
		}
		if !slices.Contains(masters, d.Master) {
			masters = append(masters, d.Master)
		}
	}
	return masters, nil
}

// filterWritable is an error when f, the netdev table as judged, is not
// flatnet's to write for the devices devs: a table flatnet did not make,
// or a chain of one of their names that another party made.
func filterWritable(f *reconcile.Filter, devs []string) error {
	if f != nil && f.Foreign {
		return fmt.Errorf("nftables table netdev %s was not made by flatnet: left alone", reconcile.FilterTable)
	}
	for _, m := range devs {
		if f != nil && slices.Contains(f.Other, m) {
			return fmt.Errorf("chain %s in nftables table netdev %s was not made by flatnet: left alone, %s gets no chain", m, reconcile.FilterTable, m)
		}
	}
	return nil
}

// readyFilterTable makes the netdev table t (f as judged) one with
// flatnet's mark, in a transaction of its own, when chains are wanted
// (not empty) and there is none, or when it is an older flatnet's. It
// returns the table as it then is (nil for one made just now, empty), and
// done when that leaves nothing to write.
func readyFilterTable(t *nftTable, f *reconcile.Filter, empty bool) (_ *nftTable, done bool, _ error) {
	switch {
	case t == nil:
		if empty {
			return nil, true, nil
		}
		if err := tableBatch(unix.NFPROTO_NETDEV, nil, true); err != nil {
			return nil, false, fmt.Errorf("creating nftables table netdev %s: %w", reconcile.FilterTable, err)
		}
	case f.Legacy:
		// An older flatnet's table gets the mark by being made anew (the
		// kernel never changes a table's userdata), then its chains in the
		// next transaction: between the two, once after an upgrade, the
		// masters go unfiltered. (Deleting that table, every chain of which
		// flatnet made, touches no one else's.)
		if err := tableBatch(unix.NFPROTO_NETDEV, &t.tableInfo, !empty); err != nil {
			return nil, false, fmt.Errorf("making nftables table netdev %s anew with flatnet's mark: %w", reconcile.FilterTable, err)
		}
		if empty {
			return nil, true, nil
		}
		t = nil
	}
	return t, false, nil
}

// addFilterChains adds to c's transaction the chains of flatnet's netdev
// table tbl: an egress chain per master of drops, dropping each drop's
// frames, and an ingress chain per shim in solicits.
func addFilterChains(c *nftables.Conn, tbl *nftables.Table, drops []reconcile.Drop, solicits []string) {
	chains := map[string]*nftables.Chain{}
	for _, d := range drops {
		mac, _ := net.ParseMAC(d.MAC)
		ch := chains[d.Master]
		if ch == nil {
			ch = c.AddChain(&nftables.Chain{
				Name: d.Master, Table: tbl, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookEgress, Priority: nftables.ChainPriorityFilter, Device: d.Master,
			})
			chains[d.Master] = ch
		}
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: dropExprs(mac), UserData: commentUdata(reconcile.FilterRuleComment)})
	}
	for _, shim := range solicits {
		ch := c.AddChain(solicitChain(tbl, shim))
		for _, r := range solicitRules {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: r.exprs, UserData: commentUdata(r.comment)})
		}
	}
}

// setProbes makes flatnet's chains in flatnet's arp table exactly one
// probe chain per shim in shims, as setFilter does for the netdev table:
// one transaction, other parties' chains left alone, a table flatnet did
// not make never written, flatnet's table made with its mark when needed
// and deleted when left without a chain.
func setProbes(shims []string) error {
	c, err := nftConn()
	if err != nil {
		return err
	}
	t, err := readTable(c, probeTable())
	if err != nil {
		return err
	}
	p, ours := judgeProbes(t)
	if p != nil && p.Foreign {
		return fmt.Errorf("nftables table arp %s was not made by flatnet: left alone", reconcile.FilterTable)
	}
	for _, s := range shims {
		if p != nil && slices.Contains(p.Other, s) {
			return fmt.Errorf("chain %s in nftables table arp %s was not made by flatnet: left alone, %s's ARP requests are not made probes", s, reconcile.FilterTable, s)
		}
	}
	tbl := probeTable()
	switch {
	case t == nil:
		if len(shims) == 0 {
			return nil
		}
		if err := tableBatch(unix.NFPROTO_ARP, nil, true); err != nil {
			return fmt.Errorf("creating nftables table arp %s: %w", reconcile.FilterTable, err)
		}
	case len(shims) == 0 && len(p.Other) == 0:
		c.DelTable(tbl)
	default:
		for _, ch := range t.chains {
			if ours[ch.Name] {
				c.DelChain(&nftables.Chain{Name: ch.Name, Table: tbl})
			}
		}
	}
	for _, s := range shims {
		ch := c.AddChain(probeChain(tbl, s))
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: probeExprs(s), UserData: commentUdata(reconcile.ProbeComment)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing nftables table arp %s: %w", reconcile.FilterTable, err)
	}
	return nil
}

// watchFilter calls changed, with the name of the process that did it,
// whenever another process adds or deletes one of flatnet's tables, or a
// chain or rule in them (a `nft flush ruleset` deletes them), until ctx is
// done. The changes flatnet itself commits are not reported, each would
// cost a full pass: the kernel names the thread that committed a
// generation, and the threads of this process are in /proc/self/task. It
// returns when the monitor breaks; lost tells whether it did.
func watchFilter(ctx context.Context, changed func(by string)) (lost bool, err error) {
	c, err := nftConn()
	if err != nil {
		return false, err
	}
	m := nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectTables | nftables.MonitorObjectChains | nftables.MonitorObjectRules))
	gens, err := c.AddGenerationalMonitor(m)
	if err != nil {
		return false, fmt.Errorf("subscribing to nftables: %w", err)
	}
	defer m.Close()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case g, ok := <-gens:
			if !ok {
				return true, nil
			}
			if g.GeneratedBy != nil && g.GeneratedBy.Type == nftables.MonitorEventTypeOOB {
				return true, g.GeneratedBy.Error
			}
			by := ""
			if g.GeneratedBy != nil {
				if gen, ok := g.GeneratedBy.Data.(*nftables.GenMsg); ok {
					if ownThread(gen.ProcPID) {
						continue // our own change
					}
					by = gen.ProcComm
				}
			}
			if slices.ContainsFunc(g.Changes, func(e *nftables.MonitorEvent) bool { return ours(e.Data) }) {
				changed(by)
			}
		}
	}
}

// ours reports whether a monitor event's object belongs to one of
// flatnet's tables.
func ours(data any) bool {
	var t *nftables.Table
	switch d := data.(type) {
	case *nftables.Table:
		t = d
	case *nftables.Chain:
		t = d.Table
	case *nftables.Rule:
		t = d.Table
	}
	return t != nil && t.Name == reconcile.FilterTable && (t.Family == nftables.TableFamilyNetdev || t.Family == nftables.TableFamilyARP)
}

// ownThread reports whether tid is a thread of this process.
func ownThread(tid uint32) bool {
	_, err := os.Stat("/proc/self/task/" + strconv.FormatUint(uint64(tid), 10))
	return err == nil
}
