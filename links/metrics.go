// Package links holds MLink's model links: learned mappings from one
// black-box model's outputs to another's, and the accuracy metrics p(·) that
// say how well a predicted output agrees with the model's exact one. Pure Go.
package links

import (
	"cmp"
	"math"
	"slices"

	"github.com/mlink-project/mlink/pipeline"
)

// CountTolerance is the paper's strict count metric: a predicted count is
// correct iff |predicted − exact| < 0.5.
const CountTolerance = 0.5

// Accuracy is p(predicted, exact) in [0,1]: agreement of a predicted output
// with the output the model would have produced, by the output's type. It is
// the strict metric of MLink (counts: |err| < 0.5).
func Accuracy(t pipeline.OutputType, predicted, exact *pipeline.Output) float64 {
	switch t {
	case pipeline.TypeCount:
		return CountAccuracy(first(predicted.Value), first(exact.Value))
	case pipeline.TypeClass:
		if ArgMax(predicted.Value) == ArgMax(exact.Value) {
			return 1
		}
		return 0
	case pipeline.TypeScalar:
		return ScalarAccuracy(predicted.Value, exact.Value, 0.1)
	case pipeline.TypeBoxes:
		return MatchedIoU(predicted.Boxes, exact.Boxes)
	case pipeline.TypeLines:
		return MatchedSegments(predicted.Boxes, exact.Boxes)
	}
	return 0
}

// CountAccuracy is 1 when the counts agree within CountTolerance, else 0.
func CountAccuracy(predicted, exact float64) float64 {
	if math.Abs(predicted-exact) < CountTolerance {
		return 1
	}
	return 0
}

// GradedCountAccuracy is Reducto's count accuracy: 1 if equal, else
// (max − |diff|) / max, never below 0.
func GradedCountAccuracy(predicted, exact float64) float64 {
	p, e := math.Round(predicted), math.Round(exact)
	if p == e {
		return 1
	}
	m := math.Max(math.Abs(p), math.Abs(e))
	return math.Max(0, (m-math.Abs(p-e))/m)
}

// ScalarAccuracy is the share of components within tol (relative to the
// exact value's magnitude, or absolute below 1).
func ScalarAccuracy(predicted, exact []float64, tol float64) float64 {
	if len(exact) == 0 || len(predicted) != len(exact) {
		return 0
	}
	ok := 0
	for i := range exact {
		if math.Abs(predicted[i]-exact[i]) <= tol*math.Max(1, math.Abs(exact[i])) {
			ok++
		}
	}
	return float64(ok) / float64(len(exact))
}

// MatchedIoU matches predicted to exact boxes greedily by IoU and returns
// the sum of matched IoUs over the larger of the two set sizes: 1 for equal
// sets, 0 when nothing overlaps, and both empty counts as agreement.
func MatchedIoU(predicted, exact []pipeline.Box) float64 {
	return matchGreedy(predicted, exact, IoU)
}

// LineTolerance is the end-point distance (in normalised frame
// coordinates) at which two line segments stop counting as the same.
const LineTolerance = 0.05

// SegmentSimilarity compares two line segments by the mean distance of
// their end points (either orientation): 1 for the same segment, falling
// linearly to 0 at LineTolerance. IoU is useless for segments: a vertical
// or horizontal segment's bounding box has no area.
func SegmentSimilarity(a, b pipeline.Box) float64 {
	d1 := math.Hypot(float64(a.X1-b.X1), float64(a.Y1-b.Y1)) + math.Hypot(float64(a.X2-b.X2), float64(a.Y2-b.Y2))
	d2 := math.Hypot(float64(a.X1-b.X2), float64(a.Y1-b.Y2)) + math.Hypot(float64(a.X2-b.X1), float64(a.Y2-b.Y1))
	return math.Max(0, 1-math.Min(d1, d2)/2/LineTolerance)
}

// MatchedSegments is MatchedIoU for line segments (TypeLines), with
// SegmentSimilarity in place of IoU.
func MatchedSegments(predicted, exact []pipeline.Box) float64 {
	return matchGreedy(predicted, exact, SegmentSimilarity)
}

// matchGreedy matches the pairs of highest similarity first and returns
// the sum of matched similarities over the larger set size.
func matchGreedy(predicted, exact []pipeline.Box, sim func(a, b pipeline.Box) float64) float64 {
	if len(predicted) == 0 && len(exact) == 0 {
		return 1
	}
	type pair struct {
		i, j int
		v    float64
	}
	var buf [64]pair
	pairs := buf[:0]
	for i := range predicted {
		for j := range exact {
			if v := sim(predicted[i], exact[j]); v > 0 {
				pairs = append(pairs, pair{i, j, v})
			}
		}
	}
	slices.SortStableFunc(pairs, func(a, b pair) int { return cmp.Compare(b.v, a.v) })
	usedP := make([]bool, len(predicted))
	usedE := make([]bool, len(exact))
	sum := 0.0
	for _, p := range pairs {
		if usedP[p.i] || usedE[p.j] {
			continue
		}
		usedP[p.i], usedE[p.j] = true, true
		sum += p.v
	}
	return sum / float64(max(len(predicted), len(exact)))
}

// IoU is the intersection over union of two boxes.
func IoU(a, b pipeline.Box) float64 {
	ix := math.Min(float64(a.X2), float64(b.X2)) - math.Max(float64(a.X1), float64(b.X1))
	iy := math.Min(float64(a.Y2), float64(b.Y2)) - math.Max(float64(a.Y1), float64(b.Y1))
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	areaA := float64(a.X2-a.X1) * float64(a.Y2-a.Y1)
	areaB := float64(b.X2-b.X1) * float64(b.Y2-b.Y1)
	return inter / (areaA + areaB - inter)
}

// TokenAccuracy is max(0, 1 − WER) of a predicted token sequence.
func TokenAccuracy(predicted, exact []string) float64 {
	if len(exact) == 0 {
		if len(predicted) == 0 {
			return 1
		}
		return 0
	}
	// Levenshtein distance over tokens.
	prev := make([]int, len(exact)+1)
	cur := make([]int, len(exact)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(predicted); i++ {
		cur[0] = i
		for j := 1; j <= len(exact); j++ {
			sub := prev[j-1]
			if predicted[i-1] != exact[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return math.Max(0, 1-float64(prev[len(exact)])/float64(len(exact)))
}

// ArgMax returns the index of the largest value (-1 for none).
func ArgMax(v []float64) int {
	best := -1
	for i, x := range v {
		if best < 0 || x > v[best] {
			best = i
		}
	}
	return best
}

func first(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return v[0]
}
