# mlink image: Debian 12 with OpenCV 4.6, the ONNX Runtime library and the
# bundled models. `docker compose up` runs NATS and the mlink roles apart.
FROM golang:1.26-bookworm AS build
WORKDIR /src
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN ./scripts/deps.sh && CGO_CFLAGS=-Wno-deprecated-declarations go build -o /out/mlink ./cmd/mlink

FROM debian:12-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libopencv-dev opencv-data opencv-doc ffmpeg ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /mlink
COPY --from=build /out/mlink /usr/local/bin/mlink
COPY --from=build /src/.deps ./.deps
COPY configs ./configs
ENV ONNXRUNTIME_LIB=/mlink/.deps/onnxruntime/libonnxruntime.so.1
ENTRYPOINT ["mlink"]
