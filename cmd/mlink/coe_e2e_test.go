package main

import (
	"context"
	"slices"
	"testing"
	"time"

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

// Tiers on worker pools, as in a deployment: the camera box runs every
// role with its workers in pool camera-box; a second process runs workers
// only, in pool cloud-gpu. The cascade's tier 1 is placed on the box, tier
// 2 on the cloud: every output comes from the pool its frame's plan names
// (the cloud's for tier 2 once its workers answer, the box's meanwhile),
// and the bytes sent to the cloud pool are counted apart.
func TestEndToEndCoETiersRunOnTheirPools(t *testing.T) {
	cfg := demoConfig(t, "face_blazeface", "motion_blobs", "face_haar_fast")
	cfg.Scheduler.Policy, cfg.Scheduler.Importance = "coe", nil
	cfg.Scheduler.BootstrapFrames = 10
	cfg.Budget.MSPerFrame = 5000
	cfg.Scheduler.CoE.Cascades = []pipeline.Cascade{{Task: "faces", Output: "face_haar_fast", Agree: pipeline.AgreeCounts, Tolerance: 3,
		Tiers: []pipeline.CascadeTier{{Models: []string{"face_blazeface", "motion_blobs"}, Theta: 1, Pool: "camera-box"}, {Models: []string{"face_haar_fast"}, Theta: 1, Pool: "cloud-gpu"}}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const frames = 60
	box, err := startApp(ctx, cfg, runOptions{roles: "all", pool: "camera-box", maxFrames: frames}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer box.shutdown()
	cloudCfg := *cfg
	cloudCfg.NATS.URL = box.srv.ClientURL()
	cloud, err := startApp(ctx, &cloudCfg, runOptions{roles: "worker", pool: "cloud-gpu"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.shutdown()
	if err := box.wait(ctx); err != nil {
		t.Fatal(err)
	}
	results := storedResults(t, box, cfg)
	if len(results) != frames {
		t.Fatalf("%d results for %d frames", len(results), frames)
	}
	onCloud := 0
	for _, r := range results {
		if r.Partial {
			t.Fatalf("frame %d partial, missing %v", r.Seq, r.Missing)
		}
		for _, m := range cfg.ModelNames() {
			if o := r.Outputs[m]; o == nil || o.Error != "" {
				t.Fatalf("frame %d: %s output %+v", r.Seq, m, o)
			}
		}
		for _, m := range r.Plan.Exact {
			o := r.Outputs[m]
			if want := r.Plan.Pools[m]; o.Pool != want {
				t.Errorf("frame %d: %s answered by pool %q, its plan sent it to %q", r.Seq, m, o.Pool, want)
			}
			if m != "face_haar_fast" && o.Pool != "camera-box" {
				t.Errorf("frame %d: tier-1 model %s ran on pool %q, want camera-box", r.Seq, m, o.Pool)
			}
			if m == "face_haar_fast" && o.Pool == "cloud-gpu" {
				onCloud++
			}
		}
	}
	sent := box.sched.Stats().Pools()
	t.Logf("tier 2 on the cloud pool on %d frames; traffic %+v; %d fallbacks", onCloud, sent, box.control.Stats().PoolFallbacks.Load())
	if onCloud == 0 || sent["cloud-gpu"].Frames != int64(onCloud) || sent["cloud-gpu"].Bytes == 0 {
		t.Errorf("tier 2 ran on the cloud pool on %d frames, the scheduler sent it %+v: want some, counted alike", onCloud, sent["cloud-gpu"])
	}
	ran := map[string]int64{}
	for _, w := range cloud.liveWorkers() {
		ran[w.Spec().Name] = w.Stats().Frames.Load()
	}
	if ran["face_haar_fast"] != int64(onCloud) || ran["face_blazeface"] != 0 || ran["motion_blobs"] != 0 {
		t.Errorf("the cloud process ran %v, the results say face_haar_fast %d times there and tier 1 never", ran, onCloud)
	}
}
