#!/usr/bin/env bash
# setup-go.sh installs the Go toolchain go.mod asks for when the machine has
# none or an older one: a fresh Debian 13 system, a container build stage, a
# Raspberry Pi. Debian's own golang packages are too old (bookworm 1.19,
# trixie 1.24), so the toolchain comes from the Go module proxy, which serves
# every release as the module golang.org/toolchain (what `go` itself
# downloads when GOTOOLCHAIN asks for a newer one). It is checked against the
# checksum database's hash for that module.
#
# Needs curl and python3 (scripts/setup.sh installs both first).
#
#   scripts/setup-go.sh               # into /usr/local/go (root) or .deps/go
#   GO_INSTALL_DIR=DIR scripts/...    # elsewhere
#
# Prints nothing when a new enough go is on PATH.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
want=$(awk '$1 == "go" {print $2; exit}' "$root/go.mod")

# at_least A B: whether version A >= B (1.26.8 style).
at_least() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$2" ]; }

if command -v go >/dev/null; then
  have=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
  if [ -n "$have" ] && at_least "$have" "$want"; then
    exit 0
  fi
fi

case $(uname -m) in
x86_64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) echo "setup-go: no Go toolchain for $(uname -m); install Go $want by hand" >&2; exit 2 ;;
esac
if [ -n "${GO_INSTALL_DIR:-}" ]; then
  dest=$GO_INSTALL_DIR
elif [ "$(id -u)" -eq 0 ]; then
  dest=/usr/local/go
else
  dest=$root/.deps/go
fi
proxy=${GOPROXY:-https://proxy.golang.org}
proxy=${proxy%%[,|]*}
[ "$proxy" != direct ] && [ "$proxy" != off ] || proxy=https://proxy.golang.org
mod=golang.org/toolchain
ver=v0.0.1-go$want.linux-$arch

echo "setup-go: installing Go $want ($arch) from $proxy into $dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 3 -o "$tmp/go.zip" "$proxy/$mod/@v/$ver.zip"
# The checksum database's h1: hash of the module (a hash of the zip's file
# list), asked through the proxy (which serves the database where
# sum.golang.org itself is not reachable); without go, Python computes ours.
sumdb=$(curl -fsSL --retry 3 "$proxy/sumdb/sum.golang.org/lookup/$mod@$ver" | awk -v m="$mod" -v v="$ver" '$1 == m && $2 == v {print $3}')
got=$(python3 - "$tmp/go.zip" <<'EOF'
import base64, hashlib, sys, zipfile
# dirhash.Hash1: sha256 over "sha256(file)  name\n" lines, names sorted.
z = zipfile.ZipFile(sys.argv[1])
names = sorted(n for n in z.namelist() if not n.endswith("/"))
lines = [f"{hashlib.sha256(z.read(n)).hexdigest()}  {n}\n" for n in names]
print("h1:" + base64.b64encode(hashlib.sha256("".join(lines).encode()).digest()).decode())
EOF
)
if [ -z "$sumdb" ] || [ "$got" != "$sumdb" ]; then
  echo "setup-go: $mod@$ver hash $got does not match the checksum database's ${sumdb:-(none)}" >&2
  exit 1
fi
(cd "$tmp" && python3 -m zipfile -e go.zip x)
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp/x/$mod@$ver" "$dest"
chmod +x "$dest"/bin/* "$dest"/pkg/tool/*/* 2>/dev/null || true
"$dest/bin/go" version
if ! command -v go >/dev/null || [ "$(command -v go)" != "$dest/bin/go" ]; then
  echo "setup-go: put $dest/bin on PATH"
fi
