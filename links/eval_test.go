package links

import (
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// copyTrace copies records so that outputs can be removed from the copies.
func copyTrace(recs []*TraceRecord) []*TraceRecord {
	out := make([]*TraceRecord, len(recs))
	for i, r := range recs {
		cp := *r
		cp.Outputs = map[string]*pipeline.Output{}
		for k, v := range r.Outputs {
			cp.Outputs[k] = v
		}
		out[i] = &cp
	}
	return out
}

// A frame where none of an ensemble's sources has an output is served
// nothing in production (ErrNoSource): the evaluation scores it a miss
// (strict, count and graded 0) instead of measuring the ensemble only
// where it can answer; likewise for a pair whose source failed. Frames
// where the target itself has no output are not scored.
func TestEvaluateCountsFramesWithoutSourcesAsMisses(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	models := []TraceModel{{Name: "src", Type: pipeline.TypeCount}, {Name: "other", Type: pipeline.TypeCount}, {Name: "tgt", Type: pipeline.TypeCount}}
	h, recs := makeTrace(models, 300, func(int) map[string]*pipeline.Output {
		x := float64(rng.Intn(9))
		return map[string]*pipeline.Output{"src": countOut("src", x), "other": countOut("other", x), "tgt": countOut("tgt", x)}
	})
	s := mustTrain(t, h, recs[:200], quickOptions())

	// src fails on every other frame, other on every 4th (then both have
	// failed); tgt on frame 1 (not scored: nothing to score against).
	eval := copyTrace(recs[200:])
	for i, r := range eval {
		if i%2 == 0 {
			delete(r.Outputs, "src")
		}
		if i%4 == 0 {
			delete(r.Outputs, "other")
		}
	}
	delete(eval[1].Outputs, "tgt")
	ev := s.Evaluate(eval)

	// Reference: the same links on only the frames where they can answer.
	var withSrc, withAny []*TraceRecord
	for i, r := range eval {
		if i == 1 {
			continue
		}
		if i%2 != 0 {
			withSrc = append(withSrc, r)
		}
		if i%4 != 0 {
			withAny = append(withAny, r)
		}
	}
	ref := s.Evaluate(withSrc)
	refAny := s.Evaluate(withAny)
	scored := len(eval) - 1

	ens := func(ev *Evaluation, srcs ...string) EnsembleAccuracy {
		t.Helper()
		e, ok := ev.Ensemble("tgt", srcs)
		if !ok {
			t.Fatalf("no evaluation of tgt from %v", srcs)
		}
		return e
	}
	cases := []struct {
		name     string
		got, ref Score
		answered int
	}{
		{"ensemble {src}", ens(ev, "src").Score, ens(ref, "src").Score, len(withSrc)},
		{"ensemble {src, other}", ens(ev, "src", "other").Score, ens(refAny, "src", "other").Score, len(withAny)},
		{"pair src→tgt", pair(t, ev, "src", "tgt").Score, pair(t, ref, "src", "tgt").Score, len(withSrc)},
	}
	for _, c := range cases {
		share := float64(c.answered) / float64(scored)
		t.Logf("%s: %.3f on %d frames (%.3f where a source answers, on %d)", c.name, c.got.Accuracy, c.got.Frames, c.ref.Accuracy, c.ref.Frames)
		if c.got.Frames != scored {
			t.Errorf("%s scored on %d frames, want %d (every frame with a target output)", c.name, c.got.Frames, scored)
		}
		if c.ref.Accuracy < 0.9 {
			t.Fatalf("%s: the identity link reaches only %.3f where it can answer", c.name, c.ref.Accuracy)
		}
		if want := c.ref.Accuracy * share; math.Abs(c.got.Accuracy-want) > 1e-9 {
			t.Errorf("%s: strict %.4f, want %.4f (misses score 0)", c.name, c.got.Accuracy, want)
		}
		if want := c.ref.Count.Graded * share; math.Abs(c.got.Count.Graded-want) > 1e-9 {
			t.Errorf("%s: graded %.4f, want %.4f (misses score 0)", c.name, c.got.Count.Graded, want)
		}
	}
	// Temporal links: a frame is a sample of age 1 when the target has an
	// output there and one seq earlier (97 frames here: not the first, nor
	// frames 1 and 2). The temporal link from src scores a miss where src
	// failed; temporal ensembles always have the self-temporal member.
	o := quickOptions()
	o.NoTemporal, o.Epochs = false, 3
	st := mustTrain(t, h, recs[:200], o)
	tev := st.Evaluate(eval)
	for _, tl := range tev.Temporal {
		if tl.Age == 1 && tl.Target == "tgt" && tl.Frames != 97 {
			t.Errorf("temporal link %q→tgt at age 1 scored on %d frames, want 97", tl.Source, tl.Frames)
		}
	}
	for _, te := range tev.TemporalEnsembles {
		if te.Age == 1 && te.Target == "tgt" && te.Frames != 97 {
			t.Errorf("temporal ensemble of tgt from %v at age 1 scored on %d frames, want 97", te.Sources, te.Frames)
		}
	}

	// With both sources always failing, the ensemble is measured at 0,
	// not left unmeasured (which would let the selection fall back to
	// another estimate).
	dead := copyTrace(recs[200:])
	for _, r := range dead {
		delete(r.Outputs, "src")
		delete(r.Outputs, "other")
	}
	if e := ens(s.Evaluate(dead), "src", "other"); e.Accuracy != 0 || e.Frames != len(dead) {
		t.Errorf("sources never present: accuracy %.3f on %d frames, want 0 on %d", e.Accuracy, e.Frames, len(dead))
	}
}

// Profiled samples of a stream sampled every 10 seqs (1 fps from a 10 fps
// camera) have no pairs at ages 1, 2 and 5: reuse is also measured at
// multiples of the samples' own seq step, the ages the selection asks for.
func TestEvaluateMeasuresReuseAtTheSamplesStep(t *testing.T) {
	models := []TraceModel{{Name: "src", Type: pipeline.TypeCount}, {Name: "tgt", Type: pipeline.TypeCount}}
	// tgt alternates 0, 1, 0, 1 on the sampled frames: its output one
	// sample (10 seqs) old is always wrong, two samples (20 seqs) old
	// always right.
	h, recs := makeTrace(models, 400, func(i int) map[string]*pipeline.Output {
		v := float64((i / 10) % 2)
		return map[string]*pipeline.Output{"src": countOut("src", v), "tgt": countOut("tgt", v)}
	})
	var sampled []*TraceRecord
	for _, r := range recs {
		if (r.Seq-1)%10 == 0 {
			sampled = append(sampled, r)
		}
	}
	o := quickOptions()
	o.NoTemporal = false
	o.Epochs = 3
	s := mustTrain(t, h, sampled[:20], o)
	ev := s.Evaluate(sampled[20:])
	for _, a := range []int{10, 20, 50, 100, 300} {
		if !slices.Contains(ev.Ages, a) {
			t.Errorf("ages %v: %d not evaluated", ev.Ages, a)
		}
	}
	for age, want := range map[int]float64{10: 0, 20: 1, 30: 0, 50: 0, 100: 1} {
		b, ok := ev.Baseline("tgt", "reuse", age)
		if !ok || math.Abs(b.Accuracy-want) > 1e-9 {
			t.Errorf("reuse@%d: %.3f (measured %v), want %.3f", age, b.Accuracy, ok, want)
		}
	}
	for _, age := range []int{1, 2, 5} {
		if b, ok := ev.Baseline("tgt", "reuse", age); ok {
			t.Errorf("reuse@%d measured on %d frames: no two samples are %d seqs apart", age, b.Frames, age)
		}
	}
	// Temporal ensembles are measured at the same ages.
	var tAges []int
	for _, e := range ev.TemporalEnsembles {
		if e.Target == "tgt" && len(e.Sources) == 0 {
			tAges = append(tAges, e.Age)
		}
	}
	if !slices.Contains(tAges, 20) || slices.Contains(tAges, 1) {
		t.Errorf("self-temporal ensemble of tgt measured at ages %v, want 20 and not 1", tAges)
	}
	// Natively the configured ages alone.
	if got := s.Evaluate(recs[200:]).Ages; !slices.Equal(got, []int{1, 2, 5, 10, 30}) {
		t.Errorf("native ages %v", got)
	}
}

// A temporal prediction's Confidence is the measurement at the oldest
// measured age not above its age (the youngest measured when none is):
// ages evaluated without a pair of records (below the samples' seq step)
// measured nothing.
func TestTemporalConfidenceReadsMeasuredAges(t *testing.T) {
	models := []TraceModel{{Name: "src", Type: pipeline.TypeCount}, {Name: "tgt", Type: pipeline.TypeCount}}
	h, recs := makeTrace(models, 400, func(i int) map[string]*pipeline.Output {
		v := float64((i / 20) % 2)
		return map[string]*pipeline.Output{"src": countOut("src", v), "tgt": countOut("tgt", v)}
	})
	var sampled []*TraceRecord
	for _, r := range recs {
		if (r.Seq-1)%10 == 0 {
			sampled = append(sampled, r)
		}
	}
	o := quickOptions()
	o.NoTemporal, o.Epochs = false, 3
	s := mustTrain(t, h, sampled[:20], o)
	ev := s.Evaluate(sampled[20:])
	want := -1.0
	for _, e := range ev.TemporalEnsembles {
		if e.Target == "tgt" && len(e.Sources) == 1 && e.Age == 10 {
			want = e.Accuracy
		}
	}
	if want <= 0 {
		t.Fatalf("temporal ensemble of tgt from src at age 10: %v", want)
	}
	last := sampled[25].Outputs["tgt"]
	for _, age := range []float64{5, 10, 15} {
		out, err := s.PredictTemporal("tgt", sampled[26].Outputs, last, age)
		if err != nil {
			t.Fatal(err)
		}
		if out.Confidence != want {
			t.Errorf("age %v: confidence %.3f, want the age-10 measurement %.3f", age, out.Confidence, want)
		}
	}
}
