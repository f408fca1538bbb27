#!/usr/bin/env bash
# test-trixie.sh (make test-trixie, make demo-trixie) runs the README's two
# commands on Debian 13 (trixie) on this Debian 12 machine: `make test` as CI
# runs it (CI=true, a clean clone of HEAD), or `make demo`, in a fresh trixie
# system made from Debian's archive by scripts/rootfs.sh. Nothing is
# preinstalled there but make: scripts/setup.sh has to install everything
# else (Debian packages, Go, Node, the Python venvs), as on a user's new box.
#
#   scripts/test-trixie.sh [test]     # make test; log in out/test-trixie/
#   scripts/test-trixie.sh demo       # make demo, then checks it published events
#   TRIXIE_KEEP=1 scripts/...         # keep the system in the overlay trixie-warm
#                                     # (packages, Go's caches, the clone's .deps)
#                                     # and start from it next time
#
# The clone sits in /work/siglipd inside with this checkout's ../shared bound
# beside it, so tests that read ../shared/reference find it as they do here.
# The system shares this machine's network (the registries answer as they do
# for CI) but has its own mount and PID namespaces: servers a test leaves
# behind die with it. Uncommitted changes are not tested: CI tests commits.
#
# Needs root (scripts/rootfs.sh mounts and chroots).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=${1:-test}
case $mode in test | demo) ;; *) echo "test-trixie: unknown mode $mode (test, demo)" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "test-trixie: needs root (scripts/rootfs.sh)" >&2; exit 2; }

mkdir -p out/test-trixie
log="$root/out/test-trixie/$(date +%Y%m%dT%H%M%S)-$mode.log"
commit=$(git rev-parse HEAD)

# The clean clone is made here (the fresh system has no git yet) and copied
# in; --no-local so it shares no objects with this checkout.
stage=$(mktemp -d /var/tmp/siglipd-trixie-stage.XXXXXX)
trap 'rm -rf "$stage"' EXIT
git clone -q --no-local "$root" "$stage/siglipd"
git -C "$stage/siglipd" checkout -q "$commit"

binds=(--bind "$stage:/work/stage")
shared=$(dirname "$root")/shared
if [ -d "$shared" ]; then
  binds+=(--bind "$shared:/work/shared")
fi
keep=()
if [ "${TRIXIE_KEEP:-}" = 1 ]; then
  keep=(--keep trixie-warm)
fi

# Runs as root inside. A kept system keeps the previous clone's git-ignored
# downloads (.deps, node_modules): setup.sh checks each against its pins.
inside=$(
  cat <<'INSIDE'
export DEBIAN_FRONTEND=noninteractive
clone=/work/siglipd
echo "test-trixie: $(. /etc/os-release && echo "$PRETTY_NAME"), $mode at $(git -C /work/stage/siglipd log --oneline -1 2>/dev/null || echo "$commit")"
rm -rf /work/prev
if [ -d "$clone" ]; then
  mkdir -p /work/prev
  [ -d "$clone/.deps" ] && mv "$clone/.deps" /work/prev/deps
  [ -d "$clone/scripts/js/node_modules" ] && mv "$clone/scripts/js/node_modules" /work/prev/node_modules
  rm -rf "$clone"
fi
cp -a /work/stage/siglipd "$clone"
[ -d /work/prev/deps ] && mv /work/prev/deps "$clone/.deps"
[ -d /work/prev/node_modules ] && mv /work/prev/node_modules "$clone/scripts/js/node_modules"
rm -rf /work/prev
cd "$clone"

# make runs the README's commands; everything else is setup.sh's job.
if ! command -v make >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends make >/dev/null
fi
export CI=true
start=$(date +%s)
make setup
echo "test-trixie: setup took $(( $(date +%s) - start )) s"
start=$(date +%s)
case $mode in
test)
  set +e
  make test
  rc=$?
  echo "test-trixie: make test exited $rc after $(( $(date +%s) - start )) s (setup included, a no-op by then)"
  exit $rc
  ;;
demo)
  # Ports of our own: the system shares this machine's network, where a
  # broker or another demo may hold 1883 and 8080.
  free_port() {
    local p
    while :; do
      p=$(( 20000 + RANDOM % 20000 ))
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
  }
  export SIGLIPD_DEMO_MQTT_PORT=$(free_port) SIGLIPD_DEMO_HTTP_PORT=$(free_port)
  set +e
  make demo
  rc=$?
  set -e
  starts=$(grep -c '"type":"start"' .deps/demo/mqtt.log 2>/dev/null || true)
  echo "test-trixie: make demo exited $rc after $(( $(date +%s) - start )) s; ${starts:-0} start events"
  if [ "$rc" -ne 0 ] || [ "${starts:-0}" -eq 0 ]; then
    echo "test-trixie: demo FAILED (want exit 0 and at least one start event); siglipd's log:"
    tail -n 40 .deps/demo/siglipd.log 2>/dev/null || true
    exit 1
  fi
  echo "test-trixie: demo passed"
  ;;
esac
INSIDE
)

echo "test-trixie: log in $log"
set +e
scripts/rootfs.sh run trixie "${keep[@]}" "${binds[@]}" -- \
  "mode=$(printf %q "$mode") commit=$commit; $inside" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
exit "$rc"
