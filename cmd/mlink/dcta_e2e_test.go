package main

import (
	"slices"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// dcta live on two cameras sharing one budget, the plaza five times as
// important as the yard: once both cameras are allocated, the plaza runs
// every model the yard runs (an optimum cannot give a model's time to the
// less important camera: swapping it gains importance at the same cost),
// every result has every model, and a model not run reuses that camera's
// own last exact output.
func TestEndToEndDCTASharesOneBudgetByImportance(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface", "lines", "fullbody")
	cfg.Cameras[0].Loop = true
	yard := cfg.Cameras[0]
	yard.ID = "yard"
	cfg.Cameras = append(cfg.Cameras, yard)
	cfg.Scheduler.Policy = "dcta"
	cfg.Scheduler.Importance = map[string]float64{"plaza": 5}
	cfg.Budget.MSPerFrame = 40 // under the four models' ~250 ms: not every model fits on both cameras
	a, c := startCollecting(t, cfg, 4*time.Minute)
	natstest.WaitFor(t, 3*time.Minute, "40 frames after both cameras are allocated", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		sel := a.control.Selection()
		return sel != nil && len(sel.PerCamera) == 2 && len(c.results) >= 80
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	sel := a.control.Selection()
	t.Logf("selection: %s", sel)
	for _, m := range sel.PerCamera["yard"] {
		if !slices.Contains(sel.PerCamera["plaza"], m) {
			t.Errorf("the yard runs %s, the five times as important plaza does not: %v", m, sel.PerCamera)
		}
	}
	if len(sel.PerCamera["plaza"])+len(sel.PerCamera["yard"]) == 2*len(cfg.Models) {
		t.Errorf("every model runs on both cameras within %g ms per frame: %v", cfg.Budget.MSPerFrame, sel.PerCamera)
	}
	lastExact := map[string]uint64{}
	for _, r := range c.results {
		for _, m := range cfg.Models {
			o := r.Outputs[m.Name]
			if o == nil {
				t.Fatalf("%s frame %d has no %s output (partial %v)", r.Camera, r.Seq, m.Name, r.Partial)
			}
			key := r.Camera + "/" + m.Name
			switch o.Source {
			case pipeline.SourceExact:
				lastExact[key] = r.Seq
			case pipeline.SourceReused:
				if o.FromSeq != lastExact[key] {
					t.Errorf("%s frame %d: %s reused from %d, the camera's last exact output is from %d", r.Camera, r.Seq, m.Name, o.FromSeq, lastExact[key])
				}
			default:
				t.Errorf("%s frame %d: %s is %s: dcta predicts nothing", r.Camera, r.Seq, m.Name, o.Source)
			}
		}
	}
}
