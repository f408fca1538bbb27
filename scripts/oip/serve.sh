#!/usr/bin/env bash
# serve.sh serves a SigLIP model folder's towers over the Open Inference
# Protocol with MLServer (the venv .deps/oip that scripts/setup.sh installs),
# as siglip_vision and siglip_text, for trying inference.backend: remote on
# one machine and for scripts/bench-remote.sh.
#
#   scripts/oip/serve.sh MODEL_DIR [VARIANT_SUFFIX] [GRPC_PORT] [HTTP_PORT]
#   # then: inference: {backend: remote, remote: {url: grpc://127.0.0.1:8081}}
#
# The ports default to MLServer's 8081 (gRPC) and 8080 (HTTP); the server
# listens on 127.0.0.1 only. Ctrl-C stops it. For production use Triton
# (docs/07-remote-inference.md); this is the server the tests run.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
model=$(cd "${1:?usage: serve.sh MODEL_DIR [VARIANT_SUFFIX] [GRPC_PORT] [HTTP_PORT]}" && pwd)
suffix=${2:-}
grpc_port=${3:-8081}
http_port=${4:-8080}
mlserver="$root/.deps/oip/bin/mlserver"
[ -x "$mlserver" ] || { echo "serve.sh: $mlserver missing: run scripts/setup.sh" >&2; exit 1; }
for tower in vision text; do
  f="$model/onnx/${tower}_model$suffix.onnx"
  [ -f "$f" ] || { echo "serve.sh: $f missing" >&2; exit 1; }
done

repo=$(mktemp -d "${TMPDIR:-/tmp}/siglipd-oip.XXXXXX")
trap 'rm -rf "$repo"' EXIT
# parallel_workers 0: inference in the server process (MLServer's worker
# processes fail to start with the uvloop pip installs); no metrics port;
# messages up to 256 MiB (the default 4 MiB is less than a batch of 8 at
# 224×224).
cat >"$repo/settings.json" <<JSON
{"host": "127.0.0.1", "parallel_workers": 0, "metrics_endpoint": null, "gzip_enabled": false,
 "grpc_max_message_length": 268435456}
JSON
for tower in vision text; do
  mkdir -p "$repo/siglip_$tower"
  cat >"$repo/siglip_$tower/model-settings.json" <<JSON
{"name": "siglip_$tower", "implementation": "onnx_runtime.OnnxModel", "platform": "onnxruntime_onnx",
 "parameters": {"uri": "$model/onnx/${tower}_model$suffix.onnx", "version": "1"}}
JSON
done
cd "$repo"
PYTHONPATH="$root/scripts/oip" MLSERVER_GRPC_PORT=$grpc_port MLSERVER_HTTP_PORT=$http_port "$mlserver" start "$repo" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$repo"' EXIT INT TERM
wait $pid
