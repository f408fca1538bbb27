#!/usr/bin/env bash
# demo.sh: `make demo`. Runs the real daemon (bin/siglipd) on configs/demo.yaml
# for DEMO_SECONDS (default 20): the colour test model, two generated
# looping videos whose colour changes every few seconds, and a local
# mosquitto (started here unless one already listens on the port). It prints
# the MQTT messages as they arrive, searches the frames it kept for
# "something yellow", then stops siglipd with SIGTERM and shows a summary. Everything it writes is under .deps/demo/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${DEMO_SECONDS:-20}
export SIGLIPD_DEMO_MQTT_PORT=${SIGLIPD_DEMO_MQTT_PORT:-1883}
export SIGLIPD_DEMO_HTTP_PORT=${SIGLIPD_DEMO_HTTP_PORT:-8080}
export SIGLIPD_ORT_LIB=${SIGLIPD_ORT_LIB:-$root/.deps/onnxruntime/lib/libonnxruntime.so.1}
demo=.deps/demo
mkdir -p "$demo"

# 1. The colour model (a few milliseconds to generate).
if [ ! -f "$demo/colour/onnx/vision_model.onnx" ]; then
  go run ./infer/cmd/mkmodel --preset colour --out "$demo/colour"
fi

# 2. Two videos: solid colours, each for a few seconds, looped by siglipd.
video() { # name, then colour:seconds pairs
  local out="$demo/$1.mp4"; shift
  [ -f "$out" ] && return 0
  local inputs=() n=0
  for seg in "$@"; do
    inputs+=(-f lavfi -i "color=c=${seg%%:*}:s=640x360:r=25:d=${seg##*:}")
    n=$((n + 1))
  done
  ffmpeg -hide_banner -loglevel error -y "${inputs[@]}" \
    -filter_complex "concat=n=$n:v=1:a=0" -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 25 "$out"
  echo "demo: made $out ($*)"
}
video porch red:4 gray:3 green:4 gray:3 blue:4 gray:2
video garden gray:3 yellow:5 gray:3 blue:5 gray:4

# 3. A broker: reuse one that listens, else start our own for the demo.
pids=() # exactly the processes we started, stopped on exit
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
if (exec 3<>"/dev/tcp/127.0.0.1/$SIGLIPD_DEMO_MQTT_PORT") 2>/dev/null; then
  echo "demo: using the MQTT broker already listening on 127.0.0.1:$SIGLIPD_DEMO_MQTT_PORT"
else
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$SIGLIPD_DEMO_MQTT_PORT" > "$demo/mosquitto.conf"
  mosquitto -c "$demo/mosquitto.conf" > "$demo/mosquitto.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SIGLIPD_DEMO_MQTT_PORT") 2>/dev/null && break; sleep 0.1; done
  echo "demo: started mosquitto on 127.0.0.1:$SIGLIPD_DEMO_MQTT_PORT"
fi

# 4. A subscriber showing what Home Assistant or Node-RED would receive.
: > "$demo/mqtt.log"
mosquitto_sub -h 127.0.0.1 -p "$SIGLIPD_DEMO_MQTT_PORT" -v -t 'siglipd/events' -t 'siglipd/+/+/state' -t 'siglipd/available' \
  > "$demo/mqtt.log" &
sub=$!
pids+=("$sub")
tail -n +1 -f --pid="$sub" "$demo/mqtt.log" | sed -u 's/^/  mqtt  /' &

# 5. siglipd itself, the same binary and flags a user runs.
echo "demo: running siglipd for ${seconds}s — live page: http://127.0.0.1:$SIGLIPD_DEMO_HTTP_PORT/"
bin/siglipd --config configs/demo.yaml > "$demo/siglipd.log" 2>&1 &
siglipd=$!
sleep "$seconds"
# The frames it scored are kept: search them by text, as a user would.
echo "demo: siglipd search --config configs/demo.yaml something yellow"
bin/siglipd search --config configs/demo.yaml something yellow | sed 's/^/  search  /' || true
kill -TERM "$siglipd"
status=0
wait "$siglipd" || status=$?
sleep 0.5 # let the subscriber print the last messages
kill "$sub" 2>/dev/null || true
wait "$sub" 2>/dev/null || true
sleep 0.2

starts=$(grep -c '"type":"start"' "$demo/mqtt.log" || true)
ends=$(grep -c '"type":"end"' "$demo/mqtt.log" || true)
echo "demo: siglipd exited with status $status after SIGTERM; $starts start and $ends end events received."
echo "demo: its log is $demo/siglipd.log; the MQTT messages are in $demo/mqtt.log."
exit "$status"
