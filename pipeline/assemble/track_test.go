package assemble

import (
	"math"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

func boxesOut(seq uint64, model string, boxes ...pipeline.Box) *pipeline.Output {
	return &pipeline.Output{Camera: "cam", Seq: seq, Model: model, Kind: pipeline.KindSequence, Type: pipeline.TypeBoxes,
		Value: []float64{float64(len(boxes))}, Boxes: boxes, Source: pipeline.SourceExact}
}

// walker is a person's box at frame seq, walking right at v per frame.
func walker(seq uint64, x0, v float32) pipeline.Box {
	x := x0 + v*float32(seq)
	return pipeline.Box{X1: x, Y1: 0.3, X2: x + 0.06, Y2: 0.5, Score: 1, Class: "person"}
}

func near(a, b pipeline.Box) bool {
	const eps = 1e-5
	return math.Abs(float64(a.X1-b.X1)) < eps && math.Abs(float64(a.X2-b.X2)) < eps &&
		math.Abs(float64(a.Y1-b.Y1)) < eps && math.Abs(float64(a.Y2-b.Y2)) < eps
}

// A box moving at constant velocity is carried to where it is; a box that
// just appeared stays; the inputs are not changed.
func TestTrackMovesABoxAtConstantVelocity(t *testing.T) {
	const v = 0.01
	prior := boxesOut(4, "hog", walker(4, 0.2, v))
	newcomer := pipeline.Box{X1: 0.8, Y1: 0.1, X2: 0.85, Y2: 0.2, Class: "person"}
	cur := boxesOut(8, "hog", walker(8, 0.2, v), newcomer)
	for _, age := range []uint64{1, 2, 3} {
		got := Track(cur, prior, float64(age))
		if len(got) != 2 || !near(got[0], walker(8+age, 0.2, v)) {
			t.Errorf("age %d: %+v, want the walker at %+v", age, got, walker(8+age, 0.2, v))
		}
		if !near(got[1], newcomer) {
			t.Errorf("age %d: the newcomer moved: %+v", age, got[1])
		}
	}
	if !near(cur.Boxes[0], walker(8, 0.2, v)) {
		t.Error("Track changed its input")
	}
	// Without an earlier output there is no motion: plain reuse.
	if got := Track(cur, nil, 3); !near(got[0], cur.Boxes[0]) {
		t.Errorf("no prior: %+v, want the box as it was", got[0])
	}
	// Another class is another object, however it overlaps.
	other := boxesOut(4, "hog", pipeline.Box{X1: 0.24, Y1: 0.3, X2: 0.30, Y2: 0.5, Class: "face"})
	if got := Track(cur, other, 3); !near(got[0], cur.Boxes[0]) {
		t.Errorf("matched across classes: %+v", got[0])
	}
}

// A box carried out of the frame is gone; one carried across its edge is
// clipped.
func TestTrackClipsAndDropsBoxesLeavingTheFrame(t *testing.T) {
	prior := boxesOut(0, "hog", pipeline.Box{X1: 0.80, Y1: 0.3, X2: 0.90, Y2: 0.5})
	cur := boxesOut(1, "hog", pipeline.Box{X1: 0.85, Y1: 0.3, X2: 0.95, Y2: 0.5})
	if got := Track(cur, prior, 1); len(got) != 1 || got[0].X2 < 0.9999 || math.Abs(float64(got[0].X1-0.90)) > 1e-6 {
		t.Errorf("age 1: %+v, want clipped at the right edge", got)
	}
	if got := Track(cur, prior, 4); len(got) != 0 {
		t.Errorf("age 4: %+v, want the box gone", got)
	}
}

// A delta link moves the target's boxes by the source's motion, whatever
// the target's own history; gain 0 is reuse; a target box no source box
// overlaps stays.
func TestFollowMovesTargetBoxesWithTheSource(t *testing.T) {
	// The source sees the walker a little larger and offset, as a coarser
	// detector does; it walks right at 0.01, then stops (the target's own
	// velocity would extrapolate the walk).
	src := func(x float32) pipeline.Box {
		return pipeline.Box{X1: x - 0.01, Y1: 0.28, X2: x + 0.07, Y2: 0.52, Class: "person"}
	}
	then := boxesOut(10, "hog", walker(10, 0.2, 0.01), pipeline.Box{X1: 0.7, Y1: 0.7, X2: 0.75, Y2: 0.8})
	srcThen := boxesOut(10, "hog_small", src(0.30))
	srcNow := boxesOut(13, "hog_small", src(0.33))
	got := Follow(then, srcThen, srcNow, pipeline.FollowLink{Gain: 1})
	want := walker(13, 0.2, 0.01)
	if len(got) != 2 || !near(got[0], want) || !near(got[1], then.Boxes[1]) {
		t.Errorf("gain 1: %+v, want %+v and the unmatched box unmoved", got, want)
	}
	half := Follow(then, srcThen, srcNow, pipeline.FollowLink{Gain: 0.5})
	if math.Abs(float64(half[0].X1-(then.Boxes[0].X1+0.015))) > 1e-6 {
		t.Errorf("gain 0.5: %+v, want half the motion", half[0])
	}
	if got := Follow(then, srcThen, srcNow, pipeline.FollowLink{}); !near(got[0], then.Boxes[0]) {
		t.Errorf("gain 0: %+v, want reuse", got[0])
	}
	// The source lost the walker: nothing to follow, the box stays.
	if got := Follow(then, srcThen, boxesOut(13, "hog_small"), pipeline.FollowLink{Gain: 1}); !near(got[0], then.Boxes[0]) {
		t.Errorf("source lost it: %+v, want reuse", got[0])
	}
}

// Deaths and births: the source lost a walker, so the prediction does;
// someone the source sees newly comes in as a target box placed by the
// map; a new source box below the map's floor (too small for the target)
// or already covered by a predicted box places nothing.
func TestFollowDeathsAndBirths(t *testing.T) {
	src := func(x, h float32) pipeline.Box {
		return pipeline.Box{X1: x, Y1: 0.3, X2: x + 0.05, Y2: 0.3 + h, Score: 0.8, Class: "person"}
	}
	then := boxesOut(10, "hog", pipeline.Box{X1: 0.1, Y1: 0.29, X2: 0.16, Y2: 0.52, Class: "person"},
		pipeline.Box{X1: 0.5, Y1: 0.29, X2: 0.56, Y2: 0.52, Class: "person"})
	srcThen := boxesOut(10, "nano", src(0.1, 0.2), src(0.5, 0.2))
	// Now: the first walker is where it was, the second is gone, a third
	// (tall) came in at x 0.8 and a fourth, tiny, at x 0.3.
	srcNow := boxesOut(14, "nano", src(0.1, 0.2), src(0.8, 0.2), src(0.3, 0.02))
	m := &pipeline.BoxMap{DX: 0, DY: 0.05, SW: 1.2, SH: 1.15, MinH: 0.1, Class: "person"}

	if got := Follow(then, srcThen, srcNow, pipeline.FollowLink{Gain: 1}); len(got) != 2 || !near(got[1], then.Boxes[1]) {
		t.Fatalf("plain: %+v, want both boxes kept (the lost one where it was)", got)
	}
	got := Follow(then, srcThen, srcNow, pipeline.FollowLink{Gain: 1, Deaths: true})
	if len(got) != 1 || !near(got[0], then.Boxes[0]) {
		t.Fatalf("deaths: %+v, want the walker the source lost dropped", got)
	}
	got = Follow(then, srcThen, srcNow, pipeline.FollowLink{Gain: 1, Deaths: true, Births: m})
	want := m.Apply(src(0.8, 0.2))
	if len(got) != 2 || !near(got[0], then.Boxes[0]) || !near(got[1], want) || got[1].Class != "person" {
		t.Fatalf("deaths and births: %+v, want the kept walker and %+v (the tiny box places nothing)", got, want)
	}
	if w, h := want.X2-want.X1, want.Y2-want.Y1; math.Abs(float64(w-0.06)) > 1e-6 || math.Abs(float64(h-0.23)) > 1e-6 ||
		math.Abs(float64((want.Y1+want.Y2)/2-0.41)) > 1e-6 {
		t.Errorf("mapped box %+v: want 1.2×, 1.15× the source's size, centre 0.05 of its height lower", want)
	}
	// A birth on top of a box the prediction already has adds nothing.
	covered := boxesOut(14, "nano", src(0.1, 0.2), src(0.5, 0.2), src(0.52, 0.2))
	if got := Follow(then, srcThen, covered, pipeline.FollowLink{Gain: 1, Births: m}); len(got) != 2 {
		t.Errorf("birth over a predicted box: %+v, want the two boxes only", got)
	}
}

// FillReused tracks and follows only what the plan says, from the frames
// UpdateLast recorded.
func TestFillReusedTracksAndFollowsByPlan(t *testing.T) {
	last := NewLast()
	for _, seq := range []uint64{4, 8} {
		plan := &pipeline.Plan{Camera: "cam", Seq: seq, Exact: []string{"hog", "small", "plain"}}
		outs := map[string]*pipeline.Output{
			"hog":   boxesOut(seq, "hog", walker(seq, 0.2, 0.01)),
			"small": boxesOut(seq, "small", walker(seq, 0.12, 0.02)),
			"plain": boxesOut(seq, "plain", walker(seq, 0.2, 0.01)),
		}
		UpdateLast(last, plan, outs)
	}
	if last.Prior("hog").Seq != 4 || last.Get("hog").Seq != 8 || last.Then("hog", "small").Seq != 8 {
		t.Fatalf("last table: prior %+v latest %+v", last.Prior("hog"), last.Get("hog"))
	}
	plan := &pipeline.Plan{Camera: "cam", Seq: 10, Exact: []string{"small"}, Reused: []string{"hog", "plain", "tracked"},
		Tracked: []string{"plain"}, Follow: map[string]pipeline.FollowLink{"hog": {Source: "small", Gain: 1}}}
	exact := map[string]*pipeline.Output{"small": boxesOut(10, "small", walker(10, 0.12, 0.02))}
	out := FillReused(plan, exact, last)
	if o := out["hog"]; o.Source != pipeline.SourcePredicted || o.FromSeq != 8 || len(o.Sources) != 1 ||
		!near(o.Boxes[0], walker(8, 0.24, 0.01)) {
		// +0.04: the source's motion over 2 frames at 0.02.
		t.Errorf("followed: %+v", o)
	}
	if o := out["plain"]; o.Source != pipeline.SourceTracked || !near(o.Boxes[0], walker(10, 0.2, 0.01)) {
		t.Errorf("tracked: %+v, want the walker at #10", o)
	}
	if o := out["tracked"]; o.Error == "" {
		t.Errorf("never ran: %+v, want an error output", o)
	}
	// Without the source on this frame a followed model falls back to
	// plain reuse (it is not in Tracked).
	out = FillReused(plan, nil, last)
	if o := out["hog"]; o.Source != pipeline.SourceReused || !near(o.Boxes[0], walker(8, 0.2, 0.01)) {
		t.Errorf("no source: %+v, want reuse", o)
	}
}

// The tracker and a delta link on a frame of 8 walkers: their cost per
// prediction, against the cheapest model's milliseconds (BlazeFace ~5 ms).
func BenchmarkTrack(b *testing.B) {
	var prior, cur []pipeline.Box
	for i := range 8 {
		prior = append(prior, walker(0, 0.1*float32(i), 0.01))
		cur = append(cur, walker(4, 0.1*float32(i), 0.01))
	}
	p, c := boxesOut(0, "hog", prior...), boxesOut(4, "hog", cur...)
	for b.Loop() {
		Track(c, p, 2)
	}
}

func BenchmarkFollow(b *testing.B) {
	var then, src, now []pipeline.Box
	for i := range 8 {
		then = append(then, walker(4, 0.1*float32(i), 0.01))
		src = append(src, walker(4, 0.1*float32(i), 0.01))
		now = append(now, walker(6, 0.1*float32(i), 0.01))
	}
	t, s, n := boxesOut(4, "hog", then...), boxesOut(4, "small", src...), boxesOut(6, "small", now...)
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			Follow(t, s, n, pipeline.FollowLink{Gain: 1})
		}
	})
	// Two of the source's people left and two came in.
	n2 := boxesOut(6, "small", append(now[2:], walker(6, 0.85, 0.01), walker(6, 0.95, 0.01))...)
	m := &pipeline.BoxMap{SW: 1.6, SH: 1.3, Class: "person"}
	b.Run("deaths+births", func(b *testing.B) {
		for b.Loop() {
			Follow(t, s, n2, pipeline.FollowLink{Gain: 1, Deaths: true, Births: m})
		}
	})
}
