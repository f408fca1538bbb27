# siglipd — the two commands the README promises:
#   make demo   runs the daemon on the built-in demo (model, video, broker)
#   make test   runs every test
# Both run scripts/setup.sh first, which installs what is missing and is
# quick when nothing is.

SHELL := /bin/bash
GO ?= go
BIN := bin/siglipd

.PHONY: all setup build install test ci test-trixie demo-trixie vet demo bench bench-remote bench-cameras dist dist-test deb-test docker-test clean

all: build

setup:
	scripts/setup.sh

# The version: the nearest tag and the commit (git describe), "-dirty" with
# uncommitted changes; shown by --version, in Home Assistant's device info
# and in siglipd_build_info.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/siglipd/siglipd/daemon.Version=$(VERSION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./daemon/cmd/siglipd

# Install for systemd (see configs/siglipd.service): the binary, ONNX
# Runtime beside it (../lib), the unit, and the example config unless one is
# there. DESTDIR stages the tree elsewhere (packaging).
PREFIX ?= /usr/local
install: setup build
	install -D -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/siglipd
	install -D -m 644 .deps/onnxruntime/lib/libonnxruntime.so.1 $(DESTDIR)$(PREFIX)/lib/libonnxruntime.so.1
	sed 's#/usr/local/bin/siglipd#$(PREFIX)/bin/siglipd#' configs/siglipd.service > siglipd.service.tmp
	install -D -m 644 siglipd.service.tmp $(DESTDIR)/etc/systemd/system/siglipd.service && rm siglipd.service.tmp
	test -e $(DESTDIR)/etc/siglipd/cams.yaml || install -D -m 644 configs/cams.yaml $(DESTDIR)/etc/siglipd/cams.yaml

test: setup
	scripts/test.sh

# CI as on a freshly set-up machine: a clean clone of HEAD, in a throwaway
# overlay of / with everything installed since the machine was new removed.
ci:
	scripts/fresh-ci.sh

# The same two commands on Debian 13 (trixie), in a fresh system made from
# Debian's archive on this machine (root): make test as CI runs it on a clean
# clone of HEAD, and make demo, which passes when siglipd exits cleanly after
# publishing events. Logs in out/test-trixie/; TRIXIE_KEEP=1 keeps the system.
test-trixie:
	scripts/test-trixie.sh test

demo-trixie:
	scripts/test-trixie.sh demo

vet:
	test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...

demo: setup build
	scripts/demo.sh

# Vision-tower throughput on the base preset (SigLIP base dimensions).
bench: setup
	scripts/bench.sh

# The remote backend on loopback: local against MLServer at batch 1/4/8,
# one and two daemons on one server.
bench-remote: setup
	scripts/bench.sh remote

# The many-camera table alone (issue 28, also at the end of make bench):
# twenty 1080p RTSP cameras at fps 1, about 20 minutes.
bench-cameras: setup
	scripts/bench.sh cameras

# Release builds of HEAD for Debian 12 and 13, amd64 and arm64, in
# out/dist (binary, ONNX Runtime, a tarball per target); DIST=trixie-arm64
# (or a list) builds a subset. As root: they build in overlays of clean
# Debian systems (scripts/rootfs.sh). The .deb packaging runs inside
# scripts/dist.sh, at its packaging hook.
DIST ?=
dist:
	scripts/dist.sh $(DIST)

# Runs what make dist built: --version, --check and classify on each
# target's own release, arm64 under qemu, probabilities against this
# machine's build.
dist-test:
	scripts/dist-test.sh $(DIST)

# The container image: builds it from the Dockerfile with a dockerd of its
# own and checks --version, the non-root user, the HEALTHCHECK, compose.yaml
# beside mosquitto (events from a video file and an RTSP camera) and prints
# the image's size (scripts/docker-test.sh; needs root).
docker-test:
	scripts/docker-test.sh

# The .deb packages in out/dist, each installed into a clean Debian 12 or 13
# (throwaway overlays, root needed): the checks are listed in the script.
deb-test:
	scripts/deb-test.sh

clean:
	rm -rf bin
