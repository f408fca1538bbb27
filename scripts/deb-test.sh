#!/usr/bin/env bash
# deb-test.sh installs siglipd's .deb packages into clean Debian systems and
# checks what docs/08-deployment.md promises of them.
#
#   scripts/deb-test.sh [DEB...]      (make deb-test; default: the amd64
#                                      packages in out/dist)
#
# Each package goes into a fresh, throwaway overlay of the pristine root of
# its release (scripts/rootfs.sh; +deb12 bookworm, +deb13 trixie), which has
# nothing but minbase: `apt-get install ./siglipd_….deb` must pull OpenCV's
# runtime from Debian by itself. Then, in order:
#   - the system user and its state folder exist, nothing is enabled;
#   - `siglipd --version` prints VERSION (the checkout's `git describe`,
#     unless given: the packages must be from the commit under test);
#   - `siglipd --check` on the example config fails with exit 2 naming the
#     secrets it needs, then passes with them in /etc/siglipd/env, as root
#     and as the service runs it (user siglipd, the unit's environment),
#     loading ONNX Runtime from /usr/lib/siglipd;
#   - `systemd-analyze verify` passes on the installed unit (and finds its
#     manual page);
#   - reinstalling keeps an edited /etc/siglipd/cams.yaml and the service
#     enabled (systemctl enable, as the admin would);
#   - `apt-get remove` keeps /var/lib/siglipd (and what is in it), the
#     config and the user; `apt-get purge` deletes the state folder, the
#     config and the enablement, keeps /etc/siglipd/env (the admin's) and
#     the user.
# The system user comes from systemd-sysusers where systemd is installed
# and from useradd where it is not: bookworm installs the package without
# Recommends and systemd after it (useradd), trixie systemd first and the
# package with Recommends (systemd-sysusers), so both ways run.
#
# arm64 packages are not tested here: installing them needs an arm64
# system (qemu-user); scripts/dist.sh tests those under qemu.
#
# Needs root (scripts/rootfs.sh) and the Debian archive.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

# --inside RELEASE VERSION DEB: the checks, run as root in the overlay.
if [ "${1:-}" = --inside ]; then
  release=$2 version=$3 deb=$4
  export DEBIAN_FRONTEND=noninteractive
  say() { echo "deb-test[$release]: $*"; }
  fail() { echo "deb-test[$release]: FAIL: $*" >&2; exit 1; }
  # apt output is kept for a failure, not shown.
  apt_get() { apt-get -y -o Dpkg::Use-Pty=0 "$@" >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "apt-get $*"; }; }
  case $release in bookworm) so=406 ;; trixie) so=410 ;; esac

  apt_get update
  # Both ways of making the user, and both ways of installing: trixie has
  # systemd first and takes Recommends (apt's default); bookworm installs
  # without Recommends, which keeps systemd out until later.
  if [ "$release" = trixie ]; then
    apt_get install --no-install-recommends systemd
    apt_get install "$deb"
  else
    apt_get install --no-install-recommends "$deb"
  fi
  grep -E '^[0-9]+ upgraded, [0-9]+ newly installed|^After this operation' /tmp/apt.log | sed "s/^/deb-test[$release]: apt: /"
  for p in libopencv-core$so libopencv-videoio$so libopencv-imgcodecs$so; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || fail "$p (OpenCV's runtime) was not pulled"
  done
  if dpkg-query -W -f='${Status}' libopencv-dev 2>/dev/null | grep -q installed; then fail "libopencv-dev was pulled"; fi
  say "installed $(basename "$deb"); OpenCV $so runtime pulled, no -dev packages"

  if command -v systemd-sysusers >/dev/null; then how=systemd-sysusers; else how=useradd; fi
  IFS=: read -r _ _ uid _ _ home shell < <(getent passwd siglipd) || fail "no user siglipd"
  [ "$uid" -lt 1000 ] && [ "$home" = /var/lib/siglipd ] && [ "$shell" = /usr/sbin/nologin ] ||
    fail "user siglipd: uid $uid, home $home, shell $shell (want a system uid, /var/lib/siglipd, /usr/sbin/nologin)"
  getent group siglipd >/dev/null || fail "no group siglipd"
  [ "$(stat -c '%U:%G %a' /var/lib/siglipd)" = "siglipd:siglipd 750" ] ||
    fail "/var/lib/siglipd is $(stat -c '%U:%G %a' /var/lib/siglipd), want siglipd:siglipd 750"
  if compgen -G '/etc/systemd/system/*.wants/siglipd.service' >/dev/null; then fail "installing enabled the service"; fi
  say "user siglipd (uid $uid, by $how), /var/lib/siglipd siglipd:siglipd 750, service not enabled"

  got=$(siglipd --version)
  [ "$got" = "siglipd $version" ] || fail "siglipd --version: $got, want siglipd $version"
  say "$got"

  conf=/etc/siglipd/cams.yaml
  dpkg-query -W -f='${Conffiles}\n' siglipd | grep -q " $conf " || fail "$conf is not a conffile"
  set +e
  siglipd --check --config $conf >/tmp/check.out 2>/tmp/check.err
  rc=$?
  set -e
  [ $rc -eq 2 ] && grep -q 'MQTT_PASSWORD is not set' /tmp/check.err && grep -q 'DRIVEWAY_PASSWORD is not set' /tmp/check.err ||
    { cat /tmp/check.err; fail "--check without secrets: exit $rc, want 2 naming MQTT_PASSWORD and DRIVEWAY_PASSWORD"; }
  say "--check without /etc/siglipd/env: exit 2, names MQTT_PASSWORD and DRIVEWAY_PASSWORD"
  printf 'MQTT_PASSWORD=example\nDRIVEWAY_PASSWORD=example\n' >/etc/siglipd/env
  chmod 600 /etc/siglipd/env
  # As docs/08-deployment.md says to run it; LD_DEBUG shows which library
  # was loaded (no copy is on the system path: it must be the package's).
  (set -a && . /etc/siglipd/env && LD_DEBUG=files siglipd --check --config $conf) >/tmp/check.out 2>/tmp/check.err ||
    { grep -v 'LD_DEBUG\|^ *[0-9]*:' /tmp/check.err; fail "--check with /etc/siglipd/env failed"; }
  head -1 /tmp/check.out | grep -q "is valid" || fail "--check printed: $(head -1 /tmp/check.out)"
  grep -q 'file=/usr/lib/siglipd/libonnxruntime.so.1 .*dynamically loaded' /tmp/check.err ||
    fail "--check did not load /usr/lib/siglipd/libonnxruntime.so.1"
  # As the unit runs it: its user, its environment (StateDirectory=,
  # CacheDirectory=, EnvironmentFile=): the state folder must be writable
  # by the user, the config and the library readable.
  mapfile -t secrets </etc/siglipd/env
  setpriv --reuid=siglipd --regid=siglipd --init-groups env -i PATH=/usr/bin:/bin \
    STATE_DIRECTORY=/var/lib/siglipd HF_HOME=/var/cache/siglipd/huggingface "${secrets[@]}" \
    siglipd --check --config $conf >/tmp/check.out 2>/tmp/check.err ||
    { cat /tmp/check.err; fail "--check as user siglipd failed"; }
  say "--check with /etc/siglipd/env: valid, as root and as user siglipd; ONNX Runtime from /usr/lib/siglipd"
  say "  $(grep -m1 '^siglipd: note' /tmp/check.err || true)"

  # man-db: verify looks up the unit's Documentation=man:siglipd(1).
  apt_get install --no-install-recommends systemd man-db
  out=$(systemd-analyze verify /usr/lib/systemd/system/siglipd.service 2>&1) && [ -z "$out" ] ||
    fail "systemd-analyze verify: $out"
  say "systemd-analyze verify: clean"

  # What an admin does next: enable it (systemctl works offline), edit the config.
  wants=/etc/systemd/system/multi-user.target.wants/siglipd.service
  systemctl enable siglipd.service >/dev/null 2>&1
  [ -L $wants ] || fail "systemctl enable made no $wants"
  echo '# edited by deb-test' >>$conf
  apt_get install --reinstall "$deb"
  tail -1 $conf | grep -q 'edited by deb-test' || fail "reinstalling replaced the edited $conf"
  [ -L $wants ] || fail "reinstalling disabled the service"
  say "reinstall kept the edited $conf and the service enabled"

  setpriv --reuid=siglipd --regid=siglipd --init-groups touch /var/lib/siglipd/deb-test-state
  apt_get remove siglipd
  [ ! -e /usr/bin/siglipd ] || fail "remove left /usr/bin/siglipd"
  [ -f /var/lib/siglipd/deb-test-state ] || fail "remove deleted the state folder"
  [ -f $conf ] || fail "remove deleted $conf"
  getent passwd siglipd >/dev/null || fail "remove deleted the user"
  say "remove: binary gone; /var/lib/siglipd (with its file), $conf and the user kept"

  apt_get purge siglipd
  [ ! -e /var/lib/siglipd ] || fail "purge left /var/lib/siglipd"
  [ ! -e $conf ] || fail "purge left $conf"
  [ -f /etc/siglipd/env ] || fail "purge deleted /etc/siglipd/env, the admin's file"
  getent passwd siglipd >/dev/null || fail "purge deleted the user (documented to stay)"
  if dpkg-query -W -f='${Status}' siglipd 2>/dev/null | grep -v -q not-installed; then fail "siglipd still known to dpkg"; fi
  [ ! -e $wants ] && [ ! -L $wants ] || fail "purge left $wants (the admin's enablement)"
  say "purge: /var/lib/siglipd, $conf and the enablement gone; /etc/siglipd/env and the user kept"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "deb-test: needs root (scripts/rootfs.sh)" >&2; exit 2; }
if [ $# -eq 0 ]; then
  shopt -s nullglob
  set -- "$root"/out/dist/siglipd_*+deb1[23]_amd64.deb
  [ $# -gt 0 ] || { echo "deb-test: no amd64 packages in out/dist (make dist)" >&2; exit 2; }
fi
git_in() { git -C "$root" "$@"; }
VERSION=${VERSION:-$(git_in describe --tags --always --dirty)}
COMMITS=${COMMITS:-$(git_in rev-list --count HEAD)}
upstream=$("$root/scripts/package-deb.sh" version "$VERSION" "$COMMITS")

failed=0
for deb in "$@"; do
  deb=$(realpath "$deb")
  name=$(basename "$deb")
  case $name in
  *+deb12_amd64.deb) release=bookworm nn=12 ;;
  *+deb13_amd64.deb) release=trixie nn=13 ;;
  *_arm64.deb) echo "deb-test: $name: skipped (arm64: install-tested by scripts/dist.sh under qemu)"; continue ;;
  *) echo "deb-test: $name: not a siglipd_VERSION+deb12|13_amd64.deb" >&2; failed=1; continue ;;
  esac
  got=$(dpkg-deb -f "$deb" Version)
  if [ "$got" != "$upstream+deb$nn" ]; then
    echo "deb-test: $name is version $got, this checkout ($VERSION) makes $upstream+deb$nn: build the packages again, or set VERSION and COMMITS" >&2
    failed=1
    continue
  fi
  echo "deb-test: $name ($(du -k "$deb" | cut -f1) KiB) in a clean $release"
  start=$(date +%s)
  if "$root/scripts/rootfs.sh" run "$release" --bind "$root/scripts:/deb-test/scripts" --bind "$(dirname "$deb"):/deb-test/debs" -- \
    "/deb-test/scripts/deb-test.sh --inside $release '$VERSION' /deb-test/debs/$name"; then
    echo "deb-test: $name: ok ($(($(date +%s) - start)) s)"
  else
    echo "deb-test: $name: FAILED" >&2
    failed=1
  fi
done
exit $failed
