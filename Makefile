# siglipd — the two commands the README promises:
#   make demo   runs the daemon on the built-in demo (model, video, broker)
#   make test   runs every test
# Both run scripts/setup.sh first, which installs what is missing and is
# quick when nothing is.

SHELL := /bin/bash
GO ?= go
BIN := bin/siglipd

.PHONY: all setup build test ci vet demo bench clean

all: build

setup:
	scripts/setup.sh

build:
	$(GO) build -o $(BIN) ./daemon/cmd/siglipd

test: setup
	scripts/test.sh

# CI as on a freshly set-up machine: a clean clone of HEAD, in a throwaway
# overlay of / with everything installed since the machine was new removed.
ci:
	scripts/fresh-ci.sh

vet:
	test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...

demo: setup build
	scripts/demo.sh

# Vision-tower throughput on the base preset (SigLIP base dimensions).
bench: setup
	scripts/bench.sh

clean:
	rm -rf bin
