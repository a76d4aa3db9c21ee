#!/bin/sh
# Turn the project version (`git describe --tags --always --dirty`, or a
# plain X.Y.Z) into a package version that deb and rpm both accept and that
# sorts the way releases and snapshots happen:
#
#   v1.2.3                   -> 1.2.3
#   v1.2.3-rc1               -> 1.2.3~rc1            (before 1.2.3)
#   v1.2.3-4-gabc1234        -> 1.2.3+git4.abc1234   (after 1.2.3)
#   abc1234 (no tag yet)     -> 0.1.0~git<N>.abc1234 (before 0.1.0; N counts commits)
#   ...-dirty                -> ... .dirty
#
# Usage: pkg-version.sh VERSION [BASE]   (BASE, default 0.1.0, for untagged trees)
set -eu

v=${1:?usage: pkg-version.sh VERSION [BASE]}
base=${2:-0.1.0}
suffix=
case $v in
*-dirty)
	v=${v%-dirty}
	suffix=.dirty
	;;
esac
v=${v#v}

semver='[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*'
if printf '%s\n' "$v" | grep -qx "$semver"; then
	out=$v
elif printf '%s\n' "$v" | grep -qx "$semver-[0-9][0-9]*-g[0-9a-f][0-9a-f]*"; then
	# X.Y.Z-N-gSHA: N commits after tag X.Y.Z
	sha=${v##*-g}
	rest=${v%-g*}
	n=${rest##*-}
	out=${rest%-*}+git$n.$sha
elif printf '%s\n' "$v" | grep -qx "$semver-[0-9A-Za-z.]*-[0-9][0-9]*-g[0-9a-f][0-9a-f]*"; then
	# X.Y.Z-pre-N-gSHA: N commits after a pre-release tag
	sha=${v##*-g}
	rest=${v%-g*}
	n=${rest##*-}
	rest=${rest%-*}
	out=${rest%%-*}~${rest#*-}+git$n.$sha
elif printf '%s\n' "$v" | grep -qx "$semver-[0-9A-Za-z.]*"; then
	# X.Y.Z-pre: a pre-release tag sorts before X.Y.Z
	out=${v%%-*}~${v#*-}
elif printf '%s\n' "$v" | grep -qx '[0-9a-f]\{4,40\}'; then
	# a bare commit: no tag yet
	n=$(git rev-list --count HEAD 2>/dev/null || echo 0)
	out=$base~git$n.$v
else
	# anything else: keep what deb and rpm both allow
	clean=$(printf '%s' "$v" | tr -c '0-9A-Za-z.~+' '.')
	out=$base~$clean
fi
printf '%s%s\n' "$out" "$suffix"
