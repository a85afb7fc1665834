package onnx

import (
	"fmt"
	"math"
	"sort"

	"github.com/mlink-project/mlink/pipeline"
)

// NanoDet (RangiLyu/nanodet) is an anchor-free single-stage detector with a
// Generalized Focal Loss head: for each feature level (strides 8, 16, 32)
// it outputs class scores [1, N, C] (sigmoid applied) and, per location,
// the distance from the location's centre to each side of the box as a
// discrete distribution over R+1 bins [1, N, 4·(R+1)] (left, top, right,
// bottom; a softmax over the bins, whose expectation times the stride is
// the distance in input pixels). N is the level's grid, ⌈W/s⌉·⌈H/s⌉ in
// row-major order.

// cocoClasses are the 80 COCO detection classes in the order COCO-trained
// detectors (NanoDet, YOLO, SSD) emit them.
var cocoClasses = []string{
	"person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
	"fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
	"elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
	"skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
	"wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
	"broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
	"dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
	"toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
}

type nanodetLevel struct {
	stride   int
	gridW    int
	cls, reg tensor
	classes  int
	bins     int // R+1
}

// nanodetLevels pairs the outputs into levels: per grid size N one class
// tensor (classes wide) and one distance tensor (a multiple of 4 wide).
func nanodetLevels(outs []tensor, inW, inH, classes int) ([]nanodetLevel, error) {
	if len(outs) == 0 || len(outs)%2 != 0 {
		return nil, fmt.Errorf("nanodet: %d outputs, want a class and a box tensor per level", len(outs))
	}
	byN := map[int64][]tensor{}
	for _, t := range outs {
		s := squeeze(t.shape)
		if len(s) != 2 || int(s[0]*s[1]) != len(t.data) {
			return nil, fmt.Errorf("nanodet: output %s has shape %v, want [1,N,C]", t.name, t.shape)
		}
		byN[s[0]] = append(byN[s[0]], t)
	}
	var levels []nanodetLevel
	for n, ts := range byN {
		if len(ts) != 2 {
			return nil, fmt.Errorf("nanodet: %d outputs with %d locations, want a class and a box tensor", len(ts), n)
		}
		a, b := ts[0], ts[1]
		wa, wb := squeeze(a.shape)[1], squeeze(b.shape)[1]
		if wb == int64(classes) && wa != int64(classes) {
			a, b, wa, wb = b, a, wb, wa
		}
		if wa != int64(classes) || wb%4 != 0 || wb < 8 {
			return nil, fmt.Errorf("nanodet: outputs %s %v and %s %v: want [1,N,%d] class scores and [1,N,4·bins] distances", a.name, a.shape, b.name, b.shape, classes)
		}
		stride := 0
		for _, s := range []int{8, 16, 32, 64, 128} {
			gw, gh := (inW+s-1)/s, (inH+s-1)/s
			if int64(gw*gh) == n {
				stride = s
				break
			}
		}
		if stride == 0 {
			return nil, fmt.Errorf("nanodet: %d locations is no stride's grid of a %dx%d input", n, inW, inH)
		}
		levels = append(levels, nanodetLevel{stride: stride, gridW: (inW + stride - 1) / stride, cls: a, reg: b, classes: classes, bins: int(wb / 4)})
	}
	sort.Slice(levels, func(i, j int) bool { return levels[i].stride < levels[j].stride })
	return levels, nil
}

// decodeNanoDet turns the levels into boxes normalised to the inW×inH
// input, suppressed.
func decodeNanoDet(levels []nanodetLevel, inW, inH int, p detParams) ([]pipeline.Box, error) {
	sx, sy := 1/float32(inW), 1/float32(inH)
	var boxes []pipeline.Box
	var dist [4]float32
	prob := make([]float64, 0, 16)
	for _, l := range levels {
		n := len(l.cls.data) / l.classes
		for i := range n {
			scores := l.cls.data[i*l.classes : (i+1)*l.classes]
			best, bestScore := -1, float32(0)
			for k, s := range scores {
				if s > bestScore && p.kept(k) {
					best, bestScore = k, s
				}
			}
			if best < 0 || bestScore < p.threshold || !finite(bestScore) {
				continue
			}
			reg := l.reg.data[i*4*l.bins : (i+1)*4*l.bins]
			for side := range 4 {
				dist[side] = float32(expectedBin(reg[side*l.bins:(side+1)*l.bins], prob[:0])) * float32(l.stride)
			}
			cx := (float32(i%l.gridW) + 0.5) * float32(l.stride)
			cy := (float32(i/l.gridW) + 0.5) * float32(l.stride)
			b := pipeline.Box{X1: (cx - dist[0]) * sx, Y1: (cy - dist[1]) * sy, X2: (cx + dist[2]) * sx, Y2: (cy + dist[3]) * sy, Score: bestScore, Class: p.className(best)}
			if !finite(b.X1, b.Y1, b.X2, b.Y2) || b.X2 <= b.X1 || b.Y2 <= b.Y1 {
				continue
			}
			boxes = append(boxes, b)
		}
	}
	return nms(boxes, p.nms), nil
}

// expectedBin is the expectation of the softmax of logits over bins 0..R.
func expectedBin(logits []float32, prob []float64) float64 {
	top := math.Inf(-1)
	for _, v := range logits {
		top = max(top, float64(v))
	}
	var sum, mean float64
	for k, v := range logits {
		e := math.Exp(float64(v) - top)
		prob = append(prob, e)
		sum += e
		mean += e * float64(k)
	}
	return mean / sum
}
