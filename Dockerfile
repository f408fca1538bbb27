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

FROM golang:1.26-bookworm AS build
ARG VERSION=dev
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopencv-dev npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# ONNX Runtime is fetched here, from the npm registry, never copied from the
# host (.dockerignore keeps .deps/ out).
RUN scripts/fetch-ort.sh \
 && go build -trimpath -ldflags "-X github.com/siglipd/siglipd/daemon.Version=${VERSION}" -o /out/siglipd ./daemon/cmd/siglipd \
 && cp .deps/onnxruntime/lib/libonnxruntime.so.1 /out/ \
 # The Debian packages that hold the shared libraries siglipd links against:
 # the runtime stage installs exactly these, not the whole -dev tree. With
 # Debian 12's merged /usr, dpkg knows a library by /usr/lib/... or by
 # /lib/..., whichever its package shipped, so ask for both.
 && for lib in $(ldd /out/siglipd | awk '/=> \// {print $3}'); do \
      p=$(realpath "$lib"); dpkg -S "$p" 2>/dev/null || dpkg -S "${p#/usr}" 2>/dev/null || true; \
    done | cut -d: -f1 | sort -u > /out/runtime-packages.txt

FROM debian:bookworm-slim
COPY --from=build /out/runtime-packages.txt /tmp/
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates $(cat /tmp/runtime-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/siglipd --shell /usr/sbin/nologin siglipd \
 && mkdir -p /etc/siglipd /var/lib/siglipd /var/cache/siglipd \
 && chown siglipd:siglipd /var/lib/siglipd /var/cache/siglipd
COPY --from=build /out/siglipd /usr/local/bin/siglipd
# ../lib/ next to the binary is one of the places siglipd looks for ONNX Runtime.
COPY --from=build /out/libonnxruntime.so.1 /usr/local/lib/libonnxruntime.so.1
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
