package main

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// Helpers of the tests that split mlink's roles over several processes.

// cheapLinkedConfig runs the three cheap demo models under mlink with a
// budget where motion and BlazeFace run and lines is predicted.
func cheapLinkedConfig(t *testing.T) *pipeline.Config {
	cfg := demoConfig(t, "motion", "face_blazeface", "lines")
	cfg.Cameras[0].Loop = true
	cfg.Scheduler.Policy = "mlink"
	cfg.Scheduler.BootstrapFrames = 20
	cfg.Scheduler.Period, cfg.Scheduler.ProfileShare = time.Hour, 0.001
	cfg.Budget.MSPerFrame = 20
	return cfg
}

// linkedResults collects the results of frames planned with predictions.
type linkedResults struct {
	mu      sync.Mutex
	results []*pipeline.Result
}

func (l *linkedResults) add(r *pipeline.Result) {
	if len(r.Plan.Predicted) > 0 {
		l.mu.Lock()
		l.results = append(l.results, r)
		l.mu.Unlock()
	}
}

// waitFor waits until n results are in and returns a copy of them.
func (l *linkedResults) waitFor(t *testing.T, n int, what string) []*pipeline.Result {
	t.Helper()
	natstest.WaitFor(t, 2*time.Minute, what, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.results) >= n
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// startRoles starts one process per role set against control's NATS
// server (stopped when the test ends) and returns them by role set.
func startRoles(t *testing.T, ctx context.Context, cfg *pipeline.Config, control *app, roleSets ...string) map[string]*app {
	t.Helper()
	remote := *cfg
	remote.NATS.URL = control.srv.ClientURL()
	apps := map[string]*app{}
	for _, roles := range roleSets {
		a, err := startApp(ctx, &remote, runOptions{roles: roles}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.shutdown)
		apps[roles] = a
	}
	return apps
}

// checkPredicted fails unless every predicted model of the last n results
// has a prediction without error.
func checkPredicted(t *testing.T, results []*pipeline.Result, n int) {
	t.Helper()
	for _, r := range results[len(results)-n:] {
		for _, m := range r.Plan.Predicted {
			if o := r.Outputs[m]; o == nil || o.Source != pipeline.SourcePredicted || o.Error != "" {
				t.Fatalf("#%d %s: %+v", r.Seq, m, o)
			}
		}
	}
}
