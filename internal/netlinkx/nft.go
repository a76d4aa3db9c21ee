package netlinkx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"

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
//   - A batch is one transaction: "add table; delete table; add table ..."
//     replaces the table atomically, and a batch with any failing message
//     commits nothing and notifies no one, which is what ProbeFilter uses.

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

// readFilter reads flatnet's table: nil when there is none (or no
// nf_tables at all).
func readFilter() (*reconcile.Filter, error) {
	c, err := nftConn()
	if err != nil {
		return nil, nil
	}
	t := filterTable()
	if _, err := c.ListTableOfFamily(t.Name, t.Family); err != nil {
		if isNotFound(err) || errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading nftables table %s: %w", t.Name, err)
	}
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, fmt.Errorf("listing nftables chains: %w", err)
	}
	f := &reconcile.Filter{}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != t.Name {
			continue
		}
		if ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookEgress {
			f.Other = true
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("listing the rules of chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			mac, packets, ok := parseDrop(r.Exprs)
			if !ok {
				f.Other = true
				continue
			}
			f.Drops = append(f.Drops, reconcile.Drop{Master: ch.Name, MAC: mac, Packets: packets})
		}
	}
	return f, nil
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

// setFilter makes flatnet's table hold exactly drops, in one transaction;
// with none, the table goes.
func setFilter(drops []reconcile.Drop) error {
	c, err := nftConn()
	if err != nil {
		return err
	}
	t := filterTable()
	c.AddTable(t)
	c.DelTable(t)
	if len(drops) > 0 {
		c.AddTable(t)
		chains := map[string]*nftables.Chain{}
		for _, d := range drops {
			mac, err := net.ParseMAC(d.MAC)
			if err != nil {
				return fmt.Errorf("filter for %s: %w", d.Master, err)
			}
			ch := chains[d.Master]
			if ch == nil {
				ch = c.AddChain(&nftables.Chain{
					Name: d.Master, Table: t, Type: nftables.ChainTypeFilter,
					Hooknum: nftables.ChainHookEgress, Priority: nftables.ChainPriorityFilter, Device: d.Master,
				})
				chains[d.Master] = ch
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: dropExprs(mac)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing nftables table %s: %w", t.Name, err)
	}
	return nil
}

// watchFilter calls changed whenever a table, chain or rule of flatnet's
// table is added or deleted (a `nft flush ruleset` deletes it), until ctx
// is done. It returns when the monitor breaks; lost tells whether it did.
func watchFilter(ctx context.Context, changed func()) (lost bool, err error) {
	c, err := nftConn()
	if err != nil {
		return false, err
	}
	m := nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectTables | nftables.MonitorObjectChains | nftables.MonitorObjectRules))
	events, err := c.AddMonitor(m)
	if err != nil {
		return false, fmt.Errorf("subscribing to nftables: %w", err)
	}
	defer m.Close()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case ev, ok := <-events:
			if !ok {
				return true, nil
			}
			if ev.Type == nftables.MonitorEventTypeOOB {
				return true, ev.Error
			}
			if ours(ev.Data) {
				changed()
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
