#!/bin/sh
# Build the .deb of the last release, for the package test's upgrade check:
# the previous tag (the newest tag before HEAD), or the previous commit while
# there are no tags. It is built from a temporary `git worktree` of that
# revision with its own Makefile, so it is what that release really shipped.
#
# Usage: packaging/previous-deb.sh OUTDIR
#
# Prints the path of the .deb on stdout. When the revision is not in the
# clone (a shallow clone, a first commit), it prints nothing and says so
# loudly on stderr; under CI (packaging/ci.sh: CI set to anything but a
# spelling of false) that is an error.
set -eu

out=${1:?usage: previous-deb.sh OUTDIR}
# That revision's Makefile may call plain `go`: find the same one.
case ${GO:-} in
/*) PATH=$(dirname "$GO"):$PATH ;;
esac

# ci_truthy: the one reading of CI, the Go tests' (packaging/ci.sh).
# shellcheck source=packaging/ci.sh
. "$(dirname "$0")/ci.sh"

unavailable() {
	if ci_truthy; then
		printf 'previous-deb: %s; the upgrade check needs it (CI=%s). Fetch the history (git fetch --unshallow --tags) or clone without --depth.\n' "$1" "$CI" >&2
		exit 1
	fi
	{
		printf '\n'
		printf '!!! ================================================================\n'
		printf '!!! SKIPPING the upgrade from the last release: %s.\n' "$1"
		printf '!!! Fetch the history (git fetch --unshallow --tags) to run it.\n'
		printf '!!! ================================================================\n\n'
	} >&2
	exit 0
}

git rev-parse --git-dir >/dev/null 2>&1 || unavailable "not a git checkout"
if tag=$(git describe --tags --abbrev=0 'HEAD^' 2>/dev/null); then
	ref=$tag
	what="tag $tag"
else
	ref='HEAD^'
	what="the previous commit (no tags yet)"
fi
if ! commit=$(git rev-parse --verify --quiet "$ref^{commit}" 2>/dev/null); then
	if [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then
		unavailable "$what is not in this shallow clone"
	fi
	unavailable "$what does not exist (HEAD has no parent)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/flatnet-previous.XXXXXX")
src=$tmp/src
cleanup() {
	git worktree remove --force "$src" >/dev/null 2>&1 || true
	rm -rf "$tmp"
	git worktree prune >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "previous-deb: building $what, $(git log -1 --format='%h %s' "$commit")" >&2
git worktree add --quiet --detach "$src" "$commit" >&2
# The build must see that revision's own settings, none of the caller's make
# variables (a parent make passes its command line in MAKEFLAGS).
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u VERSION -u PKG_VERSION -u DIST -u GO \
	make -C "$src" --no-print-directory deb >"$tmp/build.log" 2>&1; then
	tail -n 30 "$tmp/build.log" >&2
	echo "previous-deb: building the .deb of $what failed" >&2
	exit 1
fi
set -- "$src"/dist/flatnet_*.deb
[ -f "$1" ] || {
	echo "previous-deb: no .deb in $src/dist" >&2
	exit 1
}
mkdir -p "$out"
rm -f "$out"/flatnet_*.deb
cp "$1" "$out/"
echo "previous-deb: $(basename "$1")" >&2
printf '%s\n' "$out/$(basename "$1")"
