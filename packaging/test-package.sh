#!/usr/bin/env bash
# Package test: install the flatnet .deb into a minimal Debian bookworm booted
# with a real systemd in a container, as a new user would, and check the
# service, its journal, a pod route, reload, upgrade and purge.
#
# Usage: packaging/test-package.sh FLATNET.deb [UPGRADE.deb]
#
# UPGRADE.deb must carry a higher version; without it the script repacks
# FLATNET.deb with a higher version. Runs as root on a Debian host (it
# installs debootstrap and systemd-container when missing). The root file
# system is debootstrapped from the host's configured Debian mirror once and
# cached in ${XDG_CACHE_HOME:-$HOME/.cache}/flatnet/rootfs-bookworm; every
# boot runs on a throw-away overlay (--volatile=overlay), so the cache stays
# clean.
#
# Environment:
#   FLATNET_TEST_CACHE   cache directory (default above)
#   FLATNET_TEST_MIRROR  Debian mirror (default: from /etc/apt/sources.list*)
#   FLATNET_TEST_KEEP=1  leave the container running at the end, for debugging
#
# Prints PASS/FAIL per check and "N passed, N failed"; exits 1 on any failure.
set -euo pipefail

SUITE=bookworm
# procps: /bin/kill, which the unit's ExecReload runs (the package depends on it).
INCLUDE=systemd,systemd-sysv,dbus,iproute2,procps
# Bump when the root file system needs rebuilding for a new reason.
ROOTFS_STAMP="suite=$SUITE include=$INCLUDE variant=minbase v=1"
WATCHDOG_GRACE=35 # seconds of uptime after which a missed watchdog would show

t_start=$SECONDS
passed=0
failed=0
failures=()
nspawn_pid=
ct=
workdir=

log() { printf '%s\n' "== $*"; }
pass() {
	passed=$((passed + 1))
	printf 'PASS: %s\n' "$1"
}
fail() {
	failed=$((failed + 1))
	failures+=("$1")
	printf 'FAIL: %s%s\n' "$1" "${2:+ ($2)}"
}
die() {
	printf 'test-package: %s\n' "$*" >&2
	exit 1
}

cleanup() {
	local rc=$?
	set +e
	if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
		if [[ ${FLATNET_TEST_KEEP:-} == 1 ]]; then
			log "container left running: nsenter -t $ct -a bash   (stop: kill $nspawn_pid)"
		else
			# SIGTERM makes systemd-nspawn shut the container down cleanly.
			kill -TERM "$nspawn_pid"
			for _ in $(seq 1 100); do
				kill -0 "$nspawn_pid" 2>/dev/null || break
				sleep 0.1
			done
			if kill -0 "$nspawn_pid" 2>/dev/null; then
				kill -KILL "$nspawn_pid"
			fi
			wait "$nspawn_pid" 2>/dev/null
		fi
	fi
	if [[ -n $workdir && ${FLATNET_TEST_KEEP:-} != 1 ]]; then
		rm -rf "$workdir"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- arguments

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 FLATNET.deb [UPGRADE.deb]"
[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, systemd-nspawn, nsenter)"
deb=$(realpath "$1")
[[ -f $deb ]] || die "no such package: $1"
upgrade_deb=
if [[ $# -eq 2 ]]; then
	upgrade_deb=$(realpath "$2")
	[[ -f $upgrade_deb ]] || die "no such package: $2"
fi

cache=${FLATNET_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flatnet}
rootfs=$cache/rootfs-$SUITE
workdir=$(mktemp -d "${TMPDIR:-/tmp}/flatnet-test-package.XXXXXX")

# -------------------------------------------------------------- host tools

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v nsenter >/dev/null || need+=(util-linux)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if ((${#need[@]})); then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "${need[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; } ||
		die "cannot install ${need[*]}"
fi

# The host's Debian mirror for $SUITE, from deb822 .sources or one-line
# sources.list entries; deb.debian.org when none is found.
find_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		uri=$(awk -v suite="$SUITE" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "" && !found) {
					split(uris, u, " "); print u[1]; found = 1
				}
				types = suites = uris = ""
			}
			/^[ \t]*$/ { flush(); next }
			/^[Tt]ypes:/ { sub(/^[^:]*:[ \t]*/, ""); types = $0 }
			/^[Ss]uites:/ { sub(/^[^:]*:[ \t]*/, ""); suites = $0 }
			/^URIs:/ { sub(/^[^:]*:[ \t]*/, ""); uris = $0 }
			END { flush() }' "$f")
		if [[ $uri == http* ]]; then
			printf '%s\n' "$uri"
			return
		fi
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		uri=$(awk -v suite="$SUITE" '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == suite && $i ~ /^http/) { print $i; exit }
			}' "$f")
		if [[ -n $uri ]]; then
			printf '%s\n' "$uri"
			return
		fi
	done
	printf '%s\n' http://deb.debian.org/debian
}

# ------------------------------------------------------------- root file system

rootfs_ok() {
	[[ -f $rootfs/.flatnet-rootfs && $(cat "$rootfs/.flatnet-rootfs") == "$ROOTFS_STAMP" ]] &&
		[[ -x $rootfs/usr/lib/systemd/systemd && -x $rootfs/usr/bin/apt-get && -x $rootfs/usr/bin/ip ]] &&
		chroot "$rootfs" /bin/true 2>/dev/null
}

mkdir -p "$cache"
exec 9>"$cache/rootfs.lock"
flock 9
t_debootstrap=0
if rootfs_ok; then
	log "reusing root file system $rootfs"
else
	mirror=${FLATNET_TEST_MIRROR:-$(find_mirror)}
	if [[ -z ${http_proxy:-} ]] && command -v apt-config >/dev/null; then
		eval "$(apt-config shell http_proxy Acquire::http::Proxy)"
		[[ -n ${http_proxy:-} ]] && export http_proxy
	fi
	log "debootstrap $SUITE from $mirror into $rootfs"
	rm -rf "$rootfs" "$rootfs.tmp"
	t0=$SECONDS
	if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs.tmp" "$mirror" \
		>"$workdir/debootstrap.log" 2>&1; then
		tail -n 30 "$workdir/debootstrap.log" >&2
		rm -rf "$rootfs.tmp"
		die "debootstrap failed"
	fi
	chroot "$rootfs.tmp" apt-get clean
	# Quieter, faster boots: nothing in the test needs these.
	chroot "$rootfs.tmp" systemctl mask --quiet \
		console-getty.service getty@.service apt-daily.timer apt-daily-upgrade.timer \
		e2scrub_all.timer fstrim.timer 2>/dev/null || true
	printf '%s\n' "$ROOTFS_STAMP" >"$rootfs.tmp/.flatnet-rootfs"
	mv "$rootfs.tmp" "$rootfs"
	t_debootstrap=$((SECONDS - t0))
	log "debootstrap took ${t_debootstrap}s"
fi

# ------------------------------------------------------------------ packages

pkgdir=$workdir/packages
mkdir -p "$pkgdir"
cp "$deb" "$pkgdir/flatnet.deb"
version=$(dpkg-deb -f "$deb" Version)
if [[ -n $upgrade_deb ]]; then
	cp "$upgrade_deb" "$pkgdir/flatnet-upgrade.deb"
else
	# Same contents, higher version: enough to exercise the upgrade path.
	dpkg-deb -R "$deb" "$workdir/repack"
	sed -i "s/^Version: .*/Version: $version+upgrade1/" "$workdir/repack/DEBIAN/control"
	dpkg-deb --root-owner-group -b "$workdir/repack" "$pkgdir/flatnet-upgrade.deb" >/dev/null
fi
upgrade_version=$(dpkg-deb -f "$pkgdir/flatnet-upgrade.deb" Version)
dpkg --compare-versions "$upgrade_version" gt "$version" ||
	die "upgrade package $upgrade_version is not newer than $version"
log "packages: $version, upgrade to $upgrade_version"

# ---------------------------------------------------------------------- boot

nspawn=(systemd-nspawn --quiet --boot --register=no --keep-unit --volatile=overlay
	--private-network --console=passive --machine="flatnet-test-$$"
	-D "$rootfs" --bind-ro="$pkgdir:/packages")
if [[ -d /run/systemd/system ]] && command -v systemd-run >/dev/null; then
	# Under a systemd host, give the container a delegated scope of its own.
	nspawn=(systemd-run --quiet --scope --collect -p Delegate=yes
		--unit="flatnet-test-$$" "${nspawn[@]}")
fi

log "booting the container"
t0=$SECONDS
"${nspawn[@]}" >"$workdir/console.log" 2>&1 &
nspawn_pid=$!

# children PID: the processes whose parent is PID (from /proc, no procps).
children() {
	local stat rest
	for stat in /proc/[0-9]*/stat; do
		rest=$(cat "$stat" 2>/dev/null) || continue
		rest=${rest##*) }
		rest=${rest#* }
		if [[ ${rest%% *} == "$1" ]]; then
			stat=${stat#/proc/}
			printf '%s\n' "${stat%/stat}"
		fi
	done
}

# The container's PID 1 is the child of systemd-nspawn that runs systemd.
for _ in $(seq 1 200); do
	kill -0 "$nspawn_pid" 2>/dev/null || break
	for pid in $(children "$nspawn_pid"); do
		if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == systemd ]]; then
			ct=$pid
		fi
	done
	[[ -n $ct ]] && break
	sleep 0.05
done
if [[ -z $ct ]]; then
	cat "$workdir/console.log" >&2
	die "container did not start"
fi

# Run a command inside the container, with a clean environment.
in_ct() {
	nsenter -t "$ct" -a env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
		SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

state=$(in_ct timeout 60 systemctl is-system-running --wait 2>/dev/null || true)
t_boot=$((SECONDS - t0))
log "container PID 1 is $ct; boot reached '$state' in ${t_boot}s"
case $state in
running | degraded) pass "container booted ($state)" ;;
*)
	fail "container booted" "state '$state'"
	exit 1
	;;
esac

# ------------------------------------------------------------------- helpers

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}
prop() { in_ct systemctl show -P "$1" flatnet.service; }
is_active() { [[ $(in_ct systemctl is-active flatnet.service) == active ]]; }
has_route() { in_ct ip route show proto flatnet | grep -q "^$1 dev $2 "; }
no_route() { ! has_route "$@"; }
journal() { in_ct journalctl -u flatnet.service --no-pager -o cat "$@"; }
debug_dump() {
	in_ct systemctl status flatnet.service --no-pager -l || true
	in_ct journalctl -u flatnet.service --no-pager -n 40 || true
}

# ------------------------------------------------------------------- install

log "apt install ./$(basename "$deb")"
if in_ct apt-get install -y -q /packages/flatnet.deb >"$workdir/install.log" 2>&1; then
	pass "apt install $version"
else
	cat "$workdir/install.log"
	fail "apt install $version"
	exit 1
fi

if wait_for 10 is_active; then
	pass "service active after install"
else
	fail "service active after install" "$(in_ct systemctl is-active flatnet.service || true)"
	debug_dump
fi

if [[ $(in_ct systemctl is-enabled flatnet.service 2>/dev/null || true) == enabled ]]; then
	pass "service enabled"
else
	fail "service enabled"
fi

# Type=notify: active means READY=1 arrived.
if [[ $(prop Type) == notify && $(prop ActiveState) == active && $(prop SubState) == running ]]; then
	pass "READY reached (Type=notify, active/running)"
else
	fail "READY reached" "$(prop ActiveState)/$(prop SubState)"
fi

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

security=$(in_ct systemd-analyze security --no-pager flatnet.service 2>/dev/null | sed -n 's/.*Overall exposure level for flatnet.service: \([0-9.]*\).*/\1/p')
if [[ -n $security ]] && awk -v e="$security" 'BEGIN { exit !(e <= 2.0) }'; then
	pass "systemd-analyze security exposure $security (at most 2.0)"
else
	fail "systemd-analyze security exposure at most 2.0" "${security:-no figure}"
fi

if verify=$(in_ct systemd-analyze verify --man=no flatnet.service 2>&1) && [[ -z $verify ]]; then
	pass "systemd-analyze verify clean"
else
	fail "systemd-analyze verify clean" "$verify"
fi

# ------------------------------------------------------------------ a pod

log "master eno1, CNI network 'default', pod 192.168.1.2"
in_ct sh -euc '
	ip link add eno1 type veth peer name peer
	ip addr add 192.168.0.5/16 dev eno1
	ip link set peer up
	ip link set eno1 up
	mkdir -p /etc/cni/net.d /var/lib/cni/networks/default
	cat >/etc/cni/net.d/10-default.conflist <<EOF
{
  "cniVersion": "1.0.0",
  "name": "default",
  "plugins": [
    {
      "type": "macvlan",
      "master": "eno1",
      "mode": "bridge",
      "ipam": {
        "type": "host-local",
        "ranges": [[{
          "subnet": "192.168.0.0/16",
          "rangeStart": "192.168.1.2",
          "rangeEnd": "192.168.1.254",
          "gateway": "192.168.0.1"
        }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    }
  ]
}
EOF
	printf "7bd849c5e5a0f0b3c6e2d1a4f8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7\r\neth0" \
		>/var/lib/cni/networks/default/192.168.1.2
'

if wait_for 10 has_route 192.168.1.2 eno1.host; then
	pass "pod route: $(in_ct ip route show proto flatnet | grep '^192.168.1.2 ')"
else
	fail "pod route 192.168.1.2 dev eno1.host proto flatnet" "$(in_ct ip route show proto flatnet | tr '\n' ';')"
	debug_dump
fi

if in_ct ip -d link show eno1.host 2>/dev/null | grep -q 'macvlan mode bridge'; then
	pass "shim eno1.host is a bridge-mode macvlan"
else
	fail "shim eno1.host is a bridge-mode macvlan"
fi

# The change is logged once, with the address also as a structured field.
wait_for 5 sh -c "nsenter -t $ct -a journalctl -u flatnet.service -o cat --no-pager | grep -q 192.168.1.2" || true
fields=$(in_ct journalctl -u flatnet.service --no-pager -o export |
	awk 'BEGIN { RS = ""; FS = "\n" }
		/\nMESSAGE=[^\n]*192\.168\.1\.2/ {
			for (i = 1; i <= NF; i++)
				if ($i !~ /^(MESSAGE|_|__|SYSLOG_|CODE_|PRIORITY|INVOCATION_ID|TID)/ && $i ~ /=192\.168\.1\.2(\/32)?$/)
					print $i
		}' | head -n 1 || true)
if [[ -n $fields ]]; then
	pass "journal entry for the route with field $fields"
else
	fail "journal entry for the route with the address as a structured field"
	in_ct journalctl -u flatnet.service --no-pager -o verbose -n 5 || true
fi

status_text=$(prop StatusText)
printf '   status now: %s\n' "$status_text"

# The shipped 05-flatnet-shim.network keeps a broad systemd-networkd match
# (Name=e* also matches eno1.host) from configuring the shim.
log "systemd-networkd with a .network for Name=e*"
in_ct sh -euc '
	printf "[Match]\nName=e*\n\n[Network]\nKeepConfiguration=yes\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n" \
		>/etc/systemd/network/10-test.network
	systemctl start systemd-networkd.service
'
# setup_of LINK: networkd's SETUP column for LINK.
setup_of() {
	in_ct networkctl list --no-pager --no-legend | awk -v l="$1" '$2 == l { print $5 }'
}
master_configured() { [[ $(setup_of eno1) == configured ]]; }
wait_for 10 master_configured || true
if [[ $(setup_of eno1.host) == unmanaged ]] && master_configured &&
	! in_ct ip -4 addr show dev eno1.host | grep -q inet && has_route 192.168.1.2 eno1.host; then
	pass "systemd-networkd leaves the shim unmanaged (master eno1 $(setup_of eno1))"
else
	fail "systemd-networkd leaves the shim unmanaged" "shim $(setup_of eno1.host), master $(setup_of eno1)"
	in_ct networkctl list --no-pager || true
	in_ct journalctl -u systemd-networkd.service --no-pager -o cat -n 10 || true
fi
in_ct systemctl stop systemd-networkd.service systemd-networkd.socket || true
in_ct rm -f /etc/systemd/network/10-test.network

# ------------------------------------------------------------------- reload

log "reload with a broken /etc/flatnet/flatnet.toml"
pid_before=$(prop MainPID)
in_ct cp /etc/flatnet/flatnet.toml /root/flatnet.toml.orig
in_ct sh -c 'printf "resync_interval = \"soon\"\n" >>/etc/flatnet/flatnet.toml'
since=$(in_ct date +%s)
in_ct systemctl reload flatnet.service || true
sleep 1
if is_active && [[ $(prop MainPID) == "$pid_before" ]]; then
	pass "reload with a bad config keeps the daemon running"
else
	fail "reload with a bad config keeps the daemon running" "$(prop ActiveState), MainPID $pid_before -> $(prop MainPID)"
fi
# `journalctl -u flatnet` shows MESSAGE only: the reason must be in it.
if wait_for 5 sh -c "nsenter -t $ct -a journalctl -u flatnet.service --since=@$since -o cat --no-pager | grep -q resync_interval"; then
	pass "bad config logged: $(journal --since="@$since" | grep resync_interval | head -n 1)"
elif in_ct journalctl -u flatnet.service --since="@$since" -o verbose --no-pager | grep -q resync_interval; then
	fail "bad config logged naming resync_interval" \
		"only in a structured field; journalctl -u flatnet shows: $(journal --since="@$since" | grep -v -e '^Reload' | tail -n 1)"
else
	fail "bad config logged naming resync_interval"
	journal --since="@$since" || true
fi
if has_route 192.168.1.2 eno1.host; then
	pass "route kept after the refused reload"
else
	fail "route kept after the refused reload"
fi
in_ct cp /root/flatnet.toml.orig /etc/flatnet/flatnet.toml
in_ct systemctl reload flatnet.service || true
if wait_for 5 is_active; then
	pass "reload with the fixed config"
else
	fail "reload with the fixed config"
fi

# ------------------------------------------------------------------- upgrade

log "upgrade to $upgrade_version"
in_ct systemd-run --quiet --unit=flatnet-test-routes -p StandardOutput=file:/run/flatnet-test-routes.log \
	ip -o monitor route
sleep 0.3
pid_before=$(prop MainPID)
# shellcheck disable=SC2016 # ${Version} is dpkg-query's, not the shell's
if in_ct apt-get install -y -q /packages/flatnet-upgrade.deb >"$workdir/upgrade.log" 2>&1 &&
	[[ $(in_ct dpkg-query -W -f '${Version}' flatnet) == "$upgrade_version" ]]; then
	pass "apt install $upgrade_version (upgrade)"
else
	cat "$workdir/upgrade.log"
	fail "apt install $upgrade_version (upgrade)"
fi
if wait_for 10 is_active && [[ $(prop MainPID) != "$pid_before" ]]; then
	pass "service restarted by the upgrade (MainPID $pid_before -> $(prop MainPID))"
else
	fail "service restarted by the upgrade" "$(prop ActiveState), MainPID $pid_before -> $(prop MainPID)"
fi
sleep 1
in_ct systemctl stop flatnet-test-routes.service || true
if has_route 192.168.1.2 eno1.host; then
	pass "route present after the upgrade"
else
	fail "route present after the upgrade"
fi
deleted=$(in_ct cat /run/flatnet-test-routes.log | grep -E '^Deleted .* proto (flatnet|97)( |$)' || true)
if [[ -z $deleted ]]; then
	pass "no flatnet route deleted during the upgrade (ip monitor route)"
else
	fail "no flatnet route deleted during the upgrade" "$deleted"
fi

log "pod 192.168.1.3 comes and goes"
in_ct sh -c 'printf "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\neth0" \
	>/var/lib/cni/networks/default/192.168.1.3'
if wait_for 10 has_route 192.168.1.3 eno1.host; then
	pass "new pod gets its route"
else
	fail "new pod gets its route"
fi
in_ct rm /var/lib/cni/networks/default/192.168.1.3
if wait_for 10 no_route 192.168.1.3 eno1.host; then
	pass "removed pod loses its route"
else
	fail "removed pod loses its route"
fi

# A daemon that never pings would have been killed by the watchdog by now.
# Wall-clock time: the container's systemd and /proc/uptime need not share
# a clock (boot time counts suspended time, the monotonic clock does not).
up_since=$(date -d "$(prop ActiveEnterTimestamp)" +%s)
now=$(date +%s)
wait=$((WATCHDOG_GRACE - (now - up_since)))
if ((wait > 0)); then
	log "waiting ${wait}s to see the watchdog satisfied"
	sleep "$wait"
fi
if is_active && [[ $(prop NRestarts) == 0 ]] && ! journal | grep -qi 'watchdog timeout'; then
	pass "no watchdog timeout after ${WATCHDOG_GRACE}s (pings arrive)"
else
	fail "no watchdog timeout" "$(prop ActiveState), NRestarts=$(prop NRestarts)"
	debug_dump
fi

denied=$(in_ct journalctl -u flatnet.service --no-pager -o cat |
	grep -Ei 'read-only file system|permission denied|operation not permitted' || true)
if [[ -z $denied ]]; then
	pass "no sandbox denials in the journal"
else
	fail "no sandbox denials in the journal" "$(head -n 3 <<<"$denied" | tr '\n' ';')"
fi

# --------------------------------------------------------------------- purge

log "apt purge flatnet"
if in_ct apt-get purge -y -q flatnet >"$workdir/purge.log" 2>&1; then
	pass "apt purge"
else
	cat "$workdir/purge.log"
	fail "apt purge"
fi
state=$(in_ct systemctl is-active flatnet.service 2>/dev/null || true)
if [[ $state != active && $state != activating && $state != reloading ]]; then
	pass "service stopped ($state)"
else
	fail "service stopped" "$state"
fi
if ! in_ct ip link show eno1.host >/dev/null 2>&1; then
	pass "no shim left"
else
	fail "no shim left"
fi
left=$(in_ct ip route show proto 97)
if [[ -z $left ]]; then
	pass "no flatnet route left"
else
	fail "no flatnet route left" "$left"
fi
# shellcheck disable=SC2016 # expanded by the container's shell
leftover=$(in_ct sh -c 'for p in /etc/flatnet /usr/bin/flatnet /usr/lib/systemd/system/flatnet.service \
	/etc/systemd/system/multi-user.target.wants/flatnet.service /etc/systemd/system/flatnet.service \
	/etc/iproute2/rt_protos.d/flatnet.conf /usr/lib/modules-load.d/flatnet.conf \
	/usr/lib/systemd/network/05-flatnet-shim.network /usr/lib/NetworkManager/conf.d/flatnet.conf \
	/usr/share/doc/flatnet /var/lib/systemd/deb-systemd-helper-enabled/flatnet.service.dsh-also \
	/var/lib/systemd/deb-systemd-helper-masked/flatnet.service; do
		[ -e "$p" ] || [ -L "$p" ] && echo "$p"; done; true')
if [[ -z $leftover ]]; then
	pass "no files left behind"
else
	fail "no files left behind" "$(tr '\n' ' ' <<<"$leftover")"
fi
if in_ct ip link show eno1 >/dev/null 2>&1; then
	pass "master eno1 untouched"
else
	fail "master eno1 untouched"
fi

# ------------------------------------------------------------------- summary

t_total=$((SECONDS - t_start))
log "timings: debootstrap ${t_debootstrap}s (0 = cached), boot ${t_boot}s, whole run ${t_total}s"
if ((failed)); then
	printf 'failed checks:\n'
	printf '  %s\n' "${failures[@]}"
fi
printf '%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
