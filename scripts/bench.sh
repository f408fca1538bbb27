#!/usr/bin/env bash
# bench.sh is `make bench`: one table, measured in one run on this machine
# (BenchmarkTable in daemon/cmd/siglipd): the vision tower, raw ONNX Runtime
# against siglipd, fp32 and int8; the whole daemon on file cameras through
# the rules to mosquitto; transformers.js on the same model and frames.
# The base preset (SigLIP base dimensions, random weights, ≈1.4 GB) and its
# int8 variant are generated once into .deps/models/base. After the table,
# the frame store searched at 1 M frames (BenchmarkSearch1M in
# daemon/framestore), appended to the same file; its store is filled once
# into .deps/bench/framestore-1m (≈ 3 GB, needs 8 GB free) and reused after.
# Then the many-camera table (BenchmarkCameras20, issue 28): twenty 1080p
# RTSP cameras at fps 1, decoding everything or key frames only, fp32 or
# int8, the change gate off or on, and the done-when rows (four cameras),
# appended to the same file. About 31 minutes on 2 cores: 11 for the first
# table (each daemon row ≈ 1), of which the frame store's part is ≈ 30 s
# (≈ 1 minute the first time), and about 20 for the cameras; the tables are
# printed and kept in out/bench/.
#
#   BENCH_WINDOW=40s          how long each daemon row is measured
#   BENCH_SOAK=30m            instead: the memory soak (RSS every minute, ±5 %)
#   BENCH_CAMERAS=20          how many cameras the many-camera table runs
#   BENCH_CAMERAS_WINDOW=40s  how long each of its rows is measured
#
#   scripts/bench.sh cameras  only the many-camera table (about 20 minutes),
#                             kept in out/bench/cameras-*.md
#
#   scripts/bench.sh remote   `make bench-remote` (BenchmarkRemote): the
#                             remote backend against MLServer on loopback,
#                             about 5 minutes; kept in out/bench/remote-*.md
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export SIGLIPD_ORT_LIB=${SIGLIPD_ORT_LIB:-$root/.deps/onnxruntime/lib/libonnxruntime.so.1}
if [ ! -f .deps/models/base/onnx/vision_model.onnx ]; then
  go run ./infer/cmd/mkmodel --preset base --out .deps/models/base
fi
# The int8 variant, as the hub's *_quantized.onnx files are made.
if [ ! -f .deps/models/base/onnx/model_quantized.onnx ]; then
  .deps/py/bin/python scripts/quantize.py .deps/models/base --modes quantized
fi
mkdir -p out/bench
cameras() {
  SIGLIPD_BENCH_OUT=$root/$1 SIGLIPD_BENCH_CAMERAS=${BENCH_CAMERAS:-20} \
    SIGLIPD_BENCH_CAMERAS_WINDOW=${BENCH_CAMERAS_WINDOW:-40s} \
    go test -run '^$' -bench Cameras20 -benchtime 1x -timeout 60m ./daemon/cmd/siglipd
}
if [ "${1:-}" = cameras ]; then
  out=out/bench/cameras-$(date +%Y-%m-%d-%H%M).md
  cameras "$out"
  echo "bench: the table is in $out"
  exit 0
fi
if [ "${1:-}" = remote ]; then
  out=out/bench/remote-$(date +%Y-%m-%d-%H%M).md
  SIGLIPD_BENCH_OUT=$root/$out SIGLIPD_BENCH_WINDOW=${BENCH_WINDOW:-40s} \
    go test -run '^$' -bench Remote -benchtime 1x -timeout 60m ./daemon/cmd/siglipd
  echo "bench: the table is in $out"
  exit 0
fi
out=out/bench/$(date +%Y-%m-%d-%H%M).md
SIGLIPD_BENCH_OUT=$root/$out SIGLIPD_BENCH_WINDOW=${BENCH_WINDOW:-40s} SIGLIPD_BENCH_SOAK=${BENCH_SOAK:-} \
  go test -run '^$' -bench Table -benchtime 1x -timeout 90m ./daemon/cmd/siglipd
[ -n "${BENCH_SOAK:-}" ] && exit 0
SIGLIPD_BENCH_OUT=$root/$out go test -run '^$' -bench Search1M -benchtime 1x -timeout 30m ./daemon/framestore
cameras "$out"
echo "bench: the tables are in $out"
exit 0
