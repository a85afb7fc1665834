package main

import (
	"slices"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// coe live, two rounds per frame: tier 1 runs, and on the frames where it
// disagrees the merger escalates and the scheduler re-sends the frame to
// tier 2, whose output the result then carries; on the others tier 1's
// majority answers. The cascade is chosen to be cheap and to disagree on
// some frames and not on others (BlazeFace sees no face on vtest; the
// moving blobs number 0–5, within 3 of none on about half the frames),
// not to be a good one. θ is fixed so the validation frames cannot drop
// the tier.
func TestEndToEndCoEEscalatesDisagreeingFramesToTheNextTier(t *testing.T) {
	cfg := demoConfig(t, "face_blazeface", "motion_blobs", "face_haar_fast")
	cfg.Scheduler.Policy, cfg.Scheduler.Importance = "coe", nil
	cfg.Scheduler.BootstrapFrames = 10
	cfg.Budget.MSPerFrame = 5000 // the cascade on every frame, whichever tier answers
	cfg.Scheduler.CoE.Cascades = []pipeline.Cascade{{Task: "faces", Output: "face_haar_fast", Agree: pipeline.AgreeCounts, Tolerance: 3,
		Tiers: []pipeline.CascadeTier{{Models: []string{"face_blazeface", "motion_blobs"}, Theta: 1}, {Models: []string{"face_haar_fast"}, Theta: 1}}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, results := runToCompletion(t, cfg, 60)
	escalated, answered := 0, 0
	for _, r := range results {
		if r.Plan.Profiling {
			continue
		}
		if r.Partial || len(r.Plan.Cascades) != 1 {
			t.Fatalf("frame %d: partial %v (missing %v), cascades %v: want complete, with the cascade", r.Seq, r.Partial, r.Missing, r.Plan.Cascades)
		}
		for _, m := range cfg.Models {
			if o := r.Outputs[m.Name]; o == nil || o.Error != "" {
				t.Fatalf("frame %d: %s output %+v", r.Seq, m.Name, o)
			}
		}
		final := r.Outputs["face_haar_fast"]
		switch {
		case slices.Contains(r.Plan.Exact, "face_haar_fast"):
			escalated++
			if final.Source != pipeline.SourceExact {
				t.Errorf("frame %d escalated, face_haar_fast is %s", r.Seq, final.Source)
			}
		default:
			answered++
			if final.Source != pipeline.SourcePredicted || !slices.Equal(final.Sources, []string{"face_blazeface", "motion_blobs"}) {
				t.Errorf("frame %d answered by tier 1: face_haar_fast %s from %v", r.Seq, final.Source, final.Sources)
			}
		}
	}
	t.Logf("%d frames escalated to tier 2, %d answered by tier 1; %d JPEG bytes re-sent", escalated, answered, a.sched.Stats().EscalatedBytes.Load())
	if escalated == 0 || answered == 0 {
		t.Fatalf("%d frames escalated, %d answered by tier 1: want some of each", escalated, answered)
	}
	if got := a.sched.Stats().Escalations.Load(); got != int64(escalated) {
		t.Errorf("the scheduler re-sent %d frames, %d results were escalated", got, escalated)
	}
}
