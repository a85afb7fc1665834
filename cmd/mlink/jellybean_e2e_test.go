package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// jellybean live on vtest: two variants of one task (MOG2's motion level
// and its blob count) and BlazeFace a task of its own, with no accuracy
// target. Past the bootstrap the cheaper activity variant runs and the
// other is predicted by links over the models run, so not every model runs
// on a frame; every
// result has every model, each output as its plan says, and the plan is
// placed and priced — and routed: the process's workers are in pool box,
// the one the plan places every variant on, and every exact output came
// from there.
func TestEndToEndJellyBeanRunsOneVariantPerTask(t *testing.T) {
	cfg := demoConfig(t, "motion", "motion_blobs", "face_blazeface")
	cfg.Cameras[0].Loop = true
	cfg.Scheduler.Policy = "jellybean"
	cfg.Scheduler.BootstrapFrames = 10
	cfg.Scheduler.Period, cfg.Scheduler.ProfileShare, cfg.Scheduler.ActiveShare = time.Hour, 0.001, 0
	cfg.Scheduler.Seed = 1
	cfg.Scheduler.Importance = nil // the demo's names models not kept here
	cfg.Scheduler.JellyBean = pipeline.JellyBeanConfig{
		SLO:      pipeline.JellyBeanSLO{ThroughputFPS: 10},
		Variants: map[string][]string{"activity": {"motion", "motion_blobs"}},
	}
	cfg.Pools = []pipeline.WorkerPool{{Name: "box", Tier: "edge", PricePerHour: 0.02, Workers: 4}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, c := startCollectingWith(t, cfg, 2*time.Minute, runOptions{roles: "all", pool: "box"})
	natstest.WaitFor(t, time.Minute, "the jellybean selection", func() bool { return a.control.Selection() != nil })
	c.mu.Lock()
	from := uint64(len(c.results)) + 10 // frames in flight were planned before it
	c.mu.Unlock()
	var served []*pipeline.Result
	natstest.WaitFor(t, time.Minute, "20 frames served by the selection", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		served = served[:0]
		for _, r := range c.results {
			if r.Seq > from && !r.Plan.Profiling {
				served = append(served, r)
			}
		}
		return len(served) >= 20
	})
	sel := a.control.Selection()
	plan := a.control.JellyBeanPlan()
	t.Logf("selection: %s; %s", sel, sel.Reason)
	if plan == nil || !plan.SLOMet || !plan.Placed || !strings.Contains(plan.String(), "@box") {
		t.Fatalf("plan %v: want the SLO plan, placed on the box", plan)
	}
	run := plan.Run["activity"]
	other := "motion_blobs"
	if run == other {
		other = "motion"
	}
	if !slices.Contains(sel.Exact, run) || !slices.Contains(sel.Predicted, other) || !slices.Contains(sel.Exact, "face_blazeface") {
		t.Fatalf("selection %s: want %s and face_blazeface run, %s predicted", sel, run, other)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range served[:20] {
		if len(r.Plan.Exact) == len(cfg.Models) {
			t.Errorf("#%d runs every model past the bootstrap: %v", r.Seq, r.Plan.Exact)
		}
		for _, m := range cfg.ModelNames() {
			o := r.Outputs[m]
			if o == nil || o.Error != "" {
				t.Fatalf("#%d %s: %+v — every result must have every model (partial %v)", r.Seq, m, o, r.Partial)
			}
			want := pipeline.SourceExact
			if slices.Contains(r.Plan.Predicted, m) {
				want = pipeline.SourcePredicted
			}
			if o.Source != want {
				t.Errorf("#%d %s: source %s, plan %+v", r.Seq, m, o.Source, r.Plan)
			}
			if want == pipeline.SourceExact && (r.Plan.Pools[m] != "box" || o.Pool != "box") {
				t.Errorf("#%d %s: sent to pool %q, answered by pool %q; want box, where the plan placed it", r.Seq, m, r.Plan.Pools[m], o.Pool)
			}
		}
		// From the models run (the ensemble may also lean on its prior
		// alone, where training found the variant's link no help).
		for _, src := range r.Outputs[other].Sources {
			if !slices.Contains(r.Plan.Exact, src) {
				t.Errorf("#%d %s predicted from %s, which did not run", r.Seq, other, src)
			}
		}
	}
}
