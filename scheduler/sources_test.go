package scheduler

import (
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// mlink-hybrid measures a predicted model's links over the always-run
// models: on a rotating model's turn the plan still names those alone as
// the links' sources, so the ensemble used is the one measured.
func TestHybridPlansPredictFromTheAlwaysRunModels(t *testing.T) {
	models := []string{"slow", "fast", "cheap"}
	costs := NewCostModel(map[string]Cost{"slow": {MS: 100}, "fast": {MS: 10}, "cheap": {MS: 200}})
	// cheap is well predicted from fast (and better still from slow, which
	// the selection cannot run on every frame); slow's own output ages fast.
	ev := reuseMatrix{
		matrix: matrix{"fast": {"slow": 0.25, "cheap": 0.9}, "slow": {"fast": 0.5, "cheap": 0.95}},
		reuse:  map[string]func(int) float64{"slow": decay(0.8, 0.2, 0), "fast": decay(0.95, 0.01, 0.9), "cheap": decay(0.5, 0.2, 0)},
	}
	c, err := NewController(ControllerConfig{Policy: "mlink-hybrid", Models: models, Budget: Budget{MS: 60},
		Period: time.Hour, ProfileShare: 1e-6, BootstrapFrames: 4, HoldOut: 0.25, Synchronous: true},
		fixedLearner{ev}, costs, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	turns := 0
	for seq := uint64(1); seq <= 20; seq++ {
		p := c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(seq) * 100 * time.Millisecond)})
		res := &pipeline.Result{Camera: "cam", Seq: seq, Plan: p, Outputs: map[string]*pipeline.Output{}}
		for _, m := range p.Exact {
			res.Outputs[m] = &pipeline.Output{Model: m, Source: pipeline.SourceExact, Type: pipeline.TypeCount, Value: []float64{1}}
		}
		c.ObserveResult(res)
		if p.Profiling || len(p.Predicted) == 0 {
			continue
		}
		sel := c.Selection()
		if !slices.Equal(p.Sources, sel.Exact) {
			t.Fatalf("#%d plan %+v: sources %v, want the always-run %v", seq, p, p.Sources, sel.Exact)
		}
		if slices.Contains(p.Exact, "slow") {
			turns++
		}
	}
	if sel := c.Selection(); sel == nil || sel.Every["slow"] < 2 || !slices.Contains(sel.Predicted, "cheap") {
		t.Fatalf("selection %v: want slow rotating and cheap predicted", sel)
	}
	if turns == 0 {
		t.Fatal("slow never took its turn on a predicted frame")
	}
}
