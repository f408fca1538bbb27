#!/usr/bin/env bash
# bench.sh: throughput benchmarks. The base preset (SigLIP base dimensions,
# random weights, ≈1.4 GB) is generated once into .deps/models/base.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export SIGLIPD_ORT_LIB=${SIGLIPD_ORT_LIB:-$root/.deps/onnxruntime/lib/libonnxruntime.so.1}
if [ ! -f .deps/models/base/onnx/vision_model.onnx ]; then
  go run ./infer/cmd/mkmodel --preset base --out .deps/models/base
fi
# The int8 variant, as the hub's *_quantized.onnx files are made.
if [ ! -f .deps/models/base/onnx/vision_model_quantized.onnx ]; then
  .deps/py/bin/python scripts/quantize.py .deps/models/base --modes quantized
fi
go test -run '^$' -bench 'VisionTower|Frame1080p' -benchtime "${BENCHTIME:-10x}" -count 1 ./infer
go test -run '^$' -bench 'Process1080p' -count 1 ./infer/imageproc
