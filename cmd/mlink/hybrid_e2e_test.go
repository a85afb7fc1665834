package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// mlink-hybrid live: models may run on every k-th frame and the others are
// reused or predicted; every result still has every model, each output's
// source matches the frame's plan, and the selection fits the budget on
// average.
func TestEndToEndHybridRotatesReusesAndPredicts(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface", "lines", "fullbody")
	cfg.Cameras[0].Loop = true
	cfg.Scheduler.Policy = "mlink-hybrid"
	cfg.Scheduler.BootstrapFrames = 30
	cfg.Scheduler.Period, cfg.Scheduler.ProfileShare = time.Hour, 0.001
	cfg.Scheduler.Seed = 1
	cfg.Scheduler.TemporalLinks = true // exercise training them live too
	cfg.Budget.MSPerFrame = 120        // about half of the four models' time
	var mu sync.Mutex
	var planned []*pipeline.Result // frames planned without every model
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{roles: "all", onResult: func(r *pipeline.Result) {
		if !r.Plan.Profiling && len(r.Plan.Exact) < len(cfg.Models) && (len(r.Plan.Predicted) > 0 || len(r.Plan.Reused) > 0) {
			mu.Lock()
			planned = append(planned, r)
			mu.Unlock()
		}
	}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	natstest.WaitFor(t, 4*time.Minute, "the hybrid selection", func() bool { return a.control.Selection() != nil })
	// Frames already in flight were planned before the selection.
	mu.Lock()
	var from uint64
	if len(planned) > 0 {
		from = planned[len(planned)-1].Seq + 10
	}
	mu.Unlock()
	// Enough frames for every rotating model to have had two turns (a
	// loaded machine measures higher costs, and longer rotations).
	window := 30
	for _, k := range a.control.Selection().Every {
		window = max(window, 2*k)
	}
	var results []*pipeline.Result
	natstest.WaitFor(t, 3*time.Minute, fmt.Sprintf("%d frames served by the selection", window), func() bool {
		mu.Lock()
		defer mu.Unlock()
		results = results[:0]
		for _, r := range planned {
			if r.Seq > from {
				results = append(results, r)
			}
		}
		return len(results) >= window
	})
	results = results[:window]
	sel := a.control.Selection()
	t.Logf("selection: %s", sel)
	costs := a.costs.Costs()
	var perFrame float64
	for _, m := range sel.Exact {
		perFrame += costs[m].MS
	}
	for m, k := range sel.Every {
		perFrame += costs[m].MS / float64(k)
	}
	// Costs are measured as frames run and drift with the machine's load
	// after the selection was made: allow for it.
	if perFrame > 1.5*cfg.Budget.MSPerFrame {
		t.Errorf("selection costs %.0f ms/frame on average now, budget %.0f", perFrame, cfg.Budget.MSPerFrame)
	}
	if sel.Expected <= float64(len(sel.Exact))/float64(len(cfg.Models)) {
		t.Errorf("expected accuracy %.3f no better than running %d of %d models", sel.Expected, len(sel.Exact), len(cfg.Models))
	}
	exactCount := map[string]int{}
	for _, r := range results {
		for _, m := range cfg.ModelNames() {
			o := r.Outputs[m]
			if o == nil || o.Error != "" {
				t.Fatalf("#%d %s: %+v — every result must have every model", r.Seq, m, o)
			}
			var want pipeline.Source
			switch {
			case slices.Contains(r.Plan.Exact, m):
				want = pipeline.SourceExact
				exactCount[m]++
			case slices.Contains(r.Plan.Predicted, m):
				want = pipeline.SourcePredicted
			case slices.Contains(r.Plan.Tracked, m):
				// Carried along its motion by the tracker (a reused
				// detector the hybrid measured better tracked).
				want = pipeline.SourceTracked
			case slices.Contains(r.Plan.Reused, m):
				want = pipeline.SourceReused
				if o.FromSeq == 0 || o.FromSeq >= r.Seq {
					t.Errorf("#%d %s reused from #%d", r.Seq, m, o.FromSeq)
				}
			default:
				t.Fatalf("#%d %s is not in the plan %+v", r.Seq, m, r.Plan)
			}
			if o.Source != want {
				t.Errorf("#%d %s: source %s, plan says %s", r.Seq, m, o.Source, want)
			}
		}
	}
	// A rotating model runs on about one frame in k (the frames seen here
	// are consecutive but for stale drops: allow slack).
	for m, k := range sel.Every {
		if n := exactCount[m]; n == 0 || n > window/k+3 {
			t.Errorf("%s rotating every %d frames ran on %d of %d", m, k, n, window)
		}
	}
}
