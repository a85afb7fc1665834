package scheduler

import (
	"errors"
	"math/rand"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

func TestActiveSamplerPicksHighLossFramesWithinItsShare(t *testing.T) {
	a := NewActiveSampler(0.02)
	rng := rand.New(rand.NewSource(1))
	asked, spikesAsked, spikes := 0, 0, 0
	for i := range 2000 {
		loss := map[string]float64{"a>b": rng.Float64(), "c>b": 10 + rng.Float64()}
		spike := i > 300 && i%100 == 0
		if spike {
			loss["a>b"], loss["c>b"] = 5, 50 // far above both links' usual values
			spikes++
		}
		if a.Observe(loss) {
			asked++
			if spike {
				spikesAsked++
			}
		}
	}
	if spikesAsked != spikes {
		t.Errorf("asked for %d of %d high-loss frames", spikesAsked, spikes)
	}
	if asked > 2000*0.02+1 || a.Asked() != int64(asked) {
		t.Errorf("asked %d of 2000 frames (Asked %d), share 2%%", asked, a.Asked())
	}
	var off *ActiveSampler
	if off.Observe(map[string]float64{"a>b": 1}) || NewActiveSampler(0).Observe(map[string]float64{"a>b": 1}) {
		t.Error("a disabled sampler asked")
	}
}

// lossyPredictor predicts constants; its links predict a high loss on the
// frames whose motion output is 9.
type lossyPredictor struct{ constPredictor }

func (lossyPredictor) PredictedLosses(exact map[string]*pipeline.Output, targets []string) (map[string]float64, error) {
	out := map[string]float64{}
	for src, o := range exact {
		for _, tgt := range targets {
			out[src+">"+tgt] = o.Value[0]
		}
	}
	return out, nil
}

// lossyLearner's links are p (lossyPredictor{} when nil).
type lossyLearner struct {
	tableLearner
	p Predictor
}

func (l *lossyLearner) Train(s []*links.TraceRecord) (Learned, error) {
	l.trained.Add(1)
	if l.p != nil {
		return l.learned(l.p), nil
	}
	return l.learned(lossyPredictor{}), nil
}

// carriedLossPredictor's losses come with its outputs: the controller must
// not run its links again.
type carriedLossPredictor struct {
	constPredictor
	t *testing.T
}

func (p carriedLossPredictor) PredictedLosses(map[string]*pipeline.Output, []string) (map[string]float64, error) {
	p.t.Error("the links ran again for losses that came with the outputs")
	return nil, errors.New("not again")
}

// A frame the links predict badly makes the controller profile the next
// frame of that camera (Plan.Sampled); a batch of them fine-tunes the links
// without re-selecting. The losses come with the predicted outputs (the
// live predictor's PredictWithLosses), or, where they do not, from the
// links run again.
func TestControllerProfilesTheFrameAfterAHighLoss(t *testing.T) {
	t.Run("with the outputs", func(t *testing.T) { testProfilesTheFrameAfterAHighLoss(t, true) })
	t.Run("links run again", func(t *testing.T) { testProfilesTheFrameAfterAHighLoss(t, false) })
}

func testProfilesTheFrameAfterAHighLoss(t *testing.T, carried bool) {
	learner := &lossyLearner{tableLearner: tableLearner{acc: matrix{
		"person": {"action": 0.95, "object": 0.93},
		"action": {"person": 0.2, "object": 0.3},
		"object": {"person": 0.6, "action": 0.9},
	}}}
	if carried {
		learner.p = carriedLossPredictor{t: t}
	}
	c, err := NewController(ControllerConfig{
		Policy: "mlink", Models: threeModels, Budget: Budget{Memory: 5 * gb},
		Period: time.Hour, ProfileShare: 1e-6, BootstrapFrames: 10, HoldOut: 0.3,
		Synchronous: true, ActiveShare: 0.05, ActiveBatch: 2,
	}, learner, NewCostModel(paperCosts), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(50_000, 0)
	seq := uint64(0)
	step := func(value float64) pipeline.Plan {
		seq++
		p := c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(seq) * 100 * time.Millisecond)})
		r := &pipeline.Result{Camera: "cam", Seq: seq, Plan: p, Outputs: map[string]*pipeline.Output{}}
		v := value + float64(seq%7)/100
		for _, m := range p.Exact {
			r.Outputs[m] = &pipeline.Output{Model: m, Value: []float64{v}, Source: pipeline.SourceExact}
		}
		for _, tgt := range p.Predicted {
			o := &pipeline.Output{Model: tgt, Value: []float64{1}, Source: pipeline.SourcePredicted}
			if carried { // what lossyPredictor's links give
				o.LinkLosses = map[string]float64{}
				for _, src := range p.Exact {
					o.LinkLosses[src+">"+tgt] = v
				}
			}
			r.Outputs[tgt] = o
		}
		c.ObserveResult(r)
		return p
	}
	for range 10 {
		step(1)
	}
	if c.Selection() == nil {
		t.Fatal("no selection after the cold start")
	}
	selections := c.Stats().Selections.Load()
	for range 150 { // what usual losses look like
		p := step(1)
		if p.Profiling {
			t.Fatalf("frame %d profiled with nothing unusual: %+v", seq, p)
		}
		if p.Losses != (len(p.Predicted) > 0) {
			t.Fatalf("frame %d: sampling on, %d predicted, the plan asks for losses: %v", seq, len(p.Predicted), p.Losses)
		}
	}
	for round := range 2 {
		if p := step(9); p.Sampled {
			t.Fatalf("the high-loss frame itself was planned sampled: %+v", p)
		}
		p := step(1)
		if !p.Profiling || !p.Sampled || len(p.Exact) != len(threeModels) {
			t.Fatalf("round %d: the frame after a high loss: %+v, want every model, sampled", round, p)
		}
		for range 30 {
			step(1)
		}
	}
	if got := c.Stats().Sampled.Load(); got != 2 {
		t.Errorf("sampled %d frames, want 2", got)
	}
	st := c.TrainerStats()
	if st.Sampled.Load() != 2 || st.ActiveTunings.Load() != 1 || learner.finetuned.Load() != 1 {
		t.Errorf("trainer: sampled %d, active tunings %d, fine-tunings %d; want 2, 1, 1", st.Sampled.Load(), st.ActiveTunings.Load(), learner.finetuned.Load())
	}
	if c.Stats().Selections.Load() != selections {
		t.Error("fine-tuning on sampled frames re-selected the models")
	}
}

// Without active sampling nothing reads the links' losses: no plan asks
// the predictors for them.
func TestPlansAskForLinkLossesOnlyWhenSampling(t *testing.T) {
	c, err := NewController(ControllerConfig{
		Policy: "mlink", Models: threeModels, Budget: Budget{Memory: 5 * gb},
		Period: time.Hour, ProfileShare: 1e-6, BootstrapFrames: 10, HoldOut: 0.3, Synchronous: true,
	}, &tableLearner{acc: matrix{
		"person": {"action": 0.95, "object": 0.93},
		"action": {"person": 0.2, "object": 0.3},
		"object": {"person": 0.6, "action": 0.9},
	}}, NewCostModel(paperCosts), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(50_000, 0)
	predicted := 0
	for seq := uint64(1); seq <= 40; seq++ {
		p := c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(seq) * 100 * time.Millisecond)})
		if p.Losses {
			t.Fatalf("frame %d: sampling off, the plan asks for losses: %+v", seq, p)
		}
		predicted += len(p.Predicted)
		r := &pipeline.Result{Camera: "cam", Seq: seq, Plan: p, Outputs: map[string]*pipeline.Output{}}
		for _, m := range p.Exact {
			r.Outputs[m] = &pipeline.Output{Model: m, Value: []float64{1}, Source: pipeline.SourceExact}
		}
		for _, m := range p.Predicted {
			r.Outputs[m] = &pipeline.Output{Model: m, Value: []float64{1}, Source: pipeline.SourcePredicted}
		}
		c.ObserveResult(r)
	}
	if predicted == 0 {
		t.Fatal("no frame predicted anything: the test asserts nothing")
	}
}
