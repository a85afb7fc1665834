package scheduler

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

// evidenceLearner's links measure what it is given, whatever the frames.
type evidenceLearner struct{ ev SetEvidence }

func (l evidenceLearner) Train([]*links.TraceRecord) (Learned, error) {
	return testLearned{p: nopPredictor{}, measure: func() SetEvidence { return l.ev }}, nil
}

// walkerBox is a person walking right at 0.002 of the frame width per seq:
// a box 0.02 wide, so reused 4 seqs later it overlaps its true place by
// less than half.
func walkerBox(seq uint64) pipeline.Box {
	x := float32(0.1 + 0.002*float64(seq))
	return pipeline.Box{X1: x, Y1: 0.4, X2: x + 0.02, Y2: 0.5, Score: 0.9, Class: "person"}
}

// walkerResult is the result of plan p on the walker's frame seq: every
// model it executed sees the walker.
func walkerResult(p pipeline.Plan, seq uint64) *pipeline.Result {
	res := &pipeline.Result{Camera: p.Camera, Seq: p.Seq, Plan: p, Outputs: map[string]*pipeline.Output{}}
	for _, m := range p.Exact {
		res.Outputs[m] = &pipeline.Output{Model: m, Seq: p.Seq, Source: pipeline.SourceExact, Type: pipeline.TypeBoxes,
			Boxes: []pipeline.Box{walkerBox(seq)}, Value: []float64{1}}
	}
	return res
}

// wrongMotionEvidence is what a few profiled frames might have measured of
// hog: its reuse decaying slowly and the delta link from nano poor — both
// wrong for a scene where nano sees the same walker hog does.
func wrongMotionEvidence() LinkEvidence {
	var bs []links.BaselineAccuracy
	for _, p := range []struct {
		age           int
		reuse, follow float64
	}{{1, 0.95, 0.3}, {2, 0.9, 0.3}, {5, 0.75, 0.3}, {10, 0.5, 0.3}} {
		score := func(acc float64) links.Score { return links.Score{Accuracy: acc, Frames: 12} }
		bs = append(bs,
			links.BaselineAccuracy{Target: "hog", Baseline: links.BaselineReuse, Age: p.age, Score: score(p.reuse)},
			links.BaselineAccuracy{Target: "nano", Baseline: links.BaselineReuse, Age: p.age, Score: score(p.reuse)},
			links.BaselineAccuracy{Target: "hog", Baseline: links.BaselineFollow, Source: "nano", Gain: 1, Age: p.age, Score: score(p.follow)})
	}
	return NewLinkEvidence(&links.Evaluation{Baselines: bs})
}

// The turns of a rotating detector measure how each way of serving it
// would have done: here reuse falls apart within a period while the delta
// link from nano is exact. The corrected evidence says so at the served
// ages, and the controller, selecting again on it, serves hog by the delta
// link from then on — which the profiled evidence alone never would.
func TestTurnsCorrectAServingTheProfiledEvidenceGotWrong(t *testing.T) {
	models := []string{"hog", "nano"}
	costs := NewCostModel(map[string]Cost{"hog": {MS: 100}, "nano": {MS: 10}})
	run := func(frames int, turns bool) *Controller {
		// nano on every frame and hog on every 4th fit: 10 + 100/4.
		ctrl, err := NewController(ControllerConfig{Policy: PolicyHybrid, Models: models, Budget: Budget{MS: 35.01},
			Period: time.Hour, ProfileShare: 1e-6, BootstrapFrames: 4, HoldOut: 0.25, Synchronous: true, HealthTimeout: time.Hour,
			TurnEvidence: turns},
			evidenceLearner{wrongMotionEvidence()}, costs, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Unix(1000, 0)
		for i := range frames {
			seq := uint64(1 + i)
			p := ctrl.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(i) * 100 * time.Millisecond)})
			ctrl.ObserveResult(walkerResult(p, seq))
		}
		return ctrl
	}

	// Before the turns: the profiled evidence's choice, hog reused.
	sel := run(8, true).Selection()
	if sel == nil || sel.Every["hog"] != 4 || !contains(sel.Reused, "hog") || sel.Follow["hog"].Source != "" {
		t.Fatalf("selection on the profiled evidence: %v (follow %v), want hog every 4th frame, reused", sel, sel.Follow)
	}

	// Without turn evidence (the default) the selection stays.
	if sel := run(200, false).Selection(); sel.Follow["hog"].Source != "" || sel.Reason != "bootstrap" {
		t.Errorf("without turn evidence: %v (follow %+v, reason %q), want the bootstrap's selection", sel, sel.Follow["hog"], sel.Reason)
	}
	ctrl := run(200, true)
	sel = ctrl.Selection()
	if f := sel.Follow["hog"]; f.Source != "nano" || sel.Every["hog"] != 4 || !strings.HasPrefix(sel.Reason, "turns") {
		t.Fatalf("after 48 turns: %v (follow %+v, reason %q), want hog every 4th frame moved along nano's motion", sel, f, sel.Reason)
	}
	// What the turns measured, at the served ages: the delta link near
	// exact, reuse well below its profiled values.
	ev := ctrl.turns.correct(wrongMotionEvidence())
	motion := ev.(MotionEvidence)
	link := pipeline.FollowLink{Source: "nano", Gain: 1}
	for age := 1; age <= 4; age++ {
		follow, ok := motion.FollowAccuracy("hog", link, age)
		reuse := ev.(ReuseEvidence).ReuseAccuracy("hog", age)
		if !ok || follow < 0.8 || reuse >= follow {
			t.Errorf("age %d: corrected follow %.3f (%v), reuse %.3f; want the delta link above 0.8 and above reuse", age, follow, ok, reuse)
		}
	}
	// A model no turn measured takes the measured ones' factor: the
	// profiled reuse curves proved optimistic, nano's is marked down too.
	if got := ev.(ReuseEvidence).ReuseAccuracy("nano", 2); got >= 0.9 || got < 0.5 {
		t.Errorf("nano's reuse at age 2: %.3f, want below its profiled 0.9 by reuse's measured factor", got)
	}
}

// The correction scales a curve's error: at the measured age the value is
// the pooled one, younger ages keep the curve's shape, curves no turn
// measured take the measured factor, and nothing measured only by turns
// (no profiled curve) appears.
func TestTurnCorrectionScalesTheProfiledError(t *testing.T) {
	base := NewLinkEvidence(&links.Evaluation{Baselines: []links.BaselineAccuracy{
		{Target: "m", Baseline: links.BaselineReuse, Age: 1, Score: links.Score{Accuracy: 0.98}},
		{Target: "m", Baseline: links.BaselineReuse, Age: 4, Score: links.Score{Accuracy: 0.9}},
		{Target: "other", Baseline: links.BaselineReuse, Age: 4, Score: links.Score{Accuracy: 0.8}},
	}})
	te := newTurnEvidence()
	te.mu.Lock()
	for range turnPrior { // as many turns as the prior weighs: half way
		te.add(servingKey{kind: servedByReuse, follow: followKey{target: "m"}}, 4, 0.5)
	}
	for range turnMinPoint {
		te.add(servingKey{kind: servedByTrack, follow: followKey{target: "m"}}, 4, 1)
	}
	te.add(servingKey{kind: servedByReuse, follow: followKey{target: "m"}}, 2, 0) // one turn: noise
	te.mu.Unlock()
	ev := te.correct(base)
	reuse := ev.(ReuseEvidence)
	pooled := 0.5*0.9 + 0.5*0.5
	if got := reuse.ReuseAccuracy("m", 4); math.Abs(got-pooled) > 1e-9 {
		t.Errorf("age 4: %.4f, want the pooled %.4f", got, pooled)
	}
	factor := (1 - pooled + errFloor) / (1 - 0.9 + errFloor)
	want1 := 1 - (1-0.98+errFloor)*factor + errFloor
	if got := reuse.ReuseAccuracy("m", 1); math.Abs(got-want1) > 1e-9 || got <= pooled || got > 0.98 {
		t.Errorf("age 1: %.4f, want %.4f (the error scaled by %.2f)", got, want1, factor)
	}
	// A target no turn measured has its error scaled by the measured
	// factor of its kind of serving.
	if got, want := reuse.ReuseAccuracy("other", 4), 1-(1-0.8+errFloor)*factor+errFloor; math.Abs(got-want) > 1e-9 {
		t.Errorf("unmeasured target at age 4: %.4f, want %.4f", got, want)
	}
	if _, ok := ev.(MotionEvidence).TrackAccuracy("m", 4); ok {
		t.Error("tracker measured only on turns: want it unmeasured, as profiled")
	}
	if again := te.correct(ev); again.(ReuseEvidence).ReuseAccuracy("m", 4) != reuse.ReuseAccuracy("m", 4) {
		t.Error("correcting corrected evidence corrected it twice")
	}
}

// A live stream's odd ages (frames dropped, reconnects) do not grow the
// turns' memory: the least measured ages make way, the well measured stay.
func TestTurnEvidenceKeepsBoundedAges(t *testing.T) {
	te := newTurnEvidence()
	k := servingKey{kind: servedByReuse, follow: followKey{target: "m"}}
	te.mu.Lock()
	defer te.mu.Unlock()
	for range 10 {
		te.add(k, 4, 0.5)
	}
	for age := 100; age < 100+10*maxTurnAges; age++ {
		te.add(k, age, 0.1)
	}
	if n := len(te.points[k]); n > maxTurnAges {
		t.Errorf("%d ages kept, want at most %d", n, maxTurnAges)
	}
	if p := te.points[k][4]; p == nil || p.n != 10 {
		t.Errorf("the well measured age 4 was evicted: %+v", p)
	}
}

// Live, results arrive on their own goroutine while frames are planned and
// links train in the background: turn re-selections run beside the
// trainer's (go test -race checks the sharing).
func TestTurnEvidenceLiveIsSafeForConcurrentUse(t *testing.T) {
	ctrl, err := NewController(ControllerConfig{Policy: PolicyHybrid, Models: []string{"hog", "nano"}, Budget: Budget{MS: 35.01},
		Period: 2 * time.Second, ProfileShare: 0.05, BootstrapFrames: 4, HoldOut: 0.25, HealthTimeout: time.Hour, TurnEvidence: true},
		evidenceLearner{wrongMotionEvidence()}, NewCostModel(map[string]Cost{"hog": {MS: 100}, "nano": {MS: 10}}), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	plans := make(chan pipeline.Plan, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range plans {
			ctrl.ObserveResult(walkerResult(p, p.Seq%300))
		}
	}()
	t0 := time.Unix(1000, 0)
	for i := range 600 {
		seq := uint64(1 + i)
		plans <- ctrl.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(i) * 100 * time.Millisecond)})
	}
	close(plans)
	<-done
	deadline := time.Now().Add(10 * time.Second)
	// Re-profiles select on the corrected evidence too: whichever made it,
	// the selection serves hog as its turns measure best.
	for ctrl.Selection() == nil || ctrl.Selection().Follow["hog"].Source != "nano" {
		if time.Now().After(deadline) {
			t.Fatalf("selection %v: want hog moved along nano's motion, as the turns measure", ctrl.Selection())
		}
		// A last batch of turns, now that the background training is done.
		for i := range 60 {
			seq := uint64(601 + i)
			p := ctrl.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(600+i) * 100 * time.Millisecond)})
			ctrl.ObserveResult(walkerResult(p, seq%300))
		}
		t0 = t0.Add(6 * time.Second)
	}
}
