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
# Our Go files: folders starting with . or _ are skipped, as go build ./...
# skips them (.deps holds make dist's copy of the module cache).
unformatted=$(find . \( -name '.?*' -o -name '_*' -o -name node_modules \) -prune -o -name '*.go' -print0 | xargs -0 -r gofmt -l)
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need formatting:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test"
go test -count=1 -timeout 40m ./...
echo "== go test -tags matprofile (capture: count live OpenCV Mats)"
# gocv tracks every open Mat only when built with this tag; the leak tests
# need it and are compiled only with it.
go vet -tags matprofile ./capture/
go test -count=1 -timeout 10m -tags matprofile -run 'NoMatLeak' ./capture/
echo "== go test -race (every package but the command line's process tests)"
# capture and infer have the subtlest concurrency (cgo readers the watchdog
# abandons, the latest-frame hand-off, sessions shared by batches); their
# rate assertions are logged, not asserted, under -race (testenv.Race), and
# asserted in the pass above.
go test -count=1 -timeout 30m -race ./configs ./rules ./publish ./capture ./infer/... ./internal/kit \
  ./daemon ./daemon/httpapi ./daemon/live ./daemon/history ./daemon/calibrate ./daemon/framestore
echo "== go test -fuzz (a fixed number of inputs per target)"
# Each fuzz target runs a fixed number of inputs (about 10 s each on the 2-core
# CI machine) on top of its seed corpus (its f.Add seeds and testdata/fuzz/).
# A count, not a duration: with -fuzztime 10s, Go 1.26's fuzz coordinator can
# fail a target with a bare "context deadline exceeded" when the time runs out
# while a worker is busy (golang/go#75804, fixed in Go 1.27), which failed
# `make test` here once with no crashing input. SIGLIPD_FUZZTIME (e.g. 60s or
# 1000000x) overrides every target's budget. A crash fails the run and writes
# the input to the package's testdata/fuzz/<target>/: commit it with the fix,
# as a regression case.
for target in ./configs:FuzzParse:40000x ./configs:FuzzPrescan:60000x ./configs:FuzzParseCost:25000x \
  ./internal/kit:FuzzRedactURL:100000x ./infer/tokenizer:FuzzEncodePadded:80000x ./infer/tokenizer:FuzzSentencePiece:15000x \
  ./infer/tokenizer:FuzzParse:100000x ./infer/onnxpb:FuzzReadInitializers:15000x ./infer/onnxpb:FuzzReadGraph:15000x \
  ./daemon/cmd/siglipd:FuzzImageHeader:30000x ./infer/oip:FuzzDecodeInferResponse:200000x \
  ./daemon/framestore:FuzzScanSegment:40000x; do
  IFS=: read -r pkg name count <<<"$target"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "${SIGLIPD_FUZZTIME:-$count}" "$pkg"
done
