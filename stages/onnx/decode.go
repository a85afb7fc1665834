package onnx

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/mlink-project/mlink/pipeline"
)

// The decoders in this file are pure functions over raw output tensors so
// that they can be tested on synthetic data. Boxes they return are
// normalised to the model's input image; Model maps them to the frame.

// tensor is one model output copied out of (or viewed in) ONNX Runtime.
type tensor struct {
	name  string
	shape []int64
	data  []float32
}

// squeeze drops the leading dimensions of size 1 (the batch).
func squeeze(shape []int64) []int64 {
	for len(shape) > 1 && shape[0] == 1 {
		shape = shape[1:]
	}
	return shape
}

// decodeClassifier turns C logits or probabilities into probabilities and
// the argmax label.
func decodeClassifier(vals []float32, classes []string) ([]float64, string, error) {
	if len(vals) != len(classes) {
		return nil, "", fmt.Errorf("classifier output has %d values but %d classes are declared", len(vals), len(classes))
	}
	if len(vals) == 0 {
		return nil, "", fmt.Errorf("classifier output is empty")
	}
	probs := make([]float64, len(vals))
	sum, isDist := 0.0, true
	for i, v := range vals {
		if !finite(v) {
			return nil, "", fmt.Errorf("classifier output %d is %v", i, v)
		}
		probs[i] = float64(v)
		sum += probs[i]
		isDist = isDist && v >= 0 && v <= 1
	}
	if !isDist || math.Abs(sum-1) > 1e-3 {
		softmax(probs)
	}
	best := 0
	for i, p := range probs {
		if p > probs[best] {
			best = i
		}
	}
	return probs, classes[best], nil
}

func softmax(v []float64) {
	m := slices.Max(v)
	sum := 0.0
	for i := range v {
		v[i] = math.Exp(v[i] - m)
		sum += v[i]
	}
	for i := range v {
		v[i] /= sum
	}
}

// decodeCount reads a single regression value.
func decodeCount(vals []float32) (float64, error) {
	if len(vals) != 1 {
		return 0, fmt.Errorf("count output has %d values, want 1", len(vals))
	}
	if !finite(vals[0]) {
		return 0, fmt.Errorf("count output is %v", vals[0])
	}
	return max(float64(vals[0]), 0), nil
}

// detParams are the settings shared by the generic detectors.
type detParams struct {
	classes   []string
	keep      []string
	threshold float32
	nms       float32
}

// className names class i; models without declared classes get the index.
func (p *detParams) className(i int) string {
	if i < len(p.classes) {
		return p.classes[i]
	}
	return strconv.Itoa(i)
}

// kept reports whether class i is wanted.
func (p *detParams) kept(i int) bool {
	return len(p.keep) == 0 || slices.Contains(p.keep, p.className(i))
}

// decodeYOLO decodes [1,N,5+C] or [1,5+C,N] (or 4+C without objectness
// when classes are declared); coordinates are cx,cy,w,h in input pixels.
func decodeYOLO(t tensor, inW, inH int, p detParams) ([]pipeline.Box, error) {
	shape := squeeze(t.shape)
	if len(shape) != 2 {
		return nil, fmt.Errorf("yolo output shape %v: want [1,N,5+C] or [1,5+C,N]", t.shape)
	}
	a, b := int(shape[0]), int(shape[1])
	if a*b != len(t.data) {
		return nil, fmt.Errorf("yolo output shape %v does not match its %d values", t.shape, len(t.data))
	}
	var n, attrs int
	var transposed, obj bool
	if c := len(p.classes); c > 0 {
		switch {
		case b == 5+c:
			n, attrs, obj = a, b, true
		case a == 5+c:
			n, attrs, obj, transposed = b, a, true, true
		case b == 4+c:
			n, attrs = a, b
		case a == 4+c:
			n, attrs, transposed = b, a, true
		default:
			return nil, fmt.Errorf("yolo output shape %v does not fit %d classes (want 5+C or 4+C attributes)", t.shape, c)
		}
	} else {
		// Without declared classes the attribute axis is the short one.
		n, attrs, obj, transposed = a, b, true, false
		if a < b {
			n, attrs, transposed = b, a, true
		}
		if attrs < 6 {
			return nil, fmt.Errorf("yolo output shape %v: want 5+C attributes with C >= 1", t.shape)
		}
	}
	at := func(i, k int) float32 {
		if transposed {
			return t.data[k*n+i]
		}
		return t.data[i*attrs+k]
	}
	first := 4
	if obj {
		first = 5
	}
	var boxes []pipeline.Box
	for i := 0; i < n; i++ {
		o := float32(1)
		if obj {
			o = at(i, 4)
			if o < p.threshold {
				continue
			}
		}
		best, bestScore := -1, float32(0)
		for k := first; k < attrs; k++ {
			c := k - first
			if s := at(i, k); s > bestScore && p.kept(c) {
				best, bestScore = c, s
			}
		}
		score := o * bestScore
		if best < 0 || score < p.threshold || !finite(score) {
			continue
		}
		cx, cy, w, h := at(i, 0), at(i, 1), at(i, 2), at(i, 3)
		if !finite(cx, cy, w, h) || w <= 0 || h <= 0 {
			continue
		}
		boxes = append(boxes, pipeline.Box{
			X1: (cx - w/2) / float32(inW), Y1: (cy - h/2) / float32(inH),
			X2: (cx + w/2) / float32(inW), Y2: (cy + h/2) / float32(inH),
			Score: score, Class: p.className(best),
		})
	}
	return nms(boxes, p.nms), nil
}

// decodeSSD decodes boxes [1,N,4] normalised to the input and scores
// [1,N,C].
func decodeSSD(bt, st tensor, yxyx bool, p detParams) ([]pipeline.Box, error) {
	bs, ss := squeeze(bt.shape), squeeze(st.shape)
	if len(bs) != 2 || bs[1] != 4 || int(bs[0]*4) != len(bt.data) {
		return nil, fmt.Errorf("ssd boxes shape %v: want [1,N,4]", bt.shape)
	}
	n := int(bs[0])
	if len(ss) == 1 && n == 1 {
		ss = []int64{1, ss[0]}
	}
	if len(ss) != 2 || int(ss[0]) != n || int(ss[0]*ss[1]) != len(st.data) {
		return nil, fmt.Errorf("ssd scores shape %v does not match boxes %v: want [1,N,C]", st.shape, bt.shape)
	}
	c := int(ss[1])
	skip := 0
	switch {
	case len(p.classes) == 0 || c == len(p.classes):
	case c == len(p.classes)+1:
		skip = 1 // column 0 is the background class
	default:
		return nil, fmt.Errorf("ssd scores have %d classes but %d are declared", c, len(p.classes))
	}
	var boxes []pipeline.Box
	for i := 0; i < n; i++ {
		best, bestScore := -1, float32(0)
		for k := skip; k < c; k++ {
			if s := st.data[i*c+k]; s > bestScore && p.kept(k-skip) {
				best, bestScore = k-skip, s
			}
		}
		if best < 0 || bestScore < p.threshold || !finite(bestScore) {
			continue
		}
		v := bt.data[i*4 : i*4+4]
		x1, y1, x2, y2 := v[0], v[1], v[2], v[3]
		if yxyx {
			x1, y1, x2, y2 = v[1], v[0], v[3], v[2]
		}
		if !finite(x1, y1, x2, y2) || x2 <= x1 || y2 <= y1 {
			continue
		}
		boxes = append(boxes, pipeline.Box{X1: x1, Y1: y1, X2: x2, Y2: y2, Score: bestScore, Class: p.className(best)})
	}
	return nms(boxes, p.nms), nil
}
