package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// The trainer role in another process learns links from the results
// stream and publishes them; the scheduler (which trains nothing itself)
// selects on their evaluation and the predictors serve them.
func TestTrainerRoleInAnotherProcess(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface", "lines")
	cfg.Cameras[0].Loop = true
	cfg.Scheduler.Policy = "mlink"
	cfg.Scheduler.Training = pipeline.TrainingRemote
	cfg.Scheduler.BootstrapFrames = 20
	cfg.Scheduler.Period, cfg.Scheduler.ProfileShare = time.Hour, 0.001
	cfg.Budget.MSPerFrame = 20 // the cheap models run, lines is predicted
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var linked []*pipeline.Result
	control, err := startApp(ctx, cfg, runOptions{roles: "scheduler,merger,predictor", onResult: func(r *pipeline.Result) {
		if len(r.Plan.Predicted) > 0 {
			mu.Lock()
			linked = append(linked, r)
			mu.Unlock()
		}
	}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer control.shutdown()
	if control.control.TrainerStats() != nil || control.trainer != nil {
		t.Fatal("with remote training the scheduler's process must not train")
	}
	remote := *cfg
	remote.NATS.URL = control.srv.ClientURL()
	var trainer *app
	for _, roles := range []string{"trainer", "worker", "ingest"} {
		a, err := startApp(ctx, &remote, runOptions{roles: roles}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer a.shutdown()
		if roles == "trainer" {
			trainer = a
		}
	}
	natstest.WaitFor(t, 2*time.Minute, "20 frames served with links trained in the trainer process", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(linked) >= 20
	})
	if n := trainer.trainer.Stats().Trainings.Load(); n < 1 {
		t.Errorf("trainer trained %d times", n)
	}
	sel := control.control.Selection()
	if sel == nil || len(sel.Predicted) == 0 || sel.Expected <= 0 {
		t.Fatalf("selection from the trainer's evaluation: %v", sel)
	}
	var summary strings.Builder
	trainer.printSummary(&summary)
	if !strings.Contains(summary.String(), "trainer: ") || !strings.Contains(summary.String(), "trainings") {
		t.Errorf("trainer summary: %q", summary.String())
	}
	if st := control.statusText(); !strings.Contains(st, "policy mlink") || !strings.Contains(st, "predicted [") {
		t.Errorf("status of the scheduler's process: %q", st)
	}
	set, err := control.linkStore.Latest(ctx)
	if err != nil || set == nil || set.Evaluation() == nil {
		t.Fatalf("stored links %v (evaluation %v): %v", set != nil, set != nil && set.Evaluation() != nil, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range linked[len(linked)-10:] {
		for _, m := range r.Plan.Predicted {
			if o := r.Outputs[m]; o == nil || o.Source != pipeline.SourcePredicted || o.Error != "" {
				t.Fatalf("#%d %s: %+v", r.Seq, m, o)
			}
		}
	}
}

func TestTrainerRoleNeedsRemoteTraining(t *testing.T) {
	cfg := demoConfig(t, "motion")
	cfg.Scheduler.Policy = "mlink"
	_, err := startApp(context.Background(), cfg, runOptions{roles: "trainer"}, testLogger(t))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("trainer role with local training: %v, want exit 2", err)
	}
}
