#!/bin/sh
# Convert a Debian changelog (stdin, as written by debian-changelog.sh) into
# the chglog YAML that nfpm turns into the RPM %changelog (stdout).
set -eu

q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }

flush_note() {
	if [ -n "$note" ]; then
		printf '      - note: %s\n' "$(q "$note")"
		note=
	fi
}

note=
while IFS= read -r line; do
	case $line in
	"flatnet ("*)
		version=${line#*(}
		version=${version%%)*}
		# chglog wants semver: 0.1.0~git4.abc -> 0.1.0-git4.abc
		printf -- '- semver: %s\n' "$(q "$(printf '%s' "$version" | sed 's/~/-/')")"
		printf '  changes:\n'
		;;
	"  * "*)
		flush_note
		note=${line#  \* }
		;;
	"    "*)
		note="$note $(printf '%s' "$line" | sed 's/^ *//')"
		;;
	" -- "*)
		flush_note
		trailer=${line# -- }
		packager=${trailer%%>*}\>
		date=${trailer#*>  }
		printf '  packager: %s\n' "$(q "$packager")"
		printf '  date: %s\n' "$(LC_ALL=C date -u -d "$date" +%Y-%m-%dT%H:%M:%SZ)"
		;;
	esac
done
