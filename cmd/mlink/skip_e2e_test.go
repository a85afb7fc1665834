package main

import (
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// skip-per-model live: after the cost probe each model runs on its own
// interval (the expensive one not on every frame) and is reused between;
// every result has every model, and a reused output is the model's last
// exact one.
func TestEndToEndSkipPerModel(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface", "lines", "fullbody")
	cfg.Cameras[0].Loop = true
	cfg.Scheduler.Policy = "skip-per-model"
	cfg.Budget.MSPerFrame = 80 // under the four models' ~250 ms: fullbody cannot run on every frame
	a, c := startCollecting(t, cfg, 4*time.Minute)
	natstest.WaitFor(t, 3*time.Minute, "60 frames after the intervals are set", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return a.control.Selection() != nil && len(c.results) >= 62
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	sel := a.control.Selection()
	t.Logf("selection: %s", sel)
	if k := sel.Every["fullbody"]; k < 2 {
		t.Fatalf("fullbody every %d frames under an 80 ms budget", k)
	}
	checkExactOrLastReused(t, c.results, cfg, "skipping")
	fullbodyRuns, planned := 0, 0
	for _, r := range c.results {
		if r.Plan.Profiling {
			continue
		}
		planned++
		if r.Outputs["fullbody"].Source == pipeline.SourceExact {
			fullbodyRuns++
		}
	}
	if planned < 30 || fullbodyRuns == 0 || fullbodyRuns == planned {
		t.Errorf("fullbody ran on %d of %d planned frames: want on its turns only", fullbodyRuns, planned)
	}
}
