#!/usr/bin/env bash
# package-deb.sh writes siglipd's .deb for one Debian release and one
# architecture, from a binary and ONNX Runtime already built for them.
#
#   scripts/package-deb.sh RELEASE ARCH INDIR OUTDIR
#       RELEASE bookworm | trixie, ARCH amd64 | arm64. Reads INDIR/siglipd
#       and INDIR/libonnxruntime.so.1, writes
#       OUTDIR/siglipd_<version>+deb<12|13>_<ARCH>.deb and prints its path.
#   scripts/package-deb.sh version DESCRIBE [COMMITS]
#       prints the Debian version for `git describe --tags --always --dirty`
#       output (COMMITS: `git rev-list --count HEAD`, needed before the first
#       tag), without the +debNN suffix.
#   scripts/package-deb.sh unit
#       prints the systemd unit the package installs.
#
# Run it as root inside the build root of RELEASE (scripts/rootfs.sh run
# RELEASE --keep ...), where the binary was linked: dpkg-shlibdeps reads
# that release's installed libraries and their shlibs files to write
# Depends (OpenCV's runtime packages, libc, libstdc++). For arm64 that is an
# amd64 root with `dpkg --add-architecture arm64`, libopencv-dev:arm64 and
# the aarch64-linux-gnu binutils (strip, objdump): dpkg-shlibdeps runs
# under `dpkg-architecture -aarm64 -c`, which sets DEB_HOST_ARCH so it
# looks up arm64 packages. Needs dpkg-dev; when lintian is installed it
# runs on the result and fails the build on any warning or error
# (packaging/deb/lintian-overrides says why each override is there).
#
# The version: VERSION (what the binary was built with, `git describe`
# output as the Makefile's VERSION) and COMMITS default to asking git in
# this checkout; SOURCE_DATE_EPOCH (the changelog's date and every file's
# time, so two builds of one commit are the same bytes) to the commit's
# time. scripts/rootfs.sh starts commands with an empty environment, so a
# caller passes them in the command, e.g. dist.sh for trixie arm64:
#
#   scripts/rootfs.sh run trixie --keep dist-trixie-arm64 --bind "$root:/src" -- \
#     "VERSION=$v COMMITS=$n SOURCE_DATE_EPOCH=$t /src/scripts/package-deb.sh trixie arm64 /src/out/dist/trixie-arm64 /src/out/dist"
#
# DEB_MAINTAINER sets the Maintainer field.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "package-deb: $*" >&2; exit 2; }

# debian_version DESCRIBE [COMMITS]: git describe output as a Debian
# upstream version that sorts the way the commits came:
#   v1.2.3              1.2.3
#   v1.2.3-rc1          1.2.3~rc1            (~: before 1.2.3)
#   v1.2.3-4-gabc1234   1.2.3+git4.gabc1234  (+: after 1.2.3)
#   abc1234 (no tag)    0~git<COMMITS>.gabc1234
#   ...-dirty           +dirty, or .dirty after a git part
# The +debNN the package adds sorts below any +git part ("deb" < "git"),
# so a tag's package is older than the commits after it on either release.
debian_version() {
  local d=${1#v} n=${2:-} dirty="" base="" ahead="" hash="" v
  if [[ $d == *-dirty ]]; then
    dirty=1
    d=${d%-dirty}
  fi
  if [[ $d =~ ^(.+)-([0-9]+)-g([0-9a-f]{4,})$ ]]; then
    base=${BASH_REMATCH[1]} ahead=${BASH_REMATCH[2]} hash=${BASH_REMATCH[3]}
  elif [[ $d =~ ^[0-9a-f]{7,}$ ]]; then
    hash=$d
  else
    base=$d
  fi
  if [ -n "$base" ]; then
    base=${base#v}
    # The first hyphen starts a pre-release (1.0.0-rc1, 1.0.0-beta.2).
    if [[ $base == *-* ]]; then
      base="${base%%-*}~${base#*-}"
      base=${base//-/.}
    fi
    [[ $base =~ ^[0-9][0-9A-Za-z.~]*$ ]] || die "tag $1 does not make a Debian version (want v1.2.3 or v1.2.3-rc1)"
    v=$base
    [ -z "$ahead" ] || v="$v+git$ahead.g$hash"
  else
    [[ $n =~ ^[0-9]+$ ]] || die "$1 has no tag: the commit count (COMMITS) is needed to order its packages"
    v="0~git$n.g$hash"
  fi
  if [ -n "$dirty" ]; then
    if [[ $v == *git* ]]; then v="$v.dirty"; else v="$v+dirty"; fi
  fi
  echo "$v"
}

# packaged_unit: configs/siglipd.service as the package installs it. The
# sandbox is the same; ExecStart is /usr/bin and the service runs as the
# system user made at install instead of a DynamicUser: the state folder
# keeps one owner across restarts, upgrades and removal, it is a plain
# /var/lib/siglipd (DynamicUser keeps it under /var/lib/private), and an
# admin can run siglipd as that user (sudo -u siglipd) for checks.
packaged_unit() {
  local src=$root/configs/siglipd.service unit
  unit=$(
    cat <<'EOF'
# siglipd, as installed from its Debian package (docs/08-deployment.md):
#
#   $EDITOR /etc/siglipd/cams.yaml      # cameras, labels, broker
#   printf 'MQTT_PASSWORD=...\n' > /etc/siglipd/env && chmod 600 /etc/siglipd/env
#   systemctl enable --now siglipd
#   journalctl -u siglipd -f
#
# Written by scripts/package-deb.sh from configs/siglipd.service: the same
# read-only view of the system, run as the system user siglipd made at
# install (not a DynamicUser), so that /var/lib/siglipd keeps one owner.
# It can write only /var/lib/siglipd (state) and /var/cache/siglipd (model
# downloads). `systemctl reload siglipd` re-reads the config (SIGHUP);
# `systemctl edit siglipd` keeps local changes across upgrades.

EOF
    # Drop the source's leading comment (its install steps are make's).
    sed -e '1,/^$/d' \
      -e 's#^ExecStart=/usr/local/bin/siglipd #ExecStart=/usr/bin/siglipd #' \
      -e 's#^Documentation=#Documentation=man:siglipd(1) #' \
      -e 's|^DynamicUser=yes$|User=siglipd\nGroup=siglipd\n# Of what DynamicUser= implied, RemoveIPC= is the one not set below.\nRemoveIPC=yes|' \
      "$src"
  )
  # The edits above must have happened, and what DynamicUser= implied must
  # still hold; a change of configs/siglipd.service that breaks this stops
  # the build here rather than shipping a unit that runs as root.
  local want
  for want in '^ExecStart=/usr/bin/siglipd ' '^User=siglipd$' '^Group=siglipd$' '^RemoveIPC=yes$' \
    '^ProtectSystem=strict$' '^ProtectHome=yes$' '^PrivateTmp=yes$' '^NoNewPrivileges=yes$' \
    '^RestrictSUIDSGID=yes$' '^StateDirectory=siglipd$' '^StateDirectoryMode=0750$'; do
    grep -q "$want" <<<"$unit" || die "packaged unit: no line matching $want (configs/siglipd.service changed?)"
  done
  if grep -qE '^DynamicUser=|/usr/local' <<<"$unit"; then
    die "packaged unit still names DynamicUser or /usr/local (configs/siglipd.service changed?)"
  fi
  printf '%s\n' "$unit"
}

case ${1:-} in
version)
  if [ $# -lt 2 ] || [ $# -gt 3 ]; then die "usage: package-deb.sh version DESCRIBE [COMMITS]"; fi
  debian_version "$2" "${3:-}"
  exit 0
  ;;
unit)
  packaged_unit
  exit 0
  ;;
esac
[ $# -eq 4 ] || die "usage: package-deb.sh RELEASE ARCH INDIR OUTDIR | version DESCRIBE [COMMITS] | unit"
release=$1 arch=$2 indir=$3 outdir=$4

case $release in
bookworm) nn=12 ;;
trixie) nn=13 ;;
*) die "unknown release $release (bookworm, trixie)" ;;
esac
case $arch in
amd64) machine="Advanced Micro Devices X86-64" ;;
arm64) machine="AArch64" ;;
*) die "unknown architecture $arch (amd64, arm64)" ;;
esac
[ "$(id -u)" -eq 0 ] || die "needs root (files owned by root in the package, dpkg's view of the build root)"
# shellcheck disable=SC1091
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ "$codename" = "$release" ] || die "this is $codename, not $release: run it in the $release build root (scripts/rootfs.sh run $release ...), where dpkg-shlibdeps sees $release's libraries"
command -v dpkg-shlibdeps >/dev/null || die "dpkg-shlibdeps missing: apt-get install dpkg-dev"
if [ "$arch" != "$(dpkg --print-architecture)" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  die "$arch is not a dpkg architecture here: dpkg --add-architecture $arch, then apt-get install libopencv-dev:$arch"
fi
gnu=$(dpkg-architecture -a"$arch" -qDEB_HOST_GNU_TYPE 2>/dev/null)
strip="strip"
[ "$arch" = "$(dpkg --print-architecture)" ] || strip="$gnu-strip"
command -v "$strip" >/dev/null || die "$strip missing: apt-get install binutils-${gnu//_/-}"

for f in siglipd libonnxruntime.so.1; do
  [ -f "$indir/$f" ] || die "$indir/$f missing (scripts/dist.sh builds it)"
  readelf -h "$indir/$f" | grep -q "Machine: *$machine" || die "$indir/$f is not an $arch ELF file"
done

# The version, from git unless the caller says.
git_in() { git -C "$root" -c safe.directory="$root" "$@"; }
VERSION=${VERSION:-$(git_in describe --tags --always --dirty)}
if [ -z "${COMMITS:-}" ]; then COMMITS=$(git_in rev-list --count HEAD 2>/dev/null || true); fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then SOURCE_DATE_EPOCH=$(git_in log -1 --format=%ct 2>/dev/null || date +%s); fi
export SOURCE_DATE_EPOCH
maintainer=${DEB_MAINTAINER:-siglipd developers <dev@siglipd.invalid>}
upstream=$(debian_version "$VERSION" "$COMMITS")
debver="$upstream+deb$nn"
ort_version=$(cat "$root/packaging/deb/onnxruntime/VERSION")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/debian/siglipd # where dpkg-shlibdeps expects a package's tree
doc=$pkg/usr/share/doc/siglipd

# Stripped as dh_strip does; Go's stack traces come from its own tables
# (.gopclntab), which strip keeps.
install -D -m 0755 "$indir/siglipd" "$pkg/usr/bin/siglipd"
"$strip" --remove-section=.comment --remove-section=.note "$pkg/usr/bin/siglipd"
install -D -m 0644 "$indir/libonnxruntime.so.1" "$pkg/usr/lib/siglipd/libonnxruntime.so.1"
"$strip" --remove-section=.comment --remove-section=.note --strip-unneeded "$pkg/usr/lib/siglipd/libonnxruntime.so.1"
install -d "$pkg/usr/lib/systemd/system"
packaged_unit >"$pkg/usr/lib/systemd/system/siglipd.service"
install -D -m 0644 "$root/packaging/deb/siglipd.sysusers" "$pkg/usr/lib/sysusers.d/siglipd.conf"
install -D -m 0644 "$root/configs/cams.yaml" "$pkg/etc/siglipd/cams.yaml"
install -D -m 0644 "$root/packaging/deb/copyright" "$doc/copyright"
gzip -9n <"$root/packaging/deb/onnxruntime/ThirdPartyNotices.txt" >"$doc/onnxruntime-ThirdPartyNotices.txt.gz"
install -d "$pkg/usr/share/man/man1"
sed -e "s/^\.TH SIGLIPD 1 \"\" \"siglipd\"/.TH SIGLIPD 1 \"$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)\" \"siglipd $VERSION\"/" \
  "$root/packaging/deb/siglipd.1" | gzip -9n >"$pkg/usr/share/man/man1/siglipd.1.gz"
{
  echo "siglipd ($debver) $release; urgency=medium"
  echo
  echo "  * siglipd $VERSION (git describe) for Debian $nn ($release), $arch,"
  echo "    with ONNX Runtime $ort_version."
  echo
  echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.gz"
if [ -s "$root/packaging/deb/lintian-overrides" ]; then
  install -D -m 0644 "$root/packaging/deb/lintian-overrides" "$pkg/usr/share/lintian/overrides/siglipd"
fi
chmod 0644 "$doc"/* "$pkg/usr/share/man/man1/siglipd.1.gz"

# Depends: the libraries both ELF files link, as the release's packages
# that hold them (siglipd opens ONNX Runtime with dlopen, so it is not one).
# DEBIAN/ must exist already: it marks the package's root for
# dpkg-shlibdeps (ONNX Runtime's RPATH is $ORIGIN).
install -d -m 0755 "$pkg/DEBIAN"
printf 'Source: siglipd\n\nPackage: siglipd\nArchitecture: any\n' >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-architecture -a"$arch" -c dpkg-shlibdeps -O \
  -e"debian/siglipd/usr/bin/siglipd" -e"debian/siglipd/usr/lib/siglipd/libonnxruntime.so.1" 2>"$work/shlibdeps.err") ||
  { cat "$work/shlibdeps.err" >&2; die "dpkg-shlibdeps failed"; }
# Known and harmless: the compiler is the build machine's (cross builds),
# Debian 13's usrmerge diverts the dynamic loader, and ONNX Runtime as
# Microsoft links it names libdl, librt and libpthread, which glibc 2.34+
# folds into libc.
grep -vE 'specified GNU system type|diversions involved|diversion by libc6|could avoid a useless dependency' \
  "$work/shlibdeps.err" >&2 || true
depends=${shlibs#shlibs:Depends=}
[[ $depends == *libopencv* ]] || die "dpkg-shlibdeps found no OpenCV library in $indir/siglipd: $depends"
# passwd: useradd, for the postinst where systemd-sysusers is not;
# procps: /bin/kill, the unit's ExecReload (minimal systems lack it).
depends="$depends, passwd, procps"

for s in postinst prerm postrm; do
  install -m 0755 "$root/packaging/deb/$s" "$pkg/DEBIAN/$s"
done
echo /etc/siglipd/cams.yaml >"$pkg/DEBIAN/conffiles"
cat >"$pkg/DEBIAN/control" <<EOF
Package: siglipd
Version: $debver
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -s -k --apparent-size --exclude=DEBIAN "$pkg" | cut -f1)
Depends: $depends
Section: video
Priority: optional
Homepage: https://github.com/siglipd/siglipd
Description: zero-shot camera classifier publishing MQTT events
 siglipd watches cameras (RTSP, USB, files) and scores their frames with
 Google's SigLIP vision-language model against labels described in words
 ("a car in the driveway"). When a label's probability crosses its
 threshold it publishes an event over MQTT, for Home Assistant (entities
 made by MQTT discovery), Node-RED or any MQTT client.
 .
 This package holds the daemon, ONNX Runtime (CPU) in a private folder, a
 systemd unit that runs it as the system user siglipd, and an example
 configuration in /etc/siglipd. The service is not enabled at install:
 edit /etc/siglipd/cams.yaml first.
EOF
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/control"
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$outdir"
deb="$outdir/siglipd_${debver}_$arch.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
if command -v lintian >/dev/null; then
  # Root is what the build roots run as; lintian only warns about it.
  lintian --fail-on error,warning --display-info "$deb" 2> >(grep -v 'running with root privileges' >&2) >&2 ||
    die "lintian: $deb has the tags above (fix them, or override one in packaging/deb/lintian-overrides, saying why)"
fi
echo "$deb"
