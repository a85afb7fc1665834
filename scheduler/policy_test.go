package scheduler

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// Every registered policy is known to the configuration with the same
// name, and a controller runs it: its first frame is planned over the
// configured models.
func TestEveryRegisteredPolicyRuns(t *testing.T) {
	models := []string{"a", "b"}
	for _, name := range Policies() {
		spec, ok := LookupPolicy(name)
		if !ok {
			t.Fatalf("%s listed but not registered", name)
		}
		if info, ok := pipeline.LookupPolicy(name); !ok || info != spec.PolicyInfo {
			t.Errorf("%s: the configuration knows %+v, the scheduler %+v", name, info, spec.PolicyInfo)
		}
		if spec.Summary == "" {
			t.Errorf("%s: no summary for the usage text and the docs", name)
		}
		var learner Learner
		if spec.Links {
			learner = &tableLearner{}
		}
		cfg := ControllerConfig{Policy: name, Models: models, Budget: Budget{MS: 10}, Period: time.Minute,
			ProfileShare: 0.1, BootstrapFrames: 10, HoldOut: 0.3, TuneFrames: 1}
		if spec.FrameFeatures {
			if _, err := NewController(cfg, learner, nil, zerolog.Nop()); err == nil {
				t.Errorf("%s predicts from frames: a controller without their features must be refused", name)
			}
			cfg.Features = func(string, uint64) ([]float64, error) { return []float64{0.5}, nil }
		}
		c, err := NewController(cfg, learner, nil, zerolog.Nop())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plan := c.Plan(FrameInfo{Camera: "cam", Seq: 1, CapturedAt: time.Unix(100, 0)})
		if plan.Policy != string(name) || len(plan.Models()) != len(models) {
			t.Errorf("%s: first plan %+v", name, plan)
		}
	}
	// all selects at once: a bench or status waiting for a selection
	// does not wait for it.
	c, err := NewController(ControllerConfig{Policy: PolicyAll, Models: models}, nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if sel := c.Selection(); sel == nil || len(sel.Exact) != 2 {
		t.Errorf("all's selection %v, want every model at once", sel)
	}
}
