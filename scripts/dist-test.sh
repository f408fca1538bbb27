#!/usr/bin/env bash
# dist-test.sh runs what scripts/dist.sh built, each binary on the Debian
# release it was built for, the arm64 ones under qemu-user: `--version`,
# `--check` on the example config, and `classify` on the test models, whose
# probabilities must equal those of a build for this machine (amd64, run
# here) within 1e-4 — the same answers across architectures and OpenCV
# releases, not merely a binary that starts.
#
#   scripts/dist-test.sh [RELEASE-ARCH ...]   # default: every target in out/dist (make dist-test)
#
# Each target runs twice, on its own release. First in its build overlay
# (dist-RELEASE-ARCH, left by dist.sh), the binary as built. Then from its
# tarball in a throwaway overlay of the clean release that has only the
# packages the tarball's runtime-packages.txt names, unpacked into
# /usr/local as docs/08-deployment.md says: what a user's box has (this
# downloads OpenCV's runtime every time, a minute or two per target). arm64
# libraries come by multiarch, so the emulated process finds them (and the
# arm64 dynamic loader) where an arm64 Debian has them. The emulator is
# Debian 13's qemu-aarch64 (qemu 10), installed in the trixie arm64 overlay
# and, being a static binary, copied out for bookworm: Debian 12's qemu 7.2
# segfaults in dlopen of the arm64 ONNX Runtime. qemu is called by name,
# not through binfmt_misc, so nothing of the host's configuration changes.
#
# The fixtures are made here, once per run, and bound in
# (architecture independent): the tiny model (a real SigLIP graph with
# random weights, sensitive everywhere) and the colour model (red scores
# "red"), and images from ffmpeg's test sources, PNG and one JPEG, at sizes
# that need resizing. Results in out/dist-test/RELEASE-ARCH/{build,clean}/;
# the summary ends the output. Exit 1 if any check fails.
#
# Needs root (scripts/rootfs.sh), Go and ffmpeg (scripts/setup.sh), and
# python3.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache=$root/.deps/dist-cache
dist=$root/out/dist
out=$root/out/dist-test
# The agreement asked of every probability, against this machine's build.
tolerance=1e-4

die() { echo "dist-test: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (scripts/rootfs.sh: overlays and chroot)"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for d in "$dist"/*-*/; do
    [ -e "$d/siglipd" ] && targets+=("$(basename "$d")")
  done
fi
[ ${#targets[@]} -gt 0 ] || die "nothing in $dist: run scripts/dist.sh first"
for t in "${targets[@]}"; do
  [ -x "$dist/$t/siglipd" ] || die "no $dist/$t/siglipd: run scripts/dist.sh $t first"
done

rm -rf "$out"
fx=$out/fixtures
mkdir -p "$fx/img"

# The fixtures, and the reference: siglipd built for this machine from the
# working tree, with this machine's ONNX Runtime.
echo "dist-test: fixtures and the reference (this machine's build)"
go build -o "$out/mkmodel" ./infer/cmd/mkmodel
"$out/mkmodel" --preset tiny --out "$fx/tiny" >/dev/null
"$out/mkmodel" --preset colour --out "$fx/colour" >/dev/null
img() { ffmpeg -v error -f lavfi -i "$1" -frames:v 1 "$fx/img/$2"; }
img color=c=red:s=640x480 red.png
img color=c=0x808080:s=640x480 grey.png
img testsrc2=s=320x240 testsrc2.png
img mandelbrot=s=200x150 mandelbrot.png
img smptehdbars=s=1280x720 bars.jpg
# The example config with the colour model in place of its model id, so
# --check reads a model folder (and loads ONNX Runtime) instead of noting a download.
sed "s#^  id: Xenova/siglip-base-patch16-224#  path: /t/colour#" configs/cams.yaml >"$fx/check.yaml"
grep -q "^  path: /t/colour" "$fx/check.yaml" || die "configs/cams.yaml no longer has the model id line this script replaces"
go build -o "$out/siglipd-host" ./daemon/cmd/siglipd
scripts/fetch-ort.sh

# The labels of each model: the tiny model's vocabulary is generated, so any
# words do; the colour model knows colour words.
labels_tiny=(--label red --label "a photo of a dog" --label "stripes on a wall")
labels_colour=(--label red --label green --label blue --label yellow)
images=(red.png grey.png testsrc2.png mandelbrot.png bars.jpg)

mkdir -p "$out/host"
for m in tiny colour; do
  declare -n labels=labels_$m
  (cd "$fx/img" && "$out/siglipd-host" classify --model "$fx/$m" --ort-lib "$root/.deps/onnxruntime/lib/libonnxruntime.so.1" \
    "${labels[@]}" "${images[@]}") >"$out/host/classify-$m.jsonl"
done

# probe BIN [EMULATOR] runs inside a target's overlay: /dist is out/dist,
# /t the fixtures, /res this run's results.
probe() {
  local bin=$1
  shift
  local emulator=("$@")
  ms() { echo $(($(date +%s%N) / 1000000)); }
  export STATE_DIRECTORY=/tmp/siglipd-state
  # The example config names these secrets.
  export DRIVEWAY_PASSWORD=x MQTT_PASSWORD=x
  mkdir -p "$STATE_DIRECTORY"
  cd /t/img
  # step NAME ARGS...: runs siglipd ARGS, keeps its output, its exit status
  # and its wall time in milliseconds.
  step() {
    local name=$1 rc=0 t0
    shift
    t0=$(ms)
    "${emulator[@]}" "$bin" "$@" >"/res/$name.out" 2>"/res/$name.err" || rc=$?
    echo "$name $(($(ms) - t0))" >>/res/ms.txt
    echo "$rc" >"/res/$name.rc"
  }
  step version --version
  step check --config /t/check.yaml --check
  step classify-tiny classify --model /t/tiny "${labels_tiny[@]}" "${images[@]}"
  step classify-colour classify --model /t/colour "${labels_colour[@]}" "${images[@]}"
}

# unpack ARCH TARBALL, in a clean root, installs the tarball as a user
# would (docs/08-deployment.md): the packages its runtime-packages.txt
# names (for arm64 by multiarch, which brings the arm64 dynamic loader
# qemu needs), then the tree into /usr/local.
unpack() {
  local arch=$1 tarball=$2 list
  export DEBIAN_FRONTEND=noninteractive
  [ "$arch" = amd64 ] || dpkg --add-architecture "$arch"
  apt-get update -qq
  list=$(tar -xzOf "$tarball" --wildcards '*/share/siglipd/runtime-packages.txt' | sed "s/\$/:$arch/")
  # shellcheck disable=SC2086 # one package a word
  apt-get install -y -qq --no-install-recommends $list >/dev/null
  tar -xzf "$tarball" -C /usr/local --strip-components=1
}

# Debian 13's qemu-aarch64, from the trixie arm64 overlay.
qemu=$cache/qemu/qemu-aarch64
if [[ " ${targets[*]} " == *-arm64* ]] && [ ! -x "$qemu" ]; then
  echo "dist-test: installing qemu-user in the trixie arm64 overlay"
  mkdir -p "$cache/qemu"
  # shellcheck disable=SC2016 # expanded inside the overlay
  scripts/rootfs.sh run trixie --keep dist-trixie-arm64 --bind "$cache/qemu:/qemu" -- '
    command -v qemu-aarch64 >/dev/null || {
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
      rm -f /var/cache/apt/archives/*.deb
    }
    cp "$(command -v qemu-aarch64)" /qemu/qemu-aarch64'
fi
[[ " ${targets[*]} " != *-arm64* ]] || "$qemu" --version | head -1

# Each target twice: in its build overlay (the binary as built, ONNX
# Runtime named by SIGLIPD_ORT_LIB), and from its tarball in a throwaway
# overlay of the clean release with only the runtime packages the tarball
# lists (siglipd finds ONNX Runtime in ../lib by itself): what a user's box
# has. The second downloads OpenCV's runtime each time.
fns="$(declare -p labels_tiny labels_colour images); $(declare -f probe unpack)"
for t in "${targets[@]}"; do
  release=${t%-*} arch=${t#*-}
  tarball=$(cd "$dist" && ls siglipd-*-"$t".tar.gz)
  run_with=""
  binds=(--bind "$dist:/dist" --bind "$fx:/t")
  if [ "$arch" = arm64 ]; then
    run_with=/qemu/qemu-aarch64
    binds+=(--bind "$cache/qemu:/qemu")
  fi
  echo "dist-test: $t in its build root"
  mkdir -p "$out/$t/build" "$out/$t/clean"
  scripts/rootfs.sh run "$release" --keep "dist-$t" "${binds[@]}" --bind "$out/$t/build:/res" -- \
    "$fns; SIGLIPD_ORT_LIB=/dist/$t/libonnxruntime.so.1 probe /dist/$t/siglipd $run_with"
  echo "dist-test: $t from $tarball in a clean $release"
  start=$SECONDS
  scripts/rootfs.sh run "$release" "${binds[@]}" --bind "$out/$t/clean:/res" -- \
    "$fns; unpack $arch /dist/$tarball; probe /usr/local/bin/siglipd $run_with"
  echo "dist-test: $t: clean root set up and run in $((SECONDS - start)) s"
done

# The verdict, from the files the runs left.
python3 - "$out" "$dist" "$tolerance" "${targets[@]}" <<'EOF'
import json, os, sys

out, dist, tol, targets = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]

def read(*p):
    with open(os.path.join(*p)) as f:
        return f.read()

def probabilities(path):
    got = {}
    for line in read(path).splitlines():
        r = json.loads(line)
        for lr in r["results"]:
            got[(r["image"], lr["label"])] = lr["score"]
    return got

ref = {m: probabilities(os.path.join(out, "host", f"classify-{m}.jsonl")) for m in ("tiny", "colour")}
failures = []
print(f"{'target':16} {'root':6} {'--version':9} {'--check':7} {'classify max |Δ| vs here (tiny, colour)':40} ms (--version, --check, classify tiny, colour)")
for t in targets:
    want = "siglipd " + read(dist, t, "VERSION").strip()
    for where in ("build", "clean"):
        res = os.path.join(out, t, where)
        what = f"{t} ({where} root)"
        if not os.path.exists(os.path.join(res, "ms.txt")):
            failures.append(f"{what}: did not run (see the output above)")
            print(f"{t:16} {where:6} did not run")
            continue
        got = read(res, "version.out").strip()
        version = "ok" if got == want and read(res, "version.rc").strip() == "0" else "FAIL"
        if version != "ok":
            failures.append(f"{what}: --version printed {got!r}, want {want!r}")
        check_rc = read(res, "check.rc").strip()
        check = "ok" if check_rc == "0" and "is valid" in read(res, "check.out") and "note: model: SigLIP" in read(res, "check.err") else "FAIL"
        if check != "ok":
            failures.append(f"{what}: --check exit {check_rc}:\n{read(res, 'check.err')}")
        deltas = []
        for m in ("tiny", "colour"):
            rc = read(res, f"classify-{m}.rc").strip()
            if rc != "0":
                failures.append(f"{what}: classify {m}: exit {rc}:\n{read(res, f'classify-{m}.err')}")
                deltas.append("exit " + rc)
                continue
            got = probabilities(os.path.join(res, f"classify-{m}.out"))
            if got.keys() != ref[m].keys():
                failures.append(f"{what}: classify {m}: images/labels {sorted(got)} differ from the reference's {sorted(ref[m])}")
                deltas.append("mismatch")
                continue
            worst = max(ref[m], key=lambda k: abs(got[k] - ref[m][k]))
            d = abs(got[worst] - ref[m][worst])
            deltas.append(f"{d:.1e}")
            if d > tol:
                failures.append(f"{what}: classify {m}: {worst[0]} / {worst[1]}: {got[worst]:.6g}, here {ref[m][worst]:.6g} (|Δ| {d:.2g} > {tol:g})")
        ms = dict(l.split() for l in read(res, "ms.txt").splitlines())
        times = ", ".join(ms[k] for k in ("version", "check", "classify-tiny", "classify-colour"))
        print(f"{t:16} {where:6} {version:9} {check:7} {', '.join(deltas):40} {times}")
for f in failures:
    print("dist-test: FAIL " + f, file=sys.stderr)
sys.exit(1 if failures else 0)
EOF
