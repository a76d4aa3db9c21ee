# shellcheck shell=bash
# Checked alone, the variables test-package.sh sets and reads look unset
# and unused: shellcheck packaging/test-package.sh checks them together.
# shellcheck disable=SC2034,SC2154
# The RPM scenario, sourced by packaging/test-package.sh: rpm itself runs
# the package's %post, %preun and %postun on install, upgrade and erase,
# in a root where rpm runs (`rpm --root`, an overlay of the cached Debian
# root: /bin/sh and coreutils for the scriptlets, an empty rpm database),
# inside a network namespace the test makes. No RPM-based distribution is
# booted (packaging/README.md says why); what the scripts do is checked:
#
#   - systemctl is a stub on the scriptlets' PATH that writes down each
#     call, and hands preset, enable, disable and is-enabled to the real
#     systemctl working offline on the root's files, so the preset shipped
#     in the package really enables the unit and %post's is-enabled sees it;
#   - /run/systemd/system in the root stands for a booted systemd (the
#     scripts' guard), its absence for a chroot or an image build;
#   - the namespace holds a master eno1, its shim eno1.host and a route of
#     flatnet's (protocol 97), with the CNI network that makes flatnet
#     teardown (%preun) take them for its own: the route goes when the
#     scripts run teardown, and stays when they must not.

rpm_root=
rpm_ns=
rpm_calls=/var/log/flatnet-test-systemctl.log

rpm_teardown() {
	if [[ -n $rpm_ns ]]; then
		ip netns delete "$rpm_ns" 2>/dev/null || :
		rpm_ns=
	fi
	if [[ -n $rpm_root ]] && mountpoint -q "$rpm_root"; then
		umount "$rpm_root" || umount -l "$rpm_root"
	fi
	rpm_root=
}

rpm_setup() {
	rpm_root=$workdir/rpm-root
	mkdir -p "$rpm_root" "$workdir/rpm-upper" "$workdir/rpm-work"
	cleanup_hooks+=(rpm_teardown)
	mount -t overlay overlay \
		-o "lowerdir=$rootfs,upperdir=$workdir/rpm-upper,workdir=$workdir/rpm-work" "$rpm_root" ||
		die "cannot mount an overlay of $rootfs"
	printf '%s\n' "$MACHINE_ID" >"$rpm_root/etc/machine-id"
	mv "$rpm_root/usr/bin/systemctl" "$rpm_root/usr/bin/systemctl.real"
	install -m 0755 /dev/stdin "$rpm_root/usr/bin/systemctl" <<'SCRIPT'
#!/bin/sh
# Stand-in for systemctl (flatnet package test): writes down each call;
# the verbs that work on unit files run the real systemctl offline.
printf '%s\n' "$*" >>/var/log/flatnet-test-systemctl.log
verb=
for a; do
	case $a in
	-*) ;;
	*)
		verb=$a
		break
		;;
	esac
done
case $verb in
preset | enable | disable | is-enabled)
	# shellcheck disable=SC2046 # the arguments are words without blanks
	set -- $(for a; do case $a in --now | --no-reload) ;; *) printf '%s\n' "$a" ;; esac; done)
	SYSTEMD_OFFLINE=1 exec /usr/bin/systemctl.real "$@"
	;;
esac
exit 0
SCRIPT
	mkdir -p "$rpm_root/etc/cni/net.d"
	seed_conflist >"$rpm_root/etc/cni/net.d/10-default.conflist"
	rpm_ns=flatnet-test-rpm-$$
	ip netns add "$rpm_ns"
	ip -n "$rpm_ns" link add eno1 type veth peer name lan0
	ip -n "$rpm_ns" link set lan0 up
	ip -n "$rpm_ns" link set eno1 up
	ip -n "$rpm_ns" link add eno1.host link eno1 type macvlan mode bridge
	ip -n "$rpm_ns" link set eno1.host up
	rpm_route
	rpm_cmd --initdb
}

# rpm_route: flatnet's route to the pod, there whatever came before.
rpm_route() { ip -n "$rpm_ns" route replace 192.168.1.2/32 dev eno1.host proto 97; }
rpm_has_route() { [[ -n $(ip -n "$rpm_ns" route show 192.168.1.2/32 dev eno1.host proto 97) ]]; }
# rpm_cmd ARGS...: rpm on the root, in the test's network namespace;
# in_rpm: installing or erasing there (the root's packages are dpkg's,
# rpm knows none of them).
# A root that looks booted has /proc too, mounted in the mount namespace
# `ip netns exec` makes for the command alone (systemd-tmpfiles in %post
# needs it; a chroot may lack it, and the scripts carry on).
rpm_cmd() {
	if [[ -d $rpm_root/run/systemd/system ]]; then
		# shellcheck disable=SC2016 # expanded by that shell
		ip netns exec "$rpm_ns" sh -c 'mount -t proc proc "$0/proc" && exec rpm --root "$0" "$@"' "$rpm_root" "$@"
	else
		ip netns exec "$rpm_ns" rpm --root "$rpm_root" "$@"
	fi
}
in_rpm() { rpm_cmd --nodeps --noplugins "$@"; }
# booted yes|no: whether the root looks booted with systemd.
booted() {
	if [[ $1 == yes ]]; then
		mkdir -p "$rpm_root/run/systemd/system"
	else
		rm -rf "$rpm_root/run/systemd"
	fi
}
rpm_enabled() { [[ -L $rpm_root/etc/systemd/system/multi-user.target.wants/flatnet.service ]]; }

# rpm_step WHAT EXPECTED-CALLS RPM-ARGS...: run rpm, check that it
# succeeded and that the scripts called systemctl exactly as EXPECTED-CALLS
# (one call a line, in order).
rpm_step() {
	local what=$1 want=$2 got out
	shift 2
	: >"$rpm_root$rpm_calls"
	if ! out=$(in_rpm "$@" 2>&1); then
		fail "rpm $what" "$out"
		return 1
	fi
	got=$(cat "$rpm_root$rpm_calls")
	if [[ $got == "$want" ]]; then
		pass "rpm $what: systemctl called as $(tr '\n' ';' <<<"$got" | sed 's/;$//')"
	else
		fail "rpm $what: systemctl called as $(tr '\n' ';' <<<"$want" | sed 's/;$//')" \
			"got: $(tr '\n' ';' <<<"$got")${out:+ rpm said: $out}"
	fi
}

scenario_rpm() {
	if [[ -z $rpm ]]; then
		skip_or_fail "rpm scripts" "no .rpm given"
		return 0
	fi
	if ! command -v rpm >/dev/null; then
		skip_or_fail "rpm scripts" "rpm is not installed (packaging/deps.sh package)"
		return 0
	fi
	rpm_setup
	if ! rpm_has_route; then
		setup_failed "the shim eno1.host and flatnet's route in the RPM root's namespace"
		rpm_teardown
		return 1
	fi
	local first=$rpm first_version=$rpm_version
	if [[ -n $previous_rpm ]]; then
		first=$previous_rpm
		first_version=$previous_rpm_version
	fi

	log "rpm: install $first_version, upgrade, erase, on a root that looks booted"
	booted yes
	rpm_step "-i $first_version (booted)" $'--no-reload preset flatnet.service\ndaemon-reload\n--quiet is-enabled flatnet.service\nstart flatnet.service' \
		-i "$first"
	if rpm_enabled && [[ -x $rpm_root/usr/bin/flatnet && -f $rpm_root/etc/flatnet/flatnet.toml ]]; then
		pass "rpm -i: the preset enabled flatnet.service, which %post then started; files in place"
	else
		fail "rpm -i: the preset enabled flatnet.service; files in place" \
			"enabled $(present rpm_enabled), $(rpm_cmd -q flatnet 2>&1)"
	fi
	if [[ -n $previous_rpm ]]; then
		# rpm -U: the new %post ($1 = 2), then the old %preun and %postun ($1 = 1).
		# This package's %post makes /run/netns (systemd-tmpfiles), whatever
		# the last release's did.
		rm -rf "$rpm_root/run/netns"
		rpm_step "-U $previous_rpm_version -> $rpm_version (booted)" $'daemon-reload\ndaemon-reload\ntry-restart flatnet.service' \
			-U "$rpm"
		if [[ $(rpm_cmd -q --qf '%{VERSION}-%{RELEASE}' flatnet) == "$rpm_version" ]] && rpm_enabled && rpm_has_route &&
			[[ -d $rpm_root/run/netns ]]; then
			pass "rpm -U: $rpm_version installed, still enabled, the route kept (no teardown on upgrade), /run/netns made by %post"
		else
			fail "rpm -U: $rpm_version installed, still enabled, the route kept, /run/netns made by %post" \
				"$(rpm_cmd -q flatnet 2>&1), enabled $(present rpm_enabled), route $(present rpm_has_route), /run/netns $(present test -d "$rpm_root/run/netns")"
		fi
	else
		skip_or_fail "rpm -U from the last release" "no previous release .rpm given (see packaging/previous-deb.sh)"
	fi
	rpm_step "-e (booted)" $'--no-reload disable --now flatnet.service\ndaemon-reload' -e flatnet
	if ! rpm_enabled && ! rpm_has_route && [[ ! -e $rpm_root/usr/bin/flatnet && ! -e $rpm_root/etc/flatnet ]] &&
		! rpm_cmd -q flatnet >/dev/null 2>&1; then
		pass "rpm -e: disabled, flatnet teardown removed the route, no files left (/usr/bin/flatnet, /etc/flatnet)"
	else
		fail "rpm -e: disabled, flatnet teardown removed the route, no files left" \
			"enabled $(present rpm_enabled), route $(present rpm_has_route), /usr/bin/flatnet $(present test -e "$rpm_root/usr/bin/flatnet"), /etc/flatnet $(present test -e "$rpm_root/etc/flatnet")"
	fi

	log "rpm: install, erase, in a chroot (no systemd)"
	booted no
	rpm_route
	rpm_step "-i $rpm_version (chroot)" '--no-reload preset flatnet.service' -i "$rpm"
	if rpm_enabled; then
		pass "rpm -i in a chroot: enabled by the preset, not started"
	else
		fail "rpm -i in a chroot: enabled by the preset"
	fi
	rpm_step "-e (chroot)" '--no-reload disable --now flatnet.service' -e flatnet
	if ! rpm_enabled && rpm_has_route; then
		pass "rpm -e in a chroot: disabled, the route left alone (no teardown without systemd)"
	else
		fail "rpm -e in a chroot: disabled, the route left alone" "enabled $(present rpm_enabled), route $(present rpm_has_route)"
	fi
	rpm_teardown
}
