package onnx

import (
	"fmt"
	"math"

	"github.com/mlink-project/mlink/pipeline"
)

// dbParams are the DB (differentiable binarisation) post-processing
// settings of PP-OCR text detection.
type dbParams struct {
	binThreshold float32 // probability that makes a pixel text
	boxThreshold float32 // mean probability a region needs to be kept
	unclip       float32 // expansion ratio of the shrunk text kernel
	minSize      int     // minimum shorter side in pixels
}

// dbMaxCandidates bounds the regions examined per frame, as PaddleOCR's
// max_candidates does, so a noisy map cannot make a frame arbitrarily slow.
const dbMaxCandidates = 1000

// decodeDB turns a w×h text probability map into boxes normalised to the
// map. DB predicts a shrunk "kernel" of each text region, so each region's
// box is grown back by area*unclip/perimeter on every side.
func decodeDB(prob []float32, w, h int, p dbParams) ([]pipeline.Box, error) {
	if w <= 0 || h <= 0 || len(prob) != w*h {
		return nil, fmt.Errorf("ppocr-det: probability map of %d values is not %d×%d", len(prob), w, h)
	}
	seen := make([]bool, len(prob))
	stack := make([]int, 0, 256)
	var boxes []pipeline.Box
	candidates := 0
	for start, v := range prob {
		if seen[start] || !(v > p.binThreshold) {
			continue
		}
		if candidates++; candidates > dbMaxCandidates {
			break
		}
		// Flood-fill one 8-connected component.
		seen[start] = true
		stack = append(stack[:0], start)
		x0, y0, x1, y1 := w, h, -1, -1
		var sum float64
		var count int
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := i%w, i/w
			x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			sum += float64(prob[i])
			count++
			for dy := -1; dy <= 1; dy++ {
				ny := y + dy
				if ny < 0 || ny >= h {
					continue
				}
				for dx := -1; dx <= 1; dx++ {
					nx := x + dx
					if nx < 0 || nx >= w {
						continue
					}
					j := ny*w + nx
					if !seen[j] && prob[j] > p.binThreshold {
						seen[j] = true
						stack = append(stack, j)
					}
				}
			}
		}
		bw, bh := float64(x1-x0+1), float64(y1-y0+1)
		if int(math.Min(bw, bh)) < p.minSize {
			continue
		}
		score := float32(sum / float64(count))
		if score < p.boxThreshold || !finite(score) {
			continue
		}
		d := float32(bw * bh * float64(p.unclip) / (2 * (bw + bh)))
		boxes = append(boxes, pipeline.Box{
			X1:    clamp01((float32(x0) - d) / float32(w)),
			Y1:    clamp01((float32(y0) - d) / float32(h)),
			X2:    clamp01((float32(x1+1) + d) / float32(w)),
			Y2:    clamp01((float32(y1+1) + d) / float32(h)),
			Score: score,
			Class: "text",
		})
	}
	return boxes, nil
}

// ppocrSize is PaddleOCR's DetResizeForTest with limit_type "max": shrink so
// that the longer side is at most maxSide, then round each side to a
// multiple of 32 (the network downsamples 32×).
func ppocrSize(w, h, maxSide int) (int, int) {
	ratio := 1.0
	if m := max(w, h); m > maxSide {
		ratio = float64(maxSide) / float64(m)
	}
	round32 := func(v int) int {
		return max(int(math.Round(float64(v)*ratio/32))*32, 32)
	}
	return round32(w), round32(h)
}
