#!/usr/bin/env bash
# fresh-ci.sh (make ci) runs CI — `CI=true .ci/run` on a clean clone of HEAD —
# as on a freshly set-up machine of this kind, without needing one.
#
# CI runs on the machine that submits, so a package someone installed by hand
# would hide a missing install step. This script runs CI in a throwaway copy of
# this machine's root filesystem (an overlay: nothing it does reaches the real
# one) from which everything installed after the machine was new is removed
# first:
#   - Debian packages not in .ci/fresh-packages.txt are purged (with
#     policy-rc.d forbidding service starts and stops);
#   - pip packages of the machine's python3 not in .ci/fresh-pip.txt are
#     uninstalled;
#   - the Go module and build caches, npm's cache and pip's cache are emptied.
# Both lists were read off a fresh machine of this kind; a machine of another
# kind needs its own. The run has its own PID namespace (servers a test leaves
# behind die with it) but shares the network, so apt, npm, pip and the Go proxy
# answer as they do for CI.
#
#   scripts/fresh-ci.sh            # clean clone of HEAD; log in out/fresh-ci/
#   FRESH_CI_KEEP=1 scripts/...    # keep the overlay (for a look afterwards)
#
# Needs root, unshare (util-linux) and overlayfs. Uncommitted changes are not
# tested: CI tests commits.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ "$(id -u)" -ne 0 ]; then
  echo "fresh-ci: needs root (it mounts an overlay of / in its own mount namespace)" >&2
  exit 2
fi
grep -qw overlay /proc/filesystems || { echo "fresh-ci: the kernel has no overlayfs" >&2; exit 2; }

base=$(mktemp -d /var/tmp/siglipd-fresh-ci.XXXXXX) # on disk: the installs take GBs
mkdir -p "$base"/{upper,work,merged} out/fresh-ci
log="$root/out/fresh-ci/$(date +%Y%m%dT%H%M%S).log"
cleanup() {
  if [ "${FRESH_CI_KEEP:-}" = 1 ]; then
    echo "fresh-ci: overlay kept in $base/upper"
  else
    rm -rf "$base"
  fi
}
trap cleanup EXIT

# The clone sits beside this checkout, as this one does, so tests that read
# ../shared/reference find it when it exists here.
clone="$(dirname "$root")/siglipd-fresh-ci"
commit=$(git rev-parse HEAD)

# Runs as root inside the new root. Arguments: repo, clone, commit.
inside=$(
  cat <<'INSIDE'
set -euo pipefail
repo=$1 clone=$2 commit=$3
unset "${!SIGLIPD_@}" # a developer's settings are not CI's
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d

extra=$(comm -13 <(grep -v '^#' "$repo/.ci/fresh-packages.txt" | sort -u) \
                 <(dpkg-query -W -f='${Package}\n' | sort -u))
if [ -n "$extra" ]; then
  echo "fresh-ci: purging $(wc -w <<<"$extra") Debian packages installed since the machine was new"
  apt-get purge -y -qq $extra >/dev/null
fi
pipextra=$(comm -13 <(grep -v '^#' "$repo/.ci/fresh-pip.txt" | sed 's/[=@ ].*//' | tr A-Z a-z | sort -u) \
                    <(python3 -m pip freeze 2>/dev/null | sed 's/[=@ ].*//' | tr A-Z a-z | sort -u))
if [ -n "$pipextra" ]; then
  echo "fresh-ci: uninstalling pip packages: $pipextra"
  python3 -m pip uninstall -y -q $pipextra
fi
rm -rf /root/go/pkg/mod /root/.cache/go-build /root/.npm/_cacache /root/.cache/pip
rm -f /usr/sbin/policy-rc.d

rm -rf "$clone"
git clone -q --no-local "$repo" "$clone" # hard links across the overlay fail
cd "$clone"
git checkout -q "$commit"
echo "fresh-ci: CI=true .ci/run in $clone at $(git log --oneline -1)"
start=$(date +%s)
set +e
CI=true .ci/run
rc=$?
echo "fresh-ci: .ci/run exited $rc after $(( $(date +%s) - start )) s"
exit $rc
INSIDE
)

echo "fresh-ci: log in $log"
set +e
unshare --mount --pid --fork --propagation private bash -euo pipefail -c '
  base=$1; shift
  mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/merged"
  mount -t proc proc "$base/merged/proc"
  mount --rbind /sys "$base/merged/sys"
  mount --rbind /dev "$base/merged/dev"
  exec chroot "$base/merged" bash -c "$@"
' fresh-ci "$base" "$inside" inside "$root" "$clone" "$commit" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
exit "$rc"
