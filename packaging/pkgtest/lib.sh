# shellcheck shell=bash
# Checked alone, the variables test-package.sh sets and reads look unset
# and unused: shellcheck packaging/test-package.sh checks them together.
# shellcheck disable=SC2034,SC2154
# The package test's machinery, sourced by packaging/test-package.sh: the
# checks' bookkeeping, the cached root file system, the node's disk (an
# overlay of it), booting it under systemd-nspawn in a network namespace of
# its own, commands inside it, and the waits.

SUITE=bookworm
# procps: /bin/kill, which the unit's ExecReload runs (the package depends on it).
# nftables: nft, to see that removal leaves no table of flatnet's.
INCLUDE=systemd,systemd-sysv,dbus,iproute2,procps,nftables
# Bump when the root file system needs rebuilding for a new reason.
ROOTFS_STAMP="suite=$SUITE include=$INCLUDE variant=minbase v=2"
SHIM_ADDR=192.0.0.8 # the address flatnet gives each shim (IPv4 dummy address)
# A fixed machine id, as an installed node has: the shim's MAC derives from it.
MACHINE_ID=f1a7e7c0ffee4b1d8c6a5e0d2b9f3a71
NIC_MAC=52:54:00:f1:a7:05
POD_ID=7bd849c5e5a0f0b3c6e2d1a4f8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7
POD3_ID=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

passed=0
failed=0
skipped=0
failures=()
nspawn_pid=
ct=
ns=
root=
workdir=
boots=0
scenario=
declare -a t_boot

# ------------------------------------------------------------------- checks

log() { printf '%s\n' "== $*"; }
pass() {
	passed=$((passed + 1))
	printf 'PASS: %s\n' "$1"
}
fail() {
	failed=$((failed + 1))
	failures+=("${scenario:+$scenario: }$1")
	printf 'FAIL: %s%s\n' "$1" "${2:+ ($2)}"
}
skip() {
	skipped=$((skipped + 1))
	printf 'SKIP: %s%s\n' "$1" "${2:+ ($2)}"
}
die() {
	printf 'test-package: %s\n' "$*" >&2
	exit 1
}

# ci: whether this runs under CI, read by the rule the Go tests use
# (internal/dev/testenv.CI, through internal/dev/ci): unset, empty and the
# spellings of false mean no, anything else yes.
ci() {
	local v
	v=$(cd "$repo" && "${GO:-go}" run ./internal/dev/ci 2>/dev/null) || :
	case $v in
	yes) return 0 ;;
	no) return 1 ;;
	*) die "cannot tell whether CI=${CI:-} means CI: go run ./internal/dev/ci failed (GO=${GO:-go})" ;;
	esac
}
# skip_or_fail WHAT WHY: a check that cannot run here is skipped, and
# fails under CI.
skip_or_fail() {
	if ci; then
		fail "$1" "$2, and CI=${CI:-}"
	else
		skip "$1" "$2"
	fi
}

# ---------------------------------------------------------------- the host

stop_container() {
	[[ -n $nspawn_pid ]] || return 0
	if kill -0 "$nspawn_pid" 2>/dev/null; then
		# SIGTERM makes systemd-nspawn shut the container down cleanly.
		kill -TERM "$nspawn_pid" 2>/dev/null || :
		timeout 10 tail -s 0.1 --pid="$nspawn_pid" -f /dev/null || kill -KILL "$nspawn_pid" 2>/dev/null || :
	fi
	wait "$nspawn_pid" 2>/dev/null || :
	nspawn_pid=
	ct=
	return 0
}

delete_netns() {
	if [[ -n $ns ]]; then
		ip netns delete "$ns" 2>/dev/null || :
		ns=
	fi
	return 0
}

# cleanup_hooks: functions run at exit, before the container stops (the
# scenarios' own: piuparts, the RPM root).
cleanup_hooks=()
cleanup() {
	local rc=$? h
	set +e
	for h in "${cleanup_hooks[@]}"; do
		"$h"
	done
	if [[ ${FLATNET_TEST_KEEP:-} == 1 && -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
		log "container left running: nsenter -t $ct -a bash   (stop: kill $nspawn_pid; then umount $root; ip netns delete $ns)"
		exit "$rc"
	fi
	stop_container
	delete_netns
	if [[ -n $root ]] && mountpoint -q "$root"; then
		umount "$root" || umount -l "$root"
	fi
	if [[ -n $workdir ]]; then
		rm -rf "$workdir"
	fi
	exit "$rc"
}

need_host_tools() {
	local need=()
	command -v debootstrap >/dev/null || need+=(debootstrap)
	command -v systemd-nspawn >/dev/null || need+=(systemd-container)
	command -v nsenter >/dev/null || need+=(util-linux)
	command -v dpkg-deb >/dev/null || need+=(dpkg)
	command -v ip >/dev/null || need+=(iproute2)
	if ((${#need[@]})); then
		log "installing ${need[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q "${need[@]}" >/dev/null ||
			{ apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; } ||
			die "cannot install ${need[*]}"
	fi
}

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

# apt's proxy, for debootstrap and piuparts, when the caller set none.
use_apt_proxy() {
	if [[ -z ${http_proxy:-} ]] && command -v apt-config >/dev/null; then
		eval "$(apt-config shell http_proxy Acquire::http::Proxy)"
		if [[ -n ${http_proxy:-} ]]; then
			export http_proxy
		fi
	fi
	return 0
}

# ------------------------------------------------------------- root file system

rootfs_ok() {
	[[ -f $rootfs/.flatnet-rootfs && $(cat "$rootfs/.flatnet-rootfs") == "$ROOTFS_STAMP" ]] &&
		[[ -x $rootfs/usr/lib/systemd/systemd && -x $rootfs/usr/bin/apt-get && -x $rootfs/usr/bin/ip && -x $rootfs/usr/sbin/nft ]] &&
		chroot "$rootfs" /bin/true 2>/dev/null
}

# need_rootfs: the cached root file system, debootstrapped once. The lock
# is held until the test ends: every user of the cache reads it.
t_debootstrap=0
need_rootfs() {
	mkdir -p "$cache"
	exec 9>"$cache/rootfs.lock"
	flock 9
	if rootfs_ok; then
		log "reusing root file system $rootfs"
		return
	fi
	local mirror t0
	mirror=${FLATNET_TEST_MIRROR:-$(find_mirror)}
	use_apt_proxy
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
		e2scrub_all.timer fstrim.timer 2>/dev/null || :
	printf '%s\n' "$ROOTFS_STAMP" >"$rootfs.tmp/.flatnet-rootfs"
	mv "$rootfs.tmp" "$rootfs"
	t_debootstrap=$((SECONDS - t0))
	log "debootstrap took ${t_debootstrap}s"
}

# ---------------------------------------------------------- the node's disk

# need_disk: the node's root, an overlay of the cached root file system
# whose upper layer lives and dies with this test, shared by every boot;
# with the test's helper programs installed.
need_disk() {
	[[ -z $root ]] || return 0
	root=$workdir/root
	mkdir -p "$root" "$workdir/upper" "$workdir/overlay-work"
	mount -t overlay overlay \
		-o "lowerdir=$rootfs,upperdir=$workdir/upper,workdir=$workdir/overlay-work" "$root" ||
		die "cannot mount an overlay of $rootfs"
	printf '%s\n' "$MACHINE_ID" >"$root/etc/machine-id"
	install_helpers "$root"
}

# install_helpers ROOT: the programs the checks run inside the node.
install_helpers() {
	# flatnet-test-monitor LOG: `ip -ts -o monitor link route` into LOG, in
	# the background; returns only once the monitor printed a marker route
	# it added (TEST-NET-3 in table 4242, proto static: nothing flatnet
	# touches), so a change right after it returns cannot be missed. For
	# Type=forking units. flatnet-test-monitor --mark LOG: add another
	# marker and return once the running monitor printed it, so everything
	# before it is in LOG: what LOG lacks then did not happen.
	install -m 0755 /dev/stdin "$1/usr/local/sbin/flatnet-test-monitor" <<'SCRIPT'
#!/bin/sh
set -eu
mark_only=
if [ "$1" = --mark ]; then
	mark_only=1
	shift
fi
log=$1
if [ -z "$mark_only" ]; then
	: >"$log"
	ip -ts -o monitor link route >>"$log" 2>&1 </dev/null &
fi
marker=203.0.113.$(($$ % 250 + 1))
n=0
while ! grep -q "blackhole $marker table 4242 proto static" "$log"; do
	if [ $((n % 20)) -eq 0 ]; then
		ip route del blackhole "$marker/32" table 4242 proto static 2>/dev/null || :
		ip route add blackhole "$marker/32" table 4242 proto static
	fi
	n=$((n + 1))
	if [ "$n" -ge 200 ]; then
		echo "flatnet-test-monitor: ip monitor did not show the marker route $marker within 10s" >&2
		exit 1
	fi
	sleep 0.05
done
ip route del blackhole "$marker/32" table 4242 proto static
SCRIPT

	# flatnet-test-listen PATH...: a listening AF_UNIX stream socket at each
	# PATH (its directory made as needed), as a container runtime has, until
	# killed. perl-base is in every Debian root.
	install -m 0755 /dev/stdin "$1/usr/local/sbin/flatnet-test-listen" <<'SCRIPT'
#!/usr/bin/perl
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use Socket;
my @keep;
for my $path (@ARGV) {
	make_path(dirname($path));
	unlink $path;
	socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n";
	bind($s, pack_sockaddr_un($path)) or die "bind $path: $!\n";
	listen($s, 16) or die "listen $path: $!\n";
	push @keep, $s;
}
sleep;
SCRIPT

	# flatnet-test-connect TYPE:PATH...: connect() an AF_UNIX socket of TYPE
	# (stream or dgram) to each PATH, nothing sent; prints "PATH: connected" or
	# "PATH: <error>", a line each.
	install -m 0755 /dev/stdin "$1/usr/local/sbin/flatnet-test-connect" <<'SCRIPT'
#!/usr/bin/perl
use strict;
use warnings;
use Socket;
$| = 1;
for (@ARGV) {
	my ($type, $path) = split /:/, $_, 2;
	socket(my $s, AF_UNIX, $type eq 'dgram' ? SOCK_DGRAM : SOCK_STREAM, 0) or die "socket: $!\n";
	print "$path: ", (connect($s, pack_sockaddr_un($path)) ? 'connected' : $!), "\n";
	close $s;
}
SCRIPT
}

# --------------------------------------------------------------------- boot

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

# Run a command inside the container, with a clean environment.
in_ct() {
	nsenter -t "$ct" -a env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
		SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# boot: a new network namespace holding the node's NIC eno1 (a veth, same
# MAC and address every boot, as firmware and the distribution's network
# configuration would give it), then the node booted into it. Boots are
# numbered from 1.
boot() {
	local n state pid t0
	need_disk
	boots=$((boots + 1))
	n=$boots
	ns=flatnet-test-$$-$n
	ip netns add "$ns"
	ip -n "$ns" link add eno1 address "$NIC_MAC" type veth peer name lan0
	ip -n "$ns" addr add 192.168.0.5/16 dev eno1
	ip -n "$ns" link set lan0 up
	ip -n "$ns" link set eno1 up

	local nspawn=(systemd-nspawn --quiet --boot --register=no --keep-unit
		--network-namespace-path="/run/netns/$ns" --capability=CAP_NET_ADMIN --console=passive
		--machine="flatnet-test-$$" -D "$root" --bind-ro="$pkgdir:/packages")
	if [[ -d /run/systemd/system ]] && command -v systemd-run >/dev/null; then
		# Under a systemd host, give the container a delegated scope of its own.
		nspawn=(systemd-run --quiet --scope --collect -p Delegate=yes
			--unit="flatnet-test-$$-$n" "${nspawn[@]}")
	fi

	log "boot $n"
	t0=$SECONDS
	"${nspawn[@]}" >"$workdir/console-$n.log" 2>&1 &
	nspawn_pid=$!
	# The container's PID 1 is the child of systemd-nspawn that runs systemd.
	ct=
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
		cat "$workdir/console-$n.log" >&2
		die "container did not start"
	fi
	# is-system-running --wait returns once the boot is over, whatever its
	# state; the state is the check.
	state=$(in_ct timeout 60 systemctl is-system-running --wait 2>/dev/null) || :
	t_boot[n]=$((SECONDS - t0))
	log "container PID 1 is $ct; boot $n reached '$state' in ${t_boot[n]}s"
	case $state in
	running | degraded) pass "boot $n: container booted ($state)" ;;
	*)
		fail "boot $n: container booted" "state '$state'"
		in_ct systemctl --failed --no-pager || :
		exit 1
		;;
	esac
}

need_boot() {
	if [[ -z $ct ]]; then
		boot
	fi
}

# denials_check: nothing flatnet did this boot was refused by its sandbox.
# Leaving out systemd's own debug line "PR_SET_MM_ARG_START failed" (setting
# a child's process title needs CAP_SYS_RESOURCE, which the host may not
# hand down to the container): it is not about flatnet's sandbox.
denials_check() {
	local denied
	in_ct journalctl --sync
	denied=$(journal | grep -Ei 'read-only file system|permission denied|operation not permitted' | grep -v 'PR_SET_MM_') || :
	if [[ -z $denied ]]; then
		pass "boot $boots: no sandbox denials in the journal"
	else
		fail "boot $boots: no sandbox denials in the journal" "$(head -n 3 <<<"$denied" | tr '\n' ';')"
	fi
}

# power_off: the boot's sandbox check, then shut the container down as
# `poweroff` does and wait for it.
power_off() {
	[[ -n $ct ]] || return 0
	denials_check
	log "power off"
	in_ct systemctl poweroff --no-block >/dev/null 2>&1 || :
	if timeout 60 tail -s 0.1 --pid="$nspawn_pid" -f /dev/null; then
		pass "boot $boots: container powered off within 60s"
	else
		fail "boot $boots: container powered off within 60s"
	fi
	stop_container
	delete_netns
}

# ------------------------------------------------------------------- helpers

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds; fails when it
# has not within SECONDS. Every call's result is a check's or a setup's.
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
is_running() { [[ $(prop ActiveState) == active && $(prop SubState) == running ]]; }
is_enabled() { [[ $(in_ct systemctl is-enabled flatnet.service 2>/dev/null) == enabled ]]; }
# stopped: the unit is neither running nor on its way to.
stopped() {
	local state
	state=$(in_ct systemctl is-active flatnet.service 2>/dev/null) || :
	[[ $state != active && $state != activating && $state != reloading ]]
}
has_route() { in_ct ip route show proto flatnet | grep -q "^$1 dev $2 "; }
no_route() { ! has_route "$@"; }
has_shim() { in_ct ip link show eno1.host >/dev/null 2>&1; }
shim_mac() { in_ct ip -br link show dev eno1.host 2>/dev/null | awk '{ print $3 }'; }
journal() { in_ct journalctl -u flatnet.service --no-pager -o cat "$@"; }
# pkg_status: dpkg's status of flatnet ("ii ", "rc ", or empty).
# shellcheck disable=SC2016 # ${db:Status-Abbrev} is dpkg-query's
pkg_status() { in_ct dpkg-query -W -f '${db:Status-Abbrev}' flatnet 2>/dev/null || :; }
# shellcheck disable=SC2016 # ${Version} is dpkg-query's
pkg_version() { in_ct dpkg-query -W -f '${Version}' flatnet 2>/dev/null || :; }
debug_dump() {
	in_ct systemctl status flatnet.service --no-pager -l || :
	in_ct journalctl -u flatnet.service --no-pager -n 40 || :
}
# new_main_pid OLD: flatnet runs again, under a main PID other than OLD.
new_main_pid() {
	local p
	p=$(prop MainPID)
	is_running && [[ $p != 0 && $p != "$1" ]]
}

# entry_fields PID REGEX: the journal fields (no trusted ones) of the last
# entry of process PID whose MESSAGE matches REGEX, one FIELD=value a line.
entry_fields() {
	in_ct journalctl --no-pager -o export "_PID=$1" | awk -v re="$2" '
		BEGIN { RS = ""; FS = "\n" }
		{
			msg = ""
			for (i = 1; i <= NF; i++) if ($i ~ /^MESSAGE=/) msg = substr($i, 9)
			if (msg !~ re) next
			out = ""
			for (i = 1; i <= NF; i++)
				if ($i !~ /^(_|__|MESSAGE=|SYSLOG_|CODE_|PRIORITY=|INVOCATION_ID=|TID=)/) out = out $i "\n"
			last = "MESSAGE=" msg "\n" out
		}
		END { printf "%s", last }'
}
# has_entry PID REGEX: process PID logged an entry whose MESSAGE matches.
has_entry() { [[ -n $(entry_fields "$1" "$2") ]]; }
# check_fields WHAT FIELDS NAME=REGEX...: each NAME holds a value matching REGEX.
check_fields() {
	local what=$1 fields=$2 missing=() kv name re
	shift 2
	for kv in "$@"; do
		name=${kv%%=*}
		re=${kv#*=}
		grep -Eq "^$name=($re)\$" <<<"$fields" || missing+=("$name")
	done
	if [[ -z $fields ]]; then
		fail "journal fields of $what" "no such journal entry"
	elif ((${#missing[@]} == 0)); then
		pass "journal fields of $what: $(for kv in "$@"; do grep -E "^${kv%%=*}=" <<<"$fields"; done | tr '\n' ' ')"
	else
		fail "journal fields of $what" "missing or wrong: ${missing[*]}; entry: $(tr '\n' ' ' <<<"$fields")"
	fi
}

# cursor: where the journal ends now, for --after-cursor.
cursor() { in_ct journalctl --no-pager -q -n 1 -o cat --show-cursor | sed -n 's/^-- cursor: //p'; }
# notifications PID CURSOR: what PID sent to systemd after CURSOR, one
# message a line (the container's systemd logs them at debug level).
notifications() {
	in_ct journalctl --no-pager -o cat _PID=1 --after-cursor="$2" |
		sed -n "s/^flatnet.service: Got notification message from PID $1 (\(.*\))\$/\1/p"
}
# reload_bracketed PID CURSOR: RELOADING=1 came, and READY=1 after it.
reload_bracketed() {
	notifications "$1" "$2" | awk '
		/(^|, )RELOADING=1(,|$)/ { reloading = 1 }
		reloading && /(^|, )READY=1(,|$)/ { ready = 1 }
		END { exit !(reloading && ready) }'
}
# journal_after CURSOR ERE: flatnet's journal after CURSOR has a line
# matching ERE.
journal_after() { journal --after-cursor="$1" | grep -Eq "$2"; }

# nothing_left WHAT: no shim, route, address or nftables table of flatnet's.
nothing_left() {
	local what=$1 out
	if out=$(in_ct ip -o -d link show | grep -E ' eno1\.host[@:]|alias flatnet shim' | cut -c1-120) && [[ -n $out ]]; then
		fail "$what: no shim left" "$out"
	else
		pass "$what: no shim left"
	fi
	out=$(
		in_ct ip route show proto 97 table all
		in_ct ip -6 route show proto 97 table all
	)
	if [[ -z $out ]]; then
		pass "$what: no route with protocol 97 left"
	else
		fail "$what: no route with protocol 97 left" "$(tr '\n' ';' <<<"$out")"
	fi
	out=$(in_ct ip -4 -o addr show | grep -F " $SHIM_ADDR/32 ") || :
	if [[ -z $out ]]; then
		pass "$what: no address $SHIM_ADDR/32 left"
	else
		fail "$what: no address $SHIM_ADDR/32 left" "$out"
	fi
	if ! in_ct sh -c 'command -v nft' >/dev/null; then
		fail "$what: no nftables table netdev flatnet left" "nft is missing in the test root"
	elif out=$(in_ct nft list table netdev flatnet 2>/dev/null); then
		fail "$what: no nftables table netdev flatnet left" "$(head -n 3 <<<"$out" | tr '\n' ' ')"
	else
		pass "$what: no nftables table netdev flatnet left"
	fi
}

# ---------------------------------------------------- the node's states

# Each scenario starts from the state it needs, made here when the one
# before did not leave it: run alone, a scenario boots the node and sets
# it up; run in order, it takes the node as the one before left it. A
# setup that fails fails the scenario, which then stops.

# setup_failed WHAT [DETAIL]: a failed setup, counted as a failure.
setup_failed() {
	fail "setup: $1" "${2:-}"
	debug_dump
	return 1
}

# need_absent: flatnet is not installed (purged when it is).
need_absent() {
	need_boot
	[[ -z $(pkg_status) ]] && return 0
	log "setup: apt purge flatnet"
	in_ct apt-get purge -y -q flatnet >"$workdir/setup-purge.log" 2>&1 ||
		setup_failed "apt purge flatnet" "$(tail -n 3 "$workdir/setup-purge.log" | tr '\n' ';')"
}

# need_installed: this package installed, its service running.
need_installed() {
	need_boot
	if [[ $(pkg_status) != "ii " || $(pkg_version) != "$version" ]]; then
		log "setup: apt install $version"
		in_ct apt-get install -y -q /packages/flatnet.deb >"$workdir/setup-install.log" 2>&1 ||
			setup_failed "apt install $version" "$(tail -n 3 "$workdir/setup-install.log" | tr '\n' ';')" || return 1
	fi
	if ! is_running; then
		in_ct systemctl reset-failed flatnet.service || :
		in_ct systemctl start flatnet.service || :
	fi
	wait_for 10 is_running || setup_failed "flatnet.service running" "$(prop ActiveState)/$(prop SubState)"
}

# need_pod: a CNI network 'default' (macvlan on eno1, host-local) and its
# pod 192.168.1.2, routed by the running flatnet.
# seed_conflist prints the seed's CNI network, default: macvlan on eno1,
# host-local pods 192.168.1.2-254 of the LAN.
seed_conflist() {
	cat <<'EOF'
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
}

need_pod() {
	need_boot
	if ! in_ct test -f /var/lib/cni/networks/default/192.168.1.2; then
		log "setup: CNI network 'default' on eno1, pod 192.168.1.2"
		seed_conflist | in_ct sh -euc '
			mkdir -p /etc/cni/net.d /var/lib/cni/networks/default
			cat >/etc/cni/net.d/10-default.conflist'
		in_ct sh -c "printf '%s\r\neth0' $POD_ID >/var/lib/cni/networks/default/192.168.1.2"
	fi
	if [[ $(pkg_status) == "ii " ]] && is_active; then
		wait_for 10 has_route 192.168.1.2 eno1.host ||
			setup_failed "pod route 192.168.1.2 dev eno1.host" "$(in_ct ip route show proto flatnet | tr '\n' ';')"
	fi
}

# The stand-in container runtimes' sockets (see scenario_sockets).
RUNTIME_SOCKETS=(/run/containerd/containerd.sock /run/containerd/containerd.sock.ttrpc
	/run/k3s/containerd/containerd.sock /run/docker.sock /run/crio/crio.sock /run/podman/podman.sock)
runtimes_listen() {
	local s
	for s in "${RUNTIME_SOCKETS[@]}"; do
		in_ct test -S "$s" || return 1
	done
}
# need_runtimes: the stand-in runtimes' unit, ordered after flatnet as at
# boot, enabled and started; returns whether they listen.
need_runtimes() {
	need_boot
	if ! in_ct test -f /etc/systemd/system/flatnet-test-runtimes.service; then
		log "stand-in container runtimes, started after flatnet"
		in_ct sh -euc "
			cat >/etc/systemd/system/flatnet-test-runtimes.service <<UNIT
[Unit]
Description=stand-ins for container runtimes' sockets (flatnet package test)
After=flatnet.service

[Service]
ExecStart=/usr/local/sbin/flatnet-test-listen ${RUNTIME_SOCKETS[*]}

[Install]
WantedBy=multi-user.target
UNIT
			systemctl daemon-reload
			systemctl enable --quiet --now flatnet-test-runtimes.service
		"
	fi
	wait_for 10 runtimes_listen
}
