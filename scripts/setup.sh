#!/usr/bin/env bash
# setup.sh installs everything siglipd needs to build, test and demo on a fresh
# Debian 12 (bookworm) machine. It is idempotent: each step checks before it acts,
# so `make test` and `make demo` can call it every time at little cost.
#
#   scripts/setup.sh            # system packages + ONNX Runtime + transformers.js
#   SETUP_SKIP_APT=1 ...        # skip apt (packages already present)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Debian packages. libopencv-dev 4.6.0 is what gocv v0.31.0 compiles against.
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
# pyenv 3.11 of the CI machine) with exactly the pins of REQ: reinstalled
# from scratch when the pins change, untouched otherwise.
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
venv .deps/oip scripts/requirements-oip.txt --only-binary=:all:
# PyTorch transformers, tokenizers and sentencepiece: the references the model
# tests compare with, and the makers of their random-weight checkpoints.
venv .deps/torch scripts/requirements-torch.txt --only-binary=:all:
echo "setup: done"
