# shellcheck shell=bash
# Checked alone, the variables test-package.sh sets and reads look unset
# and unused: shellcheck packaging/test-package.sh checks them together.
# shellcheck disable=SC2034,SC2154
# The package test's scenarios on the booted node, one function each,
# sourced by packaging/test-package.sh. Each starts from the state it
# needs (need_* in lib.sh) and leaves the node for the next one.

# ------------------------------------------------------------------ install

# install: the package's first installation on a node that never had it
# (or that purged it), then the service it runs.
scenario_install() {
	need_absent || return 1
	need_pod || return 1
	log "apt install $version"
	if [[ $(pkg_status) != "ii " ]] &&
		in_ct apt-get install -y -q /packages/flatnet.deb >"$workdir/install.log" 2>&1; then
		pass "fresh install of $version"
	else
		cat "$workdir/install.log"
		fail "fresh install of $version"
		return 1
	fi
	if wait_for 10 is_running && wait_for 10 has_route 192.168.1.2 eno1.host && is_enabled; then
		pass "fresh install: enabled, running (READY), route"
	else
		fail "fresh install: enabled, running (READY), route" "$(prop ActiveState)/$(prop SubState)"
		debug_dump
	fi
	if has_route 192.168.1.2 eno1.host; then
		pass "pod route: $(in_ct ip route show proto flatnet | grep '^192.168.1.2 ')"
	else
		fail "pod route 192.168.1.2 dev eno1.host proto flatnet" "$(in_ct ip route show proto flatnet | tr '\n' ';')"
	fi
	if in_ct ip -d link show eno1.host 2>/dev/null | grep -q 'macvlan mode bridge'; then
		pass "shim eno1.host is a bridge-mode macvlan"
	else
		fail "shim eno1.host is a bridge-mode macvlan"
	fi

	if is_enabled; then
		pass "service enabled"
	else
		fail "service enabled"
	fi
	# Type=notify: active means READY=1 arrived.
	if [[ $(prop Type) == notify ]] && is_running; then
		pass "READY reached (Type=notify, active/running)"
	else
		fail "READY reached" "$(prop ActiveState)/$(prop SubState)"
	fi
	local status_text security verify
	status_text=$(prop StatusText)
	if [[ -n $status_text ]] && in_ct systemctl status flatnet.service --no-pager | grep -q 'Status: "'; then
		pass "systemctl status shows a status line: $status_text"
	else
		fail "systemctl status shows a status line"
	fi
	if journal | grep -q . && in_ct journalctl -u flatnet.service --no-pager | grep -q 'Started flatnet'; then
		pass "journalctl -u flatnet shows the start"
	else
		fail "journalctl -u flatnet shows the start"
		debug_dump
	fi
	if [[ $(prop WatchdogUSec) == 30s ]]; then
		pass "watchdog armed (WatchdogSec=30s)"
	else
		fail "watchdog armed" "WatchdogUSec=$(prop WatchdogUSec)"
	fi
	security=$(in_ct systemd-analyze security --no-pager flatnet.service 2>/dev/null |
		sed -n 's/.*Overall exposure level for flatnet.service: \([0-9.]*\).*/\1/p')
	if [[ -n $security ]] && awk -v e="$security" 'BEGIN { exit !(e <= 1.4) }'; then
		pass "systemd-analyze security exposure $security (at most 1.4)"
	else
		fail "systemd-analyze security exposure at most 1.4" "${security:-no figure}"
	fi
	if verify=$(in_ct systemd-analyze verify --man=no flatnet.service 2>&1) && [[ -z $verify ]]; then
		pass "systemd-analyze verify clean"
	else
		fail "systemd-analyze verify clean" "$verify"
	fi
}

# ------------------------------------------------------------------ upgrade

# upgrade: the last release installed and routing a pod, then this
# package over it, while a proven `ip monitor` watches that no route drops.
scenario_upgrade() {
	if [[ -z $previous_deb ]]; then
		skip_or_fail "upgrade from the last release" "no previous release package given (see packaging/previous-deb.sh)"
		return 0
	fi
	need_absent || return 1
	need_pod || return 1
	log "apt install $previous_version"
	if in_ct apt-get install -y -q /packages/flatnet-previous.deb >"$workdir/install-previous.log" 2>&1; then
		pass "apt install $previous_version"
	else
		cat "$workdir/install-previous.log"
		fail "apt install $previous_version"
		return 1
	fi
	if wait_for 10 is_active; then
		pass "service active after installing $previous_version"
	else
		fail "service active after installing $previous_version" "$(in_ct systemctl is-active flatnet.service)"
		debug_dump
	fi
	if wait_for 10 has_route 192.168.1.2 eno1.host; then
		pass "pod route with $previous_version: $(in_ct ip route show proto flatnet | grep '^192.168.1.2 ')"
	else
		fail "pod route with $previous_version" "$(in_ct ip route show proto flatnet | tr '\n' ';')"
	fi
	local mac_before pid_before monitor_ok='' deleted
	mac_before=$(shim_mac)

	log "upgrade $previous_version -> $version"
	# The monitor returns only once it has printed a marker route of its own.
	if in_ct systemd-run --quiet --unit=flatnet-test-upgrade-monitor -p Type=forking \
		/usr/local/sbin/flatnet-test-monitor /run/flatnet-test-upgrade.log; then
		monitor_ok=1
		pass "route monitor running, proven by a marker route, before the upgrade"
	else
		fail "route monitor running, proven by a marker route, before the upgrade"
		in_ct journalctl -u flatnet-test-upgrade-monitor --no-pager -o cat || :
	fi
	pid_before=$(prop MainPID)
	if in_ct apt-get install -y -q /packages/flatnet.deb >"$workdir/upgrade.log" 2>&1 &&
		[[ $(pkg_version) == "$version" ]]; then
		pass "apt install $version (upgrade from $previous_version)"
	else
		cat "$workdir/upgrade.log"
		fail "apt install $version (upgrade from $previous_version)"
	fi
	if wait_for 10 new_main_pid "$pid_before"; then
		pass "service restarted by the upgrade (MainPID $pid_before -> $(prop MainPID))"
	else
		fail "service restarted by the upgrade" "$(prop ActiveState), MainPID $pid_before -> $(prop MainPID)"
	fi
	# Running means READY, which the new daemon sends after its first pass:
	# the route must be there now, and must never have gone. A second
	# marker proves the monitor printed everything up to now.
	if has_route 192.168.1.2 eno1.host; then
		pass "route present after the upgrade"
	else
		fail "route present after the upgrade"
	fi
	if [[ -n $monitor_ok ]] && ! in_ct /usr/local/sbin/flatnet-test-monitor --mark /run/flatnet-test-upgrade.log; then
		monitor_ok=
	fi
	in_ct systemctl stop flatnet-test-upgrade-monitor.service || :
	deleted=$(in_ct cat /run/flatnet-test-upgrade.log | grep -E '\] Deleted .* proto (flatnet|97)( |$)') || :
	if [[ -z $monitor_ok ]]; then
		fail "no flatnet route deleted during the upgrade" "no proven monitor watched it to the end"
	elif [[ -z $deleted ]]; then
		pass "no flatnet route deleted during the upgrade ($(in_ct grep -c . /run/flatnet-test-upgrade.log) monitor lines, up to a marker after READY)"
	else
		fail "no flatnet route deleted during the upgrade" "$deleted"
	fi
	if [[ -n $mac_before && $(shim_mac) == "$mac_before" ]]; then
		pass "shim MAC unchanged by the upgrade ($mac_before)"
	else
		fail "shim MAC unchanged by the upgrade" "$mac_before -> $(shim_mac)"
	fi
}

# ---------------------------------------------------------- runtime sockets

# A root process that can connect() to a container runtime's socket, to
# systemd's private one or to the D-Bus system bus is root on the node; the
# unit gives flatnet a /run of its own holding only the journal's and the
# notify socket (docs/systemd.md). Stand-ins listen where the runtimes do,
# started after flatnet as at boot (After=flatnet.service; enabled, so a
# reboot has them too). A probe with flatnet's capabilities (setpriv: only
# CAP_NET_ADMIN; with more, /proc/1/root would lead around the private
# /run) in the service's mount namespace (nsenter -t MainPID -m) must reach
# none of them, and must reach the journal's and the notify socket; the
# same probe in the container's own namespace must reach them all, so the
# stand-ins do listen and the probe does connect.
unreachable=()
for s in "${RUNTIME_SOCKETS[@]}"; do
	unreachable+=("stream:$s")
done
unreachable+=(stream:/var/run/docker.sock stream:/run/systemd/private stream:/run/dbus/system_bus_socket)
via_pid1=stream:/proc/1/root/run/containerd/containerd.sock
needed=(dgram:/run/systemd/journal/socket dgram:/run/systemd/notify)

# socket_probe PID TYPE:PATH...: flatnet-test-connect in the mount namespace
# of PID (a PID of the container's), with flatnet's capabilities.
socket_probe() {
	local pid=$1
	shift
	in_ct nsenter -t "$pid" -m setpriv --bounding-set=-all,+net_admin --inh-caps=-all \
		/usr/local/sbin/flatnet-test-connect "$@" 2>&1
}
# probe_result PATH OUTPUT: what the probe said of PATH.
probe_result() { awk -v p="$1: " 'index($0, p) == 1 { print substr($0, length(p) + 1); exit }' <<<"$2"; }
# check_sockets WHAT: the probe in flatnet's namespace, its control, and
# the sockets flatnet's /run holds.
check_sockets() {
	local what=$1 pid out control r p errors bad=() missed=()
	pid=$(prop MainPID)
	out=$(socket_probe "$pid" "${unreachable[@]}" "$via_pid1" "${needed[@]}")
	for p in "${unreachable[@]}" "$via_pid1"; do
		r=$(probe_result "${p#*:}" "$out")
		if [[ -z $r || $r == connected ]]; then
			bad+=("${p#*:}: ${r:-no answer}")
		fi
	done
	for p in "${needed[@]}"; do
		r=$(probe_result "${p#*:}" "$out")
		[[ $r == connected ]] || bad+=("${p#*:}: ${r:-no answer}")
	done
	if ((${#bad[@]} == 0)); then
		errors=$(for p in "${unreachable[@]}" "$via_pid1"; do probe_result "${p#*:}" "$out"; done |
			sort | uniq -c | awk '{ n = $1; $1 = ""; printf "%s%d x%s", (NR > 1 ? ", " : ""), n, $0 }')
		pass "$what: flatnet (MainPID $pid, CAP_NET_ADMIN only) cannot connect() to the $((${#unreachable[@]} + 1)) runtime, systemd-private and system-bus paths ($errors) and reaches the journal's and the notify socket"
	else
		fail "$what: flatnet cannot connect() to a runtime's, systemd's private or the system bus's socket, and reaches the journal's and the notify socket" \
			"$(printf '%s; ' "${bad[@]}")"
	fi
	control=$(socket_probe 1 "${unreachable[@]}")
	for p in "${unreachable[@]}"; do
		r=$(probe_result "${p#*:}" "$control")
		[[ $r == connected ]] || missed+=("${p#*:}: ${r:-no answer}")
	done
	if ((${#missed[@]} == 0)); then
		pass "$what, control: the same probe in the container's own namespace connects to all ${#unreachable[@]}"
	else
		fail "$what, control: the same probe in the container's own namespace connects to all ${#unreachable[@]}" \
			"$(printf '%s; ' "${missed[@]}")"
	fi
	# test -S, not find -type s: for a bind-mount point find trusts the type
	# readdir gives, the empty file systemd made under the socket.
	r=$(in_ct nsenter -t "$pid" -m find /run -exec test -S {} \; -print 2>&1 | sort | paste -sd ' ' -)
	if [[ $r == "/run/systemd/journal/socket /run/systemd/notify" ]]; then
		pass "$what: the only sockets in flatnet's /run are $r"
	else
		fail "$what: the only sockets in flatnet's /run are the journal's and the notify socket" "$r"
	fi
	# /run/netns: a pod's namespace file made after flatnet started is seen
	# (the stale-attachment check of docs/discovery.md), and goes with it.
	in_ct sh -c ': >/run/netns/flatnet-test-pod'
	if in_ct nsenter -t "$pid" -m test -e /run/netns/flatnet-test-pod; then
		in_ct rm -f /run/netns/flatnet-test-pod
		if ! in_ct nsenter -t "$pid" -m test -e /run/netns/flatnet-test-pod; then
			pass "$what: flatnet sees pods' namespace files come and go in /run/netns"
		else
			fail "$what: flatnet sees pods' namespace files come and go in /run/netns" "still there after rm"
		fi
	else
		in_ct rm -f /run/netns/flatnet-test-pod
		fail "$what: flatnet sees pods' namespace files come and go in /run/netns" "not there"
	fi
}

# native_entries PID: how many entries PID sent to the journal's native socket.
native_entries() { in_ct journalctl --no-pager -o cat "_PID=$1" _TRANSPORT=journal | grep -c .; }
scenario_sockets() {
	need_installed || return 1
	if need_runtimes; then
		pass "stand-in runtimes listen at ${RUNTIME_SOCKETS[*]}"
	else
		fail "stand-in runtimes listen" "$(in_ct systemctl status flatnet-test-runtimes.service --no-pager 2>&1 | tail -n 3 | tr '\n' ';')"
	fi
	check_sockets "runtimes started after flatnet"

	# Sockets there before flatnet starts: a restart, which must still reach
	# READY, log through the journal's native socket (not its stderr fallback)
	# and write its RuntimeDirectory.
	log "restart flatnet with the runtimes' sockets in place"
	local pid_before main_pid native on_stderr loaded r
	pid_before=$(prop MainPID)
	in_ct systemctl restart flatnet.service || :
	if wait_for 10 new_main_pid "$pid_before"; then
		pass "restart with the runtimes' sockets in place: READY (MainPID $pid_before -> $(prop MainPID))"
	else
		fail "restart with the runtimes' sockets in place: READY" "$(prop ActiveState)/$(prop SubState)"
		debug_dump
	fi
	main_pid=$(prop MainPID)
	# READY comes after the first pass, which logs; journalctl --sync
	# returns once the journal holds all that was sent before it.
	in_ct journalctl --sync
	native=$(native_entries "$main_pid") || :
	on_stderr=$(in_ct journalctl --no-pager -o cat "_PID=$main_pid" _TRANSPORT=stdout | grep -c .) || :
	if ((native > 0 && on_stderr == 0)); then
		pass "journal: $native entries of MainPID $main_pid through the native socket, none through the stderr fallback"
	else
		fail "journal: entries through the native socket, none through the stderr fallback" "native $native, stderr $on_stderr"
	fi
	if loaded=$(in_ct cat /run/flatnet/config 2>&1) && grep -Eq '^[0-9a-f]+ /etc/flatnet/flatnet\.toml$' <<<"$loaded" &&
		[[ $(in_ct stat -c %Y /run/flatnet/config) -ge $(in_ct date -d "$(prop ExecMainStartTimestamp)" +%s) ]]; then
		pass "RuntimeDirectory: /run/flatnet/config written by the restarted flatnet ($loaded)"
	else
		fail "RuntimeDirectory: /run/flatnet/config written by the restarted flatnet" "$loaded"
	fi
	check_sockets "flatnet restarted with the runtimes' sockets in place"

	# /run/netns, bound read-only (check_sockets sees its files come and
	# go): flatnet cannot write there. (Until the node's first `ip netns
	# add`, which binds /run/netns onto itself: that new mount reaches
	# flatnet's namespace writable.)
	r=$(in_ct nsenter -t "$main_pid" -m sh -c 'touch /run/netns/flatnet-test-probe 2>&1; :')
	if [[ $r == *"Read-only file system"* ]]; then
		pass "/run/netns in flatnet's namespace: read-only ($r)"
	else
		fail "/run/netns in flatnet's namespace: read-only" "touch said '$r'"
	fi
}

# ------------------------------------------------------------ journal fields

# journal: entries of this package's daemon (its main PID) carry the
# fields README lists: a route added for a new pod, the shim created
# again after it was deleted by hand.
shim_back() { has_shim && has_route 192.168.1.2 eno1.host && has_route 192.168.1.3 eno1.host; }
scenario_journal() {
	need_installed || return 1
	need_pod || return 1
	log "journal fields: pod 192.168.1.3 comes, the shim is deleted by hand"
	local main_pid mac_before
	main_pid=$(prop MainPID)
	mac_before=$(shim_mac)
	in_ct sh -c "printf '%s\r\neth0' $POD3_ID >/var/lib/cni/networks/default/192.168.1.3"
	if wait_for 10 has_route 192.168.1.3 eno1.host; then
		pass "new pod gets its route"
	else
		fail "new pod gets its route"
	fi
	wait_for 5 has_entry "$main_pid" 'route 192\.168\.1\.3/32 .*added' ||
		fail "flatnet logged the route for 192.168.1.3 within 5s"
	check_fields "the route added for 192.168.1.3" "$(entry_fields "$main_pid" 'route 192\.168\.1\.3/32 .*added')" \
		'IP=192\.168\.1\.3(/32)?' 'DEV=eno1\.host' 'NETWORK=default' "CONTAINER=$POD3_ID" 'IFNAME=eth0'

	in_ct ip link delete eno1.host
	if wait_for 10 shim_back; then
		pass "shim deleted by hand is back with its routes"
	else
		fail "shim deleted by hand is back with its routes" "$(in_ct ip route show proto flatnet | tr '\n' ';')"
	fi
	wait_for 5 has_entry "$main_pid" 'shim eno1\.host created' ||
		fail "flatnet logged the shim created again within 5s"
	check_fields "the shim created on eno1" "$(entry_fields "$main_pid" 'shim eno1\.host created')" \
		'DEV=eno1\.host' 'NETWORK=default' 'MASTER=eno1' "MAC=$(shim_mac)"
	if [[ -n $mac_before && $(shim_mac) == "$mac_before" ]]; then
		pass "re-created shim has the same MAC ($mac_before)"
	else
		fail "re-created shim has the same MAC" "$mac_before -> $(shim_mac)"
	fi

	in_ct rm /var/lib/cni/networks/default/192.168.1.3
	if wait_for 10 no_route 192.168.1.3 eno1.host; then
		pass "removed pod loses its route"
	else
		fail "removed pod loses its route"
	fi
}

# ---------------------------------------------------------- systemd-networkd

# networkd: the shipped 05-flatnet-shim.network keeps a broad
# systemd-networkd match (Name=e* also matches eno1.host) from
# configuring the shim.
# setup_of LINK: networkd's SETUP column for LINK.
setup_of() {
	in_ct networkctl list --no-pager --no-legend | awk -v l="$1" '$2 == l { print $5 }'
}
master_configured() { [[ $(setup_of eno1) == configured ]]; }
scenario_networkd() {
	need_installed || return 1
	need_pod || return 1
	log "systemd-networkd with a .network for Name=e*"
	in_ct sh -euc '
		printf "[Match]\nName=e*\n\n[Network]\nKeepConfiguration=yes\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n" \
			>/etc/systemd/network/10-test.network
		systemctl start systemd-networkd.service
	'
	# The master configured is the event: networkd has been through the
	# links by then, the shim among them.
	if wait_for 10 master_configured && [[ $(setup_of eno1.host) == unmanaged ]] &&
		! in_ct ip -4 addr show dev eno1.host | grep -q inet && has_route 192.168.1.2 eno1.host; then
		pass "systemd-networkd leaves the shim unmanaged (master eno1 $(setup_of eno1))"
	else
		fail "systemd-networkd leaves the shim unmanaged" "shim $(setup_of eno1.host), master $(setup_of eno1)"
		in_ct networkctl list --no-pager || :
		in_ct journalctl -u systemd-networkd.service --no-pager -o cat -n 10 || :
	fi
	in_ct systemctl stop systemd-networkd.service systemd-networkd.socket || :
	in_ct rm -f /etc/systemd/network/10-test.network
}

# -------------------------------------------------------------------- reload

# reload: systemd logs every notification it receives at debug level: the
# journal shows RELOADING=1 and then READY=1, which a daemon that ignores
# the reload, or never says it is done, cannot fake.
scenario_reload() {
	need_installed || return 1
	need_pod || return 1
	in_ct systemctl log-level debug
	in_ct cp /etc/flatnet/flatnet.toml /root/flatnet.toml.orig

	log "systemctl reload flatnet"
	local pid_before c
	pid_before=$(prop MainPID)
	c=$(cursor)
	in_ct systemctl reload flatnet.service || :
	if wait_for 10 reload_bracketed "$pid_before" "$c" && is_running && [[ $(prop MainPID) == "$pid_before" ]]; then
		pass "reload: RELOADING=1 then READY=1, active/running again, same MainPID"
	else
		fail "reload: RELOADING=1 then READY=1, active/running again" \
			"$(prop ActiveState)/$(prop SubState); notifications: $(notifications "$pid_before" "$c" | tr '\n' ';')"
	fi

	log "reload with a broken /etc/flatnet/flatnet.toml"
	in_ct sh -c 'printf "resync_interval = \"soon\"\n" >>/etc/flatnet/flatnet.toml'
	c=$(cursor)
	in_ct systemctl reload flatnet.service || :
	if wait_for 10 reload_bracketed "$pid_before" "$c" && is_running && [[ $(prop MainPID) == "$pid_before" ]]; then
		pass "refused reload: RELOADING=1 then READY=1, the daemon keeps running (same MainPID)"
	else
		fail "refused reload: RELOADING=1 then READY=1, the daemon keeps running" \
			"$(prop ActiveState)/$(prop SubState), MainPID $pid_before -> $(prop MainPID); notifications: $(notifications "$pid_before" "$c" | tr '\n' ';')"
	fi
	# `journalctl -u flatnet` shows MESSAGE only: the reason must be in it.
	if wait_for 5 journal_after "$c" resync_interval; then
		pass "bad config logged: $(journal --after-cursor="$c" | grep resync_interval | head -n 1)"
	else
		fail "bad config logged naming resync_interval"
		journal --after-cursor="$c" || :
	fi
	if has_route 192.168.1.2 eno1.host; then
		pass "route kept after the refused reload"
	else
		fail "route kept after the refused reload"
	fi
	in_ct cp /root/flatnet.toml.orig /etc/flatnet/flatnet.toml
	c=$(cursor)
	in_ct systemctl reload flatnet.service || :
	if wait_for 10 reload_bracketed "$pid_before" "$c" && is_running; then
		pass "reload with the fixed config"
	else
		fail "reload with the fixed config" "$(prop ActiveState)/$(prop SubState)"
	fi
	in_ct systemctl log-level info
}

# ------------------------------------------------------------------ restarts

# crash: Restart=on-failure: a crash and a kill restart the daemon, and the
# routes stay (the process just dies; nothing removes them).
scenario_crash() {
	need_installed || return 1
	need_pod || return 1
	local restart_sec sig pid_before n_before why
	restart_sec=$(prop RestartUSec)
	for sig in SEGV KILL; do
		log "kill -$sig the main process"
		pid_before=$(prop MainPID)
		n_before=$(prop NRestarts)
		in_ct kill "-$sig" "$pid_before"
		if wait_for 20 new_main_pid "$pid_before"; then
			pass "kill -$sig: restarted after RestartSec=$restart_sec (MainPID $pid_before -> $(prop MainPID), NRestarts $n_before -> $(prop NRestarts))"
		else
			why="$(prop ActiveState)/$(prop SubState), Result=$(prop Result), ExecMainCode=$(prop ExecMainCode), ExecMainStatus=$(prop ExecMainStatus)"
			if [[ $(prop ExecMainStatus) == 2 ]]; then
				why+="; the Go runtime exits 2 on a fatal signal or a panic unless GOTRACEBACK=crash, and RestartPreventExitStatus=2 forbids that restart"
			fi
			fail "kill -$sig: restarted" "$why"
			in_ct systemctl reset-failed flatnet.service || :
			in_ct systemctl start flatnet.service || :
		fi
		if has_route 192.168.1.2 eno1.host; then
			pass "kill -$sig: route still present"
		else
			fail "kill -$sig: route still present"
		fi
	done
}

# invalid-config: RestartPreventExitStatus=2: an invalid configuration at
# start exits 2 and is not restarted. No window is needed to see that:
# systemd decides at the exit whether to restart, and a restart it decided
# on shows at once as SubState auto-restart (ActiveState activating) with
# its job to come; failed/failed with no job queued is the decision not to.
failed_exit2() { [[ $(prop ActiveState) == failed && $(prop ExecMainStatus) == 2 ]]; }
scenario_invalid_config() {
	need_installed || return 1
	need_pod || return 1
	log "restart with an invalid configuration"
	local c
	in_ct cp /etc/flatnet/flatnet.toml /root/flatnet.toml.orig
	in_ct sh -c 'printf "bogus_key = 1\n" >>/etc/flatnet/flatnet.toml'
	c=$(cursor)
	in_ct systemctl restart flatnet.service 2>/dev/null || :
	# systemctl restart zeroes NRestarts: any automatic restart shows as one.
	if wait_for 10 failed_exit2; then
		if [[ $(prop SubState) == failed && $(prop Result) == exit-code && $(prop NRestarts) == 0 &&
			-z $(in_ct systemctl list-jobs --no-legend flatnet.service) ]]; then
			pass "invalid config at start: exit status 2, failed, not restarted (SubState failed, not auto-restart; no job queued; NRestarts 0)"
		else
			fail "invalid config at start: not restarted" \
				"$(prop ActiveState)/$(prop SubState), Result=$(prop Result), ExecMainStatus=$(prop ExecMainStatus), NRestarts=$(prop NRestarts), jobs: $(in_ct systemctl list-jobs --no-legend | tr '\n' ';')"
		fi
	else
		fail "invalid config at start: exit status 2, failed" \
			"$(prop ActiveState)/$(prop SubState), ExecMainStatus=$(prop ExecMainStatus), NRestarts $(prop NRestarts)"
	fi
	if journal_after "$c" bogus_key; then
		pass "invalid config at start logged: $(journal --after-cursor="$c" | grep bogus_key | head -n 1)"
	else
		fail "invalid config at start logged naming bogus_key"
	fi
	in_ct cp /root/flatnet.toml.orig /etc/flatnet/flatnet.toml
	in_ct systemctl reset-failed flatnet.service || :
	in_ct systemctl start flatnet.service || :
	if wait_for 10 is_running && wait_for 10 has_route 192.168.1.2 eno1.host; then
		pass "starts again with the config restored"
	else
		fail "starts again with the config restored" "$(prop ActiveState)/$(prop SubState)"
		debug_dump
	fi
}

# -------------------------------------------------------------------- reboot

# reboot: a stand-in for kubeadm's kubelet.service (Wants= and After=
# network-online.target, WantedBy=multi-user.target) that writes down what
# it finds as it starts, and a route monitor that starts before flatnet and
# proves itself; power off, and boot the same root in a fresh network
# namespace (links and routes wiped, as a reboot does; eno1 there as a NIC
# would be, and nothing else; no command is run before the checks): the
# shim and the route come back by themselves before the kubelet starts.

# usec_prop UNIT INTERFACE PROPERTY: a timestamp property, microseconds.
usec_prop() {
	in_ct busctl get-property org.freedesktop.systemd1 \
		"/org/freedesktop/systemd1/unit/$(sed 's/\./_2e/g; s/-/_2d/g' <<<"$1")" \
		"org.freedesktop.systemd1.$2" "$3" | awk '{ print $2 }'
}
# monitor_usec ERE: when the boot monitor first printed a line matching ERE.
monitor_usec() {
	local line ts
	line=$(in_ct cat /run/flatnet-test-boot.log 2>/dev/null | grep -E -m 1 "$1") || return 1
	ts=${line#[}
	ts=${ts%%]*}
	printf '%s%s\n' "$(in_ct date -d "${ts%.*}" +%s)" "${ts##*.}"
}
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

kubelet_done() { [[ $(in_ct systemctl show -P ActiveState kubelet.service) == active ]]; }
# pinged MONOTONIC: systemd's last watchdog ping is after MONOTONIC (us).
pinged() { (($(prop WatchdogTimestampMonotonic) > $1)); }
scenario_reboot() {
	need_installed || return 1
	need_pod || return 1
	need_runtimes || setup_failed "stand-in runtimes listen" || return 1
	local mac_before
	mac_before=$(shim_mac)
	log "stand-in kubelet.service, boot-time route monitor"
	in_ct sh -euc '
		cat >/etc/systemd/system/kubelet.service <<EOF
[Unit]
Description=stand-in for the kubelet.service of kubeadm (flatnet package test)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c "ip -d link show eno1.host >/run/kubelet-saw.link 2>&1; ip route show proto 97 >/run/kubelet-saw.routes 2>&1"

[Install]
WantedBy=multi-user.target
EOF
		cat >/etc/systemd/system/flatnet-test-boot-monitor.service <<EOF
[Unit]
Description=route and link monitor from early boot (flatnet package test)
DefaultDependencies=no
Before=flatnet.service

[Service]
Type=forking
ExecStart=/usr/local/sbin/flatnet-test-monitor /run/flatnet-test-boot.log

[Install]
WantedBy=sysinit.target
EOF
		systemctl daemon-reload
		systemctl enable --quiet kubelet.service flatnet-test-boot-monitor.service
	'
	power_off
	boot

	if wait_for 10 has_shim && wait_for 10 has_route 192.168.1.2 eno1.host; then
		pass "after the reboot: shim and route back with no action ($(in_ct ip route show proto flatnet | grep '^192.168.1.2 '))"
	else
		fail "after the reboot: shim and route back with no action" "$(in_ct ip route show proto flatnet | tr '\n' ';')"
		debug_dump
	fi
	if [[ -n $mac_before && $(shim_mac) == "$mac_before" ]]; then
		pass "after the reboot: the shim has the same MAC ($mac_before)"
	else
		fail "after the reboot: the shim has the same MAC" "$mac_before -> $(shim_mac)"
	fi

	local saw_link='' saw_routes='' exec_us ready_us kubelet_us shim_us route_us timing runtimes_us
	if wait_for 30 kubelet_done; then
		saw_link=$(in_ct cat /run/kubelet-saw.link 2>/dev/null) || :
		saw_routes=$(in_ct cat /run/kubelet-saw.routes 2>/dev/null) || :
	fi
	if grep -q 'macvlan mode bridge' <<<"$saw_link" && grep -q '^192.168.1.2 dev eno1.host ' <<<"$saw_routes"; then
		pass "kubelet.service (After=network-online.target) found the shim and the route as it started"
	else
		fail "kubelet.service (After=network-online.target) found the shim and the route as it started" \
			"kubelet $(in_ct systemctl show -P ActiveState kubelet.service); link: $(head -n 1 <<<"$saw_link"); routes: $(tr '\n' ';' <<<"$saw_routes")"
	fi

	# How long after flatnet's exec the shim and the route were there: exec and
	# READY from systemd (microseconds, wall clock), the shim and the route from
	# the monitor that started before flatnet (ip -ts, the same clock).
	exec_us=$(usec_prop flatnet.service Service ExecMainStartTimestamp)
	ready_us=$(usec_prop flatnet.service Unit ActiveEnterTimestamp)
	kubelet_us=$(usec_prop kubelet.service Service ExecMainStartTimestamp)
	shim_us=$(monitor_usec '\] [0-9]+: eno1\.host@eno1: ') || :
	route_us=$(monitor_usec '\] 192\.168\.1\.2 dev eno1\.host .*proto (flatnet|97)') || :
	if [[ -n $exec_us && -n $shim_us && -n $route_us && -n $ready_us && -n $kubelet_us ]]; then
		timing="exec -> shim $(ms "$exec_us" "$shim_us") ms, -> route $(ms "$exec_us" "$route_us") ms, -> READY $(ms "$exec_us" "$ready_us") ms, -> kubelet exec $(ms "$exec_us" "$kubelet_us") ms"
		log "boot timing: $timing"
		if ((route_us <= kubelet_us)); then
			pass "boot: the route was in place $(ms "$route_us" "$kubelet_us") ms before the kubelet started ($timing)"
		else
			fail "boot: the route was in place before the kubelet started" "$timing"
		fi
	else
		fail "boot timing measured" "exec '$exec_us' shim '$shim_us' route '$route_us' READY '$ready_us' kubelet '$kubelet_us'"
		in_ct head -n 20 /run/flatnet-test-boot.log || :
	fi

	# The watchdog: a daemon that never pinged would be killed WatchdogSec
	# after it started. The event is the ping: systemd's WatchdogTimestamp
	# moves past READY (the loop pings every WatchdogSec/2), with the same
	# main process, no restart and no watchdog timeout; within WatchdogSec.
	local pid ready_mono ping_mono='' gap=''
	pid=$(prop MainPID)
	ready_mono=$(prop ActiveEnterTimestampMonotonic)
	log "waiting for a watchdog ping after READY"
	if wait_for 35 pinged "$ready_mono"; then
		ping_mono=$(prop WatchdogTimestampMonotonic)
		gap=$(ms "$ready_mono" "$ping_mono")
	fi
	in_ct journalctl --sync
	if [[ -n $ping_mono ]] && awk -v g="$gap" 'BEGIN { exit !(g <= 30000) }' && is_running &&
		[[ $(prop MainPID) == "$pid" && $(prop NRestarts) == 0 ]] && ! journal | grep -qi 'watchdog timeout'; then
		pass "watchdog: a ping $gap ms after READY (WatchdogSec=30s), same MainPID, no restart, no watchdog timeout"
	else
		fail "watchdog: a ping within WatchdogSec of READY" \
			"ping ${gap:-none} ms after READY; $(prop ActiveState), MainPID $pid -> $(prop MainPID), NRestarts=$(prop NRestarts)"
		debug_dump
	fi

	# At boot the runtimes start after flatnet (After=flatnet.service here):
	# their sockets must be out of reach all the same.
	runtimes_us=$(usec_prop flatnet-test-runtimes.service Service ExecMainStartTimestamp)
	if [[ -n $runtimes_us && -n $ready_us ]] && ((runtimes_us >= ready_us)) && wait_for 10 runtimes_listen; then
		pass "boot $boots: stand-in runtimes listening, started $(ms "$ready_us" "$runtimes_us") ms after flatnet was READY"
	else
		fail "boot $boots: stand-in runtimes listening, started after flatnet was READY" \
			"READY '$ready_us', runtimes '$runtimes_us'; $(in_ct systemctl is-active flatnet-test-runtimes.service 2>&1)"
	fi
	check_sockets "boot $boots, runtimes started after flatnet at boot"
}

# ---------------------------------------------------------- remove, reinstall

present() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }

# remove: apt remove (no purge) stops flatnet and removes what it made,
# keeps the conffile; installing again brings it all back.
scenario_remove() {
	need_installed || return 1
	need_pod || return 1
	# What there is to remove (the LAN guard's table or address depends on the
	# kernel and lan_guard): the checks after removal are not vacuous for these.
	log "before removal: shim $(present has_shim), route $(present has_route 192.168.1.2 eno1.host)," \
		"nft table netdev flatnet $(present in_ct nft list table netdev flatnet)," \
		"$SHIM_ADDR/32 $(present sh -c "nsenter -t $ct -a ip -4 -o addr show | grep -qF ' $SHIM_ADDR/32 '")"
	log "apt remove flatnet (no purge)"
	if in_ct apt-get remove -y -q flatnet >"$workdir/remove.log" 2>&1; then
		pass "apt remove"
	else
		cat "$workdir/remove.log"
		fail "apt remove"
	fi
	if stopped; then
		pass "remove: service stopped ($(in_ct systemctl is-active flatnet.service))"
	else
		fail "remove: service stopped" "$(in_ct systemctl is-active flatnet.service)"
	fi
	nothing_left "remove"
	if in_ct test -f /etc/flatnet/flatnet.toml && [[ $(pkg_status) == "rc " ]]; then
		pass "remove: the conffile /etc/flatnet/flatnet.toml stays (package state rc)"
	else
		fail "remove: the conffile /etc/flatnet/flatnet.toml stays" "$(in_ct ls -l /etc/flatnet 2>&1 | tr '\n' ' ')"
	fi

	log "apt install $version again"
	if in_ct apt-get install -y -q /packages/flatnet.deb >"$workdir/reinstall.log" 2>&1; then
		pass "reinstall after remove"
	else
		cat "$workdir/reinstall.log"
		fail "reinstall after remove"
	fi
	if wait_for 10 is_running && wait_for 10 has_route 192.168.1.2 eno1.host && is_enabled; then
		pass "reinstall: enabled, running, route back"
	else
		fail "reinstall: enabled, running, route back" "$(prop ActiveState), $(in_ct systemctl is-enabled flatnet.service 2>&1)"
		debug_dump
	fi
}

# ------------------------------------------------------------- chroot guard

# chroot-guard: the prerm removes routes only where systemd runs: in a
# chroot (an image build, a rescue system) the network namespace is the
# host's. Run it the way dpkg would in a chroot of this root: from the
# host, `chroot` into the container's files, in the container's network
# namespace (never the host's), where no systemd runs (/run/systemd/system
# is absent).
in_chroot() {
	nsenter --net="/run/netns/$ns" chroot "$root" env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
scenario_chroot_guard() {
	need_installed || return 1
	need_pod || return 1
	log "prerm remove in a chroot"
	in_ct systemctl stop flatnet.service # on_stop = keep: the shim and the route stay
	if ! has_shim || ! has_route 192.168.1.2 eno1.host; then
		fail "chroot guard: shim and route present before the test"
	elif in_chroot test -d /run/systemd/system; then
		fail "chroot guard: no systemd seen in the chroot" "/run/systemd/system exists there"
	else
		if in_chroot /bin/sh -e /var/lib/dpkg/info/flatnet.prerm remove >"$workdir/prerm-chroot.log" 2>&1 &&
			has_shim && has_route 192.168.1.2 eno1.host; then
			pass "chroot guard: prerm remove in a chroot exits 0 and leaves the shim and the route"
		else
			fail "chroot guard: prerm remove in a chroot leaves the shim and the route" \
				"$(cat "$workdir/prerm-chroot.log") $(in_ct ip route show proto flatnet | tr '\n' ';')"
		fi
		# The control: the same script without its guard, run the same way, does
		# remove them; so the check above cannot pass by accident.
		in_chroot sh -c "sed 's|\\[ -d /run/systemd/system \\]|true|g' /var/lib/dpkg/info/flatnet.prerm >/root/prerm-unguarded"
		in_chroot /bin/sh -e /root/prerm-unguarded remove >"$workdir/prerm-unguarded.log" 2>&1 || :
		in_chroot rm -f /root/prerm-unguarded
		if ! has_shim && no_route 192.168.1.2 eno1.host; then
			pass "chroot guard control: without the guard the same run removes the shim and the route"
		else
			fail "chroot guard control: without the guard the same run removes the shim and the route" \
				"so the chroot check proves nothing: $(cat "$workdir/prerm-unguarded.log")"
		fi
	fi
	in_ct systemctl start flatnet.service || :
	if wait_for 10 is_running && wait_for 10 has_route 192.168.1.2 eno1.host; then
		pass "flatnet running again after the chroot test"
	else
		fail "flatnet running again after the chroot test"
	fi
}

# ------------------------------------------------- purge with a broken config

# purge-broken-config: flatnet teardown, which the prerm runs, ignores an
# invalid configuration: the purge removes all the same.
scenario_purge_broken_config() {
	need_installed || return 1
	need_pod || return 1
	log "apt purge flatnet with a broken /etc/flatnet/flatnet.toml"
	in_ct sh -c 'printf "bogus_key = 1\n" >>/etc/flatnet/flatnet.toml'
	if in_ct apt-get purge -y -q flatnet >"$workdir/purge-broken.log" 2>&1; then
		pass "apt purge with a broken config"
	else
		cat "$workdir/purge-broken.log"
		fail "apt purge with a broken config"
	fi
	if stopped; then
		pass "purge with a broken config: service stopped ($(in_ct systemctl is-active flatnet.service))"
	else
		fail "purge with a broken config: service stopped" "$(in_ct systemctl is-active flatnet.service)"
	fi
	nothing_left "purge with a broken config (flatnet teardown must ignore the invalid file)"
}

# --------------------------------------------------------------------- purge

# purge: everything of the package goes, files included; the master stays.
scenario_purge() {
	need_installed || return 1
	need_pod || return 1
	log "apt purge flatnet"
	if in_ct apt-get purge -y -q flatnet >"$workdir/purge.log" 2>&1; then
		pass "apt purge"
	else
		cat "$workdir/purge.log"
		fail "apt purge"
	fi
	if stopped; then
		pass "purge: service stopped ($(in_ct systemctl is-active flatnet.service))"
	else
		fail "purge: service stopped" "$(in_ct systemctl is-active flatnet.service)"
	fi
	nothing_left "purge"
	local leftover
	# shellcheck disable=SC2016 # expanded by the container's shell
	leftover=$(in_ct sh -c 'for p in /etc/flatnet /usr/bin/flatnet /usr/lib/systemd/system/flatnet.service \
		/etc/systemd/system/multi-user.target.wants/flatnet.service /etc/systemd/system/flatnet.service \
		/etc/iproute2/rt_protos.d/flatnet.conf /usr/lib/modules-load.d/flatnet.conf /usr/lib/tmpfiles.d/flatnet.conf \
		/usr/lib/systemd/network/05-flatnet-shim.network /usr/lib/NetworkManager/conf.d/flatnet.conf \
		/usr/share/doc/flatnet /var/lib/systemd/deb-systemd-helper-enabled/flatnet.service.dsh-also \
		/var/lib/systemd/deb-systemd-helper-masked/flatnet.service; do
			[ -e "$p" ] || [ -L "$p" ] && echo "$p"; done; true')
	if [[ -z $leftover ]]; then
		pass "purge: no files left behind"
	else
		fail "purge: no files left behind" "$(tr '\n' ' ' <<<"$leftover")"
	fi
	if in_ct ip link show eno1 >/dev/null 2>&1; then
		pass "master eno1 untouched"
	else
		fail "master eno1 untouched"
	fi
}
