#!/usr/bin/env bash
# gpu-check.sh: the checks that need a GPU machine with Python transformers
# (both out of reach where siglipd is developed). Run from the repository
# root with a folder DIR holding:
#   DIR/infer.test   go test -c -o DIR/infer.test ./infer
#   DIR/mkmodel      CGO_ENABLED=0 go build -o DIR/mkmodel ./infer/cmd/mkmodel
#   DIR/cpu/libonnxruntime.so.1        scripts/fetch-ort.sh's CPU library
#   DIR/gpu/libonnxruntime.so (+ _providers_shared.so, _providers_cuda.so)
#        a CUDA build of ONNX Runtime (optional)
#   DIR/reference/   the real SigLIP tokenizer files (optional)
# It prints what it measured; it changes nothing outside /tmp.
set -uo pipefail
dir=$(cd "${1:?usage: scripts/gpu-check.sh DIR}" && pwd)
export SIGLIPD_REQUIRE_ALL=
[ -d "$dir/reference" ] && export SIGLIPD_REFERENCE_DIR=$dir/reference
nvidia-smi -L || true
python3 -c 'import transformers, torch, tokenizers; print("transformers", transformers.__version__, "torch", torch.__version__, "tokenizers", tokenizers.__version__)'

echo "== Python transformers pipeline parity (CPU ONNX Runtime)"
(cd infer && SIGLIPD_ORT_LIB=$dir/cpu/libonnxruntime.so.1 "$dir/infer.test" -test.run 'TestPythonPipelineParity' -test.v)

if [ -f "$dir/gpu/libonnxruntime.so" ]; then
  # The CUDA provider loads CUDA 13 and cuDNN 9 from PyTorch's pip packages.
  nv=$(python3 -c 'import site, glob; print(":".join(sorted(glob.glob(site.getsitepackages()[0] + "/nvidia/*/lib") + glob.glob(site.getsitepackages()[0] + "/nvidia/cu13/lib"))))')
  export LD_LIBRARY_PATH=$dir/gpu:$nv:${LD_LIBRARY_PATH:-}
  echo "== CUDA execution provider vs CPU (same library)"
  (cd infer && SIGLIPD_ORT_LIB=$dir/gpu/libonnxruntime.so SIGLIPD_TEST_DEVICE=cuda "$dir/infer.test" -test.run 'TestDevice$' -test.v)
  echo "== vision tower throughput, base preset"
  [ -d /tmp/siglipd-base ] || "$dir/mkmodel" --preset base --out /tmp/siglipd-base
  for dev in cuda cpu; do
    (cd infer && SIGLIPD_ORT_LIB=$dir/gpu/libonnxruntime.so SIGLIPD_BENCH_MODEL=/tmp/siglipd-base SIGLIPD_BENCH_DEVICE=$dev \
      "$dir/infer.test" -test.run '^$' -test.bench 'VisionTower' -test.benchtime "${BENCHTIME:-20x}")
  done
fi
