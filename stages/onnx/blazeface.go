package onnx

import (
	"fmt"
	"math"
	"sort"

	"github.com/mlink-project/mlink/pipeline"
)

// blazeLayer is one detection head of BlazeFace: N anchors with one score
// logit and 16 regressors each (box dx,dy,w,h then six key points).
type blazeLayer struct {
	scores []float32
	regs   []float32
}

// blazeAnchorsPerCell is the anchor count per grid cell of each head, in
// the order of decreasing anchor count N (the fine grid first): MediaPipe's
// SSD anchor config for the front model, strides 8,16,16,16 where the three
// stride-16 layers share one 8×8 grid (2 + 2+2+2 = 6 anchors per cell).
var blazeAnchorsPerCell = []int{2, 6}

// blazeLayers pairs the four BlazeFace outputs (scores [1,N,1] and
// regressors [1,N,16] per head) by N, fine grid first.
func blazeLayers(outs []tensor) ([]blazeLayer, error) {
	scores, regs := map[int64][]float32{}, map[int64][]float32{}
	for _, t := range outs {
		s := squeeze(t.shape)
		switch {
		case len(s) == 2 && s[1] == 1, len(s) == 1:
			scores[s[0]] = t.data
		case len(s) == 2 && s[1] == 16:
			regs[s[0]] = t.data
		default:
			return nil, fmt.Errorf("blazeface: unexpected output %q shape %v", t.name, t.shape)
		}
	}
	var ns []int64
	for n := range scores {
		if _, ok := regs[n]; !ok {
			return nil, fmt.Errorf("blazeface: no regressors for the %d-anchor scores", n)
		}
		ns = append(ns, n)
	}
	if len(ns) != len(blazeAnchorsPerCell) || len(regs) != len(ns) {
		return nil, fmt.Errorf("blazeface: want 2 heads (scores [1,N,1] + regressors [1,N,16]), got %d outputs", len(outs))
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] > ns[j] })
	layers := make([]blazeLayer, len(ns))
	for i, n := range ns {
		if int64(len(scores[n])) != n || int64(len(regs[n])) != n*16 {
			return nil, fmt.Errorf("blazeface: head of %d anchors has %d scores and %d regressors", n, len(scores[n]), len(regs[n]))
		}
		layers[i] = blazeLayer{scores: scores[n], regs: regs[n]}
	}
	return layers, nil
}

// decodeBlazeFace decodes the heads with their anchors; size is the model's
// square input size in pixels (the regressors' scale).
func decodeBlazeFace(layers []blazeLayer, size int, threshold, nmsThr float32) ([]pipeline.Box, error) {
	if len(layers) != len(blazeAnchorsPerCell) {
		return nil, fmt.Errorf("blazeface: want %d heads, got %d", len(blazeAnchorsPerCell), len(layers))
	}
	scale := 1 / float32(size)
	var boxes []pipeline.Box
	for li, l := range layers {
		apc := blazeAnchorsPerCell[li]
		cells := len(l.scores) / apc
		grid := int(math.Round(math.Sqrt(float64(cells))))
		if grid*grid*apc != len(l.scores) || len(l.regs) != 16*len(l.scores) {
			return nil, fmt.Errorf("blazeface: head %d has %d anchors, not a square grid of %d anchors per cell", li, len(l.scores), apc)
		}
		for i, logit := range l.scores {
			// MediaPipe clips the logits at ±100 before the sigmoid.
			score := sigmoid(min(max(logit, -100), 100))
			if !(score >= threshold) {
				continue
			}
			cell := i / apc
			ax := (float32(cell%grid) + 0.5) / float32(grid)
			ay := (float32(cell/grid) + 0.5) / float32(grid)
			r := l.regs[i*16 : i*16+4]
			cx, cy := ax+r[0]*scale, ay+r[1]*scale
			w, h := r[2]*scale, r[3]*scale
			if !finite(cx, cy, w, h) || w <= 0 || h <= 0 {
				continue
			}
			boxes = append(boxes, pipeline.Box{X1: cx - w/2, Y1: cy - h/2, X2: cx + w/2, Y2: cy + h/2, Score: score, Class: "face"})
		}
	}
	return weightedNMS(boxes, nmsThr), nil
}
