#!/bin/sh
# Run the RPM's install, upgrade and removal scripts for real: rpm installs
# the package into an alternate root (rpm --root) that holds only what the
# scripts need, a shell and a systemctl that records its arguments, and
# each step's systemctl calls are compared with what %post, %preun and
# %postun must do (like %systemd_post, %systemd_preun,
# %systemd_postun_with_restart, docs/systemd.md). /run/systemd/system
# exists in the root, as on a booted systemd. No RPM-based system is
# needed: Debian's rpm installs into a root. rpm runs in a network
# namespace of its own, so that `flatnet teardown` in %preun can reach
# nothing of this machine's.
#
# Usage (root): packaging/test-rpm-scripts.sh dist/flatnet-<version>-1.<arch>.rpm
set -eu

rpmfile=${1:?usage: test-rpm-scripts.sh PACKAGE.rpm}
[ "$(id -u)" -eq 0 ] || {
	echo "test-rpm-scripts: needs root (rpm --root, mknod, unshare)" >&2
	exit 1
}
root=$(mktemp -d "${TMPDIR:-/tmp}/flatnet-rpmroot.XXXXXX")
trap 'rm -rf "$root"' EXIT
failed=0

mkdir -p "$root/bin" "$root/usr/bin" "$root/dev" "$root/run/systemd/system" "$root/var/log" "$root/tmp"
# A shell, with the libraries it loads.
cp "$(readlink -f /bin/sh)" "$root/bin/sh"
for lib in $(ldd /bin/sh | grep -o '/[^ ]*'); do
	mkdir -p "$root$(dirname "$lib")"
	cp "$lib" "$root$lib"
done
mknod -m 666 "$root/dev/null" c 1 3
cat >"$root/usr/bin/systemctl" <<'STUB'
#!/bin/sh
echo "$*" >>/var/log/systemctl.log
exit 0
STUB
chmod 755 "$root/usr/bin/systemctl"
rpm --root "$root" --initdb

# step NAME EXPECTED RPM-ARGS...: run rpm, compare the systemctl calls.
step() {
	name=$1 want=$2
	shift 2
	: >"$root/var/log/systemctl.log"
	if ! unshare --net rpm --root "$root" --nodeps "$@" >"$root/tmp/rpm.out" 2>&1; then
		echo "FAIL: $name: rpm $*:" >&2
		cat "$root/tmp/rpm.out" >&2
		failed=1
		return
	fi
	if grep -v -e 'use Alien' -e 'assuming you know' "$root/tmp/rpm.out" | grep . >&2; then
		echo "FAIL: $name: the scripts wrote the above" >&2
		failed=1
	fi
	got=$(cat "$root/var/log/systemctl.log")
	if [ "$got" != "$want" ]; then
		printf 'FAIL: %s: systemctl was called with\n%s\nwant\n%s\n' "$name" "$got" "$want" >&2
		failed=1
		return
	fi
	echo "ok: $name"
}
installed() { [ -x "$root/usr/bin/flatnet" ] && [ -f "$root/usr/lib/systemd/system/flatnet.service" ]; }

step install "--no-reload preset flatnet.service
daemon-reload
--quiet is-enabled flatnet.service
start flatnet.service" -i "$rpmfile"
installed || { echo "FAIL: install: the binary or the unit is missing" >&2; failed=1; }

# An upgrade (the same package again): %post with 2, the old %postun
# with 1; the running daemon is restarted, never stopped or disabled.
step upgrade "daemon-reload
daemon-reload
try-restart flatnet.service" -U --replacepkgs "$rpmfile"
installed || { echo "FAIL: upgrade: the binary or the unit is missing" >&2; failed=1; }

# Removal: %preun with 0 stops and disables, then tears down; %postun
# reloads systemd.
step remove "--no-reload disable --now flatnet.service
daemon-reload" -e flatnet
if installed; then
	echo "FAIL: remove: the binary or the unit is still there" >&2
	failed=1
fi
exit $failed
