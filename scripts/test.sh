#!/usr/bin/env bash
# test.sh runs every check and test. `make test` calls it after setup.sh, so
# every tool the tests need is installed: SIGLIPD_REQUIRE_ALL=1 turns a test's
# "skip: mosquitto not installed" into a failure, so CI can never pass by
# skipping.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export SIGLIPD_ORT_LIB=${SIGLIPD_ORT_LIB:-$root/.deps/onnxruntime/lib/libonnxruntime.so.1}
export SIGLIPD_REQUIRE_ALL=1

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need formatting:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test"
go test -count=1 -timeout 40m ./...
