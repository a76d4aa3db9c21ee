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

// nftConn opens a connection to nf_tables in this network namespace.
func nftConn() (*nftables.Conn, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("opening nftables: %w", err)
	}
	return c, nil
}

// filterTable is flatnet's table.
func filterTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyNetdev, Name: reconcile.FilterTable}
}

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

// nftTable is flatnet's table as read: its handle and userdata, and its
// chains with their rules.
type nftTable struct {
	tableInfo
	chains []nftChain
}

// nftChain is a chain of the table, with its rules.
type nftChain struct {
	*nftables.Chain
	rules []*nftables.Rule
}

// readTable reads the table named reconcile.FilterTable: nil when there
// is none (or no nf_tables at all).
func readTable(c *nftables.Conn) (*nftTable, error) {
	info, err := getTable()
	if err != nil || info == nil {
		return nil, err
	}
	t := &nftTable{tableInfo: *info}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return nil, fmt.Errorf("listing nftables chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != reconcile.FilterTable {
			continue
		}
		rules, err := c.GetRules(filterTable(), ch)
		if err != nil {
			return nil, fmt.Errorf("listing the rules of chain %s: %w", ch.Name, err)
		}
		t.chains = append(t.chains, nftChain{Chain: ch, rules: rules})
	}
	return t, nil
}

// readFilter reads flatnet's table: nil when there is none (or no
// nf_tables at all).
func readFilter() (*reconcile.Filter, error) {
	c, err := nftConn()
	if err != nil {
		return nil, nil
	}
	t, err := readTable(c)
	if err != nil {
		return nil, err
	}
	f, _ := judge(t)
	return f, nil
}

// flatnetMark reports whether a comment is flatnet's mark.
func flatnetMark(comment string, ok bool) bool {
	return ok && strings.HasPrefix(comment, reconcile.FilterMark)
}

// judge tells whose the table t is and what of it is flatnet's (see
// reconcile.Filter): the Filter, and the names of flatnet's chains. nil
// for no table.
func judge(t *nftTable) (*reconcile.Filter, map[string]bool) {
	if t == nil {
		return nil, nil
	}
	f, ours := &reconcile.Filter{}, map[string]bool{}
	if flatnetMark(udataComment(t.udata)) {
		for _, ch := range t.chains {
			drops, ok := flatnetChain(ch, true)
			if !ok {
				f.Other = append(f.Other, ch.Name)
				continue
			}
			ours[ch.Name] = true
			f.Drops = append(f.Drops, drops...)
		}
		slices.Sort(f.Other)
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

// flatnetChain reads ch as a chain flatnet made: an egress filter chain
// of flatnet's shape whose rules are all flatnet's drops (marked ones
// when marked), with the master the chain's name. ok is false for any
// other chain.
func flatnetChain(ch nftChain, marked bool) (drops []reconcile.Drop, ok bool) {
	if !egressChain(ch.Chain) {
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

// egressChain reports whether ch is a base chain as flatnet makes them:
// type filter, hook egress, priority filter (0), policy accept.
// google/nftables does not read a chain's device back (see above).
func egressChain(ch *nftables.Chain) bool {
	return ch.Type == nftables.ChainTypeFilter &&
		ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookEgress &&
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

// setFilter makes flatnet's chains in flatnet's table hold exactly drops,
// and touches nothing else: another party's chain stays as it is, and a
// table flatnet did not make (Foreign) is an error, never written. The
// chains are written in one transaction: each of flatnet's chains wanted
// is deleted and made anew in it, so no master that keeps a drop is ever
// without its filter; flatnet's chains not wanted go. The table is made,
// with its mark, when there is none (an empty table of its own first: it
// has no effect on traffic), and deleted when it is left without a chain.
//
// What cannot be helped: between reading the table and writing it, a
// chain another party adds to flatnet's table is deleted with the table
// when flatnet deletes it (the kernel has no "delete if empty").
func setFilter(drops []reconcile.Drop) error {
	var masters []string
	for _, d := range drops {
		if _, err := net.ParseMAC(d.MAC); err != nil {
			return fmt.Errorf("filter for %s: %w", d.Master, err)
		}
		if !slices.Contains(masters, d.Master) {
			masters = append(masters, d.Master)
		}
	}
	c, err := nftConn()
	if err != nil {
		return err
	}
	t, err := readTable(c)
	if err != nil {
		return err
	}
	f, ours := judge(t)
	if f != nil && f.Foreign {
		return fmt.Errorf("nftables table netdev %s was not made by flatnet: left alone", reconcile.FilterTable)
	}
	for _, m := range masters {
		if f != nil && slices.Contains(f.Other, m) {
			return fmt.Errorf("chain %s in nftables table netdev %s was not made by flatnet: left alone, %s gets no filter", m, reconcile.FilterTable, m)
		}
	}
	switch {
	case t == nil:
		if len(drops) == 0 {
			return nil
		}
		if err := tableBatch(nil, true); err != nil {
			return fmt.Errorf("creating nftables table netdev %s: %w", reconcile.FilterTable, err)
		}
	case f.Legacy:
		// An older flatnet's table gets the mark by being made anew (the
		// kernel never changes a table's userdata), then its chains in the
		// next transaction: between the two, once after an upgrade, the
		// masters go unfiltered. (Deleting that table, every chain of which
		// flatnet made, touches no one else's.)
		if err := tableBatch(&t.tableInfo, len(drops) > 0); err != nil {
			return fmt.Errorf("making nftables table netdev %s anew with flatnet's mark: %w", reconcile.FilterTable, err)
		}
		if len(drops) == 0 {
			return nil
		}
		t = nil
	}
	tbl := filterTable()
	switch {
	case t == nil: // made just now, empty
	case len(drops) == 0 && len(f.Other) == 0:
		c.DelTable(tbl) // only flatnet's chains in it: it goes with them
	default:
		for _, ch := range t.chains {
			if ours[ch.Name] {
				// The wanted ones are made anew below, in this transaction.
				c.DelChain(&nftables.Chain{Name: ch.Name, Table: tbl})
			}
		}
	}
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
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing nftables table netdev %s: %w", reconcile.FilterTable, err)
	}
	return nil
}

// watchFilter calls changed, with the name of the process that did it,
// whenever another process adds or deletes flatnet's table, or a chain or
// rule in it (a `nft flush ruleset` deletes it), until ctx is done. The
// changes flatnet itself commits are not reported, each would cost a full
// pass: the kernel names the thread that committed a generation, and the
// threads of this process are in /proc/self/task. It returns when the
// monitor breaks; lost tells whether it did.
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

// ours reports whether a monitor event's object belongs to flatnet's table.
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
	return t != nil && t.Name == reconcile.FilterTable && t.Family == nftables.TableFamilyNetdev
}

// ownThread reports whether tid is a thread of this process.
func ownThread(tid uint32) bool {
	_, err := os.Stat("/proc/self/task/" + strconv.FormatUint(uint64(tid), 10))
	return err == nil
}
