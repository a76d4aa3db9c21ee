#!/bin/sh
# Install what `make demo` and `make test` need when it is missing, through
# the system's package manager, saying what it installs: apt-get on Debian
# and Ubuntu, dnf on Fedora and RHEL (and their rebuilds). On any other
# system, or without root, it prints one line naming the packages and fails.
# Go itself is not installed: it is assumed present (https://go.dev/dl/).
#
# Usage: packaging/deps.sh GROUP...
#   demo     the namespace lab: ip, ping, nft, the CNI plugins; CA
#            certificates for Go's module downloads
#   test     the Go tests besides: arping, inotifywait, zsh, tcpdump; for
#            the CRI tests containerd (with ctr), runc, dnsmasq, nsenter
#            and unshare; iperf3 for make bench's guard section
#   package  lint-package and test-package: debootstrap, systemd-nspawn,
#            lintian, rpmlint, rpm, rpm2cpio, cpio, strip, git, piuparts
#            (with adequate, which it runs), dpkg-scanpackages, ...
#
# DEPS_DRY_RUN=1 prints what would be installed and installs nothing;
# DEPS_OS_RELEASE names another os-release file than /etc/os-release.
set -eu

# need: one line a requirement: what is checked, then the Debian/Ubuntu
# package and the Fedora/RHEL package that provide it ("-": none there, and
# the test that needs it skips, or fails under CI). "cni" stands for the
# macvlan and host-local plugins in any directory flatnet's tests search.
need_demo='
cmd:ip             iproute2                     iproute
cmd:ping           iputils-ping                 iputils
cmd:nft            nftables                     nftables
cni                containernetworking-plugins  containernetworking-plugins
file:/etc/ssl/certs/ca-certificates.crt ca-certificates ca-certificates
'
need_test='
cmd:arping         iputils-arping               iputils
cmd:inotifywait    inotify-tools                inotify-tools
cmd:bash           bash                         bash
cmd:zsh            zsh                          zsh
cmd:tcpdump        tcpdump                      tcpdump
cmd:iperf3         iperf3                       iperf3
cmd:containerd     containerd                   containerd
cmd:ctr            containerd                   containerd
cmd:runc           runc                         runc
cmd:dnsmasq        dnsmasq-base                 dnsmasq
cmd:nsenter        util-linux                   util-linux
cmd:unshare        util-linux                   util-linux
'
need_package='
cmd:debootstrap    debootstrap                  debootstrap
cmd:systemd-nspawn systemd-container            systemd-container
cmd:nsenter        util-linux                   util-linux
cmd:dpkg-deb       dpkg                         dpkg
cmd:lintian        lintian                      lintian
cmd:rpmlint        rpmlint                      rpmlint
cmd:rpm            rpm                          rpm
cmd:rpm2cpio       rpm2cpio                     rpm
cmd:cpio           cpio                         cpio
cmd:strip          binutils                     binutils
cmd:git            git                          git-core
cmd:make           make                         make
cmd:piuparts       piuparts                     -
cmd:adequate       adequate                     -
cmd:dpkg-scanpackages dpkg-dev                  dpkg-dev
file:/usr/share/keyrings/debian-archive-keyring.gpg debian-archive-keyring debian-keyring
'

[ $# -gt 0 ] || set -- demo test package
needs=
for group in "$@"; do
	case $group in
	demo) needs="$needs$need_demo" ;;
	test) needs="$needs$need_test" ;;
	package) needs="$needs$need_package" ;;
	*)
		echo "deps: unknown group '$group' (demo, test, package)" >&2
		exit 2
		;;
	esac
done

# Where the tests look for CNI plugins ($CNI_PATH, then these).
cni_dirs="${CNI_PATH:-}:/opt/cni/bin:/usr/lib/cni:/usr/libexec/cni"
have_cni() {
	old_ifs=$IFS
	IFS=:
	for d in $cni_dirs; do
		if [ -n "$d" ] && [ -x "$d/macvlan" ] && [ -x "$d/host-local" ]; then
			IFS=$old_ifs
			return 0
		fi
	done
	IFS=$old_ifs
	return 1
}
# Commands in sbin count even when the caller's PATH lacks it.
have_cmd() { PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1; }

# DEPS_OS_RELEASE, for the tests of this script: another os-release file.
os_release=${DEPS_OS_RELEASE:-/etc/os-release}
os_id=
os_like=
if [ -r "$os_release" ]; then
	# shellcheck disable=SC1090
	os_id=$(. "$os_release" && printf '%s' "${ID:-}")
	# shellcheck disable=SC1090
	os_like=$(. "$os_release" && printf '%s' "${ID_LIKE:-}")
fi
family=other
for w in $os_id $os_like; do
	case $w in
	debian | ubuntu)
		family=debian
		break
		;;
	fedora | rhel | centos | rocky | almalinux)
		family=fedora
		break
		;;
	esac
done

missing_what=
missing_deb=
missing_rpm=
add() { # add LIST WORD: LIST with WORD once
	case " $1 " in
	*" $2 "*) printf '%s' "$1" ;;
	*) printf '%s' "${1:+$1 }$2" ;;
	esac
}
while read -r what deb rpm; do
	[ -n "$what" ] || continue
	case $what in
	cmd:*) have_cmd "${what#cmd:}" && continue ;;
	file:*) [ -e "${what#file:}" ] && continue ;;
	cni) have_cni && continue ;;
	esac
	if [ "$family" = fedora ] && [ "$rpm" = - ]; then
		echo "deps: ${what#cmd:} is not packaged for this system: the test that needs it skips (and fails under CI)" >&2
		continue
	fi
	label=${what#cmd:}
	label=${label#file:}
	[ "$what" = cni ] && label="CNI plugins macvlan+host-local"
	missing_what=$(add "$missing_what" "$label")
	missing_deb=$(add "$missing_deb" "$deb")
	[ "$rpm" = - ] || missing_rpm=$(add "$missing_rpm" "$rpm")
done <<EOF
$needs
EOF

go_note=
if ! have_cmd "${GO:-go}" && ! [ -x /usr/local/go/bin/go ]; then
	go_note="; Go is not installed either: get it from https://go.dev/dl/ (not installed by this script)"
fi

if [ -z "$missing_what" ]; then
	if [ -n "$go_note" ]; then
		echo "deps: Go not found: get it from https://go.dev/dl/ (not installed by this script)" >&2
		exit 1
	fi
	exit 0
fi

case $family in
debian)
	pkgs=$missing_deb
	cmd="apt-get install -y --no-install-recommends $pkgs"
	;;
fedora)
	pkgs=$missing_rpm
	cmd="dnf install -y $pkgs"
	;;
*)
	echo "deps: missing $missing_what; install the packages that provide them (Debian/Ubuntu: $missing_deb; Fedora/RHEL: $missing_rpm)$go_note" >&2
	exit 1
	;;
esac

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing $missing_what; as root: $cmd$go_note" >&2
	exit 1
fi
echo "deps: missing $missing_what; installing: $pkgs" >&2
if [ "${DEPS_DRY_RUN:-}" = 1 ]; then
	echo "deps: (dry run) $cmd" >&2
	exit 0
fi
case $family in
debian)
	export DEBIAN_FRONTEND=noninteractive
	# A fresh machine has no package lists yet: update when the install
	# cannot find something.
	# shellcheck disable=SC2086
	if ! apt-get install -y -q --no-install-recommends $pkgs >/dev/null 2>&1; then
		echo "deps: apt-get update" >&2
		apt-get update -q >/dev/null
		# shellcheck disable=SC2086
		apt-get install -y -q --no-install-recommends $pkgs >/dev/null
	fi
	;;
fedora)
	# RHEL and its rebuilds keep inotify-tools, debootstrap, lintian and
	# dpkg in EPEL.
	case "$os_id" in
	rhel | centos | rocky | almalinux)
		if ! rpm -q epel-release >/dev/null 2>&1; then
			echo "deps: enabling EPEL (epel-release)" >&2
			dnf install -y -q epel-release >/dev/null || true
		fi
		;;
	esac
	# shellcheck disable=SC2086
	dnf install -y -q $pkgs >/dev/null
	;;
esac
echo "deps: installed $pkgs" >&2
if [ -n "$go_note" ]; then
	echo "deps: Go not found: get it from https://go.dev/dl/ (not installed by this script)" >&2
	exit 1
fi
