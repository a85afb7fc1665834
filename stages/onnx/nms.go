package onnx

import (
	"math"
	"sort"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages/vision"
)

// iou is the intersection over union of two boxes given as (x1,y1)-(x2,y2).
func iou(a, b pipeline.Box) float32 { return float32(vision.IoU(a, b)) }

// nms is greedy, class-aware non-maximum suppression (vision.NMS), best
// box first.
func nms(boxes []pipeline.Box, thr float32) []pipeline.Box {
	return vision.NMS(boxes, float64(thr))
}

// weightedNMS is MediaPipe's "weighted" suppression used by BlazeFace: each
// cluster of boxes overlapping the best remaining one by at least thr is
// replaced by their score-weighted mean, scored with the cluster's best
// score. Averaging steadies the box from frame to frame, which the anchors'
// many overlapping hits otherwise make jitter.
func weightedNMS(boxes []pipeline.Box, thr float32) []pipeline.Box {
	sortByScore(boxes)
	used := make([]bool, len(boxes))
	var out []pipeline.Box
	for i, top := range boxes {
		if used[i] {
			continue
		}
		var sx1, sy1, sx2, sy2, sw float32
		for j := i; j < len(boxes); j++ {
			if used[j] || iou(top, boxes[j]) < thr {
				continue
			}
			used[j] = true
			w := boxes[j].Score
			sx1 += boxes[j].X1 * w
			sy1 += boxes[j].Y1 * w
			sx2 += boxes[j].X2 * w
			sy2 += boxes[j].Y2 * w
			sw += w
		}
		if sw <= 0 {
			out = append(out, top)
			continue
		}
		out = append(out, pipeline.Box{X1: sx1 / sw, Y1: sy1 / sw, X2: sx2 / sw, Y2: sy2 / sw, Score: top.Score, Class: top.Class})
	}
	return out
}

func sortByScore(boxes []pipeline.Box) {
	sort.SliceStable(boxes, func(i, j int) bool { return boxes[i].Score > boxes[j].Score })
}

func finite(vs ...float32) bool {
	for _, v := range vs {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

func sigmoid(x float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(x))))
}

func clamp01(v float32) float32 {
	return min(max(v, 0), 1)
}
