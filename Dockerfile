# siglipd container image: Debian 12, CPU ONNX Runtime, running as a
# non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t siglipd .
#   docker compose -f configs/compose.yaml up      # with mosquitto beside it
#
# Volumes: /etc/siglipd holds the config (mount it read-only); /var/lib/siglipd
# the state (MQTT outbox, event journal); /var/cache/siglipd the Hugging Face
# model cache (model.id downloads land there). In the config, http.listen must
# be 0.0.0.0:8080 to reach the page through a published port. USB cameras:
# --device /dev/video0 --group-add video.
#
# Size: 466 MB, 88 MB of it the base (2026-12-02, docs/measurements.md
# "docker: the image"; 796 MB with the Debian packages installed instead).
# The runtime stage carries the shared libraries siglipd loads (the ldd
# closure of the binary and of ONNX Runtime), copied from the build stage,
# not their Debian packages: those also pull what is only dlopen'ed or never
# used here: mesa's GL drivers with LLVM (libGL loads them for a window),
# Qt's X11 platform plugin and its input libraries, PROJ's and GDAL's data.
# scripts/docker-test.sh (make docker-test) builds this image and checks it.

# The build stage starts from plain Debian, not a golang image: Go comes from
# scripts/setup-go.sh (the Go module proxy), as on a fresh machine.
FROM debian:bookworm AS build
# What the runtime stage's base (debian:bookworm-slim: the same packages,
# without documentation) already holds: these packages' libraries are not
# copied into it.
RUN dpkg-query -W -f '${Package}\n' > /base-packages.txt \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config ca-certificates curl python3 libopencv-dev npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
COPY scripts/setup-go.sh scripts/fetch-ort.sh scripts/
ENV PATH=/usr/local/go/bin:$PATH
# ONNX Runtime is fetched here, from the npm registry, never copied from the
# host (.dockerignore keeps .deps/ out). These steps come before the source
# so that a change of the source reuses them.
RUN scripts/setup-go.sh \
 && go mod download \
 && scripts/fetch-ort.sh
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-X github.com/siglipd/siglipd/daemon.Version=${VERSION}" -o /out/siglipd ./daemon/cmd/siglipd \
 && cp .deps/onnxruntime/lib/libonnxruntime.so.1 /out/
# The libraries the runtime stage needs: every library ldd resolves for the
# binary and ONNX Runtime, under the name the loader asks for, unless its
# package is in the base. Each package's copyright file goes with its
# libraries, and runtime-libraries.txt names package, version and file (no
# dpkg database in the runtime stage knows them). With Debian 12's merged
# /usr, dpkg knows a library by /usr/lib/... or by /lib/..., whichever its
# package shipped, so ask for both.
RUN mkdir -p /out/lib /out/doc/siglipd \
 && for lib in $(ldd /out/siglipd /out/libonnxruntime.so.1 | awk '/=> \// {print $3}' | sort -u); do \
      real=$(realpath "$lib"); \
      pkg=$( (dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null) | head -1 | cut -d: -f1); \
      if [ -z "$pkg" ]; then echo "no Debian package holds $real" >&2; exit 1; fi; \
      if grep -qx "$pkg" /base-packages.txt; then continue; fi; \
      cp -L "$lib" /out/lib/; \
      mkdir -p "/out/doc/$pkg"; \
      cp -L "/usr/share/doc/$pkg/copyright" "/out/doc/$pkg/copyright"; \
      echo "$pkg $(dpkg-query -W -f '${Version}' "$pkg") $(basename "$lib")" >> /tmp/libs.txt; \
    done \
 && sort /tmp/libs.txt > /out/doc/siglipd/runtime-libraries.txt \
 && echo "copied $(wc -l < /out/doc/siglipd/runtime-libraries.txt) libraries, $(du -sh /out/lib | cut -f1)"

FROM debian:bookworm-slim
# apt-get clean: Docker Hub's Debian images drop apt's caches by a hook,
# a base imported from debootstrap keeps them (77 MB) without it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/siglipd --shell /usr/sbin/nologin siglipd \
 && mkdir -p /etc/siglipd /var/lib/siglipd /var/cache/siglipd \
 && chown siglipd:siglipd /var/lib/siglipd /var/cache/siglipd
COPY --from=build /out/lib/ /usr/local/lib/siglipd/
COPY --from=build /out/doc/ /usr/share/doc/
COPY --from=build /out/siglipd /usr/local/bin/siglipd
# ../lib/ next to the binary is one of the places siglipd looks for ONNX Runtime.
COPY --from=build /out/libonnxruntime.so.1 /usr/local/lib/libonnxruntime.so.1
# A library left out fails the build here, not the first start.
RUN echo /usr/local/lib/siglipd > /etc/ld.so.conf.d/siglipd.conf \
 && ldconfig \
 && if ldd /usr/local/bin/siglipd /usr/local/lib/libonnxruntime.so.1 | grep 'not found'; then \
      echo "the libraries above are missing from the image" >&2; exit 1; \
    fi \
 && /usr/local/bin/siglipd --version
COPY configs/cams.yaml /etc/siglipd/cams.yaml
ENV STATE_DIRECTORY=/var/lib/siglipd \
    HF_HOME=/var/cache/siglipd/huggingface \
    SIGLIPD_LISTEN=0.0.0.0:8080
VOLUME ["/var/lib/siglipd", "/var/cache/siglipd"]
USER siglipd
EXPOSE 8080
# The first start may download the model before the HTTP server is up.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m \
  CMD ["/usr/local/bin/siglipd", "healthcheck", "--config", "/etc/siglipd/cams.yaml"]
ENTRYPOINT ["/usr/local/bin/siglipd"]
CMD ["--config", "/etc/siglipd/cams.yaml"]
