#!/bin/sh
# Fail when unpacking a package's payload the usual way,
#
#     rpm2cpio PACKAGE.rpm | cpio -idm
#
# in a scratch directory would write anywhere outside that directory: a name
# that is absolute (/usr/bin/flatnet, as nfpm before 2.48 wrote them), that
# climbs out with a `..` component, or that lies below a symbolic link of the
# same archive (cpio follows the link it has just made). rpmbuild names every
# file ./usr/...; so must we. Run by `make lint-package` before rpmlint, which
# unpacks the package exactly that way.
#
# Usage: rpm-payload-check.sh FILE...   (FILE: a .rpm, or a newc .cpio archive)
# Exit 0 when every FILE is safe, 1 otherwise, 2 when one cannot be read.
set -eu

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rpm-payload-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

rc=0
for f in "$@"; do
	# rpm2cpio itself exits 1 on nfpm's old absolute payloads, after writing
	# them out: list what it wrote, and report its failure as well.
	r2c=0
	case $f in
	*.rpm) rpm2cpio "$f" >"$tmp/payload.cpio" 2>"$tmp/err" || r2c=$? ;;
	*) cp "$f" "$tmp/payload.cpio" ;;
	esac
	if ! cpio -it --quiet <"$tmp/payload.cpio" >"$tmp/names" 2>"$tmp/err" ||
		! cpio -itv --quiet <"$tmp/payload.cpio" >"$tmp/long" 2>>"$tmp/err"; then
		echo "$f: not a cpio payload: $(tr '\n' ' ' <"$tmp/err")" >&2
		rc=2
		continue
	fi
	if ! [ -s "$tmp/names" ]; then
		echo "$f: empty payload" >&2
		rc=2
		continue
	fi
	# Symbolic links, by name (cpio -tv prints "NAME -> TARGET" last).
	sed -n 's/^l[^ ]* *[^ ]* *[^ ]* *[^ ]* *[^ ]* *[^ ]* *[^ ]* *[^ ]* \(.*\) -> .*/\1/p' \
		"$tmp/long" >"$tmp/links"
	bad=$(awk -v linkfile="$tmp/links" '
		# norm: the name as cpio -d makes it under ".", without "./" parts.
		function norm(p,    n, i, parts, out) {
			n = split(p, parts, "/")
			out = ""
			for (i = 1; i <= n; i++) {
				if (parts[i] == "" || parts[i] == ".") continue
				out = out == "" ? parts[i] : out "/" parts[i]
			}
			return out
		}
		BEGIN {
			while ((getline l < linkfile) > 0) link[norm(l)] = 1
		}
		{
			name = $0
			if (name ~ /^\//) { print "  " name "  (absolute name)"; next }
			if (("/" name "/") ~ /\/\.\.\//) { print "  " name "  (.. component)"; next }
			p = norm(name)
			while (sub(/\/[^\/]*$/, "", p)) {
				if (p in link) { print "  " name "  (below the symbolic link " p ")"; next }
			}
		}' "$tmp/names")
	if [ "$r2c" -ne 0 ]; then
		bad="$bad${bad:+
}  (and rpm2cpio failed, exit code $r2c)"
	fi
	n=$(wc -l <"$tmp/names")
	if [ -n "$bad" ]; then
		echo "$f: unpacking the payload would write outside the current directory:" >&2
		printf '%s\n' "$bad" >&2
		rc=1
	else
		echo "$f: payload of $n entries stays under the current directory"
	fi
done
exit "$rc"
