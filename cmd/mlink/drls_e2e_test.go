package main

import (
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline/natstest"
	"github.com/mlink-project/mlink/scheduler"
)

// drls live: past its bootstrap (every model on the frames the budget's
// books afford) it plans frames on which not every model runs, the
// learned order choosing which; every result has every model, and a
// reused output is the model's last exact one.
func TestEndToEndDRLS(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface", "lines", "fullbody")
	cfg.Cameras[0].Loop = true
	cfg.Scheduler.Policy = scheduler.PolicyDRLS
	cfg.Scheduler.BootstrapFrames = 16 // the fewest the controller takes
	cfg.Budget.MSPerFrame = 80         // under the four models' ~250 ms
	_, c := startCollecting(t, cfg, 4*time.Minute)
	// planned counts the frames planned past the bootstrap: some model
	// runs and not every one.
	planned := func() int {
		n := 0
		for _, r := range c.results {
			if !r.Plan.Profiling && len(r.Plan.Exact) > 0 && len(r.Plan.Exact) < len(cfg.Models) {
				n++
			}
		}
		return n
	}
	natstest.WaitFor(t, 3*time.Minute, "30 frames planned by the learned order", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return planned() >= 30
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	checkExactOrLastReused(t, c.results, cfg, "drls")
	t.Logf("%d results, %d planned by the learned order", len(c.results), planned())
}
