#!/usr/bin/env bash
# Re-fetches the dashboard's one third-party library, uPlot (charts), from the npm registry into
# ui/static/vendor/. The files are committed, so building opslog never needs Node or the network;
# run this only to change the version (then commit the result).
set -euo pipefail
cd "$(dirname "$0")"
VERSION="${1:-1.6.32}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$VERSION" >/dev/null && tar -xzf "uplot-$VERSION.tgz")
mkdir -p static/vendor
cp "$work/package/dist/uPlot.iife.min.js" static/vendor/uPlot.iife.min.js
cp "$work/package/dist/uPlot.min.css" static/vendor/uPlot.min.css
cp "$work/package/LICENSE" static/vendor/uPlot.LICENSE
echo "uPlot $VERSION vendored into ui/static/vendor/"
