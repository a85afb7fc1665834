package replay

import (
	"testing"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
)

// The zoo: the 8 demo models and their cheap variants, with the cascades
// its profiling config declares.
const (
	zooTrace  = "../../testdata/traces/vtest-zoo.trace.gz"
	zooConfig = "../../testdata/traces/vtest-zoo.yaml"
)

// coe on the zoo fits each mean budget under the one cost rule (every
// visited tier paid), its cascades defer on some frames and not on all,
// and without cascades it is exactly skip-per-model.
func TestCoEFitsTheBudgetAndDefersSomeFrames(t *testing.T) {
	tr, err := Load(zooTrace)
	if err != nil {
		t.Fatal(err)
	}
	cascades, pools, err := pipeline.ReadCoEConfig(zooConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := cascades.Validate(tr.Models(), pools); err != nil {
		t.Fatal(err)
	}
	for _, share := range []float64{0.25, 0.5} {
		b := BudgetAtShare(tr.Costs(), "ms", share)
		opts := Options{Policy: string(scheduler.PolicyCoE), Budget: b, FPS: tr.Header.FPS, CoE: cascades}
		row, err := Run(tr, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !row.Fits || row.MSPerFrame > b.MS {
			t.Errorf("%s: %.0f ms/frame, fits %v", b, row.MSPerFrame, row.Fits)
		}
		deferred, answered := false, false
		for _, c := range row.Cascades {
			for tier := range len(c.Reached) - 1 {
				d := c.Deferred(tier)
				deferred = deferred || d > 0
				answered = answered || d < 1
			}
		}
		if !deferred || !answered {
			t.Errorf("%s: cascades %+v: want deferrals on some frames, not all", b, row.Cascades)
		}
		opts.CoE = pipeline.CoEConfig{}
		plain, err := Run(tr, opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.Policy = string(scheduler.PolicySkipPerModel)
		skip, err := Run(tr, opts)
		if err != nil {
			t.Fatal(err)
		}
		if plain.AccuracyUnprofiled != skip.AccuracyUnprofiled || plain.MSPerFrame != skip.MSPerFrame || len(plain.Cascades) > 0 {
			t.Errorf("%s: coe without cascades %.4f at %.0f ms, skip-per-model %.4f at %.0f ms: want the same", b,
				plain.AccuracyUnprofiled, plain.MSPerFrame, skip.AccuracyUnprofiled, skip.MSPerFrame)
		}
	}
}
