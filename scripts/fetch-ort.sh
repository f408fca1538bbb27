#!/usr/bin/env bash
# fetch-ort.sh puts ONNX Runtime's shared library where siglipd looks for it by
# default: .deps/onnxruntime/lib/libonnxruntime.so.1 (git-ignored).
#
# The library comes from the npm tarball of onnxruntime-node, the one registry
# that ships a prebuilt Linux ONNX Runtime this machine can reach. Only the
# shared library is used; the Node binding around it is not.
set -euo pipefail

ORT_NPM_VERSION=${ORT_NPM_VERSION:-1.30.0}
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.deps/onnxruntime"
lib="$dest/lib/libonnxruntime.so.1"
stamp="$dest/VERSION"

case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "fetch-ort: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac

if [ -f "$lib" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ORT_NPM_VERSION-$arch" ]; then
  exit 0
fi

echo "fetch-ort: fetching onnxruntime-node@$ORT_NPM_VERSION (≈113 MB) for linux/$arch"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_NPM_VERSION" >/dev/null)
tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" "package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
mkdir -p "$dest/lib"
install -m 0644 "$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1" "$lib"
echo "$ORT_NPM_VERSION-$arch" >"$stamp"
echo "fetch-ort: installed $lib"
