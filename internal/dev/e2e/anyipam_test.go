//go:build integration

package e2e

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/flatnet/flatnet/internal/dev/lab"
)

// statusDoc is the part of `flatnet status --json` these tests read: per
// network, where each address was learnt and what flatnet makes of each
// cached attachment.
type statusDoc struct {
	Networks []struct {
		Name      string `json:"name"`
		IPAM      string `json:"ipam"`
		Addresses []struct {
			IP        netip.Addr `json:"ip"`
			Sources   []string   `json:"sources"`
			Container string     `json:"container"`
			Routed    bool       `json:"routed"`
		} `json:"addresses"`
		Attachments []struct {
			Container string       `json:"container"`
			IfName    string       `json:"ifname"`
			Addresses []netip.Addr `json:"addresses"`
			State     string       `json:"state"`
		} `json:"attachments"`
	} `json:"networks"`
	Problems []string `json:"problems"`
}

// statusJSON runs `flatnet status --json` and decodes it.
func statusJSON(t *testing.T, l *lab.Lab) (statusDoc, int) {
	t.Helper()
	out, code := runFlatnet(t, l, "status", "--json")
	var d statusDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("flatnet status --json: %v\n%s", err, out)
	}
	return d, code
}

// staticNAD is a NetworkAttachmentDefinition of static IPAM: its pod's
// address is known from libcni's cached result alone.
func staticNAD(name, addr string) string {
	return `{"cniVersion": "1.0.0", "name": "` + name + `", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "bridge",
 "ipam": {"type": "static", "addresses": [{"address": "` + addr + `", "gateway": "192.168.0.1"}]}}]}`
}

// TestAnyIPAMFromTheCache: a pod of a network whose IPAM keeps no state
// on the node (static here; whereabouts and dhcp alike), attached as
// Multus does, is routed from its cached result; flatnet status says
// where the address was learnt and which container holds it; an
// attachment of such a network that asks for the node's gateway is
// refused; cnitool del unroutes it.
func TestAnyIPAMFromTheCache(t *testing.T) {
	cnitool := needCnitool(t)
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	fn := startFlatnet(t, l, "")
	waitFor(t, deadline, "the shim", func() error { _, err := l.MAC(l.Node, l.Master+".host"); return err })

	nad := nadNet(t, l, "nad", staticNAD("fixed", "192.168.5.50/16"))
	ns, ips := attach(t, l, cnitool, nad, "fixed", "staticpod")
	pod := ips[0].Addr()
	waitFor(t, deadline, "the static pod routed", routedVia(l, pod, l.Master+".host"))
	waitFor(t, deadline, "the node pings it", freshPings(l, l.Node, pod))
	waitFor(t, deadline, "it pings the node", freshPings(l, ns, l.NodeIP))
	logOnce(t, fn, "route "+pod.String()+"/32 dev "+l.Master+".host added for container cnitool-")

	d, code := statusJSON(t, l)
	found := false
	for _, n := range d.Networks {
		if n.Name != "fixed" {
			continue
		}
		found = true
		if n.IPAM != "static" || len(n.Addresses) != 1 || !slices.Equal(n.Addresses[0].Sources, []string{"cache result"}) ||
			!strings.HasPrefix(n.Addresses[0].Container, "cnitool-") || !n.Addresses[0].Routed {
			t.Errorf("status of fixed: %+v", n)
		}
		if len(n.Attachments) != 1 || n.Attachments[0].State != "routed" || n.Attachments[0].Addresses[0] != pod {
			t.Errorf("attachments of fixed: %+v", n.Attachments)
		}
	}
	if !found || code != 0 {
		t.Errorf("flatnet status (exit %d) has no fixed in sync: %+v", code, d)
	}

	// A tenant asks for the LAN's gateway, the node's next hop.
	gw := nadNet(t, l, "nad-gw", `{"cniVersion": "1.0.0", "name": "grab", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "bridge",
 "ipam": {"type": "static", "addresses": [{"address": "192.168.0.1/16"}]}}]}`)
	_, _ = attach(t, l, cnitool, gw, "grab", "grabpod")
	waitLog(t, fn, "not routing 192.168.0.1 of network grab: the next hop of the node's route default via 192.168.0.1", deadline)
	noFlatnetRoute(t, l, netip.MustParsePrefix("192.168.0.1/32"))
	waitFor(t, deadline, "the node pings its gateway", freshPings(l, l.Node, l.Gateway))

	if _, err := l.Cnitool(cnitool, nad, "del", "fixed", ns); err != nil {
		t.Fatal(err)
	}
	waitFor(t, deadline, "cnitool del unroutes the static pod", notRouted(l, pod.String()))
}

// TestAnyIPAMGone: an attachment whose network namespace is gone though
// libcni's cache still holds it (its DEL never ran: a crash, a power
// loss) is not routed once flatnet reads the cache (here a reload; at a
// start or the resync otherwise), and status and check report it as
// stale, with its container.
func TestAnyIPAMGone(t *testing.T) {
	cnitool := needCnitool(t)
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	fn := startFlatnet(t, l, "")
	waitFor(t, deadline, "the shim", func() error { _, err := l.MAC(l.Node, l.Master+".host"); return err })
	nad := nadNet(t, l, "nad", staticNAD("fixed", "192.168.5.51/16"))
	ns, ips := attach(t, l, cnitool, nad, "fixed", "doomed")
	pod := ips[0].Addr()
	waitFor(t, deadline, "the pod routed", routedVia(l, pod, l.Master+".host"))

	// The pod dies without its DEL: its namespace goes, the cache entry
	// stays.
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del %s: %v %s", ns, err, out)
	}
	hup(t, fn)
	waitFor(t, deadline, "the stale attachment unrouted", notRouted(l, pod.String()))

	d, _ := statusJSON(t, l)
	stale := false
	for _, n := range d.Networks {
		for _, a := range n.Attachments {
			if n.Name == "fixed" && a.State == "gone" && strings.HasPrefix(a.Container, "cnitool-") && slices.Contains(a.Addresses, pod) {
				stale = true
			}
		}
	}
	if !stale {
		t.Errorf("flatnet status does not list the stale attachment: %+v", d.Networks)
	}
	out, _ := runFlatnet(t, l, "status")
	if !strings.Contains(out, "stale attachment cnitool-") {
		t.Errorf("flatnet status does not say the stale attachment:\n%s", out)
	}
	r, _ := runCheck(t, l)
	mustCheck(t, r, "attachments fixed", "warn", "stale", "cnitool-")
}

// TestAnyIPAMNoAddress: an L2-only attachment (macvlan without IPAM: a VM
// that runs DHCP itself, the seed's KubeVirt case) carries no address;
// status and check list it as not routable, with the reason.
func TestAnyIPAMNoAddress(t *testing.T) {
	cnitool := needCnitool(t)
	l := lab.NewT(t, lab.Options{NoIPv6: true})
	startFlatnet(t, l, "")
	waitFor(t, deadline, "the shim", func() error { _, err := l.MAC(l.Node, l.Master+".host"); return err })
	nad := nadNet(t, l, "nad", `{"cniVersion": "1.0.0", "name": "l2only", "plugins": [{"type": "macvlan", "master": "eno1", "mode": "bridge"}]}`)
	name, err := l.NewNamespace("vm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Cnitool(cnitool, nad, "add", "l2only", name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = l.Cnitool(cnitool, nad, "del", "l2only", name) })
	waitFor(t, deadline, "flatnet knows the network", func() error {
		d, _ := statusJSON(t, l)
		for _, n := range d.Networks {
			if n.Name == "l2only" && len(n.Attachments) == 1 {
				if n.Attachments[0].State != "no address" {
					t.Errorf("the L2-only attachment: %+v", n.Attachments[0])
				}
				return nil
			}
		}
		return errors.New("not yet")
	})
	out, _ := runFlatnet(t, l, "status")
	if !strings.Contains(out, "not routable") || !strings.Contains(out, "no address known") {
		t.Errorf("flatnet status does not say the attachment is not routable:\n%s", out)
	}
	r, _ := runCheck(t, l)
	mustCheck(t, r, "attachments l2only", "warn", "not routable", "no address known")
}
