# shellcheck shell=bash
# Checked alone, the variables test-package.sh sets and reads look unset
# and unused: shellcheck packaging/test-package.sh checks them together.
# shellcheck disable=SC2034,SC2154
# The piuparts scenario, sourced by packaging/test-package.sh: Debian's own
# test of a package's install, upgrade and purge cycle, in a chroot of its
# own made from a copy of the cached root file system. It needs no
# container, so it runs in the background beside the other scenarios:
# piuparts_start at the beginning, scenario_piuparts collects it.
#
# With the last release, piuparts sees it in a local repository
# (--extra-repo) as the version "in the archive", so it installs it,
# upgrades to this package and purges ("Installation, upgrade and purging
# tests"); without, it installs and purges. It checks what the maintainer
# scripts leave: files not removed, files changed outside the package,
# processes left running, broken symlinks, and runs adequate. In its
# chroot no systemd runs: the scripts take their no-systemd branch, which
# the booted scenarios do not reach.

piuparts_pid=
piuparts_skip=
piuparts_expect=

piuparts_start() {
	if ! command -v piuparts >/dev/null; then
		piuparts_skip="piuparts is not installed (packaging/deps.sh package)"
		return
	fi
	local mirror args=()
	mirror=${FLATNET_TEST_MIRROR:-$(find_mirror)}
	use_apt_proxy
	piuparts_expect="PASS: Installation and purging test."
	if [[ -n $previous_deb ]]; then
		if ! command -v dpkg-scanpackages >/dev/null; then
			piuparts_skip="dpkg-scanpackages (dpkg-dev) is missing, for the last release's repository"
			return
		fi
		mkdir -p "$workdir/piuparts-repo"
		cp "$previous_deb" "$workdir/piuparts-repo/"
		(cd "$workdir/piuparts-repo" && dpkg-scanpackages . /dev/null >Packages 2>/dev/null)
		args+=(--bindmount="$workdir/piuparts-repo"
			--extra-repo="deb [trusted=yes] file://$workdir/piuparts-repo ./")
		piuparts_expect="PASS: Installation, upgrade and purging tests."
	fi
	log "piuparts, in the background: ${previous_version:+$previous_version -> }$version"
	piuparts --existing-chroot="$rootfs" -d "$SUITE" -m "$mirror" "${args[@]}" \
		-l "$workdir/piuparts.log" "$deb" >"$workdir/piuparts.out" 2>&1 &
	piuparts_pid=$!
	cleanup_hooks+=(piuparts_stop)
}

# piuparts_stop: at exit, a piuparts still running is stopped; it removes
# its chroot and the mounts in it on SIGTERM.
piuparts_stop() {
	if [[ -n $piuparts_pid ]] && kill -0 "$piuparts_pid" 2>/dev/null; then
		kill -TERM "$piuparts_pid" 2>/dev/null
		wait "$piuparts_pid" 2>/dev/null
	fi
	piuparts_pid=
}

scenario_piuparts() {
	if [[ -n $piuparts_skip ]]; then
		skip_or_fail "piuparts" "$piuparts_skip"
		return 0
	fi
	[[ -n $piuparts_pid ]] || piuparts_start
	local rc=0 t0=$SECONDS
	wait "$piuparts_pid" || rc=$?
	piuparts_pid=
	((SECONDS - t0 < 1)) || log "waited $((SECONDS - t0))s for piuparts"
	if ((rc == 0)) && grep -qF "$piuparts_expect" "$workdir/piuparts.log" &&
		grep -qF 'PASS: All tests.' "$workdir/piuparts.log"; then
		pass "piuparts: ${piuparts_expect#PASS: } (${previous_version:+$previous_version -> }$version)"
	else
		fail "piuparts: ${piuparts_expect#PASS: }" "exit status $rc; $(grep -E 'ERROR|FAIL' "$workdir/piuparts.log" | head -n 5 | tr '\n' ';')"
		tail -n 40 "$workdir/piuparts.log"
	fi
}
