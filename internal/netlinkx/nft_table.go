package netlinkx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/flatnet/flatnet/internal/reconcile"
	"github.com/google/nftables/userdata"
	nl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// flatnet's mark on its tables (netdev and arp) is the table's comment,
// kept in the table's userdata. google/nftables (v0.3.0, the newest) can neither write nor
// read a table's userdata, so this file does both with a small nfnetlink
// exchange of its own; everything else goes through google/nftables.
//
// What we learned of the kernel and the library:
//
//   - NFTA_TABLE_USERDATA is attribute 6 of enum nft_table_attributes
//     (x/sys/unix stops at NFTA_TABLE_USE, 3; 4 is NFTA_TABLE_HANDLE, a
//     big-endian u64, 5 NFTA_TABLE_PAD). Kernels from 5.10 store it as
//     given and return it in GETTABLE; nft(8) keeps a table's `comment`
//     there as a TLV (libnftnl's udata): one byte type
//     (NFTNL_UDATA_TABLE_COMMENT, 0), one byte length, the value with its
//     NUL, so `nft list` shows flatnet's mark. A rule's comment is the
//     same TLV (NFTNL_UDATA_RULE_COMMENT, 0) in NFTA_RULE_USERDATA, which
//     google/nftables does carry (Rule.UserData).
//   - The kernel keeps a table's userdata as first written: a NEWTABLE for
//     an existing table (without NLM_F_EXCL) succeeds and changes nothing
//     but its flags (seen on 6.18). So a table without the mark gets it
//     only by being deleted and made again.
//   - A DELTABLE with neither name nor handle deletes every table of its
//     family (that is how a ruleset flush is sent): deleteTable always
//     names the table, and adds the handle it read so that it deletes that
//     very table, not one made under the same name since.
//   - In a batch, the kernel answers each message that asks for an
//     acknowledgement (or fails) once, after the whole batch was
//     processed; a failing message makes it commit nothing. Some failures
//     (no CAP_NET_ADMIN, out of memory, a failed commit) are a single
//     error instead: tableBatch stops at the first error, and its socket,
//     closed with the exchange, takes any other answer with it.
//   - The commit's NFT_MSG_NEWGEN names the thread that sent the batch,
//     the same for this exchange as for google/nftables': watchFilter
//     recognises both as flatnet's own (ownThread).
//   - google/nftables' userdata.Get reads past the end of a malformed TLV
//     (it slices before checking the length): the userdata of a rule or
//     table someone else wrote is read with udataComment instead.

// NFTA_TABLE_* attributes x/sys/unix lacks.
const (
	nftaTableHandle   = 4
	nftaTableUserdata = 6
)

// tableInfo is what GETTABLE tells of flatnet's table.
type tableInfo struct {
	handle uint64 // NFTA_TABLE_HANDLE
	udata  []byte // NFTA_TABLE_USERDATA, nil without
}

// commentUdata is userdata holding comment s, as nft(8) writes it.
func commentUdata(s string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, s)
}

// udataComment returns the comment in userdata b, and whether there is
// one; malformed userdata has none.
func udataComment(b []byte) (string, bool) {
	for len(b) >= 2 {
		typ, n := b[0], int(b[1])
		if len(b) < 2+n {
			return "", false
		}
		if typ == byte(userdata.TypeComment) {
			v := b[2 : 2+n]
			if len(v) == 0 || v[len(v)-1] != 0 {
				return "", false // nft's comment always ends with its NUL
			}
			return string(v[:len(v)-1]), true
		}
		b = b[2+n:]
	}
	return "", false
}

// nfgenmsg is nfnetlink's header after the netlink one.
func nfgenmsg(family byte, resID uint16) []byte {
	return []byte{family, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
}

// nftMsg is an nf_tables message of type t for the family (netdev or
// arp).
func nftMsg(family byte, t int, flags nl.HeaderFlags, attrs []nl.Attribute) (nl.Message, error) {
	b, err := nl.MarshalAttributes(attrs)
	if err != nil {
		return nl.Message{}, err
	}
	return nl.Message{
		Header: nl.Header{Type: nl.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | t), Flags: nl.Request | flags},
		Data:   append(nfgenmsg(family, 0), b...),
	}, nil
}

// familyName is the family as nft(8) names it, for messages.
func familyName(family byte) string {
	if family == unix.NFPROTO_ARP {
		return "arp"
	}
	return "netdev"
}

// dialNfnl opens an nfnetlink socket in this thread's network namespace,
// answers due within a few seconds.
func dialNfnl() (*nl.Conn, error) {
	c, err := nl.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, err
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// getTable reads flatnet's table of the family: nil when there is none,
// or no nf_tables.
func getTable(family byte) (*tableInfo, error) {
	c, err := dialNfnl()
	if err != nil {
		if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("opening nfnetlink: %w", err)
	}
	defer c.Close()
	req, err := nftMsg(family, unix.NFT_MSG_GETTABLE, 0, []nl.Attribute{{Type: unix.NFTA_TABLE_NAME, Data: []byte(reconcile.FilterTable + "\x00")}})
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(req)
	if err != nil {
		if isNotFound(err) || errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading nftables table %s %s: %w", familyName(family), reconcile.FilterTable, err)
	}
	for _, m := range msgs {
		if m.Header.Type != nl.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE) || len(m.Data) < 4 {
			continue
		}
		ad, err := nl.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		ad.ByteOrder = binary.BigEndian
		t, name := &tableInfo{}, ""
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_TABLE_NAME:
				name = ad.String()
			case nftaTableHandle:
				t.handle = ad.Uint64()
			case nftaTableUserdata:
				t.udata = ad.Bytes()
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("reading nftables table %s %s: %w", familyName(family), reconcile.FilterTable, err)
		}
		if name == reconcile.FilterTable {
			return t, nil
		}
	}
	return nil, fmt.Errorf("reading nftables table %s %s: no table in the answer", familyName(family), reconcile.FilterTable)
}

// tableBatch sends one transaction for flatnet's table of the family:
// when del is set, delete that table (flatnet's, by name and the handle
// read); when create is, create flatnet's table with its mark. The
// creation carries NLM_F_EXCL: a table of that name someone made
// meanwhile fails the batch (EEXIST) rather than being taken over.
func tableBatch(family byte, del *tableInfo, create bool) error {
	name := nl.Attribute{Type: unix.NFTA_TABLE_NAME, Data: []byte(reconcile.FilterTable + "\x00")}
	var msgs []nl.Message
	if del != nil {
		attrs := []nl.Attribute{name}
		if del.handle != 0 {
			attrs = append(attrs, nl.Attribute{Type: nftaTableHandle, Data: binary.BigEndian.AppendUint64(nil, del.handle)})
		}
		m, err := nftMsg(family, unix.NFT_MSG_DELTABLE, nl.Acknowledge, attrs)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if create {
		m, err := nftMsg(family, unix.NFT_MSG_NEWTABLE, nl.Acknowledge|nl.Create|nl.Excl, []nl.Attribute{
			name,
			{Type: unix.NFTA_TABLE_FLAGS, Data: []byte{0, 0, 0, 0}},
			{Type: nftaTableUserdata, Data: commentUdata(reconcile.FilterComment)},
		})
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil
	}
	c, err := dialNfnl()
	if err != nil {
		return fmt.Errorf("opening nfnetlink: %w", err)
	}
	defer c.Close()
	batch := append([]nl.Message{{
		Header: nl.Header{Type: nl.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: nl.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES),
	}}, msgs...)
	batch = append(batch, nl.Message{
		Header: nl.Header{Type: nl.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: nl.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES),
	})
	if _, err := c.SendMessages(batch); err != nil {
		return err
	}
	for acked := 0; acked < len(msgs); {
		got, err := c.Receive()
		if err != nil {
			return err
		}
		acked += len(got)
	}
	return nil
}
