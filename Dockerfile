# siglipd container image (Debian 12, CPU ONNX Runtime).
#   docker build -t siglipd .
#   docker run --rm -v $PWD/cams.yaml:/etc/siglipd/cams.yaml:ro \
#     -v /srv/models:/models:ro -v siglipd-state:/var/lib/siglipd -p 8080:8080 siglipd
# In the config, set http.listen: 0.0.0.0:8080 to reach the page from outside.

FROM golang:1.26-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopencv-dev npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN scripts/fetch-ort.sh \
 && go build -trimpath -o /out/siglipd ./daemon/cmd/siglipd \
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
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
COPY --from=build /out/siglipd /usr/local/bin/siglipd
# ../lib/ next to the binary is one of the places siglipd looks for ONNX Runtime.
COPY --from=build /out/libonnxruntime.so.1 /usr/local/lib/libonnxruntime.so.1
ENV STATE_DIRECTORY=/var/lib/siglipd
VOLUME /var/lib/siglipd
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/siglipd"]
CMD ["--config", "/etc/siglipd/cams.yaml"]
