package replay

import (
	"testing"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
)

// jellybean fits a mean (and a capped) budget under the one cost rule,
// profiling included, with variants and without (every model a task of
// its own: run it or not, or on its turns).
func TestJellyBeanFitsTheBudget(t *testing.T) {
	tr := loadTrace(t)
	variants := pipeline.JellyBeanConfig{
		SLO:      pipeline.JellyBeanSLO{ThroughputFPS: 10, Tasks: map[string]float64{"people": 0.5, "faces": 0.5}},
		Variants: map[string][]string{"people": {"hog_people", "fullbody", "upperbody"}, "faces": {"face_haar", "face_blazeface"}},
	}
	pools := []pipeline.WorkerPool{{Name: "box", Tier: "edge", PricePerHour: 0.02, Workers: 2}, {Name: "gpu", Tier: "cloud", PricePerHour: 0.5, Workers: 8, Speed: 8, LinkPricePerGB: 0.09}}
	for _, jb := range []pipeline.JellyBeanConfig{{}, variants} {
		for _, share := range []float64{0.25, 1.0 / 3, 0.5} {
			for _, mode := range []scheduler.TimeMode{scheduler.TimeMean, scheduler.TimeCap} {
				if mode == scheduler.TimeCap && share != 0.5 {
					continue
				}
				opts := baseOptions(tr)
				opts.Policy, opts.JellyBean, opts.Pools = string(scheduler.PolicyJellyBean), jb, pools
				opts.Budget = BudgetAtShare(tr.Costs(), "ms", share)
				opts.Budget.Mode = mode
				row, err := Run(tr, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("variants %v at %s (%s): %.3f unprofiled, %.0f ms/frame, selected %v", len(jb.Variants) > 0, opts.Budget, mode, row.AccuracyUnprofiled, row.MSPerFrame, row.Selected)
				if !row.Fits || row.Frames == 0 {
					t.Errorf("variants %v at %s (%s): %.1f ms/frame over %d frames: does not fit", len(jb.Variants) > 0, opts.Budget, mode, row.MSPerFrame, row.Frames)
				}
			}
		}
	}
}
