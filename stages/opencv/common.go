package opencv

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
	"sort"
	"strings"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// maxWidth bounds the width knobs: beyond it a typo would cost seconds per frame.
const maxWidth = 8192

// params reads a spec's Params with defaults and collects every problem, so
// a config error lists them all at once.
type params struct {
	backend string
	values  map[string]float64
	known   []string
	errs    []string
}

func newParams(backend string, spec *pipeline.ModelSpec) *params {
	return &params{backend: backend, values: spec.Params}
}

func (p *params) problem(format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
}

// float returns the param or its default, and checks it is within [min, max].
func (p *params) float(name string, def, min, max float64) float64 {
	p.known = append(p.known, name)
	v, ok := p.values[name]
	if !ok {
		return def
	}
	if math.IsNaN(v) || v < min || v > max {
		p.problem("params.%s: %g is outside %g..%g", name, v, min, max)
		return def
	}
	return v
}

// int is float for integer knobs.
func (p *params) int(name string, def, min, max int) int {
	v := p.float(name, float64(def), float64(min), float64(max))
	if v != math.Trunc(v) {
		p.problem("params.%s: %g is not an integer", name, v)
		return def
	}
	return int(v)
}

// err reports the problems found and any unknown param: a misspelt knob
// would otherwise be silently ignored.
func (p *params) err() error {
	var unknown []string
	for name := range p.values {
		if !slices.Contains(p.known, name) {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		p.problem("params.%s: unknown to %s (known: %s)", name, p.backend, strings.Join(p.known, ", "))
	}
	if len(p.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", p.backend, strings.Join(p.errs, "; "))
}

// checkImage rejects what would make OpenCV assert (and so abort the
// process): a zero or empty Mat, or one that is not 8-bit BGR.
func checkImage(img gocv.Mat) error {
	if img.Ptr() == nil || img.Empty() {
		return errors.New("empty image")
	}
	if img.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("image type %v: want 8-bit BGR (CV_8UC3)", img.Type())
	}
	return nil
}

// resizeToWidth scales img to the given width, keeping its aspect ratio, into
// dst. It returns false, leaving dst alone, when no resize is needed (width
// 0 or already that wide).
func resizeToWidth(img gocv.Mat, dst *gocv.Mat, width int) bool {
	if width <= 0 || width == img.Cols() {
		return false
	}
	height := int(math.Round(float64(img.Rows()) * float64(width) / float64(img.Cols())))
	if height < 1 {
		height = 1
	}
	interp := gocv.InterpolationLinear
	if width < img.Cols() {
		// Area averaging is the alias-free way to shrink.
		interp = gocv.InterpolationArea
	}
	gocv.Resize(img, dst, image.Pt(width, height), 0, 0, interp)
	return true
}

// toBoxes normalises pixel detections in an image of size w×h to [0,1].
// Boxes scale with the image, so this is also relative to the original frame
// when the image was a resized copy of it.
func toBoxes(dets []detection, w, h int, class string) []pipeline.Box {
	boxes := make([]pipeline.Box, 0, len(dets))
	fw, fh := float64(w), float64(h)
	for _, d := range dets {
		b := pipeline.Box{
			X1:    float32(clamp01(float64(d.rect.Min.X) / fw)),
			Y1:    float32(clamp01(float64(d.rect.Min.Y) / fh)),
			X2:    float32(clamp01(float64(d.rect.Max.X) / fw)),
			Y2:    float32(clamp01(float64(d.rect.Max.Y) / fh)),
			Score: float32(finite(d.score)),
			Class: class,
		}
		if b.X2 > b.X1 && b.Y2 > b.Y1 {
			boxes = append(boxes, b)
		}
	}
	return boxes
}

// detectorOutput is the output of a detector backend: boxes, or only their
// count when the model is configured with output: count.
func detectorOutput(typ pipeline.OutputType, boxes []pipeline.Box) pipeline.Output {
	out := pipeline.Output{
		Kind:  typ.Kind(),
		Type:  typ,
		Value: []float64{float64(len(boxes))},
	}
	if typ == pipeline.TypeBoxes {
		out.Boxes = boxes
	}
	return out
}

// detectorType checks that a detector model is configured with an output it
// can produce; unset means boxes.
func detectorType(backend string, t pipeline.OutputType) (pipeline.OutputType, error) {
	switch t {
	case "":
		return pipeline.TypeBoxes, nil
	case pipeline.TypeBoxes, pipeline.TypeCount:
		return t, nil
	}
	return "", fmt.Errorf("%s: output %q: a detector produces boxes or count", backend, t)
}

func clamp01(v float64) float64 {
	switch {
	case !(v >= 0): // also NaN
		return 0
	case v > 1:
		return 1
	}
	return v
}

// finite maps NaN and ±Inf to 0 so that no output carries them (JSON cannot).
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
