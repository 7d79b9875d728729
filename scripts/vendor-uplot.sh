#!/usr/bin/env bash
# Vendors uPlot, the dashboard's chart library, into the hub's embedded assets: downloads the
# pinned release from the npm registry, refuses it unless its sha512 is the one pinned here
# (the registry's dist.integrity when it was pinned: `npm view uplot@VERSION dist.integrity`),
# and copies the minified IIFE build, its stylesheet and its licence into
# fleet/http/web/static/vendor/uplot-VERSION/. The version is in the path so the hub can serve
# the files as immutable; to upgrade, change both pins, run this, and update the two references
# in fleet/http/web/static/index.html. Needs npm (or curl), openssl and tar.
set -euo pipefail

VERSION=1.6.32
INTEGRITY=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/fleet/http/web/static/vendor/uplot-$VERSION"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tarball="$tmp/uplot-$VERSION.tgz"
if command -v npm >/dev/null 2>&1; then
	(cd "$tmp" && npm pack --silent "uplot@$VERSION" >/dev/null)
else
	curl -fsSL -o "$tarball" "https://registry.npmjs.org/uplot/-/uplot-$VERSION.tgz"
fi

got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
	echo "uplot-$VERSION.tgz: integrity $got, want $INTEGRITY: refusing it" >&2
	exit 1
fi

tar -xzf "$tarball" -C "$tmp"
mkdir -p "$dest"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$dest/"
echo "vendored uPlot $VERSION into ${dest#"$root"/}" >&2
