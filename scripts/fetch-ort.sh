#!/usr/bin/env bash
# fetch-ort.sh puts ONNX Runtime's shared library where siglipd looks for it by
# default: .deps/onnxruntime/lib/libonnxruntime.so.1 (git-ignored).
#
#   scripts/fetch-ort.sh                 # this machine's architecture, into .deps/onnxruntime
#   scripts/fetch-ort.sh ARCH [DIR]      # amd64 or arm64, into DIR/lib (scripts/dist.sh)
#
# The library comes from the npm tarball of onnxruntime-node, the one registry
# that ships a prebuilt Linux ONNX Runtime this machine can reach. Only the
# shared library is used; the Node binding around it is not. One tarball
# carries both architectures, so a cross build (scripts/dist.sh) takes its
# arm64 library from the same release as the amd64 one.
#
# Without DIR, another architecture's library goes to .deps/onnxruntime-ARCH:
# .deps/onnxruntime must stay loadable here, the tests and the demo use it.
set -euo pipefail

ORT_NPM_VERSION=${ORT_NPM_VERSION:-1.30.0}
root=$(cd "$(dirname "$0")/.." && pwd)

# Go's and Debian's names (amd64, arm64) on the command line; npm's (x64,
# arm64) in the tarball.
npm_arch() {
  case $1 in
  x86_64 | amd64 | x64) echo x64 ;;
  aarch64 | arm64) echo arm64 ;;
  *) echo "fetch-ort: unsupported architecture $1 (amd64, arm64)" >&2; exit 1 ;;
  esac
}
machine=$(npm_arch "$(uname -m)")
arch=$(npm_arch "${1:-$(uname -m)}")
if [ -n "${2:-}" ]; then
  dest=$2
elif [ "$arch" = "$machine" ]; then
  dest="$root/.deps/onnxruntime"
else
  dest="$root/.deps/onnxruntime-$([ "$arch" = x64 ] && echo amd64 || echo "$arch")"
fi
lib="$dest/lib/libonnxruntime.so.1"
stamp="$dest/VERSION"

if [ -f "$lib" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ORT_NPM_VERSION-$arch" ]; then
  exit 0
fi

echo "fetch-ort: fetching onnxruntime-node@$ORT_NPM_VERSION (≈113 MB, npm caches it) for linux/$arch"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_NPM_VERSION" >/dev/null)
tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" "package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
mkdir -p "$dest/lib"
install -m 0644 "$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1" "$lib"
echo "$ORT_NPM_VERSION-$arch" >"$stamp"
echo "fetch-ort: installed $lib"
