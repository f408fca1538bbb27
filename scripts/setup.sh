#!/usr/bin/env bash
# setup.sh installs everything siglipd needs to build, test and demo on a fresh
# Debian 12 (bookworm) or Debian 13 (trixie, and Raspberry Pi OS, which follows
# it) machine. It is idempotent: each step checks before it acts, so `make test`
# and `make demo` can call it every time at little cost.
#
#   scripts/setup.sh            # system packages + ONNX Runtime + transformers.js
#   SETUP_SKIP_APT=1 ...        # skip apt (packages already present)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# The release. Debian 12 and 13 name every package below alike; what differs
# is what comes of them: libopencv-dev is OpenCV 4.6 on 12 and 4.10 on 13
# (gocv v0.31.0 compiles against both; a binary built on one does not run on
# the other), and python3 is 3.11 on 12 and 3.13 on 13 (the venvs below).
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
case $codename in
bookworm | trixie) ;;
*) echo "setup: ${codename:-this system} is neither Debian 12 (bookworm) nor 13 (trixie); trying Debian's package names" >&2 ;;
esac

# Debian packages. libopencv-dev is what gocv compiles against.
# mosquitto + GStreamer's RTSP server give the tests a real broker and camera;
# python3-pil/numpy produce reference tensors the way transformers' image
# processor does; chromium drives the web page test; v4l-utils (v4l2-ctl,
# v4l2-compliance) check the simulated USB camera (internal/testenv/v4l2sim).
apt_packages=(
  build-essential pkg-config git curl libopencv-dev
  mosquitto mosquitto-clients ffmpeg
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  python3-pil python3-numpy
  chromium
  v4l-utils
)
# What a machine of the CI kind has from the start and a new Debian system
# (a minimal install, a container, a Raspberry Pi) may not: npm for ONNX
# Runtime and transformers.js (Debian 13 packages it apart from nodejs);
# systemd-analyze, which checks the unit file; and venv for Debian's own
# python3 (the CI machine's first python3 is a pyenv build that has it).
command -v npm >/dev/null || apt_packages+=(nodejs npm)
command -v systemd-analyze >/dev/null || apt_packages+=(systemd)
case $(command -v python3 || true) in
"" | /usr/bin/python3) apt_packages+=(python3-venv) ;;
esac

need_sudo() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${SETUP_SKIP_APT:-}" != 1 ]; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    need_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    need_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# mosquitto's package starts a system broker on :1883; tests start their own on
# free ports, and the demo reuses one if it is running, so leave it alone.

# Go itself when missing or older than go.mod's (a fresh Debian 13 system).
scripts/setup-go.sh
scripts/fetch-ort.sh
scripts/setup-node.sh

# venv VENV REQ [PIP_ARGS...] keeps a venv of the first python3 on PATH (the
# pyenv 3.11 of the CI machine, Debian's 3.13 on Debian 13) with exactly the
# pins of REQ: reinstalled from scratch when the pins change, untouched
# otherwise. The pins were made on 3.11; every one has a wheel for 3.13 too.
venv() {
  local dir=$1 req=$2
  shift 2
  local want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ "$(cat "$dir/requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing $req into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check --no-input "$@" -r "$req"
    echo "$want" >"$dir/requirements.sha256"
  fi
}

# Python tools for scripts/quantize.py (ONNX Runtime's quantizer).
venv .deps/py scripts/requirements-quantize.txt
# MLServer, the Open Inference Protocol server the remote-backend tests and
# benchmark run (scripts/oip/onnx_runtime.py serves ONNX files with it), in
# its own venv: its pins (protobuf, onnxruntime's dependencies) are not the
# quantizer's.
#
# MLServer 1.7.1, the newest release, declares Requires-Python <3.13: a cap
# kept until its maintainers have tested newer Pythons, not a known
# incompatibility (SeldonIO/MLServer#2288: "no fundamental reasons why the
# MLServer core wouldn't support recent Python versions"). On 3.13 it is
# installed past that cap, with the same pins; the remote-backend tests, which
# serve and query models with it, are the check that it works.
oip_args=(--only-binary=:all:)
if python3 -c 'import sys; sys.exit(sys.version_info < (3, 13))'; then
  oip_args+=(--ignore-requires-python)
fi
venv .deps/oip scripts/requirements-oip.txt "${oip_args[@]}"
# PyTorch transformers, tokenizers and sentencepiece: the references the model
# tests compare with, and the makers of their random-weight checkpoints.
venv .deps/torch scripts/requirements-torch.txt --only-binary=:all:
echo "setup: done"
