#!/usr/bin/env bash
# dist.sh builds siglipd for the systems people run it on: Debian 12
# (bookworm, OpenCV 4.6) and Debian 13 (trixie, OpenCV 4.10; Raspberry Pi OS
# follows it), each for amd64 and arm64. A binary links one OpenCV soname
# (libopencv_core.so.406 or .410), so it runs on the release it was built for
# only: four targets, four binaries.
#
#   scripts/dist.sh [RELEASE-ARCH ...]    # default: all four (make dist)
#   VERSION=1.2.3 scripts/dist.sh ...     # instead of git describe of HEAD
#
# What is built is HEAD, exported with git archive, as CI builds it:
# uncommitted changes are not in it (a warning says so).
#
# Each target builds as root in a kept overlay of the pristine Debian root
# (scripts/rootfs.sh, keep name dist-RELEASE-ARCH) that holds the build
# dependencies: installed once, reused by every later run. amd64 builds
# natively; arm64 cross-compiles with Debian's aarch64 gcc against
# libopencv-dev:arm64 installed by multiarch beside the amd64 system (no
# emulation, so a build takes about as long as an amd64 one). Go is the
# amd64 toolchain scripts/setup-go.sh installs; its module cache (shared by
# all targets) and build caches (one per target: the C headers differ) live
# in .deps/dist-cache, so a rerun compiles only what changed.
#
# Output in out/dist/ (replaced target by target):
#   siglipd_VERSION+debNN_ARCH.deb     the package (scripts/package-deb.sh, run in the build root;
#                                      NN 12 or 13; docs/08-deployment.md "Debian package")
#   RELEASE-ARCH/siglipd               the binary (-trimpath, version ldflags as the Makefile's,
#                                      PIE with Debian's hardening flags, as the .deb wants it)
#   RELEASE-ARCH/libonnxruntime.so.1   ONNX Runtime for ARCH, from the onnxruntime-node npm tarball
#                                      (scripts/fetch-ort.sh: one tarball carries amd64 and arm64)
#   RELEASE-ARCH/VERSION               the version the binary reports
#   RELEASE-ARCH/runtime-packages.txt  the Debian packages holding the libraries the binary links
#   siglipd-VERSION-RELEASE-ARCH.tar.gz  bin/siglipd, lib/libonnxruntime.so.1 (found as ../lib
#                                      beside the binary), share/siglipd/: the unit, the
#                                      example config, runtime-packages.txt
#
# Needs root (scripts/rootfs.sh), git, npm, and the network for the Debian
# archive, the Go module proxy and npm. scripts/dist-test.sh runs the result
# (arm64 under qemu).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
all_targets=(bookworm-amd64 bookworm-arm64 trixie-amd64 trixie-arm64)
cache=$root/.deps/dist-cache
out=$root/out/dist

die() { echo "dist: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (scripts/rootfs.sh: overlays and chroot)"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || die "unknown target $t (want any of: ${all_targets[*]})"
done

version=${VERSION:-$(git describe --tags --always HEAD)}
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "dist: the working tree has uncommitted changes; dist builds HEAD ($version) without them" >&2
fi

# inside RELEASE ARCH VERSION runs in the build overlay (as root, /src the
# export of HEAD, /cache the caches, /out this target's output folder).
inside() {
  local release=$1 arch=$2 version=$3 commits=$4 epoch=$5
  # dpkg-dev: dpkg-buildflags for the build, dpkg-shlibdeps and dpkg-deb
  # for the package; lintian checks the package.
  local pkgs=(build-essential pkg-config git curl python3 dpkg-dev lintian)
  if [ "$arch" = arm64 ]; then
    # The cross compilers, and OpenCV's arm64 headers and libraries beside
    # the amd64 system (multiarch); not libopencv-dev for amd64 as well:
    # the two conflict.
    pkgs+=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libopencv-dev:arm64)
  else
    pkgs+=(libopencv-dev)
  fi
  local stamp=/var/lib/siglipd-dist/packages
  local t0=$SECONDS
  if [ "$(cat "$stamp" 2>/dev/null)" != "${pkgs[*]}" ]; then
    echo "dist: $release-$arch: installing ${pkgs[*]}"
    [ "$arch" = amd64 ] || dpkg --add-architecture "$arch"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    rm -f /var/cache/apt/archives/*.deb
    mkdir -p "$(dirname "$stamp")"
    echo "${pkgs[*]}" >"$stamp"
  fi
  /src/scripts/setup-go.sh
  local t1=$SECONDS

  cd /src
  export GOMODCACHE=/cache/gomod GOCACHE=/cache/go-build-$release-$arch GOFLAGS=-mod=readonly
  export CGO_ENABLED=1 GOOS=linux GOARCH=$arch
  local triplet=x86_64-linux-gnu
  if [ "$arch" = arm64 ]; then
    triplet=aarch64-linux-gnu
    export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++
    export PKG_CONFIG_LIBDIR=/usr/lib/$triplet/pkgconfig:/usr/share/pkgconfig
  fi
  # As Debian builds programs (hardening flags, a position-independent
  # executable): lintian refuses the package otherwise, and the tarball's
  # binary is the same one.
  local buildflags=(dpkg-buildflags)
  [ "$arch" = amd64 ] || buildflags=(dpkg-architecture -a"$arch" -c dpkg-buildflags)
  export DEB_BUILD_MAINT_OPTIONS=hardening=+all
  export CGO_CFLAGS="$("${buildflags[@]}" --get CFLAGS) $("${buildflags[@]}" --get CPPFLAGS)" \
    CGO_CXXFLAGS="$("${buildflags[@]}" --get CXXFLAGS) $("${buildflags[@]}" --get CPPFLAGS)" \
    CGO_LDFLAGS="$("${buildflags[@]}" --get LDFLAGS)"
  go build -buildmode=pie -trimpath -ldflags "-X github.com/siglipd/siglipd/daemon.Version=$version" -o /out/siglipd ./daemon/cmd/siglipd
  echo "$version" >/out/VERSION

  # The packages that hold the libraries siglipd links (its direct NEEDED
  # entries; each package brings its own dependencies). readelf reads
  # either architecture. With merged /usr, dpkg knows a library by
  # /usr/lib/... or /lib/..., whichever its package shipped.
  local so p
  for so in $(readelf -d /out/siglipd | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    p=/usr/lib/$triplet/$so
    [ -e "$p" ] || { echo "dist: $release-$arch: $so (NEEDED by siglipd) is not in /usr/lib/$triplet" >&2; return 1; }
    dpkg -S "$p" 2>/dev/null || dpkg -S "${p#/usr}" 2>/dev/null || dpkg -S "$(realpath "$p")" ||
      { echo "dist: $release-$arch: no package holds $p" >&2; return 1; }
  done | cut -d: -f1 | sort -u >/out/runtime-packages.txt

  # The .deb, here in the build root, where dpkg-shlibdeps sees this
  # release's (and, by multiarch, arm64's) libraries. No git in /src (an
  # export), so the version comes in.
  rm -f /out/siglipd_*.deb
  VERSION=$version COMMITS=$commits SOURCE_DATE_EPOCH=$epoch /src/scripts/package-deb.sh "$release" "$arch" /out /out
  echo "dist: $release-$arch: built in $((SECONDS - t1)) s (build root ready in $((t1 - t0)) s)"
}

# Both ONNX Runtime libraries from one npm tarball (cached by npm after the
# first target), kept with the other caches.
ort_lib() {
  scripts/fetch-ort.sh "$1" "$cache/onnxruntime-$1" >&2
  echo "$cache/onnxruntime-$1/lib/libonnxruntime.so.1"
}

# A clean export of HEAD, shared by the targets of this run.
src=$cache/src
rm -rf "$src"
mkdir -p "$src" "$cache/gomod" "$out"
git archive --format=tar HEAD | tar -x -C "$src"
# The mtime of every file in the tarballs: the commit's, so the same commit
# gives the same archive contents.
mtime=@$(git log -1 --format=%ct HEAD)
commits=$(git rev-list --count HEAD)
deb_release() { case $1 in bookworm) echo 12 ;; trixie) echo 13 ;; esac; }

summary=()
for t in "${targets[@]}"; do
  release=${t%-*} arch=${t#*-}
  start=$SECONDS
  dir=$out/$t
  rm -rf "$dir"
  mkdir -p "$dir" "$cache/go-build-$t"
  lib=$(ort_lib "$arch")
  install -m 0644 "$lib" "$dir/libonnxruntime.so.1"
  scripts/rootfs.sh run "$release" --keep "dist-$t" \
    --bind "$src:/src" --bind "$cache:/cache" --bind "$dir:/out" -- \
    "$(declare -f inside); inside $release $arch $(printf %q "$version") $commits ${mtime#@}"
  rm -f "$out"/siglipd_*+deb"$(deb_release "$release")"_"$arch".deb
  mv "$dir"/siglipd_*.deb "$out/"

  # The tarball, for boxes without the .deb: unpacked into /usr/local
  # (--strip-components=1) it is `make install`'s layout.
  name=siglipd-$version-$t
  rm -f "$out"/siglipd-*-"$t".tar.gz
  stage=$(mktemp -d)
  install -D -m 0755 "$dir/siglipd" "$stage/$name/bin/siglipd"
  install -D -m 0644 "$dir/libonnxruntime.so.1" "$stage/$name/lib/libonnxruntime.so.1"
  install -D -m 0644 "$src/configs/siglipd.service" "$stage/$name/share/siglipd/siglipd.service"
  install -D -m 0644 "$src/configs/cams.yaml" "$stage/$name/share/siglipd/cams.yaml"
  install -D -m 0644 "$dir/runtime-packages.txt" "$stage/$name/share/siglipd/runtime-packages.txt"
  tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" -czf "$out/$name.tar.gz" "$name"
  rm -rf "$stage"
  summary+=("$t: $((SECONDS - start)) s")
done

echo "dist: $version in $out:"
printf '  %s\n' "${summary[@]}"
