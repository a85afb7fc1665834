package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// The trainer role in another process learns links from the results
// stream and publishes them; the scheduler (which trains nothing itself)
// selects on their evaluation and the predictors serve them.
func TestTrainerRoleInAnotherProcess(t *testing.T) {
	cfg := cheapLinkedConfig(t)
	cfg.Scheduler.Training = pipeline.TrainingRemote
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel) // cleanups run last first: the other processes, the control one, then this
	var linked linkedResults
	control, err := startApp(ctx, cfg, runOptions{roles: "scheduler,merger,predictor", onResult: linked.add}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(control.shutdown)
	if control.control.TrainerStats() != nil || control.trainer != nil {
		t.Fatal("with remote training the scheduler's process must not train")
	}
	trainer := startRoles(t, ctx, cfg, control, "trainer", "worker", "ingest")["trainer"]
	results := linked.waitFor(t, 20, "20 frames served with links trained in the trainer process")
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
	checkPredicted(t, results, 10)
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
