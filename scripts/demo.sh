#!/usr/bin/env bash
# demo.sh: until the pipeline lands this validates the example config and
# shows what siglipd would run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "demo: validating configs/cams.yaml with bin/siglipd --check"
bin/siglipd --config configs/cams.yaml --check
echo "demo: ONNX Runtime library: .deps/onnxruntime/lib/libonnxruntime.so.1"
echo "demo: the live pipeline demo arrives with the daemon issue"
