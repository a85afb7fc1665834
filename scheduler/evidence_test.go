package scheduler

import (
	"math"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

// Beyond the oldest measured age nothing was measured: the value falls
// from the oldest's to the constant guess by twice that age, is never
// above the oldest's, and a model only run on profiling frames (neverAge)
// is worth no more than the constant.
func TestAtAgeBeyondTheOldestMeasuredAge(t *testing.T) {
	type pt = agePoint
	cases := []struct {
		name     string
		pts      []agePoint
		constant float64
		hasConst bool
		want     map[int]float64
	}{
		{"falls to the constant by 2×", []pt{{1, 0.9}, {5, 0.5}}, 0.1, true,
			map[int]float64{5: 0.5, 6: 0.42, 8: 0.26, 10: 0.1, 50: 0.1, neverAge: 0.1}},
		{"a 10-frame window's age 5 does not stand in for age 50", []pt{{1, 0.95}, {2, 0.9}, {5, 0.8}}, 0.3, true,
			map[int]float64{7: 0.6, 10: 0.3, 50: 0.3}},
		{"the constant above reuse: the oldest value holds", []pt{{1, 0.3}, {10, 0.2}}, 0.4, true,
			map[int]float64{10: 0.2, 15: 0.2, 20: 0.2, neverAge: 0.2}},
		{"no constant measured: falls to 0", []pt{{10, 0.8}}, 0, false,
			map[int]float64{1: 0.8, 10: 0.8, 15: 0.4, 20: 0, neverAge: 0}},
		{"interpolation and younger ages unchanged", []pt{{10, 0.8}, {20, 0.6}}, 0.2, true,
			map[int]float64{1: 0.8, 10: 0.8, 15: 0.7, 20: 0.6, 30: 0.4, 40: 0.2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			curves := &ageCurves{constant: map[string]float64{}}
			if c.hasConst {
				curves.constant["m"] = c.constant
			}
			for age, want := range c.want {
				if got := curves.atAge("m", c.pts, age); math.Abs(got-want) > 1e-9 {
					t.Errorf("age %d: %.4f, want %.4f", age, got, want)
				}
			}
			// Beyond the oldest: never increasing, never above its value.
			last := c.pts[len(c.pts)-1]
			prev := last.acc
			for age := last.age; age <= 5*last.age; age++ {
				got := curves.atAge("m", c.pts, age)
				if got > prev+1e-12 || got > last.acc+1e-12 {
					t.Fatalf("age %d: %.4f after %.4f (oldest measured %.4f)", age, got, prev, last.acc)
				}
				prev = got
			}
			if c.hasConst && curves.atAge("m", c.pts, neverAge) > c.constant+1e-12 {
				t.Errorf("never run: above the constant %.3f", c.constant)
			}
		})
	}
	// Temporal ensembles extrapolate the same way, to the target's constant.
	ev := NewLinkEvidence(&links.Evaluation{
		TemporalEnsembles: []links.EnsembleAccuracy{
			{Target: "m", Sources: []string{"a"}, Age: 1, Score: links.Score{Accuracy: 0.9, Frames: 10}},
			{Target: "m", Sources: []string{"a"}, Age: 5, Score: links.Score{Accuracy: 0.6, Frames: 10}},
		},
		Baselines: []links.BaselineAccuracy{{Target: "m", Baseline: "constant", Score: links.Score{Accuracy: 0.2, Frames: 10}}},
	})
	for age, want := range map[int]float64{5: 0.6, 8: 0.36, 10: 0.2, neverAge: 0.2} {
		if got, ok := ev.TemporalAccuracy("m", []string{"a"}, age); !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("temporal at age %d: %.4f %v, want %.4f", age, got, ok, want)
		}
	}
}

// sampledTrace is a 10 fps camera sampled at 1 fps (seqs 1, 11, 21, …):
// tgt alternates 0, 1 on the sampled frames, so its output one sampled
// frame (10 seqs) old is always wrong and two frames (20 seqs) old right.
func sampledTrace(n int) (links.TraceHeader, []*links.TraceRecord) {
	h := links.TraceHeader{Format: "mlink-trace", Version: links.TraceVersion, FPS: 10, Cameras: []string{"cam"},
		Models: []links.TraceModel{{Name: "src", Type: pipeline.TypeCount}, {Name: "tgt", Type: pipeline.TypeCount}}}
	t0 := time.Unix(1000, 0)
	recs := make([]*links.TraceRecord, n)
	for j := range recs {
		v := float64(j % 2)
		out := func(m string) *pipeline.Output {
			return &pipeline.Output{Model: m, Kind: pipeline.KindVector, Type: pipeline.TypeCount, Value: []float64{v}, Source: pipeline.SourceExact}
		}
		recs[j] = &links.TraceRecord{Camera: "cam", Seq: uint64(10*j + 1), Time: t0.Add(time.Duration(j) * time.Second),
			Outputs: map[string]*pipeline.Output{"src": out("src"), "tgt": out("tgt")}}
	}
	return h, recs
}

// The selection asks for reuse at ages in frames of the stream it plans;
// the evidence is measured in seqs. On a stream sampled every 10 seqs,
// frame age 1 is the 10-seq measurement and age 2 the 20-seq one.
func TestStrideEvidenceAsksTheSeqAgesOfASampledStream(t *testing.T) {
	h, recs := sampledTrace(40)
	set, err := links.Train(h, recs[:20], links.TrainOptions{Epochs: 3, Seed: 1, Dropout: -1})
	if err != nil {
		t.Fatal(err)
	}
	ev := set.Evaluate(recs[20:])
	base := NewLinkEvidence(ev)
	sev := AtStride(base, 10)
	for frames, seqs := range map[int]int{1: 10, 2: 20, 3: 30} {
		b, ok := ev.Baseline("tgt", "reuse", seqs)
		if !ok {
			t.Fatalf("reuse@%d seqs not measured (ages %v)", seqs, ev.Ages)
		}
		if got := sev.ReuseAccuracy("tgt", frames); math.Abs(got-b.Accuracy) > 1e-9 {
			t.Errorf("reuse at %d frames: %.3f, want the %d-seq measurement %.3f", frames, got, seqs, b.Accuracy)
		}
		for _, e := range ev.TemporalEnsembles {
			if e.Target == "tgt" && len(e.Sources) == 1 && e.Age == seqs {
				if got, ok := sev.TemporalAccuracy("tgt", []string{"src"}, frames); !ok || math.Abs(got-e.Accuracy) > 1e-9 {
					t.Errorf("temporal at %d frames: %.3f %v, want the %d-seq measurement %.3f", frames, got, ok, seqs, e.Accuracy)
				}
			}
		}
	}
	if got := sev.ReuseAccuracy("tgt", 2); got != 1 {
		t.Errorf("reuse two sampled frames old: %.3f, want 1", got)
	}
	// Ages pass unchanged at the camera's own rate; pair and set
	// accuracies do not depend on age.
	if AtStride(base, 1).ReuseAccuracy("tgt", 20) != base.ReuseAccuracy("tgt", 20) {
		t.Error("step 1 changed an age")
	}
	if a, _ := sev.SetAccuracy("tgt", []string{"src"}); a != ev.EnsembleAccuracy("tgt", []string{"src"}) {
		t.Error("set accuracy changed")
	}
	// Evidence without reuse or temporal measurements claims none.
	if got, ok := AtStride(setMatrix{}, 10).TemporalAccuracy("tgt", []string{"src"}, 1); ok || got != 0 {
		t.Errorf("temporal from evidence without it: %v %v", got, ok)
	}
}

func TestStreamSteps(t *testing.T) {
	var s streamSteps
	if s.step() != 1 {
		t.Fatalf("step before any frame: %v", s.step())
	}
	seq := uint64(5)
	for i := range 20 {
		seq += 10
		if i == 7 {
			seq += 10 // a frame dropped
		}
		s.observe("a", seq)
	}
	s.observe("a", 3) // restarted: no difference from the old seqs
	s.observe("a", 13)
	if got := s.step(); got != 10 {
		t.Errorf("step %v, want 10", got)
	}
	// Old differences leave the window.
	for seq := uint64(14); seq < 14+2*stepWindow; seq++ {
		s.observe("a", seq)
	}
	if got := s.step(); got != 1 {
		t.Errorf("step after a native stretch %v, want 1", got)
	}
}

// The controller measures its streams' step and asks the evidence at it:
// on a stream sampled every 10 seqs slow's output one frame old is 10
// seqs old, which the evidence measures worthless, so slow's rotation is
// served by its links, not by reuse as on the native stream.
func TestControllerHybridAsksEvidenceAtTheStreamStep(t *testing.T) {
	models := []string{"slow", "fast"}
	ev := reuseMatrix{
		matrix: matrix{"fast": {"slow": 0.25}, "slow": {"fast": 0.5}},
		// by seq age: 0.8 one seq old, 0 from 5 seqs.
		reuse: map[string]func(int) float64{"slow": decay(0.8, 0.2, 0), "fast": decay(0.95, 0.01, 0.9)},
	}
	for _, c := range []struct {
		step     uint64
		reused   bool
		accuracy float64
	}{
		{1, true, (1 + 0.8) / 2},
		{10, false, (1 + 0.25) / 2},
	} {
		// The budget leaves room for the (tiny) profiling share it reserves.
		ctrl, err := NewController(ControllerConfig{Policy: "mlink-hybrid", Models: models, Budget: Budget{MS: 60.01},
			Period: time.Hour, ProfileShare: 1e-6, BootstrapFrames: 4, HoldOut: 0.25, Synchronous: true,
			HealthTimeout: time.Hour},
			fixedLearner{ev}, NewCostModel(map[string]Cost{"slow": {MS: 100}, "fast": {MS: 10}}), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Unix(1000, 0)
		for i := range uint64(8) {
			seq := 1 + i*c.step
			p := ctrl.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(i) * time.Second)})
			res := &pipeline.Result{Camera: "cam", Seq: seq, Plan: p, Outputs: map[string]*pipeline.Output{}}
			for _, m := range p.Exact {
				res.Outputs[m] = &pipeline.Output{Model: m, Source: pipeline.SourceExact, Type: pipeline.TypeCount, Value: []float64{1}}
			}
			ctrl.ObserveResult(res)
		}
		sel := ctrl.Selection()
		if sel == nil || sel.Every["slow"] != 2 {
			t.Fatalf("step %d: selection %v, want slow every 2nd frame", c.step, sel)
		}
		if contains(sel.Reused, "slow") != c.reused || math.Abs(sel.Accuracy["slow"]-c.accuracy) > 1e-9 {
			t.Errorf("step %d: slow reused %v with accuracy %.3f, want reused %v, %.3f", c.step, contains(sel.Reused, "slow"), sel.Accuracy["slow"], c.reused, c.accuracy)
		}
		// The agreement recorded for that selection reads the same ages.
		if got, ok := ctrl.Stats().MeasuredAccuracy(); !ok || math.Abs(got-c.accuracy) > 1e-6 {
			t.Errorf("step %d: measured agreement %.4f %v, want %.4f", c.step, got, ok, c.accuracy)
		}
	}
}

// The delta-link variants of one source and gain are told apart: each
// keeps its own accuracies and its births' map, in the evaluation's order.
func TestLinkEvidenceKeepsDeltaLinkVariantsApart(t *testing.T) {
	m := &pipeline.BoxMap{SW: 1.6, SH: 1.3, Class: "person"}
	follow := func(deaths bool, births *pipeline.BoxMap, age int, acc float64) links.BaselineAccuracy {
		return links.BaselineAccuracy{Target: "hog", Baseline: links.BaselineFollow, Source: "nano", Gain: 1, Deaths: deaths,
			Births: births, Age: age, Score: links.Score{Accuracy: acc, Frames: 50}}
	}
	ev := NewLinkEvidence(&links.Evaluation{Baselines: []links.BaselineAccuracy{
		follow(false, nil, 1, 0.79), follow(false, nil, 10, 0.36),
		follow(true, m, 1, 0.78), follow(true, m, 10, 0.63),
	}})
	got := ev.FollowLinks("hog", "nano")
	if len(got) != 2 || got[0].Deaths || got[0].Births != nil || !got[1].Deaths || got[1].Births != m {
		t.Fatalf("variants %+v: want plain, then deaths and births with their map", got)
	}
	for i, want := range []float64{0.36, 0.63} {
		if acc, ok := ev.FollowAccuracy("hog", got[i], 10); !ok || acc != want {
			t.Errorf("variant %d at age 10: %v %v, want %v", i, acc, ok, want)
		}
	}
	if links := ev.FollowLinks("hog", "other"); links != nil {
		t.Errorf("unmeasured source: %+v", links)
	}
}

// mlink-hybrid serves a rotating detector by the delta-link variant that
// measures best over the ages it is served at: deaths and births where
// the plain delta link decays.
func TestHybridPicksTheDeltaLinkVariantThatMeasuresBest(t *testing.T) {
	m := &pipeline.BoxMap{SW: 1.6, SH: 1.3, Class: "person"}
	var bs []links.BaselineAccuracy
	for _, p := range []struct {
		kind   string
		deaths bool
		births *pipeline.BoxMap
		acc    [2]float64 // at ages 1 and 10
	}{
		{links.BaselineReuse, false, nil, [2]float64{0.74, 0.28}},
		{links.BaselineTrack, false, nil, [2]float64{0.76, 0.31}},
		{links.BaselineFollow, false, nil, [2]float64{0.79, 0.36}},
		{links.BaselineFollow, true, m, [2]float64{0.785, 0.63}},
	} {
		for i, age := range []int{1, 10} {
			b := links.BaselineAccuracy{Target: "hog", Baseline: p.kind, Age: age, Deaths: p.deaths, Births: p.births, Score: links.Score{Accuracy: p.acc[i], Frames: 50}}
			if p.kind == links.BaselineFollow {
				b.Source, b.Gain = "nano", 1
			}
			bs = append(bs, b)
		}
	}
	ev := NewLinkEvidence(&links.Evaluation{Baselines: bs})
	ch := hybridEvaluate([]string{"hog", "nano"}, map[string]int{"hog": 8, "nano": 1}, ev, ev, HybridOptions{})
	f, ok := ch.Follow["hog"]
	if !ok || f.Source != "nano" || !f.Deaths || f.Births != m {
		t.Fatalf("hog served by %+v (follow %v), want the delta link from nano with deaths and births", f, ok)
	}
	// Served only one frame after its run, the plain delta link is as good.
	ch = hybridEvaluate([]string{"hog", "nano"}, map[string]int{"hog": 2, "nano": 1}, ev, ev, HybridOptions{})
	if f := ch.Follow["hog"]; f.Deaths || f.Births != nil {
		t.Errorf("every 2nd frame: %+v, want the plain delta link (0.79 against 0.785 at age 1)", f)
	}
}
