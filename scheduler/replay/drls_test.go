package replay

import (
	"testing"

	"github.com/mlink-project/mlink/scheduler"
)

// DRLS is trained: on vtest it beats a random order of models at equal
// cost — the same scheduler, budget and cost rule with the learned value
// replaced by a random order (drls/random), averaged over seeds and beaten
// on each — on the frames it did not profile, and fits each mean budget
// with its bootstrap paid. A learner no better than chance fails it.
func TestDRLSBeatsARandomOrderAtEqualCost(t *testing.T) {
	tr := loadTrace(t)
	for _, share := range []float64{0.25, 1.0 / 3, 0.5} {
		b := BudgetAtShare(tr.Costs(), "ms", share)
		opts := Options{Budget: b, FPS: tr.Header.FPS, Period: 20e9, ProfileShare: 0.05}
		opts.Policy = string(scheduler.PolicyDRLS)
		learned, err := Run(tr, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !learned.Fits || learned.ProfiledShare <= 0 {
			t.Fatalf("%s: drls %.1f ms/frame (fits %v), %.1f %% profiled", b, learned.MSPerFrame, learned.Fits, learned.ProfiledShare*100)
		}
		sum, best := 0.0, 0.0
		const seeds = 3
		for seed := int64(1); seed <= seeds; seed++ {
			opts.Policy, opts.Seed = string(scheduler.PolicyDRLSRandom), seed
			random, err := Run(tr, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !random.Fits || random.MSPerFrame < learned.MSPerFrame-0.02*b.MS {
				t.Fatalf("%s: random order %.1f ms/frame (fits %v) against drls %.1f: not at equal cost", b, random.MSPerFrame, random.Fits, learned.MSPerFrame)
			}
			sum += random.AccuracyUnprofiled
			best = max(best, random.AccuracyUnprofiled)
		}
		mean := sum / seeds
		t.Logf("%s: drls %.3f strict on unprofiled frames (%.1f ms/frame), random order %.3f mean, %.3f best of %d seeds",
			b, learned.AccuracyUnprofiled, learned.MSPerFrame, mean, best, seeds)
		if learned.AccuracyUnprofiled < best || learned.AccuracyUnprofiled < mean+0.01 {
			t.Errorf("%s: drls %.3f does not beat a random order (mean %.3f, best %.3f)", b, learned.AccuracyUnprofiled, mean, best)
		}
	}
}
