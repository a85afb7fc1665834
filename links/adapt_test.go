package links

import (
	"math"
	"math/rand"
	"reflect"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

func countPairTrace(n int, seed int64, f func(rng *rand.Rand, x int) int) (TraceHeader, []*TraceRecord) {
	rng := rand.New(rand.NewSource(seed))
	models := []TraceModel{{Name: "src", Type: pipeline.TypeCount}, {Name: "tgt", Type: pipeline.TypeCount}}
	return makeTrace(models, n, func(int) map[string]*pipeline.Output {
		x := rng.Intn(9)
		return map[string]*pipeline.Output{"src": countOut("src", float64(x)), "tgt": countOut("tgt", float64(f(rng, x)))}
	})
}

// TestFineTuneFollowsDrift: links trained on y = x, then the target model
// drifts to y = x + 2. Fine-tuning on 50 new frames (the paper's periodic
// update) must recover the accuracy, and leave the original set untouched.
func TestFineTuneFollowsDrift(t *testing.T) {
	h, before := countPairTrace(200, 1, func(_ *rand.Rand, x int) int { return x })
	_, after := countPairTrace(250, 2, func(_ *rand.Rand, x int) int { return x + 2 })
	s := mustTrain(t, h, before, quickOptions())
	old := s.Evaluate(after[50:])
	probe := map[string]*pipeline.Output{"src": countOut("src", 3)}
	p0, _ := s.Predict("tgt", probe)

	tuned, err := s.FineTune(after[:50], TrainOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ev := tuned.Evaluate(after[50:])
	was, now := pair(t, old, "src", "tgt").Count.Accuracy, pair(t, ev, "src", "tgt").Count.Accuracy
	t.Logf("count accuracy on drifted frames: %.3f before fine-tuning, %.3f after", was, now)
	if was > 0.3 || now < 0.8 {
		t.Errorf("fine-tuning did not follow the drift: %.3f → %.3f", was, now)
	}
	p1, _ := s.Predict("tgt", probe)
	if !reflect.DeepEqual(p0.Value, p1.Value) {
		t.Error("FineTune modified the original set")
	}
	if tuned.TrainFrames != s.TrainFrames+50 {
		t.Errorf("train frames %d, want %d", tuned.TrainFrames, s.TrainFrames+50)
	}
	if _, err := s.FineTune(nil, TrainOptions{}); err == nil {
		t.Error("fine-tuning on no frames must fail")
	}
}

// TestSelectByPredictedLoss: the target follows the source for x < 5 and
// is noise above. The loss-prediction heads must rank the noisy frames
// first.
func TestSelectByPredictedLoss(t *testing.T) {
	noisy := func(rng *rand.Rand, x int) int {
		if x >= 5 {
			return rng.Intn(9)
		}
		return x
	}
	h, recs := countPairTrace(400, 3, noisy)
	s := mustTrain(t, h, recs[:300], quickOptions())
	window := recs[300:]
	sel, err := s.SelectByPredictedLoss(window, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if len(sel) != 10 {
		t.Fatalf("selected %d of 100 frames, want 10", len(sel))
	}
	hits := 0
	for _, i := range sel {
		if window[i].Outputs["src"].Value[0] >= 5 {
			hits++
		}
	}
	// 4 of 9 source values are noisy: random selection would hit ~44 %.
	t.Logf("%d of %d selected frames are in the noisy regime", hits, len(sel))
	if hits < 8 {
		t.Errorf("only %d of %d selected frames are in the noisy regime", hits, len(sel))
	}
	again, _ := s.SelectByPredictedLoss(window, 0.1)
	if !reflect.DeepEqual(sel, again) {
		t.Error("selection is not deterministic")
	}
	if _, err := s.SelectByPredictedLoss(window, 0); err == nil {
		t.Error("fraction 0 must be refused")
	}
}

// TestSelectByUncertainty: a class target that is determined by the
// source for x < 5 and random above; the links' entropy must pick the
// random regime. Regression links (MC dropout) must return a
// deterministic selection of the requested size.
func TestSelectByUncertainty(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	models := []TraceModel{{Name: "src", Type: pipeline.TypeCount}, {Name: "cls", Type: pipeline.TypeClass, Classes: motionClasses}}
	h, recs := makeTrace(models, 400, func(int) map[string]*pipeline.Output {
		x := rng.Intn(9)
		c := 0
		if x >= 5 {
			c = rng.Intn(3)
		}
		return map[string]*pipeline.Output{"src": countOut("src", float64(x)), "cls": classOut("cls", motionClasses, c)}
	})
	s := mustTrain(t, h, recs[:300], quickOptions())
	window := recs[300:]
	sel, err := s.SelectByUncertainty(window, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	for _, i := range sel {
		if window[i].Outputs["src"].Value[0] >= 5 {
			hits++
		}
	}
	t.Logf("%d of %d selected frames are in the uncertain regime", hits, len(sel))
	if len(sel) != 5 || hits < 4 {
		t.Errorf("selected %d frames, %d in the uncertain regime", len(sel), hits)
	}
	again, _ := s.SelectByUncertainty(window, 0.05)
	if !reflect.DeepEqual(sel, again) {
		t.Error("selection is not deterministic")
	}
}

func TestFedAvg(t *testing.T) {
	h, recs := countPairTrace(200, 5, func(_ *rand.Rand, x int) int { return x })
	base := mustTrain(t, h, recs[:100], quickOptions())
	// Two cameras fine-tune the global set on their own frames.
	a, err := base.FineTune(recs[100:150], TrainOptions{Epochs: 5, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := base.FineTune(recs[150:200], TrainOptions{Epochs: 5, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	avg, err := FedAvg(a, b)
	if err != nil {
		t.Fatal(err)
	}
	pa, pb, pv := a.orderedParams(), b.orderedParams(), avg.orderedParams()
	for k := range pv {
		for i := range pv[k].W {
			if want := (pa[k].W[i] + pb[k].W[i]) / 2; math.Abs(pv[k].W[i]-want) > 1e-12 {
				t.Fatalf("%s[%d] = %v, want the mean %v", pv[k].Name, i, pv[k].W[i], want)
			}
		}
	}
	if !reflect.DeepEqual(avg.Models[0].VecMean, base.Models[0].VecMean) {
		t.Error("sets with one normalisation must keep it")
	}
	ev := avg.Evaluate(recs[100:])
	if acc := pair(t, ev, "src", "tgt").Count.Accuracy; acc < 0.9 {
		t.Errorf("averaged link accuracy %.3f", acc)
	}
	// Different architectures are refused with a clear error.
	h3, recs3 := allFamiliesTrace(30, 1)
	other := mustTrain(t, h3, recs3, TrainOptions{Epochs: 1})
	_, err = FedAvg(a, other)
	wantErr(t, err, "different architecture")
	o := quickOptions()
	o.MinHidden = 8
	wider := mustTrain(t, h, recs[:100], o)
	_, err = FedAvg(a, wider)
	wantErr(t, err, "different architecture")
	_, err = FedAvg()
	wantErr(t, err, "no link sets")
}

// The loss head's view of one frame agrees with SelectByPredictedLoss's
// ranking over a window: the frame it ranks first has higher predicted
// losses than the frame it ranks last on more links than lower.
func TestPredictedLossesOfOneFrame(t *testing.T) {
	h, recs, err := ReadTrace(vtestTrace)
	if err != nil {
		t.Fatal(err)
	}
	set, err := Train(h, recs[:80], TrainOptions{Seed: 1, Epochs: 20, NoTemporal: true})
	if err != nil {
		t.Fatal(err)
	}
	window := recs[100:300]
	order, err := set.SelectByPredictedLoss(window, 1)
	if err != nil {
		t.Fatal(err)
	}
	exactOf := func(r *TraceRecord) map[string]*pipeline.Output {
		return map[string]*pipeline.Output{"motion": r.Outputs["motion"], "lines": r.Outputs["lines"]}
	}
	targets := []string{"hog_people", "fullbody", "text"}
	first, err := set.PredictedLosses(exactOf(window[order[0]]), targets)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 6 {
		t.Fatalf("losses of 2 sources × 3 targets: %v", first)
	}
	last, _ := set.PredictedLosses(exactOf(window[order[len(order)-1]]), targets)
	higher, lower := 0, 0
	for k, v := range first {
		switch {
		case v > last[k]:
			higher++
		case v < last[k]:
			lower++
		}
	}
	if higher == 0 || higher < lower {
		t.Errorf("the top-ranked frame's losses exceed the bottom one's on %d links, fall below on %d: %v vs %v", higher, lower, first, last)
	}
	if _, err := set.PredictedLosses(exactOf(window[0]), []string{"nope"}); err == nil {
		t.Error("unknown target accepted")
	}
}

// Fine-tuning on frames that give some links nothing to learn from (a
// temporal link needs an earlier frame of the same camera: a single
// profiled frame, frames chosen one by one by active sampling) tunes the
// others and keeps those links as they were.
func TestFineTuneOnFramesWithoutPredecessors(t *testing.T) {
	h, recs, err := ReadTrace(vtestTrace)
	if err != nil {
		t.Fatal(err)
	}
	set, err := Train(h, recs[:40], TrainOptions{Seed: 1, Epochs: 3})
	if err != nil {
		t.Fatal(err)
	}
	lonely := []*TraceRecord{recs[100], recs[200], recs[300]} // no two consecutive
	tuned, err := set.FineTune(lonely, TrainOptions{Seed: 1, Epochs: 3})
	if err != nil {
		t.Fatalf("fine-tune on frames without predecessors: %v", err)
	}
	before, _ := set.Link("hog_people", "fullbody")
	after, _ := tuned.Link("hog_people", "fullbody")
	if equalWeights(before, after) {
		t.Error("the pure link was not tuned")
	}
	if _, err := tuned.PredictTemporal("hog_people", recs[301].Outputs, recs[300].Outputs["hog_people"], 1); err != nil {
		t.Errorf("temporal links unusable after the fine-tune: %v", err)
	}
}

func equalWeights(a, b *Link) bool {
	pa, pb := a.params, b.params
	for i := range pa {
		for k := range pa[i].W {
			if pa[i].W[k] != pb[i].W[k] {
				return false
			}
		}
	}
	return true
}
