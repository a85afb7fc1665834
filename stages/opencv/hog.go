package opencv

import (
	"fmt"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages/vision"
)

// HOG is OpenCV's HOG + linear SVM people detector (backend opencv-hog).
type HOG struct {
	det          *hogDetector
	typ          pipeline.OutputType
	upscaleWidth int
	hitThreshold float64
	winStride    int
	scale        float64
	nms          float64
	threshold    float64
}

// hogGroupThreshold is OpenCV's default: a detection needs more than this
// many overlapping raw windows to survive grouping.
const hogGroupThreshold = 2

// The people detector's window.
const hogWinWidth, hogWinHeight = 64, 128

// NewHOG loads the people detector with the spec's params (see the package
// documentation).
func NewHOG(spec *pipeline.ModelSpec) (*HOG, error) {
	typ, err := detectorType(pipeline.BackendHOG, spec.Output)
	if err != nil {
		return nil, err
	}
	p := newParams(pipeline.BackendHOG, spec)
	h := &HOG{
		typ:          typ,
		upscaleWidth: p.int("upscale_width", 1280, 0, maxWidth),
		hitThreshold: p.float("hit_threshold", 0, -10, 10),
		winStride:    p.int("win_stride", 8, 1, 64),
		scale:        p.float("scale", 1.05, 1.001, 4),
		nms:          spec.NMS,
		threshold:    spec.Threshold,
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	if h.nms == 0 {
		h.nms = 0.45
	}
	h.det, err = newHOGDetector(DefaultPeopleDetector())
	if err != nil {
		return nil, fmt.Errorf("%s: create people detector: %w", pipeline.BackendHOG, err)
	}
	return h, nil
}

// Infer detects people in img.
func (h *HOG) Infer(_ string, img gocv.Mat) (pipeline.Output, error) {
	if h.det == nil || h.det.p == nil {
		return pipeline.Output{}, fmt.Errorf("%s: detector is closed", pipeline.BackendHOG)
	}
	if err := checkImage(img); err != nil {
		return pipeline.Output{}, fmt.Errorf("%s: %w", pipeline.BackendHOG, err)
	}
	// People far from the camera are smaller than the 64×128 window: upscale
	// so that the detector sees them.
	src := img
	resized := gocv.NewMat()
	defer resized.Close()
	if resizeToWidth(img, &resized, h.upscaleWidth) {
		src = resized
	}
	// OpenCV's HOG runs one pyramid level even on an image smaller than its
	// window, and crashes (SIGSEGV) there: nothing can be found anyway.
	if src.Cols() < hogWinWidth || src.Rows() < hogWinHeight {
		return detectorOutput(h.typ, nil), nil
	}
	dets, err := h.det.detect(src, h.hitThreshold, h.winStride, h.scale, hogGroupThreshold)
	if err != nil {
		return pipeline.Output{}, fmt.Errorf("%s: detect: %w", pipeline.BackendHOG, err)
	}
	boxes := toBoxes(dets, src.Cols(), src.Rows(), "person")
	if h.threshold > 0 {
		kept := boxes[:0]
		for _, b := range boxes {
			if float64(b.Score) >= h.threshold {
				kept = append(kept, b)
			}
		}
		boxes = kept
	}
	// OpenCV's grouping leaves nested boxes around one person (a tight one
	// and a wider one from another scale); NMS keeps the strongest.
	boxes = vision.NMS(boxes, h.nms)
	return detectorOutput(h.typ, boxes), nil
}

// Close frees the detector; it is safe to call more than once.
func (h *HOG) Close() error {
	if h.det != nil {
		h.det.close()
	}
	return nil
}
