// The frames' features are decoded with gocv (stages/framefeat): this test
// needs cgo; the rest of the package does not.

//go:build cgo

package replay

import (
	"os"
	"slices"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/stages/framefeat"
)

// mtl on the committed trace: the cold start runs every model, then the
// standalone selection runs and the MTL network, trained on the cold
// start's exact outputs, serves the others from each frame's own pixels.
func TestMTLPredictsTheModelsThatDoNotRun(t *testing.T) {
	tr := loadTrace(t)
	for _, v := range tr.Header.Videos {
		if _, err := os.Stat(v); err != nil {
			t.Skipf("the trace's video: %v", err)
		}
	}
	feats, err := framefeat.ForVideos(tr.Header.Videos, framefeat.DefaultSize)
	if err != nil {
		t.Fatal(err)
	}
	budget := scheduler.Budget{MS: 400}
	opts := Options{Policy: string(scheduler.PolicyMTL), Budget: budget, FPS: tr.Header.FPS}
	if _, err := Run(tr, opts); err == nil {
		t.Fatal("mtl without the frames' features: no error")
	}
	opts.Features = feats.Features
	// Per predicted model: the values it was served on unprofiled frames.
	served := map[string][]float64{}
	var selected []string
	opts.OnResult = func(r *pipeline.Result) {
		if r.Plan.Profiling || len(r.Plan.Predicted) == 0 {
			return
		}
		selected = r.Plan.Exact
		for _, m := range r.Plan.Predicted {
			o := r.Outputs[m]
			if o == nil || o.Error != "" || o.Source != pipeline.SourcePredicted {
				t.Fatalf("frame %d: %s served %+v, want an MTL prediction", r.Seq, m, o)
			}
			served[m] = append(served[m], o.Value[0])
		}
	}
	row, err := Run(tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mtl at %s: accuracy %.3f (unprofiled %.3f, graded %.3f), %.1f ms/frame, profiled %.3f, selected %v",
		budget, row.Accuracy, row.AccuracyUnprofiled, row.AccuracyGradedUnprofiled, row.MSPerFrame, row.ProfiledShare, row.Selected)
	if !row.Fits || row.MSPerFrame > budget.MS {
		t.Errorf("%.1f ms/frame over a %s budget", row.MSPerFrame, budget)
	}
	if len(served) == 0 || len(selected) == 0 || len(selected) == len(tr.Models()) {
		t.Fatalf("selected %v, predicted %v: want some models run and some predicted", selected, served)
	}
	// Reuse would serve the last exact output on every frame (the models
	// never run again after the cold start): MTL's predictions follow the
	// frames.
	for m, vals := range served {
		if slices.Min(vals) == slices.Max(vals) {
			t.Errorf("%s: the same value %v on every frame: reused, not predicted", m, vals[0])
		}
	}
	// Standalone at the same budget runs the same models and serves
	// nothing else (its absent models score 0): MTL must add to it.
	alone, err := Run(tr, Options{Policy: string(scheduler.PolicyStandalone), Budget: budget, FPS: tr.Header.FPS})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(alone.Selected, row.Selected) {
		t.Errorf("standalone selects %v, mtl %v: mtl runs the standalone selection", alone.Selected, row.Selected)
	}
	if row.AccuracyUnprofiled <= alone.AccuracyUnprofiled+0.05 || row.AccuracyUnprofiled >= 1 {
		t.Errorf("unprofiled accuracy %.3f, standalone's %.3f: the predictions add nothing (or are exact)", row.AccuracyUnprofiled, alone.AccuracyUnprofiled)
	}
}
