#!/usr/bin/env bash
# setup-node.sh installs transformers.js, the independent SigLIP implementation
# our parity tests compare against, into scripts/js/node_modules (git-ignored).
#
# --onnxruntime-node-install=skip: onnxruntime-node's postinstall otherwise
# tries to download CUDA files, which fails without internet; its CPU library is
# already in the npm tarball.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/scripts/js"
if [ -f node_modules/.package-lock.json ] && cmp -s package-lock.json node_modules/.siglipd-lock; then
  exit 0
fi
echo "setup-node: installing transformers.js into scripts/js/node_modules"
npm ci --no-audit --no-fund --silent --onnxruntime-node-install=skip
cp package-lock.json node_modules/.siglipd-lock
