#!/bin/sh
# Write the Debian changelog for package version VERSION to stdout: the
# released entries of packaging/changelog up to VERSION, with an entry for
# VERSION itself on top when it is a snapshot (not a released version).
#
# Usage: debian-changelog.sh VERSION DESCRIBE MAINTAINER EPOCH
#   DESCRIBE    what the snapshot was built from (git describe)
#   MAINTAINER  "Name <address>" for the snapshot entry
#   EPOCH       the snapshot entry's date, seconds since 1970 (commit time)
set -eu

version=${1:?version}
describe=${2:?describe}
maintainer=${3:?maintainer}
epoch=${4:?epoch}
src=$(dirname "$0")/changelog

# Keep the entries whose version is not newer than the one being built;
# awk exits 10 when VERSION itself is a released entry.
rc=0
kept=$(awk -v want="$version" '
	function older_or_equal(v) {
		return system("dpkg --compare-versions \"" v "\" le \"" want "\"") == 0
	}
	/^[a-z0-9][a-z0-9.+-]* \(/ {
		v = $2; gsub(/[()]/, "", v)
		keep = older_or_equal(v)
		if (v == want) released = 1
	}
	keep { print }
	END { exit released ? 10 : 0 }
' "$src") || rc=$?
case $rc in
0 | 10) ;;
*) exit "$rc" ;;
esac

if [ "$rc" -ne 10 ]; then
	date=$(LC_ALL=C date -u -R -d "@$epoch")
	printf 'flatnet (%s) UNRELEASED; urgency=medium\n\n' "$version"
	printf '  * Snapshot built from %s.\n\n' "$describe"
	printf ' -- %s  %s\n' "$maintainer" "$date"
	if [ -n "$kept" ]; then
		printf '\n'
	fi
fi
if [ -n "$kept" ]; then
	printf '%s\n' "$kept"
fi
