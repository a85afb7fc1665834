package opencv

import (
	"fmt"
	"os"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages/vision"
)

// Cascade is a Haar or LBP cascade classifier (backend opencv-cascade).
type Cascade struct {
	det          *cascadeDetector
	file         string
	typ          pipeline.OutputType
	class        string
	scaleFactor  float64
	minNeighbors int
	minSize      int
	upscaleWidth int
	nms          float64
}

// NewCascade loads the cascade XML file (e.g. Debian opencv-data's
// /usr/share/opencv4/haarcascades/haarcascade_fullbody.xml) with the spec's
// params (see the package documentation).
func NewCascade(spec *pipeline.ModelSpec, file string) (*Cascade, error) {
	typ, err := detectorType(pipeline.BackendCascade, spec.Output)
	if err != nil {
		return nil, err
	}
	p := newParams(pipeline.BackendCascade, spec)
	c := &Cascade{
		file:         file,
		typ:          typ,
		class:        spec.Name,
		scaleFactor:  p.float("scale_factor", 1.1, 1.001, 4),
		minNeighbors: p.int("min_neighbors", 3, 0, 1000),
		minSize:      p.int("min_size", 0, 0, maxWidth),
		upscaleWidth: p.int("upscale_width", 0, 0, maxWidth),
		nms:          spec.NMS,
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	if len(spec.Classes) > 0 {
		c.class = spec.Classes[0]
	}
	// Stat first: OpenCV reports a missing file no differently from a bad one.
	if fi, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("load cascade %q: %w", file, err)
	} else if fi.IsDir() {
		return nil, fmt.Errorf("load cascade %q: is a directory", file)
	}
	c.det, err = newCascadeDetector(file)
	if err != nil {
		return nil, fmt.Errorf("load cascade %q: not a valid cascade file: %w", file, err)
	}
	return c, nil
}

// Infer detects objects in img.
func (c *Cascade) Infer(_ string, img gocv.Mat) (pipeline.Output, error) {
	if c.det == nil || c.det.p == nil {
		return pipeline.Output{}, fmt.Errorf("cascade %q: detector is closed", c.file)
	}
	if err := checkImage(img); err != nil {
		return pipeline.Output{}, fmt.Errorf("cascade %q: %w", c.file, err)
	}
	src := img
	resized := gocv.NewMat()
	defer resized.Close()
	if resizeToWidth(img, &resized, c.upscaleWidth) {
		src = resized
	}
	// Cascades are trained on equalised gray images.
	gray := gocv.NewMat()
	defer gray.Close()
	gocv.CvtColor(src, &gray, gocv.ColorBGRToGray)
	gocv.EqualizeHist(gray, &gray)
	dets, err := c.det.detect(gray, c.scaleFactor, c.minNeighbors, c.minSize)
	if err != nil {
		return pipeline.Output{}, fmt.Errorf("cascade %q: detect: %w", c.file, err)
	}
	boxes := toBoxes(dets, gray.Cols(), gray.Rows(), c.class)
	// min_neighbors grouping already merges duplicates; NMS is an opt-in
	// extra for cascades that fire at nested scales.
	if c.nms > 0 {
		boxes = vision.NMS(boxes, c.nms)
	}
	return detectorOutput(c.typ, boxes), nil
}

// Close frees the classifier; it is safe to call more than once.
func (c *Cascade) Close() error {
	if c.det != nil {
		c.det.close()
	}
	return nil
}
