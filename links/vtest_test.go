package links

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// vtestTrace is a real trace: vtest.avi (795 frames, 10 fps) through the
// 8 models of configs/ (see testdata/README.md).
const vtestTrace = "testdata/vtest.trace.gz"

// vtestPeople trains the person detectors and the motion classifier of
// the real trace on its first 10 % (published defaults) and evaluates on
// the rest, once for all tests. Pure links do not depend on which other
// models are in the set, so these links are the ones `mlink links train`
// trains on the whole trace.
type vtestResult struct {
	set *Set
	ev  *Evaluation
}

var vtestPeople = sync.OnceValues(func() (vtestResult, error) {
	h, recs, err := ReadTrace(vtestTrace)
	if err != nil {
		return vtestResult{}, err
	}
	keep := []string{"hog_people", "fullbody", "upperbody", "motion"}
	var models []TraceModel
	for _, m := range h.Models {
		if slices.Contains(keep, m.Name) {
			models = append(models, m)
		}
	}
	if len(models) != len(keep) {
		return vtestResult{}, fmt.Errorf("trace has %d of the models %v", len(models), keep)
	}
	h.Models = models
	train, eval := SplitByTime(recs, 0.1)
	s, err := Train(h, train, TrainOptions{Seed: 1})
	if err != nil {
		return vtestResult{}, err
	}
	return vtestResult{s, s.Evaluate(eval)}, nil
})

func vtest(t *testing.T) (*Set, *Evaluation) {
	t.Helper()
	r, err := vtestPeople()
	if err != nil {
		t.Fatal(err)
	}
	return r.set, r.ev
}

func TestVtestAccuracyMatrix(t *testing.T) {
	s, ev := vtest(t)
	if ev.Frames != 715 || s.TrainFrames != 80 {
		t.Fatalf("trained on %d, evaluated on %d frames; want 80 and 715", s.TrainFrames, ev.Frames)
	}
	// Frame 760 of the trace has no hog_people output: links to it are
	// scored on 714 frames; links from it on all 715, the frame where it
	// failed scoring a miss (a failed source gives its targets nothing).
	want := func(p PairAccuracy) int {
		if p.Target == "hog_people" {
			return 714
		}
		return 715
	}
	if len(ev.Pairs) != 12 {
		t.Fatalf("%d pairs evaluated, want every ordered pair of 4 models (12)", len(ev.Pairs))
	}
	for _, p := range ev.Pairs {
		if p.Frames != want(p) || p.Accuracy < 0 || p.Accuracy > 1 {
			t.Errorf("%s→%s: accuracy %v on %d frames", p.Source, p.Target, p.Accuracy, p.Frames)
		}
		t.Logf("%-10s → %-10s %s strict %.3f%s", p.Source, p.Target, p.Kind, p.Accuracy, countDesc(p.Score))
		if s.PairAccuracy(p.Source, p.Target) != p.Accuracy {
			t.Errorf("PairAccuracy(%s, %s) disagrees with the evaluation", p.Source, p.Target)
		}
	}
}

// TestVtestPersonCountLinksBeatConstant: the links from HOG to the Haar
// body detectors predict their person counts better than the best
// constant (the training frames' most frequent count), by strict count
// accuracy and by MAE. The strict p(·) of a detector is the matched IoU of
// its boxes, which no cross-model link predicts well here (positions of
// people seen by different detectors hardly agree): counts are what these
// links carry.
//
// The reverse direction does not beat the constant on this trace
// (fullbody→hog_people: count accuracy 0.16 vs 0.23, MAE 1.65 vs 1.24): the
// first 10 % of vtest has fewer people for HOG than the rest, so a link
// fitted there is biased low, while the training frames' most frequent
// count happens to match the rest. Logged, not asserted.
func TestVtestPersonCountLinksBeatConstant(t *testing.T) {
	_, ev := vtest(t)
	for _, c := range [][2]string{{"hog_people", "fullbody"}, {"hog_people", "upperbody"}, {"fullbody", "hog_people"}, {"upperbody", "hog_people"}, {"fullbody", "upperbody"}, {"upperbody", "fullbody"}} {
		p := pair(t, ev, c[0], c[1])
		base := constant(t, ev, c[1])
		t.Logf("%-10s → %-10s count accuracy %.3f (constant %.3f), graded %.3f (%.3f), MAE %.2f (%.2f)",
			c[0], c[1], p.Count.Accuracy, base.Count.Accuracy, p.Count.Graded, base.Count.Graded, p.Count.MAE, base.Count.MAE)
		if c[0] != "hog_people" {
			continue
		}
		if p.Count.Accuracy <= base.Count.Accuracy || p.Count.MAE >= base.Count.MAE {
			t.Errorf("%s → %s does not beat the constant baseline: count accuracy %.3f vs %.3f, MAE %.2f vs %.2f",
				c[0], c[1], p.Count.Accuracy, base.Count.Accuracy, p.Count.MAE, base.Count.MAE)
		}
	}
}

// TestVtestEnsembleOfTwo checks two-source ensembles of the person
// detectors on the held-out frames. A weighted mean of counts is never
// further from the truth than its worse member (MAE is convex), which is
// asserted for every pair. "At least as good as the best single source"
// does not hold in general on this trace, and the test documents why
// instead of asserting it: the weights are fitted on the training frames
// (as in the paper), where the links that fit best are not the ones that
// generalise best to the rest of the video (measured: fullbody from
// {hog_people, upperbody} scores count accuracy 0.278 against 0.298 for
// hog_people alone, because the weights favour upperbody). It holds for
// hog_people from {fullbody, upperbody}, asserted with a 0.01 tolerance.
func TestVtestEnsembleOfTwo(t *testing.T) {
	s, ev := vtest(t)
	people := []string{"hog_people", "fullbody", "upperbody"}
	for _, target := range people {
		var srcs []string
		for _, p := range people {
			if p != target {
				srcs = append(srcs, p)
			}
		}
		e, ok := ev.Ensemble(target, srcs)
		if !ok {
			t.Fatalf("no evaluation of %s from %v", target, srcs)
		}
		a, b := pair(t, ev, srcs[0], target), pair(t, ev, srcs[1], target)
		t.Logf("%-10s from %v: count accuracy %.3f, MAE %.2f; single sources %.3f / %.3f, MAE %.2f / %.2f",
			target, srcs, e.Count.Accuracy, e.Count.MAE, a.Count.Accuracy, b.Count.Accuracy, a.Count.MAE, b.Count.MAE)
		if e.Count.MAE > max(a.Count.MAE, b.Count.MAE)+1e-9 {
			t.Errorf("%s: the ensemble's MAE %.3f exceeds both members'", target, e.Count.MAE)
		}
		if got := s.EnsembleAccuracy(target, append(srcs, "ghost")); got != e.Accuracy {
			t.Errorf("EnsembleAccuracy(%s, %v) = %v, want %v", target, srcs, got, e.Accuracy)
		}
		if got := ev.EnsembleAccuracy(target, srcs); got != e.Accuracy {
			t.Errorf("Evaluation.EnsembleAccuracy(%s, %v) = %v, want %v", target, srcs, got, e.Accuracy)
		}
		if target == "hog_people" {
			best := max(a.Count.Accuracy, b.Count.Accuracy)
			if e.Count.Accuracy < best-0.01 {
				t.Errorf("hog_people: the ensemble (%.3f) is worse than its best source (%.3f)", e.Count.Accuracy, best)
			}
		}
	}
	if s.EnsembleAccuracy("upperbody", []string{"upperbody"}) != 1 {
		t.Error("an executed target must count 1")
	}
	if s.EnsembleAccuracy("upperbody", nil) != 0 {
		t.Error("a target without sources must count 0")
	}
}

// TestVtestTemporalLinks reports temporal links apart from pure ones. With
// the target's own output one frame old they are far better than the pure
// links and than the constant. They do not beat plain reuse of that
// output on every target (logged with it): trained with MSE on 80 frames,
// their counts shrink towards the training mean, which costs exact
// matches, and motion's training frames hold only "none" and "low" while
// "medium" is 39 % of the rest, a class no learned link can predict. The
// evaluation reports the reuse baseline beside them so the scheduler can
// pick the better evidence.
func TestVtestTemporalLinks(t *testing.T) {
	_, ev := vtest(t)
	for _, target := range []string{"hog_people", "fullbody", "upperbody", "motion"} {
		var self, all EnsembleAccuracy
		for _, e := range ev.TemporalEnsembles {
			if e.Target == target && e.Age == 1 {
				switch len(e.Sources) {
				case 0:
					self = e
				case 3:
					all = e
				}
			}
		}
		reuse, _ := ev.Baseline(target, "reuse", 1)
		base := constant(t, ev, target)
		pure, ok := ev.Ensemble(target, all.Sources)
		if self.Frames == 0 || all.Frames == 0 || !ok {
			t.Fatalf("%s: temporal ensembles not evaluated", target)
		}
		t.Logf("%-10s age 1: self-temporal %.3f%s, temporal ensemble %.3f%s, reuse %.3f%s, pure ensemble %.3f, constant %.3f",
			target, self.Accuracy, countDesc(self.Score), all.Accuracy, countDesc(all.Score), reuse.Accuracy, countDesc(reuse), pure.Accuracy, base.Accuracy)
		if all.Accuracy <= pure.Accuracy+0.1 || self.Accuracy <= pure.Accuracy+0.1 {
			t.Errorf("%s: temporal links not clearly better than pure links", target)
		}
		if self.Accuracy <= base.Accuracy || (self.Count != nil && self.Count.Accuracy <= base.Count.Accuracy) {
			t.Errorf("%s: the self-temporal link does not beat the constant", target)
		}
	}
}
