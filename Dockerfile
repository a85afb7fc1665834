# mlink image: Debian 12 with OpenCV 4.6, the ONNX Runtime library and the
# bundled models. `docker compose up` runs NATS and the mlink roles apart.
#
# Build arguments:
#   RUNTIME_IMAGE  the final stage's base. A GPU worker needs one with CUDA
#                  and cuDNN (docker-compose.yml's worker-gpu); it must
#                  offer Debian's package names below (Debian 12 or a
#                  recent Ubuntu).
#   VERSION        what `mlink version` prints: the build context has no
#                  .git (.dockerignore), so Go stamps no revision, e.g.
#                  --build-arg VERSION=$(git describe --always --dirty)
ARG RUNTIME_IMAGE=debian:12-slim

FROM golang:1.26-bookworm AS build
ARG VERSION=
WORKDIR /src
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
RUN go mod download
# .dockerignore keeps a local .deps (often a symlink) and build outputs out:
# deps.sh fetches everything afresh here, but the test tools (chromium).
COPY . .
RUN MLINK_DEPS_TEST_TOOLS=0 ./scripts/deps.sh && \
    CGO_CFLAGS=-Wno-deprecated-declarations go build -ldflags "-X main.version=$VERSION" -o /out/mlink ./cmd/mlink

FROM ${RUNTIME_IMAGE}
# opencv-doc is not installed here: debian:12-slim's dpkg excludes
# /usr/share/doc, where its vtest.avi (the demo's camera) lives. It is
# copied from the build stage instead.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libopencv-dev opencv-data ffmpeg ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/share/doc/opencv-doc/examples/data/vtest.avi /usr/share/doc/opencv-doc/examples/data/vtest.avi
WORKDIR /mlink
COPY --from=build /out/mlink /usr/local/bin/mlink
COPY --from=build /src/.deps ./.deps
COPY configs ./configs
ENV ONNXRUNTIME_LIB=/mlink/.deps/onnxruntime/libonnxruntime.so.1
ENTRYPOINT ["mlink"]
