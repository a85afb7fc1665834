// Package onnx runs ONNX models with ONNX Runtime as mlink model backends
// (vision.Backend): it pre-processes a BGR frame into the model's input
// tensor, runs the session and decodes the raw output tensors into a
// pipeline.Output with one of the decoders below.
//
// Call Init once per process (it is idempotent) before New. Each Model owns
// one ONNX Runtime session and the tensors bound to it; Infer must not be
// called concurrently on one Model (the worker runs one goroutine per
// instance).
//
// # Common settings
//
// Every box is normalised to [0,1] of the original frame, whatever size the
// model ran at. Value is [number of boxes] for boxes and lines outputs.
// Output.Type is spec.Output when set, else the decoder's natural type.
//
//   - provider: "cpu" (default) or "cuda". Where the CUDA execution provider
//     is unavailable the model logs one warning and runs on the CPU.
//   - params.threads: ONNX Runtime intra-op threads (default 1). mlink runs
//     many models side by side on few cores, so one thread each avoids
//     oversubscription; raise it for a model that runs alone.
//
// Generic decoders pre-process as spec.Input says: input.width/height (0:
// the model's static input size), layout nchw/nhwc (a static model shape
// that says otherwise wins, with a warning), color rgb/bgr, pixel value
// (p*scale - mean[c]) / std[c] with mean/std in the tensor's channel order,
// resize stretch or letterbox (aspect kept, centred, padded with grey 114).
// A 1-channel input gets grey pixels, a 4-channel input RGB plus a constant
// alpha of 1. The three bundled models have fixed pre-processing (below):
// for them only input.width/height and input.resize are read.
//
// # Decoders
//
// blazeface — MediaPipe BlazeFace front (128×128, NHWC RGB scaled to
// [-1,1]). Outputs: scores [1,512,1] and [1,384,1] (logits), regressors
// [1,512,16] and [1,384,16]. The 896 anchors are the SSD anchors of strides
// 8 (16×16 cells, 2 anchors each) and 16 (8×8 cells, 6 anchors each), fixed
// size 1; the box centre is anchor + (dx,dy)/128, its size (w,h)/128.
// threshold: sigmoid score (default 0.5); nms: IoU of the weighted
// (MediaPipe "blending") suppression (default 0.3). Output boxes, class
// "face".
//
// ppocr-det — PP-OCRv4 DB text detection (NCHW, BGR as PaddleOCR's
// inference feeds it, ImageNet mean/std). The frame is resized keeping its
// aspect ratio so that its longer side is at most params.max_side (default
// 640), each side rounded to a multiple of 32 (input.width/height, when
// set, fix the size instead). The probability map [1,1,H,W] is binarised at
// params.bin_threshold (default 0.3); each 8-connected component whose mean
// probability is at least threshold (default 0.6) and whose shorter side is
// at least params.min_size pixels (default 3) becomes a box, expanded on
// every side by area*unclip/perimeter (params.unclip, default 1.5) as DB's
// unclipping does. Output boxes, class "text".
//
// mlsd — M-LSD tiny line segment detector (320×320, NHWC, 4 channels: RGB
// in 0..255 plus a constant 1, the layout keijiro's Barracuda port feeds).
// Outputs: scores [1,160,160,1] (centre map) and offsets [1,160,160,4]
// (start dx,dy, end dx,dy in map cells). Centres are the local maxima of a
// 3×3 window whose score is at least threshold (default 0.1); a segment is
// kept when its length at the model's input scale is at least
// params.min_length pixels (default 20). At most 500 segments, best first.
// Output lines: Boxes hold the segments (X1,Y1)-(X2,Y2).
//
// classifier — one output of C values ([1,C] or any shape with C elements),
// C must equal len(classes). Values that are not already a probability
// distribution (all in [0,1], summing to 1) go through a softmax. Value
// holds the probabilities in classes order, Label the argmax.
//
// yolo — one output [1,N,5+C] or [1,5+C,N] (cx,cy,w,h in input pixels,
// objectness, C class scores); [1,N,4+C] / [1,4+C,N] without objectness
// (YOLOv8 style) is recognised when classes are declared. Score =
// objectness × best class score among the kept classes (keep; empty: all).
// threshold default 0.25, nms (per class) default 0.45.
//
// ssd — two outputs: boxes [1,N,4] normalised to the input and scores
// [1,N,C] (probabilities). params.box_order_yxyx: 1 when boxes are
// (y1,x1,y2,x2), 0 (default) for (x1,y1,x2,y2). When C is len(classes)+1
// the first column is taken as background and skipped. threshold default
// 0.5, nms (per class) default 0.45, keep as for yolo.
//
// count — one output holding a single regression value; Value is [v],
// negative values clamped to 0.
//
// nanodet — NanoDet's Generalized Focal Loss head (RangiLyu/nanodet): per
// feature level (stride 8, 16, 32; grid ⌈W/s⌉×⌈H/s⌉ row-major) class
// scores [1,N,C] (sigmoid already applied) and box distances [1,N,4·bins]:
// for left, top, right, bottom a softmax over bins 0…R whose expectation
// times the stride is the distance from the location's centre
// ((column+0.5)·s, (row+0.5)·s) to that side, in input pixels. classes
// default to COCO's 80 when none are declared; keep, threshold (default
// 0.35) and nms (per class, default 0.6) as for yolo. The pre-processing is
// the generic one (input.color/scale/mean/std): the zoo's NanoDet-m, converted
// from TensorFlow.js by cmd/tfjs2onnx, takes BGR with ImageNet's mean/std in
// 0..255, as it was trained.
package onnx
