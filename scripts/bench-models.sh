#!/usr/bin/env bash
# bench-models.sh measures the published SigLIP shapes on this machine, with
# random weights at full depth (their speed and memory are the real models';
# their answers mean nothing):
#
#   base     SigLIP base/16 at 224 px (12 + 12 layers, width 768)
#   so400m   SigLIP so400m/14 at 384 px (27 + 27 layers, width 1152)
#
# For each: a checkpoint saved by transformers (bf16 on disk, as small as it
# gets), siglipd's towers built from it (infer/convert), the exporter's graph
# of the same weights (torch.onnx, then ONNX Runtime's transformer optimizer),
# both timed in one `siglipd bench --compare` run; then memory with
# scripts/measure-memory.sh for the fp32 towers and their fp16 variant (ONNX
# Runtime's float16 converter on the plain build, as transformers.js makes
# its *_fp16 files). Everything is kept under .deps/models/bench-*; the
# tables go to out/bench/models-DATE.md. About 30 minutes on 2 cores.
#
#   scripts/bench-models.sh [base] [so400m]     (default: both)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export SIGLIPD_ORT_LIB=${SIGLIPD_ORT_LIB:-$root/.deps/onnxruntime/lib/libonnxruntime.so.1}
ref=${SIGLIPD_REFERENCE_DIR:-$root/../shared/reference/siglip-base-patch16-224}
py=.deps/torch/bin/python
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(base so400m)
mkdir -p out/bench
out=out/bench/models-$(date +%Y-%m-%d-%H%M).md
go build -o .deps/models/siglipd ./daemon/cmd/siglipd
{
  echo "# bench-models.sh, $(date +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
} >"$out"
for shape in "${shapes[@]}"; do
  dir=.deps/models/bench-$shape
  layers=()
  [ "$shape" = so400m ] && layers=(--layers 27)
  if [ ! -f "$dir/ckpt/bf16/config.json" ]; then
    echo "bench-models: $shape: making the checkpoint"
    "$py" scripts/torch/checkpoint.py make "$dir/ckpt" --shape "$shape" --reference "$ref" --dtypes bf16 "${layers[@]}" >/dev/null
  fi
  [ -f "$dir/exported.onnx" ] || {
    echo "bench-models: $shape: exporting with torch.onnx and optimizing with ONNX Runtime's transformer optimizer"
    "$py" scripts/torch/checkpoint.py export "$dir/ckpt/bf16" "$dir/exported.onnx" --optimize clip >/dev/null
  }
  for kind in fused plain; do
    flag=()
    [ $kind = plain ] && flag=(--plain)
    [ -f "$dir/$kind/onnx/vision_model.onnx" ] || go run ./infer/cmd/mkmodel --from "$dir/ckpt/bf16" --out "$dir/$kind" "${flag[@]}"
  done
  [ -f "$dir/plain/onnx/vision_model_fp16.onnx" ] || .deps/py/bin/python scripts/quantize.py "$dir/plain" --modes fp16
  {
    echo
    echo "## $shape: siglipd's towers against the exporter's graph (same weights, one run)"
    echo '```'
    .deps/models/siglipd bench --model "$dir/fused" --batch 1,4 --runs 3 --compare "$dir/exported.onnx"
    echo '```'
    echo
    echo "## $shape: memory (two 640x360 cameras at 2 fps, 120 s)"
    echo
    echo "| model | variant | peak RSS at start | RSS when ready | peak RSS after 120 s | RSS after 120 s |"
    echo "|---|---|---|---|---|---|"
    scripts/measure-memory.sh "$dir/fused" fp32 120
    scripts/measure-memory.sh "$dir/plain" fp16 120
  } >>"$out" 2>&1
done
cat "$out"
echo "bench-models: the tables are in $out"
