package netlinkx

import (
	"net"
	"testing"

	"github.com/google/nftables/expr"
)

func TestParseDrop(t *testing.T) {
	mac := net.HardwareAddr{2, 0x68, 0xe4, 0xf9, 0xd5, 0xec}
	full := dropExprs(mac)
	if got, _, ok := parseDrop(full); !ok || got != mac.String() {
		t.Errorf("parseDrop(dropExprs) = %q, %v", got, ok)
	}
	// Without nft's device type check, and without the counter.
	bare := []expr.Any{full[2], full[3], full[5]}
	if got, _, ok := parseDrop(bare); !ok || got != mac.String() {
		t.Errorf("parseDrop(bare) = %q, %v", got, ok)
	}
	for name, es := range map[string][]expr.Any{
		"accept":      {full[0], full[1], full[2], full[3], &expr.Verdict{Kind: expr.VerdictAccept}},
		"daddr":       {&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 0, Len: 6}, full[3], full[5]},
		"no verdict":  {full[2], full[3]},
		"other first": {&expr.Counter{}, full[2], full[3], full[5]},
		"empty":       nil,
	} {
		if _, _, ok := parseDrop(es); ok {
			t.Errorf("parseDrop(%s) took it for flatnet's rule", name)
		}
	}
}
