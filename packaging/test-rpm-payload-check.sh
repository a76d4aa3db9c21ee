#!/bin/sh
# Prove that packaging/rpm-payload-check.sh (run by `make lint-package`)
# passes a good RPM and fails the bad payloads it exists to catch:
#
#   - an RPM built by nfpm 2.45.2, the last version before nfpm's RPM
#     payloads named files ./usr/... (go run; needs the Go module proxy);
#   - cpio archives with a `..` name, an absolute name, a file below a
#     symbolic link of the archive;
#   - a file that is no archive at all (exit 2).
#
# Usage: packaging/test-rpm-payload-check.sh GOOD.rpm
set -eu

good=${1:?usage: test-rpm-payload-check.sh GOOD.rpm}
here=$(cd "$(dirname "$0")" && pwd)
check=$here/rpm-payload-check.sh
GO=${GO:-go}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-rpm-payload-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0

# expect RC REASON FILE: the checker exits RC and, when REASON is set,
# names it in its output.
expect() {
	want_rc=$1 reason=$2 file=$3
	rc=0
	"$check" "$file" >"$tmp/out" 2>&1 || rc=$?
	if [ "$rc" -eq "$want_rc" ] && { [ -z "$reason" ] || grep -q -- "$reason" "$tmp/out"; }; then
		echo "PASS: $(basename "$file"): exit $rc${reason:+ ($reason)}"
	else
		# shellcheck disable=SC2016 # the quotes are literal; $reason expands
		echo "FAIL: $(basename "$file"): exit $rc, want $want_rc${reason:+ naming '$reason'}"
		sed 's/^/    /' "$tmp/out"
		failed=1
	fi
}

expect 0 'stays under the current directory' "$good"

# A one-file package from the nfpm that wrote absolute payload names.
mkdir -p "$tmp/nfpm"
echo fixture >"$tmp/nfpm/hello"
cat >"$tmp/nfpm/nfpm.yaml" <<'YAML'
name: payload-fixture
arch: amd64
platform: linux
version: 1.0.0
maintainer: fixture <fixture@example.invalid>
description: a package whose payload names are absolute
license: Apache-2.0
contents:
  - src: hello
    dst: /usr/share/payload-fixture/hello
YAML
if (cd "$tmp/nfpm" && GOFLAGS=-mod=mod "$GO" run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2 \
	package --config nfpm.yaml --packager rpm --target absolute.rpm) >"$tmp/nfpm.log" 2>&1; then
	expect 1 '/usr/share/payload-fixture/hello  (absolute name)' "$tmp/nfpm/absolute.rpm"
else
	echo "FAIL: could not build the bad RPM with nfpm 2.45.2"
	sed 's/^/    /' "$tmp/nfpm.log"
	failed=1
fi

# cpio archives made with GNU cpio, which stores names as given.
src=$tmp/src
mkdir -p "$src/sub" "$src/usr/bin" "$src/target"
echo x >"$src/escape"
echo x >"$src/usr/bin/tool"
echo x >"$src/target/file"
ln -s target "$src/link"
(cd "$src" && printf '%s\n' ./usr ./usr/bin ./usr/bin/tool | cpio -o -H newc --quiet) >"$tmp/good.cpio"
(cd "$src/sub" && printf '%s\n' ../escape | cpio -o -H newc --quiet) >"$tmp/dotdot.cpio"
(cd "$src" && printf '%s\n' ./usr/bin/tool "$src/escape" | cpio -o -H newc --quiet) >"$tmp/absolute.cpio"
(cd "$src" && printf '%s\n' ./link ./link/file | cpio -o -H newc --quiet) >"$tmp/symlink.cpio"
echo 'not an archive' >"$tmp/garbage.rpm"

expect 0 '' "$tmp/good.cpio"
expect 1 '../escape  (.. component)' "$tmp/dotdot.cpio"
expect 1 "$src/escape  (absolute name)" "$tmp/absolute.cpio"
expect 1 'link/file  (below the symbolic link link)' "$tmp/symlink.cpio"
expect 2 '' "$tmp/garbage.rpm"

exit "$failed"
