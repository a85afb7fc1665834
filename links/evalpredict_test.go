package links

import (
	"math"
	"reflect"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// TestEvaluationScoresPredict: the accuracies Evaluate reports are those
// of the outputs production's Predict serves. Evaluate runs its own,
// batched path over the held-out frames (evalTarget); the scheduler selects
// on its numbers, so they must be Predict's: for every ordered pair of the
// vtest links, the pair accuracy equals the mean Accuracy of
// Predict(target, {source: exact}) on the same frames (a frame whose
// source failed scores 0, as production serves nothing there), and so
// does each target's ensemble over all its sources.
func TestEvaluationScoresPredict(t *testing.T) {
	s, ev := vtest(t)
	_, recs, err := ReadTrace(vtestTrace)
	if err != nil {
		t.Fatal(err)
	}
	_, held := SplitByTime(recs, 0.1)
	if len(held) != ev.Frames {
		t.Fatalf("%d held-out frames, the evaluation has %d", len(held), ev.Frames)
	}
	// score is the mean accuracy of Predict(target, exact ∩ sources) over
	// the frames with an exact target output.
	score := func(target string, sources []string) (float64, int) {
		tm, _ := s.Model(target)
		sum, n := 0.0, 0
		for _, r := range held {
			want := r.Outputs[target]
			if !usable(want) {
				continue
			}
			n++
			exact := map[string]*pipeline.Output{}
			for _, src := range sources {
				if o, ok := r.Outputs[src]; ok {
					exact[src] = o
				}
			}
			out, err := s.Predict(target, exact)
			if err != nil {
				continue // nothing served: 0
			}
			sum += Accuracy(tm.Type, &out, want)
		}
		return sum / float64(max(n, 1)), n
	}
	pairs := 0
	for _, p := range ev.Pairs {
		got, n := score(p.Target, []string{p.Source})
		t.Logf("%-10s → %-10s Evaluate %.12f on %d, Predict %.12f on %d", p.Source, p.Target, p.Accuracy, p.Frames, got, n)
		if n != p.Frames || math.Abs(got-p.Accuracy) > 1e-9 {
			t.Errorf("%s → %s: Evaluate reports %.12f on %d frames, Predict's outputs score %.12f on %d",
				p.Source, p.Target, p.Accuracy, p.Frames, got, n)
		}
		pairs++
	}
	if pairs != 12 {
		t.Fatalf("%d pairs compared, want 12", pairs)
	}
	for _, m := range s.Models {
		var srcs []string
		for _, o := range s.Models {
			if o.Name != m.Name {
				srcs = append(srcs, o.Name)
			}
		}
		en, ok := ev.Ensemble(m.Name, srcs)
		if !ok {
			t.Errorf("no ensemble over %v for %s", srcs, m.Name)
			continue
		}
		got, n := score(m.Name, srcs)
		t.Logf("%v → %-10s Evaluate %.12f on %d, Predict %.12f on %d", srcs, m.Name, en.Accuracy, en.Frames, got, n)
		if n != en.Frames || math.Abs(got-en.Accuracy) > 1e-9 {
			t.Errorf("%v → %s: Evaluate reports %.12f on %d frames, Predict's outputs score %.12f on %d",
				srcs, m.Name, en.Accuracy, en.Frames, got, n)
		}
	}
}

// TestPredictWithLossesIsPredictWithPredictedLosses: the live predictor's
// PredictWithLosses serves Predict's output, and the losses riding with it
// are those PredictedLosses computes by running the links again, so active
// sampling scores a frame the same either way.
func TestPredictWithLossesIsPredictWithPredictedLosses(t *testing.T) {
	s, _ := vtest(t)
	_, recs, err := ReadTrace(vtestTrace)
	if err != nil {
		t.Fatal(err)
	}
	_, held := SplitByTime(recs, 0.1)
	compared := 0
	for i, r := range held {
		if i%7 != 0 {
			continue
		}
		for _, target := range s.Models {
			exact := map[string]*pipeline.Output{}
			for name, o := range r.Outputs {
				if name != target.Name {
					exact[name] = o
				}
			}
			want, err := s.Predict(target.Name, exact)
			got, err2 := s.PredictWithLosses(target.Name, exact)
			if (err == nil) != (err2 == nil) {
				t.Fatalf("%s/%d %s: Predict %v, PredictWithLosses %v", r.Camera, r.Seq, target.Name, err, err2)
			}
			if err != nil {
				continue
			}
			losses := got.LinkLosses
			got.LinkLosses = nil
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s/%d %s: PredictWithLosses %+v, Predict %+v", r.Camera, r.Seq, target.Name, got, want)
			}
			again, err := s.PredictedLosses(exact, []string{target.Name})
			if err != nil {
				t.Fatal(err)
			}
			if len(losses) == 0 || !reflect.DeepEqual(losses, again) {
				t.Fatalf("%s/%d %s: losses with the output %v, run again %v", r.Camera, r.Seq, target.Name, losses, again)
			}
			compared++
		}
	}
	if compared < 100 {
		t.Fatalf("only %d predictions compared", compared)
	}
}
