#!/usr/bin/env bash
# measure-memory.sh MODEL_DIR [VARIANT] [STEADY_SECONDS] measures what a model
# costs in memory: it runs siglipd on MODEL_DIR (a model folder, any layout)
# with two 640x360 file cameras at 2 fps each, and prints one markdown row:
#
#   | model | variant | peak RSS at start | RSS when ready | peak RSS after N s | RSS after N s |
#
# "at start" is everything up to the "model ready" log line: loading the
# weights, creating the ONNX Runtime sessions and embedding the labels; the
# rest is steady scoring. Figures are /proc/PID/status VmHWM and VmRSS.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:?usage: measure-memory.sh MODEL_DIR [VARIANT] [STEADY_SECONDS]}
model=$(cd "$model" && pwd) # the config is written elsewhere
variant=${2:-fp32}
steady=${3:-60}
export SIGLIPD_ORT_LIB=${SIGLIPD_ORT_LIB:-$root/.deps/onnxruntime/lib/libonnxruntime.so.1}
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/siglipd" "$root/daemon/cmd/siglipd"
ffmpeg -loglevel error -f lavfi -i testsrc=size=640x360:rate=10 -t 10 -pix_fmt yuv420p "$work/cam.mp4"
cat >"$work/cams.yaml" <<YAML
state_dir: $work/state
model: {path: $model, variant: $variant}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras:
  - {name: a, url: $work/cam.mp4, loop: true, fps: 2, labels: [{name: a car}, {name: a person}]}
  - {name: b, url: $work/cam.mp4, loop: true, fps: 2, labels: [{name: a dog}]}
YAML
"$work/siglipd" --config "$work/cams.yaml" >/dev/null 2>"$work/log" &
pid=$!
kib() { awk -v k="$1" '$1==k":" {print $2}' "/proc/$pid/status"; }
mib() { awk -v v="$1" 'BEGIN {printf "%.0f MiB", v/1024}'; }
deadline=$((SECONDS + 1800))
until grep -q '"model ready"\|msg="model ready"' "$work/log"; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
  [ $SECONDS -lt $deadline ] || { echo "measure-memory: no 'model ready' in 30 min" >&2; exit 1; }
  sleep 0.2
done
start_peak=$(kib VmHWM) ready_rss=$(kib VmRSS)
sleep "$steady"
kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
end_peak=$(kib VmHWM) end_rss=$(kib VmRSS)
grep -q "frames_scored\|scored" "$work/log" || true
echo "| $(basename "$model") | $variant | $(mib "$start_peak") | $(mib "$ready_rss") | $(mib "$end_peak") | $(mib "$end_rss") |"
