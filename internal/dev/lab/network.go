package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// NetworkOptions describe one more CNI network of a lab (AddNetwork): its
// own conflist in CNIConfDir, its pods' state in <StateRoot>/<Name>.
type NetworkOptions struct {
	// Name is the CNI network name; required, and not the lab's own.
	Name string
	// Master is the macvlan master. Default Options.Master.
	Master string
	// Mode is the macvlan mode. Default "bridge".
	Mode string
	// CNIVersion is the conflist's cniVersion. Default Options.CNIVersion.
	CNIVersion string
	// ConfListName is the conflist's file name. Default "10-<Name>.conflist".
	ConfListName string
	// Ranges are host-local's range sets (one Range each); required.
	Ranges []Range
	// Routes are host-local's routes; none by default (pods reach the
	// subnets of their ranges only).
	Routes []netip.Prefix
}

// netConf is what makes a network's conflist.
type netConf struct {
	name, master, mode, cniVersion string
	confList                       string // path
	ranges                         []Range
	routes                         []netip.Prefix
}

// mainNet is the network Options describe.
func (l *Lab) mainNet() netConf {
	o := l.Opts
	return netConf{name: o.Network, master: o.Master, mode: o.Mode, cniVersion: o.CNIVersion,
		confList: l.ConfList, ranges: o.Ranges, routes: o.Routes}
}

// netOf is the network a pod was added to.
func (l *Lab) netOf(p *Pod) netConf {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.nets[p.Network]; ok {
		return n
	}
	return l.mainNet()
}

// AddNetwork writes the conflist of one more CNI network, for AddPodTo. A
// network of another master needs that NIC first (AddNIC).
func (l *Lab) AddNetwork(o NetworkOptions) error {
	if o.Name == "" || o.Name == l.Opts.Network || len(o.Ranges) == 0 {
		return fmt.Errorf("AddNetwork: a new network needs a name other than %q and ranges", l.Opts.Network)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Master, l.Opts.Master)
	def(&o.Mode, "bridge")
	def(&o.CNIVersion, l.Opts.CNIVersion)
	def(&o.ConfListName, "10-"+o.Name+".conflist")
	n := netConf{name: o.Name, master: o.Master, mode: o.Mode, cniVersion: o.CNIVersion,
		confList: filepath.Join(l.CNIConfDir, o.ConfListName), ranges: o.Ranges, routes: o.Routes}
	if err := l.checkNS(l.Node); err != nil {
		return err
	}
	l.mu.Lock()
	_, dup := l.nets[o.Name]
	if !dup {
		l.nets[o.Name] = n
	}
	l.mu.Unlock()
	if dup {
		return fmt.Errorf("AddNetwork: network %s exists", o.Name)
	}
	l.logf("conflist %s for network %s on %s", n.confList, n.name, n.master)
	return writeFileAtomic(n.confList, l.confListOf(n))
}

// AddPodTo is AddPod on a network AddNetwork added (or the lab's own).
func (l *Lab) AddPodTo(network, name string) (*Pod, error) {
	if network == l.Opts.Network {
		return l.AddPod(name)
	}
	l.mu.Lock()
	n, ok := l.nets[network]
	l.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("AddPodTo: no network %s in this lab", network)
	}
	return l.addPod(n, name)
}

// NetworkConfList is the path of a network's conflist ("" when the lab has
// no such network). Removing the file removes the network from the CNI
// configuration; its pods can still be deleted with DelPod.
func (l *Lab) NetworkConfList(network string) string {
	if network == l.Opts.Network {
		return l.ConfList
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nets[network].confList
}

// NetworkStateDir is host-local's directory for a network:
// <StateRoot>/<network>.
func (l *Lab) NetworkStateDir(network string) string {
	return filepath.Join(l.StateRoot, network)
}

// RemoveConfList deletes a network's conflist, as an operator removing the
// network from /etc/cni/net.d would.
func (l *Lab) RemoveConfList(network string) error {
	p := l.NetworkConfList(network)
	if p == "" {
		return fmt.Errorf("RemoveConfList: no network %s in this lab", network)
	}
	l.logf("rm %s", p)
	return os.Remove(p)
}
