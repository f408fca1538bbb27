#!/usr/bin/env bash
# docker-test.sh (make docker-test) builds the siglipd image from the
# repository's Dockerfile and checks what the Docker docs promise, on a
# machine where no image registry is reachable:
#
#   - `docker run siglipd --version` prints the version built in;
#   - the image's user is not root, nor is the running daemon's;
#   - the image's HEALTHCHECK turns healthy on the demo config;
#   - configs/compose.yaml (with configs/compose.test.yaml over it) brings
#     siglipd up beside a mosquitto, and events arrive from a video file and
#     from an RTSP camera, both decoded by FFmpeg inside the image; the
#     snapshot is a JPEG and the page is served;
#   - the image's size, printed at the end.
#
#   scripts/docker-test.sh          # build and check (a rerun reuses the build cache)
#   scripts/docker-test.sh clean    # delete the cache: images, dockerd's data
#
# It starts its own dockerd (Debian's docker.io, installed when missing) on
# its own socket, with its data under /var/tmp/siglipd-docker, no bridge and
# no iptables rules: the host's networking is left alone, so every container
# uses the host network and free ports picked here. The base images
# debian:bookworm and debian:bookworm-slim are imported from the
# debootstrapped root of scripts/rootfs.sh (which trusts this machine's CA
# certificates, so apt, Go and npm work inside the build). dockerd and every
# process started here are stopped by PID when the script ends, failed or not.
#
# Needs root, and on the host: go and ffmpeg (the demo's model and video),
# mosquitto_sub, curl, and GStreamer's RTSP server for scripts/rtsp-server.py
# (scripts/setup.sh installs all of them).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=/var/tmp/siglipd-docker
sock=$work/docker.sock
export DOCKER_HOST=unix://$sock
# Debian's clients, not whatever else is first on PATH.
docker=/usr/bin/docker
compose=/usr/bin/docker-compose
image=siglipd
mosquitto_image=siglipd-test/mosquitto
project=siglipd-docker-test

die() { echo "docker-test: FAIL: $*" >&2; exit 1; }
# unmount_leftovers: dockerd leaves the host's network namespace mounted in
# its exec-root when it stops.
unmount_leftovers() {
  awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount "$m"; done
}
say() { echo "docker-test: $*"; }
[ "$(id -u)" -eq 0 ] || die "needs root (dockerd, the base images)"

if [ "${1:-}" = clean ]; then
  [ ! -e "$work/dockerd.pid" ] || ! kill -0 "$(cat "$work/dockerd.pid")" 2>/dev/null ||
    die "a dockerd (pid $(cat "$work/dockerd.pid")) still uses $work"
  unmount_leftovers
  rm -rf "$work"
  say "removed $work"
  exit 0
fi

for c in go ffmpeg mosquitto_sub curl python3; do
  command -v "$c" >/dev/null || die "$c is missing (scripts/setup.sh installs it)"
done
/usr/bin/python3 scripts/rtsp-server.py --check >/dev/null ||
  die "scripts/rtsp-server.py cannot run: $(/usr/bin/python3 scripts/rtsp-server.py --check) (scripts/setup.sh installs GStreamer's RTSP server)"
if [ ! -x /usr/sbin/dockerd ] || [ ! -x "$compose" ]; then
  say "installing docker.io and docker-compose (Debian's)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io docker-compose >/dev/null
fi

started=$(date +%s)
pids=()       # processes started here, stopped at exit
containers=() # containers started here, removed at exit
dockerd_pid=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$dockerd_pid" ]; then
    # By label, not by docker-compose down: whatever state the run failed in.
    for c in "${containers[@]}" $($docker ps -aq --filter "label=com.docker.compose.project=$project"); do
      $docker rm -f -v "$c" >/dev/null 2>&1
    done
    for v in $($docker volume ls -q --filter "label=com.docker.compose.project=$project"); do
      $docker volume rm "$v" >/dev/null 2>&1
    done
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null
    # dockerd stops its containerd and leaves; give it 30 s, then kill it.
    for _ in $(seq 300); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
    unmount_leftovers
  fi
  [ $rc -eq 0 ] || echo "docker-test: failed after $(($(date +%s) - started)) s; dockerd's log: $work/dockerd.log" >&2
  exit $rc
}
test_dir=$root/.deps/docker-test
trap cleanup EXIT

# wait_until SECONDS CMD...: polls CMD until it succeeds (0) or SECONDS
# pass (1).
wait_until() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a TCP port nothing listens on now.
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# 1. dockerd, on its own socket and folders.
mkdir -p "$work"
if [ -e "$work/dockerd.pid" ] && kill -0 "$(cat "$work/dockerd.pid")" 2>/dev/null; then
  die "a dockerd (pid $(cat "$work/dockerd.pid")) already uses $work: another docker-test is running"
fi
/usr/sbin/dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 \
  --data-root="$work/data" --exec-root="$work/exec" --pidfile="$work/dockerd.pid" \
  -H "unix://$sock" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
wait_until 60 $docker version >/dev/null 2>&1 || die "dockerd does not answer on $sock (log: $work/dockerd.log)"
say "dockerd $($docker version -f '{{.Server.Version}}') running (pid $dockerd_pid, data in $work)"

# 2. The base images, from the debootstrapped root. Without apt's lists (as
# on Docker Hub); the -slim one also without manuals, translations and
# documentation other than copyright files, as Docker Hub's.
base=$(scripts/rootfs.sh make bookworm)
if ! $docker image inspect debian:bookworm >/dev/null 2>&1; then
  tar -C "$base" --exclude=./.complete --exclude='./var/lib/apt/lists/*' -c . |
    $docker import -c 'CMD ["bash"]' - debian:bookworm >/dev/null
  say "imported debian:bookworm from $base"
fi
if ! $docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  tar -C "$base" --exclude=./.complete --exclude='./var/lib/apt/lists/*' --exclude='./usr/share/man/*' \
    --exclude='./usr/share/info/*' --exclude='./usr/share/locale/*' --wildcards --exclude='./usr/share/doc/*/[!c]*' -c . |
    $docker import -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  say "imported debian:bookworm-slim from $base"
fi

# 3. The images: siglipd from the repository's Dockerfile, and a mosquitto
# made the same way (compose.test.yaml names it).
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
t0=$(date +%s)
$docker build --network host --build-arg VERSION="$version" -t "$image" . >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; die "docker build failed (log: $work/build.log)"; }
say "built $image ($version) in $(($(date +%s) - t0)) s"
# The build stage, tagged (from the cache just filled) so that pruning the
# images no longer named keeps it: the next run rebuilds only from the
# source on.
$docker build --network host --build-arg VERSION="$version" --target build -t siglipd-test/build . >/dev/null
$docker image prune -f >/dev/null
$docker build --network host -t "$mosquitto_image" - >"$work/build-mosquitto.log" 2>&1 <<'EOF' ||
FROM debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends mosquitto \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
USER mosquitto
CMD ["mosquitto", "-c", "/etc/mosquitto/test.conf"]
EOF
  { tail -20 "$work/build-mosquitto.log" >&2; die "docker build of $mosquitto_image failed"; }

# 4. --version and the image's user.
out=$($docker run --rm --network host "$image" --version) || die "docker run $image --version exited with $?"
[ "$out" = "siglipd $version" ] || die "docker run $image --version printed '$out', want 'siglipd $version'"
say "docker run $image --version: $out"
uid=$($docker run --rm --network host --entrypoint id "$image" -u)
[ "$uid" != 0 ] || die "the image runs as root (id -u is 0); the Dockerfile's USER is lost"
say "the image's user: $($docker run --rm --network host --entrypoint id "$image")"

# 5. The demo's inputs, made on the host and mounted read-only: the colour
# model, the porch video of configs/demo.yaml (its garden video is not
# needed: the RTSP camera takes its place), and demo.yaml itself with the
# container's paths and an RTSP camera showing yellow.
mkdir -p "$test_dir/demo"
[ -f "$test_dir/demo/colour/onnx/vision_model.onnx" ] ||
  go run ./infer/cmd/mkmodel --preset colour --out "$test_dir/demo/colour" >/dev/null
if [ ! -f "$test_dir/demo/porch.mp4" ]; then # as scripts/demo.sh makes it
  inputs=()
  for seg in red:4 gray:3 green:4 gray:3 blue:4 gray:2; do
    inputs+=(-f lavfi -i "color=c=${seg%%:*}:s=640x360:r=25:d=${seg##*:}")
  done
  ffmpeg -hide_banner -loglevel error -y "${inputs[@]}" -filter_complex concat=n=6:v=1:a=0 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 25 "$test_dir/demo/porch.tmp.mp4"
  mv "$test_dir/demo/porch.tmp.mp4" "$test_dir/demo/porch.mp4"
fi
sed -e 's#^state_dir: .*#state_dir: /var/lib/siglipd#' -e 's#\.\./\.deps/demo/#/demo/#' \
  -e 's#client_id: siglipd-demo#client_id: siglipd-docker-test#' -e '/^  - name: garden/,$d' configs/demo.yaml >"$test_dir/cams.yaml"
cat >>"$test_dir/cams.yaml" <<'EOF'
  - name: doorbell
    url: rtsp://127.0.0.1:${SIGLIPD_TEST_RTSP_PORT}/cam
    fps: 4
    labels:
      - { name: something yellow, prompts: ["yellow"] }
EOF
grep -q '^state_dir: /var/lib/siglipd$' "$test_dir/cams.yaml" && grep -q 'path: /demo/colour' "$test_dir/cams.yaml" &&
  grep -q 'url: /demo/porch.mp4' "$test_dir/cams.yaml" || die "configs/demo.yaml changed shape: adapt the sed lines here"
chmod -R a+rX "$test_dir" # the container's user reads them
mqtt_port=$(free_port) http_port=$(free_port) rtsp_port=$(free_port)
while [ "$http_port" = "$mqtt_port" ]; do http_port=$(free_port); done
while [ "$rtsp_port" = "$mqtt_port" ] || [ "$rtsp_port" = "$http_port" ]; do rtsp_port=$(free_port); done
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$mqtt_port" >"$test_dir/mosquitto.conf"
chmod a+r "$test_dir/mosquitto.conf"

# The RTSP camera, on the host: solid yellow. Its stdin is ours; it ends
# when we do.
coproc rtsp { exec /usr/bin/python3 scripts/rtsp-server.py --port "$rtsp_port" --fps 10 --color ffff00 2>&1; }
pids+=("$rtsp_PID")
read -r -t 30 line <&"${rtsp[0]}" || die "scripts/rtsp-server.py did not start"
[[ $line == ready* ]] || die "scripts/rtsp-server.py: $line"

# 6. The HEALTHCHECK, on the demo config with docker run (no broker: health
# is the process answering). Its first check runs one interval (30 s) after
# the start.
name=$project-health
containers+=("$name")
$docker run -d --name "$name" --network host \
  -e SIGLIPD_DEMO_MQTT_PORT="$mqtt_port" -e SIGLIPD_DEMO_HTTP_PORT="$http_port" -e SIGLIPD_TEST_RTSP_PORT="$rtsp_port" \
  -v "$test_dir/cams.yaml:/etc/siglipd/cams.yaml:ro" -v "$test_dir/demo:/demo:ro" "$image" >/dev/null
# healthy: the health status is healthy; dies when the container has exited.
healthy() {
  if [ "$($docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
    $docker logs "$name" 2>&1 | tail -20 >&2
    die "the container $name exited (its log's end is above)"
  fi
  [ "$($docker inspect -f '{{.State.Health.Status}}' "$name")" = healthy ]
}
t0=$(date +%s)
wait_until 120 healthy || die "the HEALTHCHECK did not turn healthy within 120 s: $($docker inspect -f \
  '{{.State.Health.Status}}: {{range .State.Health.Log}}{{.ExitCode}} {{.Output}}; {{end}}' "$name")"
say "HEALTHCHECK healthy $(($(date +%s) - t0)) s after the start"
$docker rm -f -v "$name" >/dev/null

# 7. compose.yaml beside mosquitto: the broker first, a subscriber, then
# siglipd, so the first events are not missed.
export SIGLIPD_TEST_DIR=$test_dir SIGLIPD_TEST_MQTT_PORT=$mqtt_port SIGLIPD_TEST_HTTP_PORT=$http_port \
  SIGLIPD_TEST_RTSP_PORT=$rtsp_port MQTT_PASSWORD=unused DRIVEWAY_PASSWORD=unused
# Host networking has no published ports, and docker-compose refuses a
# service with both; an override file cannot remove compose.yaml's ports, so
# the merged file (docker-compose config) goes without them.
$compose -f configs/compose.yaml -f configs/compose.test.yaml config >"$test_dir/compose.merged.yaml" ||
  die "docker-compose does not accept configs/compose.yaml with compose.test.yaml"
/usr/bin/python3 - "$test_dir/compose.merged.yaml" <<'EOF'
import sys, yaml
path = sys.argv[1]
doc = yaml.safe_load(open(path))
for service in doc["services"].values():
    service.pop("ports", None)
yaml.safe_dump(doc, open(path, "w"), sort_keys=False)
EOF
dc() { $compose -p "$project" -f "$test_dir/compose.merged.yaml" "$@"; }
dc up -d --no-build mosquitto 2>"$work/compose.log" || { cat "$work/compose.log" >&2; die "docker-compose up mosquitto failed"; }
wait_until 30 listening "$mqtt_port" || die "mosquitto does not listen on 127.0.0.1:$mqtt_port: $(dc logs mosquitto 2>&1 | tail -5)"
: >"$test_dir/events.log"
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -t siglipd/events >"$test_dir/events.log" &
pids+=($!)
dc up -d --no-build siglipd 2>>"$work/compose.log" || { cat "$work/compose.log" >&2; die "docker-compose up siglipd failed"; }
cid=$(dc ps -q siglipd)
[ -n "$cid" ] || die "docker-compose started no siglipd container"

# has_start CAMERA LABEL: a start event of that camera and label arrived,
# as valid JSON with the schema's fields. Dies on a message that is not.
has_start() {
  local rc=0
  /usr/bin/python3 - "$test_dir/events.log" "$1" "$2" <<'EOF' || rc=$?
import json, sys
path, camera, label = sys.argv[1:]
for line in open(path):
    if not line.endswith("\n"):
        break  # still being written
    try:
        e = json.loads(line)
        ok = e["v"] == 1 and e["type"] in ("start", "update", "end") and e["start_time"]
    except (ValueError, KeyError) as err:
        ok = False
    if not ok:
        print("docker-test: not a v1 event on siglipd/events: " + line.strip(), file=sys.stderr)
        sys.exit(3)
    if e["type"] == "start" and e["camera"] == camera and e["label"] == label and e["score"] >= e["threshold"]:
        sys.exit(0)
sys.exit(1)
EOF
  [ $rc -ne 3 ] || die "siglipd sent a malformed event (above)"
  return $rc
}
t0=$(date +%s)
wait_until 120 has_start porch red ||
  die "no start event of porch/red (the video file) on siglipd/events within 120 s; siglipd's log: $(dc logs --tail 20 siglipd 2>&1)"
say "event from the video file after $(($(date +%s) - t0)) s: $(grep -m1 '"camera":"porch"' "$test_dir/events.log" | cut -c1-120)..."
wait_until 60 has_start doorbell "something yellow" ||
  die "no start event of doorbell/something yellow (the RTSP camera) on siglipd/events within 60 s; siglipd's log: $(dc logs --tail 20 siglipd 2>&1)"
say "event from the RTSP camera after $(($(date +%s) - t0)) s"

# The snapshot (JPEG encoded in the image), the page, and the daemon's user.
curl -fsS -o "$test_dir/snapshot.jpg" "http://127.0.0.1:$http_port/api/cameras/porch/snapshot.jpg" ||
  die "no snapshot from http://127.0.0.1:$http_port/api/cameras/porch/snapshot.jpg"
snap=$(od -An -tx1 -N3 "$test_dir/snapshot.jpg" | tr -d ' \n')
[ "$snap" = ffd8ff ] || die "the porch snapshot is not a JPEG (starts with '$snap')"
curl -fsS -o "$test_dir/page.html" "http://127.0.0.1:$http_port/" || die "no page at http://127.0.0.1:$http_port/"
grep -qi '<html' "$test_dir/page.html" || die "the page at / is not HTML"
say "the snapshot is a JPEG and the page is served"
pid=$($docker inspect -f '{{.State.Pid}}' "$cid")
duid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$duid" != 0 ] || die "the running daemon (pid $pid) is root"
say "the running daemon's uid: $duid"
dc down -v >/dev/null 2>&1

# 8. The size.
size=$($docker image inspect -f '{{.Size}}' "$image")
base_size=$($docker image inspect -f '{{.Size}}' debian:bookworm-slim)
mb() { awk -v b="$1" 'BEGIN { printf "%.0f MB", b / 1e6 }'; }
say "image $image: $(mb "$size") ($size bytes), $(mb $((size - base_size))) over debian:bookworm-slim's $(mb "$base_size")"
say "PASS in $(($(date +%s) - started)) s"
