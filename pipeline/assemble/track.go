package assemble

import (
	"cmp"
	"slices"

	"github.com/mlink-project/mlink/pipeline"
)

// The tracker is the fair upgrade of reuse for detections: between two
// exact outputs of a detector, a person keeps walking, and the boxes of
// its last output drift off them frame by frame. DeepStream's tracker
// carries each box along between the frames its `interval` skips; Track
// does the same with the simplest motion model that works on a fixed
// camera: each box of the latest exact output moves on at the velocity of
// its centre since the output before it. Box sizes are kept (a walker's
// box barely changes over a few frames, and extrapolated sizes explode).

// TrackMinIoU is the overlap a box needs with a box of the earlier output
// to be the same object. Boxes of walkers 4 frames apart at 10 fps overlap
// by 0.4–0.8; 0.1 keeps fast walkers and still rejects a neighbour.
const TrackMinIoU = 0.1

// Track predicts a detector's boxes age seqs after its latest exact output
// cur, from the motion since the exact output before it, prior (nil or
// not older than cur: no motion, cur's boxes as they are). The result is
// a copy; cur and prior are not changed. Boxes are matched greedily by IoU
// within a class; an unmatched box (it just appeared) stays where it is.
// Moved boxes are clipped to the frame; one that leaves the frame entirely
// is dropped, as the detector would no longer see it.
func Track(cur, prior *pipeline.Output, age float64) []pipeline.Box {
	out := slices.Clone(cur.Boxes)
	if prior == nil || prior.Seq >= cur.Seq || age <= 0 || len(out) == 0 {
		return out
	}
	scale := float32(age / float64(cur.Seq-prior.Seq))
	for _, p := range MatchBoxes(cur.Boxes, prior.Boxes, TrackMinIoU, true) {
		dx, dy := centreShift(prior.Boxes[p[1]], cur.Boxes[p[0]])
		out[p[0]] = shifted(cur.Boxes[p[0]], dx*scale, dy*scale)
	}
	return clipped(out)
}

// centreShift is how far the centre of a box moved from from to to.
func centreShift(from, to pipeline.Box) (dx, dy float32) {
	return ((to.X1 + to.X2) - (from.X1 + from.X2)) / 2, ((to.Y1 + to.Y2) - (from.Y1 + from.Y2)) / 2
}

func shifted(b pipeline.Box, dx, dy float32) pipeline.Box {
	b.X1, b.X2, b.Y1, b.Y2 = b.X1+dx, b.X2+dx, b.Y1+dy, b.Y2+dy
	return b
}

// clipped clips boxes to the frame in place, dropping those left empty.
func clipped(boxes []pipeline.Box) []pipeline.Box {
	kept := boxes[:0]
	for _, b := range boxes {
		if c, ok := clipBox(b); ok {
			kept = append(kept, c)
		}
	}
	return kept
}

// clipBox clips b to the unit frame; ok is false when nothing is left.
func clipBox(b pipeline.Box) (pipeline.Box, bool) {
	b.X1, b.Y1 = max(b.X1, 0), max(b.Y1, 0)
	b.X2, b.Y2 = min(b.X2, 1), min(b.Y2, 1)
	return b, b.X2 > b.X1 && b.Y2 > b.Y1
}

func boxIoU(a, b pipeline.Box) float64 {
	ix := float64(min(a.X2, b.X2) - max(a.X1, b.X1))
	iy := float64(min(a.Y2, b.Y2) - max(a.Y1, b.Y1))
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	union := float64((a.X2-a.X1)*(a.Y2-a.Y1)+(b.X2-b.X1)*(b.Y2-b.Y1)) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// Trackable reports whether outputs of type t can be tracked: boxes.
// Line segments of a fixed camera do not move, and counts, classes and
// scalars have no positions.
func Trackable(t pipeline.OutputType) bool { return t == pipeline.TypeBoxes }

// Follow is the delta link of a detector: its boxes age seqs after its
// latest exact output then, predicted from how a cheaper detector's boxes
// changed since that frame (srcThen, the source's exact output on the same
// frame as then, to srcNow, the source's output on this frame). Each box
// of then follows the source box it overlaps most on that frame, by that
// box's displacement to its match on this frame, scaled by l.Gain (0:
// plain reuse; 1: the source's motion as it is; a fitted gain shrinks a
// noisy source's motion toward reuse). A box with no moving source box
// stays — unless l.Deaths and its source box has no match now: then the
// source lost the person, and so does the prediction. With l.Births every
// source box now that matches none of srcThen's (someone came in) adds
// l.Births.Apply of it. The source sees the same people now — a
// measurement, where Track only extrapolates.
func Follow(then, srcThen, srcNow *pipeline.Output, l pipeline.FollowLink) []pipeline.Box {
	out := slices.Clone(then.Boxes)
	if srcThen == nil || srcNow == nil || (l.Gain == 0 && !l.Deaths && l.Births == nil) {
		return out
	}
	// The source's own motion: its boxes then matched to its boxes now.
	moves := make([][2]float32, len(srcThen.Boxes))
	moved := make([]bool, len(srcThen.Boxes))
	born := make([]bool, len(srcNow.Boxes))
	for i := range born {
		born[i] = true
	}
	for _, p := range MatchBoxes(srcThen.Boxes, srcNow.Boxes, TrackMinIoU, false) {
		dx, dy := centreShift(srcThen.Boxes[p[0]], srcNow.Boxes[p[1]])
		moves[p[0]], moved[p[0]], born[p[1]] = [2]float32{dx, dy}, true, false
	}
	g := float32(l.Gain)
	kept := out[:0]
	for _, b := range then.Boxes {
		// The moving source box it overlaps most; and whether it overlaps
		// any source box at all.
		best, bestIoU, seen := -1, TrackMinIoU, false
		for j, s := range srcThen.Boxes {
			v := boxIoU(b, s)
			seen = seen || v >= TrackMinIoU
			if moved[j] && v >= bestIoU {
				best, bestIoU = j, v
			}
		}
		switch {
		case best >= 0:
			kept = append(kept, shifted(b, moves[best][0]*g, moves[best][1]*g))
		case seen && l.Deaths:
			// The source saw this person then and has lost them now.
		default:
			kept = append(kept, b)
		}
	}
	out = kept
	if l.Births != nil {
		for j, s := range srcNow.Boxes {
			if born[j] && l.Births.Places(s) && !overlapsAny(s, out, l.Births) {
				out = append(out, l.Births.Apply(s))
			}
		}
	}
	return clipped(out)
}

// overlapsAny reports whether the target box mapped from source box s
// overlaps a box already predicted: the target already has that person.
func overlapsAny(s pipeline.Box, boxes []pipeline.Box, m *pipeline.BoxMap) bool {
	t := m.Apply(s)
	for _, b := range boxes {
		if boxIoU(t, b) >= TrackMinIoU {
			return true
		}
	}
	return false
}

// MatchBoxes matches a to b greedily by IoU (at least minIoU; within a
// class when sameClass), highest first; each pair is [index in a, index
// in b].
func MatchBoxes(a, b []pipeline.Box, minIoU float64, sameClass bool) [][2]int {
	type pair struct {
		i, j int
		iou  float64
	}
	var pairs []pair
	for i := range a {
		for j := range b {
			if sameClass && a[i].Class != b[j].Class {
				continue
			}
			if v := boxIoU(a[i], b[j]); v >= minIoU {
				pairs = append(pairs, pair{i, j, v})
			}
		}
	}
	slices.SortStableFunc(pairs, func(x, y pair) int { return cmp.Compare(y.iou, x.iou) })
	usedA, usedB := make([]bool, len(a)), make([]bool, len(b))
	var out [][2]int
	for _, p := range pairs {
		if usedA[p.i] || usedB[p.j] {
			continue
		}
		usedA[p.i], usedB[p.j] = true, true
		out = append(out, [2]int{p.i, p.j})
	}
	return out
}
