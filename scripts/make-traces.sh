#!/usr/bin/env bash
# Reproduces the committed traces of testdata/traces/ from the real vtest.avi
# (Debian's opencv-doc): two "cameras", its left and right halves, each
# profiled through the 8 models of configs/demo.yaml and NanoDet (the
# committed ones got NanoDet afterwards with `mlink profile --extend`: see
# testdata/traces/README.md; a regeneration profiles all of them at once).
#
# These traces are the bench's evidence and its numbers are pinned: do not
# run this casually. A regeneration changes every pinned number (the models'
# costs are measured again, on whatever else the machine is doing), so it is
# a deliberate change, committed with the README updates it causes. CI never
# runs it. See testdata/traces/README.md.
#
#   scripts/make-traces.sh            # clips (if absent) and both traces
#   scripts/make-traces.sh clips      # the clips only (overwrites them)
#   scripts/make-traces.sh left       # one trace (its clip must exist)
#   scripts/make-traces.sh zoo        # the model-zoo trace of the full video
#
# Profiling runs every model on every frame: 10-20 minutes per trace on a
# 2-core machine, one trace at a time (the models saturate the cores, and a
# concurrent load inflates the costs the trace records). Run it on an idle
# machine.
set -euo pipefail

cd "$(dirname "$0")/.."
VTEST=/usr/share/doc/opencv-doc/examples/data/vtest.avi
DIR=testdata/traces
SIDES=(left right)

# x offset of each half's 384x576 crop of the 768x576 frame.
declare -A X=([left]=0 [right]=384)

clip() {
	local side=$1 out="$DIR/vtest-$1.mp4"
	# Frame-accurate: every decoded frame is encoded once (passthrough, no
	# frame dropped or duplicated), so frame i of the clip is frame i of
	# vtest.avi; 10 fps on a 1/10 s time base. H.264 at CRF 20 (veryslow):
	# 45-47 dB PSNR against the crop of the decoded original, 3-4 MB.
	ffmpeg -v error -y -i "$VTEST" -vf "crop=384:576:${X[$side]}:0" \
		-fps_mode passthrough -c:v libx264 -preset veryslow -crf 20 -pix_fmt yuv420p \
		-video_track_timescale 10 -an "$out"
	local frames fps
	frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$out")
	fps=$(ffprobe -v error -select_streams v:0 -show_entries stream=r_frame_rate -of csv=p=0 "$out")
	if [[ $frames != 795 || $fps != 10/1 ]]; then
		echo "make-traces: $out has $frames frames at $fps fps, want 795 at 10/1" >&2
		exit 1
	fi
	echo "$out: $(stat -c %s "$out") bytes, $frames frames at $fps fps"
}

trace() {
	local side=$1
	[[ -f $DIR/vtest-$side.mp4 ]] || clip "$side"
	bin/mlink validate -c "$DIR/vtest-$side.yaml"
	local start=$SECONDS
	bin/mlink profile -c "$DIR/vtest-$side.yaml" --out "$DIR/vtest-$side.trace.gz"
	echo "$DIR/vtest-$side.trace.gz: $(stat -c %s "$DIR/vtest-$side.trace.gz") bytes, profiled in $((SECONDS - start)) s"
}

[[ -f $VTEST ]] || { echo "make-traces: $VTEST missing: run make deps (opencv-doc)" >&2; exit 1; }
make build
# The model zoo: the full vtest.avi through the 8 models and their 4 cheap
# variants (testdata/traces/vtest-zoo.yaml). About 35 minutes on 2 cores.
zoo() {
	bin/mlink validate -c "$DIR/vtest-zoo.yaml"
	local start=$SECONDS
	bin/mlink profile -c "$DIR/vtest-zoo.yaml" --out "$DIR/vtest-zoo.trace.gz"
	echo "$DIR/vtest-zoo.trace.gz: $(stat -c %s "$DIR/vtest-zoo.trace.gz") bytes, profiled in $((SECONDS - start)) s"
}

case "${1:-all}" in
all)
	for s in "${SIDES[@]}"; do [[ -f $DIR/vtest-$s.mp4 ]] || clip "$s"; done
	for s in "${SIDES[@]}"; do trace "$s"; done
	zoo
	;;
zoo) zoo ;;
clips) for s in "${SIDES[@]}"; do clip "$s"; done ;;
left | right) trace "$1" ;;
*)
	echo "usage: $0 [all|clips|left|right|zoo]" >&2
	exit 2
	;;
esac
