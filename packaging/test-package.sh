#!/usr/bin/env bash
# Package test: a node's life with the flatnet .deb, on a minimal Debian
# bookworm booted twice with a real systemd in a container, as a user would
# live it:
#
#   boot 1  install the last release, a CNI network and a pod, upgrade to
#           this package while a proven `ip monitor` watches that no route
#           drops; the service; stand-in container runtimes whose sockets
#           flatnet must not reach; its journal fields, reload (RELOADING
#           then READY), crash restarts, no restart on an invalid config; a
#           stand-in kubelet.service; power off
#   boot 2  a fresh network namespace (links and routes wiped, as a reboot
#           does): the shim and the route come back by themselves before the
#           kubelet starts, how long that took; the watchdog; the runtimes'
#           sockets, started after flatnet, still out of reach; remove without
#           purge, reinstall, the prerm's chroot guard, purge with a broken
#           configuration, a fresh install, purge
#
# Usage: packaging/test-package.sh FLATNET.deb [PREVIOUS.deb]
#
# PREVIOUS.deb is the last release (packaging/previous-deb.sh builds it; it
# must carry a lower version); without it the upgrade check is skipped
# loudly, and fails when CI is true. Runs as root on a Debian host (it
# installs debootstrap and systemd-container when missing). The root file
# system is debootstrapped from the host's configured Debian mirror once and
# cached in ${XDG_CACHE_HOME:-$HOME/.cache}/flatnet/rootfs-bookworm; both
# boots run on an overlay of it in a temporary directory, so the cache stays
# clean. The container's "physical" NIC eno1 is a veth in a network namespace
# the test creates before each boot and deletes after it: nothing on the host
# changes.
#
# Environment:
#   FLATNET_TEST_CACHE   cache directory (default above)
#   FLATNET_TEST_MIRROR  Debian mirror (default: from /etc/apt/sources.list*)
#   FLATNET_TEST_KEEP=1  leave the container running at the end, for debugging
#
# Prints PASS/FAIL/SKIP per check and "N passed, N failed, N skipped"; exits
# 1 on any failure.
set -euo pipefail

SUITE=bookworm
# procps: /bin/kill, which the unit's ExecReload runs (the package depends on it).
# nftables: nft, to see that removal leaves no table of flatnet's.
INCLUDE=systemd,systemd-sysv,dbus,iproute2,procps,nftables
# Bump when the root file system needs rebuilding for a new reason.
ROOTFS_STAMP="suite=$SUITE include=$INCLUDE variant=minbase v=2"
WATCHDOG_GRACE=35 # seconds of uptime after which a missed watchdog would show
SHIM_ADDR=192.0.0.8 # the address flatnet gives each shim (IPv4 dummy address)
# A fixed machine id, as an installed node has: the shim's MAC derives from it.
MACHINE_ID=f1a7e7c0ffee4b1d8c6a5e0d2b9f3a71
NIC_MAC=52:54:00:f1:a7:05
POD_ID=7bd849c5e5a0f0b3c6e2d1a4f8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7
POD3_ID=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

t_start=$SECONDS
passed=0
failed=0
skipped=0
failures=()
nspawn_pid=
ct=
ns=
root=
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
skip() {
	skipped=$((skipped + 1))
	printf 'SKIP: %s%s\n' "$1" "${2:+ ($2)}"
}
die() {
	printf 'test-package: %s\n' "$*" >&2
	exit 1
}
ci_truthy() {
	case ${CI,,} in
	true | 1 | yes | on | y) return 0 ;;
	*) return 1 ;;
	esac
}
CI=${CI:-}

stop_container() {
	[[ -n $nspawn_pid ]] || return 0
	if kill -0 "$nspawn_pid" 2>/dev/null; then
		# SIGTERM makes systemd-nspawn shut the container down cleanly.
		kill -TERM "$nspawn_pid"
		for _ in $(seq 1 100); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$nspawn_pid" 2>/dev/null; then
			kill -KILL "$nspawn_pid"
		fi
	fi
	wait "$nspawn_pid" 2>/dev/null || true
	nspawn_pid=
	ct=
}

delete_netns() {
	if [[ -n $ns ]]; then
		ip netns delete "$ns" 2>/dev/null || true
		ns=
	fi
}

cleanup() {
	local rc=$?
	set +e
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
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- arguments

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 FLATNET.deb [PREVIOUS.deb]"
[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, systemd-nspawn, nsenter, ip netns, mount)"
deb=$(realpath "$1")
[[ -f $deb ]] || die "no such package: $1"
previous_deb=
if [[ $# -eq 2 && -n $2 ]]; then
	previous_deb=$(realpath "$2")
	[[ -f $previous_deb ]] || die "no such package: $2"
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
command -v ip >/dev/null || need+=(iproute2)
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
		[[ -x $rootfs/usr/lib/systemd/systemd && -x $rootfs/usr/bin/apt-get && -x $rootfs/usr/bin/ip && -x $rootfs/usr/sbin/nft ]] &&
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
if [[ -n $previous_deb ]]; then
	cp "$previous_deb" "$pkgdir/flatnet-previous.deb"
	previous_version=$(dpkg-deb -f "$previous_deb" Version)
	dpkg --compare-versions "$previous_version" lt "$version" ||
		die "previous package $previous_version is not older than $version"
	log "packages: $version, upgraded to from the last release $previous_version"
else
	log "packages: $version (no previous release given: no upgrade check)"
fi

# --------------------------------------------------------- the node's disk

# Both boots share one root: an overlay of the cached root file system whose
# upper layer lives and dies with this test.
root=$workdir/root
mkdir -p "$root" "$workdir/upper" "$workdir/overlay-work"
mount -t overlay overlay \
	-o "lowerdir=$rootfs,upperdir=$workdir/upper,workdir=$workdir/overlay-work" "$root" ||
	die "cannot mount an overlay of $rootfs"
printf '%s\n' "$MACHINE_ID" >"$root/etc/machine-id"

# flatnet-test-monitor LOG: `ip -ts -o monitor link route` into LOG, in the
# background; returns only once the monitor printed a marker route it added
# (TEST-NET-3 in table 4242, proto static: nothing flatnet touches), so a
# change right after it returns cannot be missed. For Type=forking units.
install -m 0755 /dev/stdin "$root/usr/local/sbin/flatnet-test-monitor" <<'SCRIPT'
#!/bin/sh
set -eu
log=$1
: >"$log"
ip -ts -o monitor link route >>"$log" 2>&1 </dev/null &
marker=203.0.113.$(($$ % 250 + 1))
n=0
while ! grep -q "blackhole $marker table 4242 proto static" "$log"; do
	if [ $((n % 20)) -eq 0 ]; then
		ip route del blackhole "$marker/32" table 4242 proto static 2>/dev/null || true
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
install -m 0755 /dev/stdin "$root/usr/local/sbin/flatnet-test-listen" <<'SCRIPT'
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
install -m 0755 /dev/stdin "$root/usr/local/sbin/flatnet-test-connect" <<'SCRIPT'
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

# boot N: a new network namespace holding the node's NIC eno1 (a veth, same
# MAC and address every boot, as firmware and the distribution's network
# configuration would give it), then the container booted into it.
boot() {
	local n=$1 state
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
	local t0=$SECONDS
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
	state=$(in_ct timeout 60 systemctl is-system-running --wait 2>/dev/null || true)
	t_boot[n]=$((SECONDS - t0))
	log "container PID 1 is $ct; boot $n reached '$state' in ${t_boot[n]}s"
	case $state in
	running | degraded) pass "boot $n: container booted ($state)" ;;
	*)
		fail "boot $n: container booted" "state '$state'"
		in_ct systemctl --failed --no-pager || true
		exit 1
		;;
	esac
}

# power_off: shut the container down as `poweroff` does and wait for it.
power_off() {
	log "power off"
	in_ct systemctl poweroff --no-block >/dev/null 2>&1 || true
	local deadline=$((SECONDS + 60))
	while kill -0 "$nspawn_pid" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.1
	done
	if kill -0 "$nspawn_pid" 2>/dev/null; then
		fail "container powered off within 60s"
	fi
	stop_container
	delete_netns
}

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
is_running() { [[ $(prop ActiveState) == active && $(prop SubState) == running ]]; }
has_route() { in_ct ip route show proto flatnet | grep -q "^$1 dev $2 "; }
no_route() { ! has_route "$@"; }
has_shim() { in_ct ip link show eno1.host >/dev/null 2>&1; }
shim_mac() { in_ct ip -br link show dev eno1.host 2>/dev/null | awk '{ print $3 }'; }
journal() { in_ct journalctl -u flatnet.service --no-pager -o cat "$@"; }
debug_dump() {
	in_ct systemctl status flatnet.service --no-pager -l || true
	in_ct journalctl -u flatnet.service --no-pager -n 40 || true
}
# new_main_pid OLD: flatnet runs again, under a main PID other than OLD.
new_main_pid() {
	local p
	p=$(prop MainPID)
	is_running && [[ $p != 0 && $p != "$1" ]]
}
# usec_now: the container's wall clock in microseconds (journalctl --since).
usec_now() { in_ct date +%s%6N; }

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

# nothing_left WHAT: no shim, route, address or nftables table of flatnet's.
nothing_left() {
	local what=$1 out
	if out=$(in_ct ip -o -d link show | grep -E ' eno1\.host[@:]|alias flatnet shim' | cut -c1-120) && [[ -n $out ]]; then
		fail "$what: no shim left" "$out"
	else
		pass "$what: no shim left"
	fi
	out=$(in_ct ip route show proto 97 table all; in_ct ip -6 route show proto 97 table all)
	if [[ -z $out ]]; then
		pass "$what: no route with protocol 97 left"
	else
		fail "$what: no route with protocol 97 left" "$(tr '\n' ';' <<<"$out")"
	fi
	out=$(in_ct ip -4 -o addr show | grep -F " $SHIM_ADDR/32 " || true)
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

# ------------------------------------------------------------------ boot 1

declare -a t_boot
boot 1

# ------------------------------------------------------------------- install

first_deb=/packages/flatnet.deb
first_version=$version
if [[ -n $previous_deb ]]; then
	first_deb=/packages/flatnet-previous.deb
	first_version=$previous_version
fi
log "apt install $first_version"
if in_ct apt-get install -y -q "$first_deb" >"$workdir/install.log" 2>&1; then
	pass "apt install $first_version"
else
	cat "$workdir/install.log"
	fail "apt install $first_version"
	exit 1
fi
if wait_for 10 is_active; then
	pass "service active after installing $first_version"
else
	fail "service active after installing $first_version" "$(in_ct systemctl is-active flatnet.service || true)"
	debug_dump
fi

# ------------------------------------------------------------------ a pod

log "CNI network 'default' on eno1, pod 192.168.1.2"
in_ct sh -euc '
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
'
in_ct sh -c "printf '%s\r\neth0' $POD_ID >/var/lib/cni/networks/default/192.168.1.2"

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
mac_boot1=$(shim_mac)

# ------------------------------------------------------------------- upgrade

if [[ -n $previous_deb ]]; then
	log "upgrade $previous_version -> $version"
	# The monitor returns only once it has printed a marker route of its own.
	monitor_ok=
	if in_ct systemd-run --quiet --unit=flatnet-test-upgrade-monitor -p Type=forking \
		/usr/local/sbin/flatnet-test-monitor /run/flatnet-test-upgrade.log; then
		monitor_ok=1
		pass "route monitor running, proven by a marker route, before the upgrade"
	else
		fail "route monitor running, proven by a marker route, before the upgrade"
		in_ct journalctl -u flatnet-test-upgrade-monitor --no-pager -o cat || true
	fi
	pid_before=$(prop MainPID)
	# shellcheck disable=SC2016 # ${Version} is dpkg-query's, not the shell's
	if in_ct apt-get install -y -q /packages/flatnet.deb >"$workdir/upgrade.log" 2>&1 &&
		[[ $(in_ct dpkg-query -W -f '${Version}' flatnet) == "$version" ]]; then
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
	# the route must be there now, and must never have gone.
	in_ct systemctl stop flatnet-test-upgrade-monitor.service || true
	if has_route 192.168.1.2 eno1.host; then
		pass "route present after the upgrade"
	else
		fail "route present after the upgrade"
	fi
	deleted=$(in_ct cat /run/flatnet-test-upgrade.log | grep -E '\] Deleted .* proto (flatnet|97)( |$)' || true)
	if [[ -z $monitor_ok ]]; then
		fail "no flatnet route deleted during the upgrade" "no proven monitor watched it"
	elif [[ -z $deleted ]]; then
		pass "no flatnet route deleted during the upgrade ($(in_ct grep -c . /run/flatnet-test-upgrade.log) monitor lines)"
	else
		fail "no flatnet route deleted during the upgrade" "$deleted"
	fi
	if [[ -n $mac_boot1 && $(shim_mac) == "$mac_boot1" ]]; then
		pass "shim MAC unchanged by the upgrade ($mac_boot1)"
	else
		fail "shim MAC unchanged by the upgrade" "$mac_boot1 -> $(shim_mac)"
	fi
elif ci_truthy; then
	fail "upgrade from the last release" "no previous release package given, and CI=$CI"
else
	skip "upgrade from the last release" "no previous release package given (see packaging/previous-deb.sh)"
fi

# ------------------------------------------------------------------ service

if [[ $(in_ct systemctl is-enabled flatnet.service 2>/dev/null || true) == enabled ]]; then
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

# ---------------------------------------------------------- runtime sockets

# A root process that can connect() to a container runtime's socket, to
# systemd's private one or to the D-Bus system bus is root on the node; the
# unit gives flatnet a /run of its own holding only the journal's and the
# notify socket (docs/systemd.md). Stand-ins listen where the runtimes do,
# started after flatnet as at boot (After=flatnet.service; enabled, so boot
# 2 has them too). A probe with flatnet's capabilities (setpriv: only
# CAP_NET_ADMIN; with more, /proc/1/root would lead around the private
# /run) in the service's mount namespace (nsenter -t MainPID -m) must reach
# none of them, and must reach the journal's and the notify socket; the
# same probe in the container's own namespace must reach them all, so the
# stand-ins do listen and the probe does connect.
RUNTIME_SOCKETS=(/run/containerd/containerd.sock /run/containerd/containerd.sock.ttrpc
	/run/k3s/containerd/containerd.sock /run/docker.sock /run/crio/crio.sock /run/podman/podman.sock)
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
runtimes_listen() {
	local s
	for s in "${RUNTIME_SOCKETS[@]}"; do
		in_ct test -S "$s" || return 1
	done
}
if wait_for 10 runtimes_listen; then
	pass "stand-in runtimes listen at ${RUNTIME_SOCKETS[*]}"
else
	fail "stand-in runtimes listen" "$(in_ct systemctl status flatnet-test-runtimes.service --no-pager 2>&1 | tail -n 3 | tr '\n' ';')"
fi
check_sockets "runtimes started after flatnet"

# Sockets there before flatnet starts: a restart, which must still reach
# READY, log through the journal's native socket (not its stderr fallback)
# and write its RuntimeDirectory, which systemd removes at every stop.
log "restart flatnet with the runtimes' sockets in place"
pid_before=$(prop MainPID)
in_ct systemctl restart flatnet.service || true
if wait_for 10 new_main_pid "$pid_before"; then
	pass "restart with the runtimes' sockets in place: READY (MainPID $pid_before -> $(prop MainPID))"
else
	fail "restart with the runtimes' sockets in place: READY" "$(prop ActiveState)/$(prop SubState)"
	debug_dump
fi
main_pid=$(prop MainPID)
native_entries() { in_ct journalctl --no-pager -o cat "_PID=$main_pid" _TRANSPORT=journal | grep -c .; }
wait_for 5 native_entries || true
native=$(native_entries || true)
on_stderr=$(in_ct journalctl --no-pager -o cat "_PID=$main_pid" _TRANSPORT=stdout | grep -c . || true)
if ((native > 0 && on_stderr == 0)); then
	pass "journal: $native entries of MainPID $main_pid through the native socket, none through the stderr fallback"
else
	fail "journal: entries through the native socket, none through the stderr fallback" "native $native, stderr $on_stderr"
fi
if loaded=$(in_ct cat /run/flatnet/config 2>&1) && grep -Eq '^[0-9a-f]+ /etc/flatnet/flatnet\.toml$' <<<"$loaded"; then
	pass "RuntimeDirectory: /run/flatnet/config written by the restarted flatnet ($loaded)"
else
	fail "RuntimeDirectory: /run/flatnet/config written by the restarted flatnet" "$loaded"
fi
check_sockets "flatnet restarted with the runtimes' sockets in place"

# ------------------------------------------------------------ journal fields

# Entries of this package's daemon (its main PID) carry the fields README
# lists: a route added for a new pod, the shim created again after it was
# deleted by hand.
log "journal fields: pod 192.168.1.3 comes, the shim is deleted by hand"
main_pid=$(prop MainPID)
in_ct sh -c "printf '%s\r\neth0' $POD3_ID >/var/lib/cni/networks/default/192.168.1.3"
if wait_for 10 has_route 192.168.1.3 eno1.host; then
	pass "new pod gets its route"
else
	fail "new pod gets its route"
fi
wait_for 5 sh -c "nsenter -t $ct -a journalctl _PID=$main_pid -o cat --no-pager | grep -q 'route 192.168.1.3/32 .*added'" || true
check_fields "the route added for 192.168.1.3" "$(entry_fields "$main_pid" 'route 192\.168\.1\.3/32 .*added')" \
	'IP=192\.168\.1\.3(/32)?' 'DEV=eno1\.host' 'NETWORK=default' "CONTAINER=$POD3_ID" 'IFNAME=eth0'

in_ct ip link delete eno1.host
shim_back() { has_shim && has_route 192.168.1.2 eno1.host && has_route 192.168.1.3 eno1.host; }
if wait_for 10 shim_back; then
	pass "shim deleted by hand is back with its routes"
else
	fail "shim deleted by hand is back with its routes" "$(in_ct ip route show proto flatnet | tr '\n' ';')"
fi
wait_for 5 sh -c "nsenter -t $ct -a journalctl _PID=$main_pid -o cat --no-pager | grep -q 'shim eno1.host created'" || true
check_fields "the shim created on eno1" "$(entry_fields "$main_pid" 'shim eno1\.host created')" \
	'DEV=eno1\.host' 'NETWORK=default' 'MASTER=eno1' "MAC=$(shim_mac)"
if [[ -n $mac_boot1 && $(shim_mac) == "$mac_boot1" ]]; then
	pass "re-created shim has the same MAC ($mac_boot1)"
else
	fail "re-created shim has the same MAC" "$mac_boot1 -> $(shim_mac)"
fi

in_ct rm /var/lib/cni/networks/default/192.168.1.3
if wait_for 10 no_route 192.168.1.3 eno1.host; then
	pass "removed pod loses its route"
else
	fail "removed pod loses its route"
fi

# ---------------------------------------------------------- systemd-networkd

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

# -------------------------------------------------------------------- reload

# systemd logs every notification it receives at debug level: the journal
# shows RELOADING=1 and then READY=1, which a daemon that ignores the
# reload, or never says it is done, cannot fake.
in_ct systemctl log-level debug
in_ct cp /etc/flatnet/flatnet.toml /root/flatnet.toml.orig

log "systemctl reload flatnet"
pid_before=$(prop MainPID)
c=$(cursor)
in_ct systemctl reload flatnet.service || true
if wait_for 10 reload_bracketed "$pid_before" "$c" && is_running && [[ $(prop MainPID) == "$pid_before" ]]; then
	pass "reload: RELOADING=1 then READY=1, active/running again, same MainPID"
else
	fail "reload: RELOADING=1 then READY=1, active/running again" \
		"$(prop ActiveState)/$(prop SubState); notifications: $(notifications "$pid_before" "$c" | tr '\n' ';')"
fi

log "reload with a broken /etc/flatnet/flatnet.toml"
in_ct sh -c 'printf "resync_interval = \"soon\"\n" >>/etc/flatnet/flatnet.toml'
c=$(cursor)
in_ct systemctl reload flatnet.service || true
if wait_for 10 reload_bracketed "$pid_before" "$c" && is_running && [[ $(prop MainPID) == "$pid_before" ]]; then
	pass "refused reload: RELOADING=1 then READY=1, the daemon keeps running (same MainPID)"
else
	fail "refused reload: RELOADING=1 then READY=1, the daemon keeps running" \
		"$(prop ActiveState)/$(prop SubState), MainPID $pid_before -> $(prop MainPID); notifications: $(notifications "$pid_before" "$c" | tr '\n' ';')"
fi
# `journalctl -u flatnet` shows MESSAGE only: the reason must be in it.
if wait_for 5 sh -c "nsenter -t $ct -a journalctl -u flatnet.service --after-cursor='$c' -o cat --no-pager | grep -q resync_interval"; then
	pass "bad config logged: $(journal --after-cursor="$c" | grep resync_interval | head -n 1)"
else
	fail "bad config logged naming resync_interval"
	journal --after-cursor="$c" || true
fi
if has_route 192.168.1.2 eno1.host; then
	pass "route kept after the refused reload"
else
	fail "route kept after the refused reload"
fi
in_ct cp /root/flatnet.toml.orig /etc/flatnet/flatnet.toml
c=$(cursor)
in_ct systemctl reload flatnet.service || true
if wait_for 10 reload_bracketed "$pid_before" "$c" && is_running; then
	pass "reload with the fixed config"
else
	fail "reload with the fixed config" "$(prop ActiveState)/$(prop SubState)"
fi
in_ct systemctl log-level info

# ------------------------------------------------------------------ restarts

# Restart=on-failure: a crash and a kill restart the daemon, and the routes
# stay (the process just dies; nothing removes them).
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
		in_ct systemctl reset-failed flatnet.service || true
		in_ct systemctl start flatnet.service || true
	fi
	if has_route 192.168.1.2 eno1.host; then
		pass "kill -$sig: route still present"
	else
		fail "kill -$sig: route still present"
	fi
done

# RestartPreventExitStatus=2: an invalid configuration at start exits 2 and
# is not restarted (systemd would restart it after RestartSec otherwise).
log "restart with an invalid configuration"
in_ct sh -c 'printf "bogus_key = 1\n" >>/etc/flatnet/flatnet.toml'
c=$(cursor)
in_ct systemctl restart flatnet.service 2>/dev/null || true
# systemctl restart zeroes NRestarts: any automatic restart shows as one.
failed_exit2() { [[ $(prop ActiveState) == failed && $(prop ExecMainStatus) == 2 ]]; }
not_restarted() {
	[[ $(prop ActiveState) == failed && $(prop Result) == exit-code &&
		$(prop ExecMainStatus) == 2 && $(prop NRestarts) == 0 ]]
}
if wait_for 10 failed_exit2; then
	# Proving an absence takes a window: twice RestartSec, plus a second.
	sleep "$(awk -v s="${restart_sec%s}" 'BEGIN { print 2 * s + 1 }')"
	if not_restarted; then
		pass "invalid config at start: exit status 2, failed, not restarted (NRestarts 0)"
	else
		fail "invalid config at start: not restarted" \
			"$(prop ActiveState), Result=$(prop Result), ExecMainStatus=$(prop ExecMainStatus), NRestarts=$(prop NRestarts)"
	fi
else
	fail "invalid config at start: exit status 2, failed" \
		"$(prop ActiveState)/$(prop SubState), ExecMainStatus=$(prop ExecMainStatus), NRestarts $(prop NRestarts)"
fi
if journal --after-cursor="$c" | grep -q bogus_key; then
	pass "invalid config at start logged: $(journal --after-cursor="$c" | grep bogus_key | head -n 1)"
else
	fail "invalid config at start logged naming bogus_key"
fi
in_ct cp /root/flatnet.toml.orig /etc/flatnet/flatnet.toml
in_ct systemctl reset-failed flatnet.service || true
in_ct systemctl start flatnet.service || true
if wait_for 10 is_running && wait_for 10 has_route 192.168.1.2 eno1.host; then
	pass "starts again with the config restored"
else
	fail "starts again with the config restored" "$(prop ActiveState)/$(prop SubState)"
	debug_dump
fi

# Leaving out systemd's own debug line "PR_SET_MM_ARG_START failed" (setting
# a child's process title needs CAP_SYS_RESOURCE, which the host may not
# hand down to the container): it is not about flatnet's sandbox.
denied=$(journal | grep -Ei 'read-only file system|permission denied|operation not permitted' | grep -v 'PR_SET_MM_' || true)
if [[ -z $denied ]]; then
	pass "boot 1: no sandbox denials in the journal"
else
	fail "boot 1: no sandbox denials in the journal" "$(head -n 3 <<<"$denied" | tr '\n' ';')"
fi

# -------------------------------------------------------- before the reboot

# A stand-in for kubeadm's kubelet.service (Wants= and After=
# network-online.target, WantedBy=multi-user.target) that writes down what
# it finds as it starts; and a route monitor that starts before flatnet and
# proves itself, to time the shim and the route at boot.
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

# ------------------------------------------------------------------ boot 2

# Same root, new network namespace: eno1 is there as a NIC would be, and
# nothing else; no command is run before the checks.
boot 2

if wait_for 10 has_shim && wait_for 10 has_route 192.168.1.2 eno1.host; then
	pass "after the reboot: shim and route back with no action ($(in_ct ip route show proto flatnet | grep '^192.168.1.2 '))"
else
	fail "after the reboot: shim and route back with no action" "$(in_ct ip route show proto flatnet | tr '\n' ';')"
	debug_dump
fi
if [[ -n $mac_boot1 && $(shim_mac) == "$mac_boot1" ]]; then
	pass "after the reboot: the shim has the same MAC ($mac_boot1)"
else
	fail "after the reboot: the shim has the same MAC" "$mac_boot1 -> $(shim_mac)"
fi

kubelet_done() { [[ $(in_ct systemctl show -P ActiveState kubelet.service) == active ]]; }
wait_for 30 kubelet_done || true
saw_link=$(in_ct cat /run/kubelet-saw.link 2>/dev/null || true)
saw_routes=$(in_ct cat /run/kubelet-saw.routes 2>/dev/null || true)
if grep -q 'macvlan mode bridge' <<<"$saw_link" && grep -q '^192.168.1.2 dev eno1.host ' <<<"$saw_routes"; then
	pass "kubelet.service (After=network-online.target) found the shim and the route as it started"
else
	fail "kubelet.service (After=network-online.target) found the shim and the route as it started" \
		"kubelet $(in_ct systemctl show -P ActiveState kubelet.service); link: $(head -n 1 <<<"$saw_link"); routes: $(tr '\n' ';' <<<"$saw_routes")"
fi

# How long after flatnet's exec the shim and the route were there: exec and
# READY from systemd (microseconds, wall clock), the shim and the route from
# the monitor that started before flatnet (ip -ts, the same clock).
usec_prop() { # usec_prop UNIT INTERFACE PROPERTY
	in_ct busctl get-property org.freedesktop.systemd1 \
		"/org/freedesktop/systemd1/unit/$(sed 's/\./_2e/g; s/-/_2d/g' <<<"$1")" \
		"org.freedesktop.systemd1.$2" "$3" | awk '{ print $2 }'
}
monitor_usec() { # monitor_usec ERE: when the boot monitor first printed a line matching ERE
	local line ts
	line=$(in_ct cat /run/flatnet-test-boot.log 2>/dev/null | grep -E -m 1 "$1") || return 1
	ts=${line#[}
	ts=${ts%%]*}
	printf '%s%s\n' "$(in_ct date -d "${ts%.*}" +%s)" "${ts##*.}"
}
exec_us=$(usec_prop flatnet.service Service ExecMainStartTimestamp)
ready_us=$(usec_prop flatnet.service Unit ActiveEnterTimestamp)
kubelet_us=$(usec_prop kubelet.service Service ExecMainStartTimestamp)
shim_us=$(monitor_usec '\] [0-9]+: eno1\.host@eno1: ' || true)
route_us=$(monitor_usec '\] 192\.168\.1\.2 dev eno1\.host .*proto (flatnet|97)' || true)
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
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
	in_ct head -n 20 /run/flatnet-test-boot.log || true
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
if is_running && [[ $(prop NRestarts) == 0 ]] && ! journal | grep -qi 'watchdog timeout'; then
	pass "no watchdog timeout after ${WATCHDOG_GRACE}s (pings arrive)"
else
	fail "no watchdog timeout" "$(prop ActiveState), NRestarts=$(prop NRestarts)"
	debug_dump
fi

# At boot the runtimes start after flatnet (After=flatnet.service here):
# their sockets must be out of reach all the same.
runtimes_us=$(usec_prop flatnet-test-runtimes.service Service ExecMainStartTimestamp)
if [[ -n $runtimes_us && -n $ready_us ]] && ((runtimes_us >= ready_us)) && wait_for 10 runtimes_listen; then
	pass "boot 2: stand-in runtimes listening, started $(ms "$ready_us" "$runtimes_us") ms after flatnet was READY"
else
	fail "boot 2: stand-in runtimes listening, started after flatnet was READY" \
		"READY '$ready_us', runtimes '$runtimes_us'; $(in_ct systemctl is-active flatnet-test-runtimes.service 2>&1)"
fi
check_sockets "boot 2, runtimes started after flatnet at boot"

denied=$(journal | grep -Ei 'read-only file system|permission denied|operation not permitted' | grep -v 'PR_SET_MM_' || true)
if [[ -z $denied ]]; then
	pass "boot 2: no sandbox denials in the journal"
else
	fail "boot 2: no sandbox denials in the journal" "$(head -n 3 <<<"$denied" | tr '\n' ';')"
fi

# ---------------------------------------------------------- remove, reinstall

# What there is to remove (the LAN guard's table or address depends on the
# kernel and lan_guard): the checks after removal are not vacuous for these.
present() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
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
state=$(in_ct systemctl is-active flatnet.service 2>/dev/null || true)
if [[ $state != active && $state != activating && $state != reloading ]]; then
	pass "remove: service stopped ($state)"
else
	fail "remove: service stopped" "$state"
fi
nothing_left "remove"
# shellcheck disable=SC2016 # ${db:Status-Abbrev} is dpkg-query's
if in_ct test -f /etc/flatnet/flatnet.toml && [[ $(in_ct dpkg-query -W -f '${db:Status-Abbrev}' flatnet) == "rc " ]]; then
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
if wait_for 10 is_running && wait_for 10 has_route 192.168.1.2 eno1.host &&
	[[ $(in_ct systemctl is-enabled flatnet.service 2>/dev/null || true) == enabled ]]; then
	pass "reinstall: enabled, running, route back"
else
	fail "reinstall: enabled, running, route back" "$(prop ActiveState), $(in_ct systemctl is-enabled flatnet.service 2>&1 || true)"
	debug_dump
fi

# ------------------------------------------------------------- chroot guard

# The prerm removes routes only where systemd runs: in a chroot (an image
# build, a rescue system) the network namespace is the host's. Run it the
# way dpkg would in a chroot of this root: from the host, `chroot` into the
# container's files, in the container's network namespace (never the
# host's), where no systemd runs (/run/systemd/system is absent).
in_chroot() {
	nsenter --net="/run/netns/$ns" chroot "$root" env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
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
	in_chroot /bin/sh -e /root/prerm-unguarded remove >/dev/null 2>&1 || true
	in_chroot rm -f /root/prerm-unguarded
	if ! has_shim && no_route 192.168.1.2 eno1.host; then
		pass "chroot guard control: without the guard the same run removes the shim and the route"
	else
		fail "chroot guard control: without the guard the same run removes the shim and the route" \
			"so the chroot check proves nothing"
	fi
fi
in_ct systemctl start flatnet.service || true
if wait_for 10 is_running && wait_for 10 has_route 192.168.1.2 eno1.host; then
	pass "flatnet running again after the chroot test"
else
	fail "flatnet running again after the chroot test"
fi

# ------------------------------------------------- purge with a broken config

log "apt purge flatnet with a broken /etc/flatnet/flatnet.toml"
in_ct sh -c 'printf "bogus_key = 1\n" >>/etc/flatnet/flatnet.toml'
if in_ct apt-get purge -y -q flatnet >"$workdir/purge-broken.log" 2>&1; then
	pass "apt purge with a broken config"
else
	cat "$workdir/purge-broken.log"
	fail "apt purge with a broken config"
fi
state=$(in_ct systemctl is-active flatnet.service 2>/dev/null || true)
if [[ $state != active && $state != activating && $state != reloading ]]; then
	pass "purge with a broken config: service stopped ($state)"
else
	fail "purge with a broken config: service stopped" "$state"
fi
nothing_left "purge with a broken config (flatnet teardown must ignore the invalid file)"

# --------------------------------------------------- fresh install, purge

# The package's own first installation: after the purge nothing is left
# of the earlier one (no unit state, no conffile).
log "apt install $version on the purged node"
# shellcheck disable=SC2016 # ${db:Status-Abbrev} is dpkg-query's
if [[ $(in_ct dpkg-query -W -f '${db:Status-Abbrev}' flatnet 2>/dev/null || true) != "ii " ]] &&
	in_ct apt-get install -y -q /packages/flatnet.deb >"$workdir/install2.log" 2>&1; then
	pass "fresh install of $version"
else
	cat "$workdir/install2.log" 2>/dev/null || true
	fail "fresh install of $version"
fi
if wait_for 10 is_running && wait_for 10 has_route 192.168.1.2 eno1.host &&
	[[ $(in_ct systemctl is-enabled flatnet.service 2>/dev/null || true) == enabled ]]; then
	pass "fresh install: enabled, running (READY), route"
else
	fail "fresh install: enabled, running (READY), route" "$(prop ActiveState)/$(prop SubState)"
	debug_dump
fi

log "apt purge flatnet"
if in_ct apt-get purge -y -q flatnet >"$workdir/purge.log" 2>&1; then
	pass "apt purge"
else
	cat "$workdir/purge.log"
	fail "apt purge"
fi
state=$(in_ct systemctl is-active flatnet.service 2>/dev/null || true)
if [[ $state != active && $state != activating && $state != reloading ]]; then
	pass "purge: service stopped ($state)"
else
	fail "purge: service stopped" "$state"
fi
nothing_left "purge"
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

# ------------------------------------------------------------------- summary

t_total=$((SECONDS - t_start))
log "timings: debootstrap ${t_debootstrap}s (0 = cached), boot 1 ${t_boot[1]}s, boot 2 ${t_boot[2]}s, whole run ${t_total}s"
if ((failed)); then
	printf 'failed checks:\n'
	printf '  %s\n' "${failures[@]}"
fi
printf '%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
((failed == 0))
