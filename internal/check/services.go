package check

import (
	"fmt"
	"slices"
	"strings"
)

// shimNames lists the shims of the networks that have a master, once each.
func (c *checker) shimNames() []string {
	var out []string
	for _, n := range c.f.Networks {
		if n.Master != "" && !slices.Contains(out, n.Shim) {
			out = append(out, n.Shim)
		}
	}
	return out
}

// networkd checks that systemd-networkd leaves the shims and their routes
// alone.
func (c *checker) networkd() {
	nd := c.f.Networkd
	if !nd.Running {
		c.add(OK, "networkd", "systemd-networkd is not running in this network namespace", "")
		return
	}
	mfr := "ManageForeignRoutes=yes (the default)"
	if nd.ManageForeignRoutesFrom != "" {
		mfr = fmt.Sprintf("ManageForeignRoutes=%s (%s)", yesNo(nd.ManageForeignRoutes), nd.ManageForeignRoutesFrom)
	}
	for _, shim := range c.shimNames() {
		name := "networkd " + shim
		l := nd.Links[shim]
		how := ""
		if l.NetworkFile != "" {
			how = " through " + l.NetworkFile
		}
		state := fmt.Sprintf(" (state %s)", l.State)
		if l.Predicted {
			state = " (worked out from the .network files)"
		}
		fix := fmt.Sprintf("add /etc/systemd/network/00-flatnet-shim.network with [Match] Name=%s and [Link] Unmanaged=yes (the package's 05-flatnet-shim.network does this for *.host, unless a file that sorts before it matches), then networkctl reload", shim)
		switch {
		case l.State == "unmanaged":
			c.add(OK, name, fmt.Sprintf("systemd-networkd runs and leaves %s unmanaged%s, so %s does not touch flatnet's routes", shim, how, mfr), "")
		case l.State == "":
			c.add(Warn, name, fmt.Sprintf("systemd-networkd runs, with %s, and it cannot be told whether it manages %s", mfr, shim),
				fmt.Sprintf("networkctl status %s must say unmanaged; if it does not, %s", shim, fix))
		case nd.ManageForeignRoutes:
			c.add(Fail, name, fmt.Sprintf("systemd-networkd manages %s%s%s and has %s: it deletes flatnet's routes whenever it configures the link", shim, how, state, mfr), fix)
		default:
			c.add(Warn, name, fmt.Sprintf("systemd-networkd manages %s%s%s; with ManageForeignRoutes=no it keeps flatnet's routes, but may give the shim addresses or run DHCP on it", shim, how, state), fix)
		}
	}
}

// networkManager checks that NetworkManager leaves the shims alone.
func (c *checker) networkManager() {
	nm := c.f.NM
	if !nm.Running {
		c.add(OK, "NetworkManager", "NetworkManager is not running in this network namespace", "")
		return
	}
	for _, shim := range c.shimNames() {
		name := "NetworkManager " + shim
		if by := nm.Unmanaged[shim]; by != "" {
			c.add(OK, name, fmt.Sprintf("NetworkManager runs and leaves %s unmanaged (%s)", shim, by), "")
			continue
		}
		c.add(Warn, name, fmt.Sprintf("NetworkManager runs and nothing in its configuration leaves %s unmanaged: it may take the shim over (an address, DHCP) and disturb flatnet's routes", shim),
			fmt.Sprintf("add /etc/NetworkManager/conf.d/flatnet.conf with [device-flatnet-shim] match-device=interface-name:%s managed=0 (the package ships one for *.host in /usr/lib/NetworkManager/conf.d), then systemctl reload NetworkManager", shim))
	}
}

// daemon checks that a flatnet daemon serves this node.
func (c *checker) daemon() {
	d := c.f.Daemon
	pids := joinInts(d.PIDs)
	if !d.Systemd {
		if len(d.PIDs) > 0 {
			c.add(OK, "daemon", fmt.Sprintf("flatnet run is running (pid %s); not running under systemd", pids), "")
			return
		}
		detail := "not running under systemd, and no flatnet run process in this network namespace: pods that come and go are not followed"
		if !d.PIDsKnown {
			detail = "not running under systemd, and the processes could not be listed to look for flatnet run"
		}
		c.add(Warn, "daemon", detail, "run `flatnet run` under your service manager (under systemd: systemctl enable --now flatnet)")
		return
	}
	u := d.Unit
	if u == nil {
		if len(d.PIDs) > 0 {
			c.add(OK, "daemon", fmt.Sprintf("flatnet run is running (pid %s); systemctl show flatnet.service failed: %v", pids, d.UnitErr), "")
			return
		}
		c.add(Fail, "daemon", fmt.Sprintf("systemctl show flatnet.service failed (%v) and no flatnet run process is in this network namespace", d.UnitErr),
			"systemctl status flatnet, then systemctl enable --now flatnet")
		return
	}
	status := ""
	if u.StatusText != "" {
		status = ": " + u.StatusText
	}
	switch {
	case u.LoadState == "not-found":
		if len(d.PIDs) > 0 {
			c.add(OK, "daemon", fmt.Sprintf("flatnet run is running (pid %s), outside systemd: flatnet.service is not installed", pids), "")
			return
		}
		c.add(Fail, "daemon", "flatnet.service is not installed and no flatnet run process is in this network namespace: nothing follows the pods",
			"install the package (apt install ./flatnet_<version>_amd64.deb or dnf install ./flatnet-<version>-1.x86_64.rpm); it enables and starts flatnet.service")
	case u.ActiveState == "active" && !u.MainPIDHere && len(d.PIDs) == 0:
		c.add(Warn, "daemon", fmt.Sprintf("flatnet.service is active (pid %d) but in another network namespace than this check, and no flatnet run process is in this one", u.MainPID),
			"run flatnet check in the node's own network namespace, or start flatnet run in this one")
	case u.ActiveState == "active":
		c.add(OK, "daemon", fmt.Sprintf("flatnet.service is active (%s, pid %d)%s", u.SubState, u.MainPID, status), "")
	case u.ActiveState == "activating" || u.ActiveState == "reloading":
		c.add(Warn, "daemon", fmt.Sprintf("flatnet.service is %s (%s)%s", u.ActiveState, u.SubState, status),
			"wait a moment and check again; if it stays, journalctl -u flatnet -b says why")
	case len(d.PIDs) > 0:
		c.add(OK, "daemon", fmt.Sprintf("flatnet run is running (pid %s), outside systemd; flatnet.service is %s", pids, u.ActiveState), "")
	default:
		c.add(Fail, "daemon", fmt.Sprintf("flatnet.service is %s (%s)%s: nothing follows the pods", u.ActiveState, u.SubState, status),
			"systemctl enable --now flatnet; journalctl -u flatnet -b says why it stopped")
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
