package links

import (
	"slices"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/assemble"
)

// A delta link's births (pipeline.FollowLink.Births) place a box of the
// target detector where the source detector found someone new. Two
// detectors of people do not draw the same box around a person — HOG's
// window has margins, NanoDet's box hugs the body — so the births come
// through a map fitted on the frames where both ran.

// boxMapMinIoU is the overlap at which a source and a target box are
// taken for the same person when a box map is fitted.
const boxMapMinIoU = 0.3

// boxMapMinPairs is the fewest matched boxes a map is fitted from.
const boxMapMinPairs = 20

// FitBoxMap fits how target's boxes sit on source's boxes of the same
// objects over the records where both have exact outputs: boxes matched
// greedily at IoU ≥ 0.3, the medians of the centre offsets (in source box
// sizes) and of the size ratios, and the target's most frequent class. ok
// is false with fewer than 20 matched pairs: too little to place a box by.
func FitBoxMap(recs []*TraceRecord, source, target string) (*pipeline.BoxMap, bool) {
	var dx, dy, sw, sh, hs, scores []float32
	classes := map[string]int{}
	for _, r := range recs {
		s, t := r.Outputs[source], r.Outputs[target]
		if !usable(s) || !usable(t) {
			continue
		}
		for _, b := range t.Boxes {
			classes[b.Class]++
		}
		for _, p := range assemble.MatchBoxes(s.Boxes, t.Boxes, boxMapMinIoU, false) {
			a, b := s.Boxes[p[0]], t.Boxes[p[1]]
			w, h := a.X2-a.X1, a.Y2-a.Y1
			if w <= 0 || h <= 0 {
				continue
			}
			dx = append(dx, ((b.X1+b.X2)-(a.X1+a.X2))/2/w)
			dy = append(dy, ((b.Y1+b.Y2)-(a.Y1+a.Y2))/2/h)
			sw = append(sw, (b.X2-b.X1)/w)
			sh = append(sh, (b.Y2-b.Y1)/h)
			hs, scores = append(hs, h), append(scores, a.Score)
		}
	}
	if len(dx) < boxMapMinPairs {
		return nil, false
	}
	m := &pipeline.BoxMap{DX: median32(dx), DY: median32(dy), SW: median32(sw), SH: median32(sh),
		MinH: quantile32(hs, boxMapFloor), MinScore: quantile32(scores, boxMapFloor)}
	best := 0
	for c, n := range classes {
		if n > best || (n == best && c < m.Class) {
			m.Class, best = c, n
		}
	}
	return m, true
}

// boxMapFloor is the quantile of the matched source boxes' heights and
// scores below which a source box places no target box: nine in ten of
// the boxes the target also found are above both.
const boxMapFloor = 0.05

// quantile32 is the q-quantile of v (sorted in place; nearest rank).
func quantile32(v []float32, q float64) float32 {
	slices.Sort(v)
	return v[min(int(q*float64(len(v))), len(v)-1)]
}

func median32(v []float32) float32 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
