#!/usr/bin/env bash
# Package test: a node's life with the flatnet .deb on a minimal Debian
# bookworm booted with a real systemd in a container, as a user would live
# it, in scenarios; beside it piuparts, and rpm running the .rpm's scripts.
#
#   install              first installation: enabled, READY, status, journal,
#                        watchdog armed, systemd-analyze security and verify,
#                        a pod's route on a bridge-mode macvlan shim
#   sockets              flatnet cannot connect() to container runtimes'
#                        sockets (stand-ins), before and after a restart; it
#                        logs natively, writes /run/flatnet/config, sees
#                        /run/netns (read-only) files come and go
#   journal              journal fields of a new pod's route and of the shim
#                        made again after it was deleted by hand
#   networkd             systemd-networkd leaves the shim alone
#   reload               RELOADING=1 then READY=1; a broken file refused
#   crash                kill -SEGV and -KILL restart it, routes stay
#   invalid-config       exit 2 at start, not restarted
#   reboot               a fresh network namespace: shim and route back before
#                        a stand-in kubelet starts, timed; the watchdog's
#                        ping; runtimes started after flatnet out of reach
#   remove               remove without purge, then install again
#   chroot-guard         the prerm in a chroot leaves the routes (and its control)
#   purge-broken-config  purge with an invalid flatnet.toml removes all
#   upgrade              the last release, then this package: no route drops
#   purge                purge: nothing left, no files
#   rpm                  rpm --root runs the .rpm's %post, %preun and %postun
#                        on install, upgrade from the last release and erase
#   piuparts             Debian's install, upgrade-from-the-last-release and
#                        purge test, in a chroot of its own: started first, in
#                        the background, and its verdict read last
#
# Usage: packaging/test-package.sh --deb FLATNET.deb [--previous PREVIOUS.deb]
#            [--rpm FLATNET.rpm] [--previous-rpm PREVIOUS.rpm] [SCENARIO...]
#        packaging/test-package.sh --list
#
# With no SCENARIO every one runs, in the order above, over one node (one
# overlay of the cached root, booted again by reboot). A scenario named
# alone boots the node and sets up what it needs first (an installed
# package, a pod; upgrade purges it and installs the last release), so
# `make test-package SCENARIOS=upgrade` runs just that. PREVIOUS.deb and
# PREVIOUS.rpm are the last release (packaging/previous-deb.sh builds them;
# they must carry a lower version): without them the upgrades are skipped
# loudly, and fail under CI (internal/dev/testenv.CI's reading of $CI).
# Runs as root on a Debian host (it installs debootstrap and
# systemd-container when missing; packaging/deps.sh package installs the
# rest). The root file system is debootstrapped from the host's configured
# Debian mirror once and cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/flatnet/rootfs-bookworm; the node, the
# RPM root and piuparts each run on a copy or an overlay of it, so the
# cache stays clean. The node's "physical" NIC eno1 is a veth in a network
# namespace the test creates before each boot and deletes after it: nothing
# on the host changes.
#
# Environment:
#   FLATNET_TEST_CACHE   cache directory (default above)
#   FLATNET_TEST_MIRROR  Debian mirror (default: from /etc/apt/sources.list*)
#   FLATNET_TEST_KEEP=1  leave the container running at the end, for debugging
#   GO                   the go command (for the CI rule)
#
# Prints PASS/FAIL/SKIP per check, a line per scenario with its time, and
# "N passed, N failed, N skipped"; exits 1 on any failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=packaging/pkgtest/lib.sh
. "$here/pkgtest/lib.sh"
# shellcheck source=packaging/pkgtest/scenarios.sh
. "$here/pkgtest/scenarios.sh"
# shellcheck source=packaging/pkgtest/piuparts.sh
. "$here/pkgtest/piuparts.sh"
# shellcheck source=packaging/pkgtest/rpm.sh
. "$here/pkgtest/rpm.sh"

SCENARIOS=(install sockets journal networkd reload crash invalid-config reboot
	remove chroot-guard purge-broken-config upgrade purge rpm piuparts)

usage() {
	die "usage: $0 --deb FLATNET.deb [--previous PREVIOUS.deb] [--rpm FLATNET.rpm] [--previous-rpm PREVIOUS.rpm] [SCENARIO...] (scenarios: ${SCENARIOS[*]})"
}

# ---------------------------------------------------------------- arguments

deb=
previous_deb=
rpm=
previous_rpm=
selected=()
while (($#)); do
	case $1 in
	--list)
		printf '%s\n' "${SCENARIOS[@]}"
		exit 0
		;;
	--deb | --previous | --rpm | --previous-rpm)
		(($# >= 2)) || usage
		if [[ -n $2 ]]; then
			[[ -f $2 ]] || die "no such package: $2"
			case $1 in
			--deb) deb=$(realpath "$2") ;;
			--previous) previous_deb=$(realpath "$2") ;;
			--rpm) rpm=$(realpath "$2") ;;
			--previous-rpm) previous_rpm=$(realpath "$2") ;;
			esac
		fi
		shift 2
		;;
	-*) usage ;;
	*)
		[[ " ${SCENARIOS[*]} " == *" $1 "* ]] || die "no scenario '$1' (scenarios: ${SCENARIOS[*]})"
		selected+=("$1")
		shift
		;;
	esac
done
[[ -n $deb ]] || usage
((${#selected[@]})) || selected=("${SCENARIOS[@]}")
# piuparts needs no container: it starts first and is waited for last.
if [[ " ${selected[*]} " == *" piuparts "* ]]; then
	others=()
	for s in "${selected[@]}"; do
		[[ $s == piuparts ]] || others+=("$s")
	done
	selected=("${others[@]}" piuparts)
fi
[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, systemd-nspawn, nsenter, ip netns, mount)"

t_start=$SECONDS
cache=${FLATNET_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flatnet}
rootfs=$cache/rootfs-$SUITE
workdir=$(mktemp -d "${TMPDIR:-/tmp}/flatnet-test-package.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM

need_host_tools
need_rootfs

# ------------------------------------------------------------------ packages

pkgdir=$workdir/packages
mkdir -p "$pkgdir"
cp "$deb" "$pkgdir/flatnet.deb"
version=$(dpkg-deb -f "$deb" Version)
previous_version=
if [[ -n $previous_deb ]]; then
	cp "$previous_deb" "$pkgdir/flatnet-previous.deb"
	previous_version=$(dpkg-deb -f "$previous_deb" Version)
	dpkg --compare-versions "$previous_version" lt "$version" ||
		die "previous package $previous_version is not older than $version"
	log "packages: $version, upgraded to from the last release $previous_version"
else
	log "packages: $version (no previous release given: no upgrade check)"
fi
rpm_version=
previous_rpm_version=
if [[ -n $rpm ]]; then
	rpm_version=$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$rpm" 2>/dev/null) || die "cannot read $rpm"
fi
if [[ -n $previous_rpm ]]; then
	previous_rpm_version=$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$previous_rpm" 2>/dev/null) || die "cannot read $previous_rpm"
	[[ $(rpm --eval "%{lua: print(rpm.vercmp('$previous_rpm_version', '$rpm_version'))}") == -1 ]] ||
		die "previous RPM $previous_rpm_version is not older than $rpm_version"
fi

# ----------------------------------------------------------------- scenarios

declare -A t_scenario
if [[ " ${selected[*]} " == *" piuparts "* ]]; then
	piuparts_start
fi
for scenario in "${selected[@]}"; do
	log "scenario $scenario"
	t0=$SECONDS
	p0=$passed f0=$failed
	"scenario_${scenario//-/_}" || :
	t_scenario[$scenario]=$((SECONDS - t0))
	log "scenario $scenario: $((passed - p0)) passed, $((failed - f0)) failed, ${t_scenario[$scenario]}s"
done
scenario=
if [[ ${FLATNET_TEST_KEEP:-} != 1 ]]; then
	power_off
fi

# ------------------------------------------------------------------- summary

t_total=$((SECONDS - t_start))
timings="debootstrap ${t_debootstrap}s (0 = cached)"
for n in "${!t_boot[@]}"; do
	timings+=", boot $n ${t_boot[n]}s"
done
for s in "${selected[@]}"; do
	timings+=", $s ${t_scenario[$s]}s"
done
log "timings: $timings, whole run ${t_total}s"
if ((failed)); then
	printf 'failed checks:\n'
	printf '  %s\n' "${failures[@]}"
fi
printf '%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
((failed == 0))
