#!/usr/bin/env bash
# rootfs.sh makes clean Debian systems from Debian's archive and runs commands
# in them: the Debian 13 test run, the package install tests, the arm64 build
# and the container base images all start from one of these.
#
#   scripts/rootfs.sh make RELEASE
#       prints the folder of a pristine RELEASE (bookworm, trixie) root, made
#       once with debootstrap (minbase + CA certificates, -updates and
#       -security enabled) and kept in .deps/rootfs/RELEASE.
#   scripts/rootfs.sh run RELEASE [--keep NAME] [--bind SRC[:DST]]... -- CMD...
#       runs CMD (bash -c) as root in a throwaway overlay of that root, in its
#       own mount and PID namespaces: nothing reaches the pristine root, every
#       mount and every process left behind goes when CMD ends. --keep NAME
#       keeps the overlay in /var/tmp/siglipd-rootfs/NAME for the next run
#       (a warm system: installed packages stay). --bind mounts host folders
#       inside (DST defaults to SRC).
#
# Why not containers: Docker is itself one of the things tested here, and a
# chroot in namespaces needs nothing but util-linux and debootstrap.
#
# Needs root. The host's extra CA certificates (/usr/local/share/ca-certificates)
# are copied in: registries here may be reached through an intercepting proxy,
# and Go, npm and pip inside must trust what the host trusts.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mirror=${ROOTFS_MIRROR:-http://deb.debian.org/debian}

die() { echo "rootfs: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"

make_root() {
  local release=$1 dir="$root/.deps/rootfs/$1"
  case $release in bookworm | trixie) ;; *) die "unknown release $release (bookworm, trixie)" ;; esac
  if [ -e "$dir/.complete" ]; then
    echo "$dir"
    return
  fi
  if ! command -v debootstrap >/dev/null; then
    echo "rootfs: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$(dirname "$dir")"
  echo "rootfs: debootstrap $release into $dir" >&2
  debootstrap --variant=minbase --include=ca-certificates "$release" "$dir.tmp" "$mirror" >&2
  cat >"$dir.tmp/etc/apt/sources.list" <<EOF
deb $mirror $release main
deb $mirror $release-updates main
deb ${mirror%/debian}/debian-security $release-security main
EOF
  # No service starts inside (mosquitto's package would start a broker).
  printf '#!/bin/sh\nexit 101\n' >"$dir.tmp/usr/sbin/policy-rc.d"
  chmod +x "$dir.tmp/usr/sbin/policy-rc.d"
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$dir.tmp/usr/local/share/ca-certificates/"
    chroot "$dir.tmp" update-ca-certificates >/dev/null 2>&1
  fi
  rm -rf "$dir.tmp/var/cache/apt/archives/"*.deb
  touch "$dir.tmp/.complete"
  mv "$dir.tmp" "$dir"
  echo "$dir"
}

run_in() {
  local release=$1
  shift
  local keep="" binds=()
  while [ $# -gt 0 ]; do
    case $1 in
    --keep) keep=$2; shift 2 ;;
    --bind) binds+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) die "run: unexpected $1 (want --keep NAME, --bind SRC[:DST], --)" ;;
    esac
  done
  [ $# -gt 0 ] || die "run: no command after --"
  local lower
  lower=$(make_root "$release")
  if [ -n "$keep" ]; then
    base=/var/tmp/siglipd-rootfs/$keep
    mkdir -p "$base"/{upper,work,merged}
  else
    base=$(mktemp -d /var/tmp/siglipd-rootfs.XXXXXX)
    mkdir -p "$base"/{upper,work,merged}
    trap 'rm -rf "$base"' EXIT # base is global: the trap runs after run_in returns
  fi
  set +e
  unshare --mount --pid --fork --propagation private bash -euo pipefail -c '
    lower=$1 base=$2 binds=$3 cmd=$4
    m=$base/merged
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$base/upper,workdir=$base/work" "$m"
    mount -t proc proc "$m/proc"
    mount --rbind /sys "$m/sys"
    mount --rbind /dev "$m/dev"
    cp /etc/resolv.conf "$m/etc/resolv.conf"
    while IFS= read -r b; do
      [ -n "$b" ] || continue
      src=${b%%:*} dst=${b#*:}
      mkdir -p "$m$dst"
      mount --bind "$src" "$m$dst"
    done <<<"$binds"
    exec chroot "$m" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" CI="${CI:-}" \
      PATH=/usr/local/go/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      LANG=C.UTF-8 bash -euo pipefail -c "$cmd"
  ' rootfs "$lower" "$base" "$(for b in "${binds[@]}"; do
    case $b in *:*) echo "$b" ;; *) echo "$b:$b" ;; esac
  done)" "$*"
  local rc=$?
  set -e
  return $rc
}

case ${1:-} in
make) [ $# -eq 2 ] || die "usage: rootfs.sh make RELEASE"; make_root "$2" ;;
run) shift; [ $# -ge 1 ] || die "usage: rootfs.sh run RELEASE [--keep NAME] [--bind SRC[:DST]]... -- CMD..."; run_in "$@" ;;
*) die "usage: rootfs.sh make RELEASE | run RELEASE [--keep NAME] [--bind SRC[:DST]]... -- CMD..." ;;
esac
