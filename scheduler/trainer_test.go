package scheduler

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// A controller with remote training plans and selects only: the trainer
// (here in the same test, in production the trainer role) learns from the
// results and hands the links over.
func TestRemoteTrainingHandsLinksToTheController(t *testing.T) {
	learner := &tableLearner{acc: matrix{
		"person": {"action": 0.95, "object": 0.93},
		"action": {"person": 0.2, "object": 0.3},
		"object": {"person": 0.6, "action": 0.9},
	}}
	c, err := NewController(ControllerConfig{
		Policy: "mlink", Models: threeModels, Budget: Budget{Memory: 5 * gb},
		Period: time.Minute, ProfileShare: 0.1, BootstrapFrames: 10, HoldOut: 0.3, RemoteTraining: true,
	}, nil, NewCostModel(paperCosts), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if c.TrainerStats() != nil {
		t.Fatal("a remote-training controller has its own trainer")
	}
	handed := make(chan Links, 4)
	tr := NewTrainer(TrainerConfig{BootstrapFrames: 10, HoldOut: 0.3, MinTuneFrames: 1}, learner, func(l Links) { handed <- l }, zerolog.Nop())
	t0 := time.Unix(10_000, 0)
	for seq := uint64(1); seq <= 10; seq++ {
		p := c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(seq) * 100 * time.Millisecond)})
		if !p.Profiling {
			t.Fatalf("cold-start frame %d not profiled", seq)
		}
		r := profiledResult(p)
		c.ObserveResult(r)
		tr.Observe(r)
	}
	// While the trainer trains, the controller keeps to the budget with the
	// cheapest model and reuses the others.
	p := c.Plan(FrameInfo{Camera: "cam", Seq: 11, CapturedAt: t0.Add(2 * time.Second)})
	if p.Profiling || len(p.Exact) != 1 || len(p.Reused) != 2 {
		t.Fatalf("plan while links train elsewhere: %+v", p)
	}
	var l Links
	select {
	case l = <-handed:
	case <-time.After(5 * time.Second):
		t.Fatal("trainer handed no links")
	}
	if l.Reason != "bootstrap" || l.Predictor == nil || l.Evidence == nil {
		t.Fatalf("links %+v", l)
	}
	c.InstallLinks(l)
	sel := c.Selection()
	if sel == nil || !reflect.DeepEqual(sel.Exact, []string{"person"}) {
		t.Fatalf("selection %v", sel)
	}
	// A profiling window, then its end: the trainer measures and fine-tunes.
	tr.Observe(profiledResult(c.Plan(FrameInfo{Camera: "cam", Seq: 12, CapturedAt: t0.Add(61 * time.Second)})))
	tr.Observe(profiledResult(c.Plan(FrameInfo{Camera: "cam", Seq: 13, CapturedAt: t0.Add(68 * time.Second)})))
	natstest.WaitFor(t, 5*time.Second, "re-profiled links", func() bool { return len(handed) == 1 })
	if l := <-handed; l.Reason != "re-profile" || learner.finetuned.Load() != 1 {
		t.Fatalf("second hand-over %q, fine-tuned %d", l.Reason, learner.finetuned.Load())
	}
	if st := tr.Stats(); st.Profiled.Load() != 11 || st.Trainings.Load() != 2 || st.TrainErrors.Load() != 0 {
		t.Errorf("trainer stats: profiled %d trainings %d errors %d", st.Profiled.Load(), st.Trainings.Load(), st.TrainErrors.Load())
	}
}

// failingLearner cannot train.
type failingLearner struct{ tableLearner }

func (l *failingLearner) Train([]*links.TraceRecord) (Learned, error) {
	l.trained.Add(1)
	return nil, errors.New("no usable outputs")
}

// A failed first training is tried again once as many new frames are in,
// not on every frame; buffers stay bounded meanwhile.
func TestTrainerRetriesAFailedBootstrapSparingly(t *testing.T) {
	learner := &failingLearner{}
	tr := NewTrainer(TrainerConfig{BootstrapFrames: 10, Synchronous: true, ActiveBatch: 2}, learner, func(Links) { t.Fatal("links from a failing learner") }, zerolog.Nop())
	for seq := uint64(1); seq <= 35; seq++ {
		tr.Observe(profiledResult(pipeline.Plan{Camera: "cam", Seq: seq, Exact: threeModels, Profiling: true}))
	}
	if n := learner.trained.Load(); n != 3 {
		t.Errorf("%d training attempts over 35 frames with 10 per attempt, want 3", n)
	}
	if tr.Stats().TrainErrors.Load() != 3 {
		t.Errorf("train errors %d", tr.Stats().TrainErrors.Load())
	}
	for seq := uint64(100); seq < 200; seq++ {
		tr.Observe(profiledResult(pipeline.Plan{Camera: "cam", Seq: seq, Exact: threeModels, Profiling: true, Sampled: true}))
	}
	tr.mu.Lock()
	sampled := len(tr.sampled)
	tr.mu.Unlock()
	if sampled > 8 {
		t.Errorf("%d sampled frames kept without links to tune, want at most 4 batches", sampled)
	}
}

// Small profiling windows are each measured, but pooled for fine-tuning
// until there are enough frames not to overfit them.
func TestTrainerPoolsSmallWindowsBeforeFineTuning(t *testing.T) {
	learner := &tableLearner{acc: matrix{"person": {"action": 0.9}}}
	var reasons []string
	tr := NewTrainer(TrainerConfig{BootstrapFrames: 10, Synchronous: true, MinTuneFrames: 12, MinMeasureFrames: 1}, learner,
		func(l Links) { reasons = append(reasons, l.Reason) }, zerolog.Nop())
	frame := feeder(tr)
	for range 10 {
		frame(true)
	}
	want := []int64{0, 0, 1} // fine-tunings after windows of 5, 10, 15 pooled frames
	for w, n := range want {
		for range 5 {
			frame(true)
		}
		frame(false) // the window ends
		if got := learner.finetuned.Load(); got != n {
			t.Fatalf("after window %d: %d fine-tunings, want %d", w+1, got, n)
		}
	}
	if len(reasons) != 4 || reasons[0] != "bootstrap" || reasons[3] != "re-profile" {
		t.Fatalf("hand-overs %v: every window's measurement goes out", reasons)
	}
}

// Windows smaller than MinMeasureFrames are measured together with the
// next ones: no re-selection on a single frame's evidence.
func TestTrainerPoolsSmallWindowsBeforeMeasuring(t *testing.T) {
	learner := &tableLearner{acc: matrix{"person": {"action": 0.9}}}
	measured := 0
	tr := NewTrainer(TrainerConfig{BootstrapFrames: 10, Synchronous: true, MinMeasureFrames: 3}, learner,
		func(l Links) {
			if l.Reason == "re-profile" {
				measured++
			}
		}, zerolog.Nop())
	frame := feeder(tr)
	for range 10 {
		frame(true)
	}
	for w := 1; w <= 6; w++ { // windows of one frame
		frame(true)
		frame(false)
		if want := w / 3; measured != want {
			t.Fatalf("after %d one-frame windows: %d measurements, want %d", w, measured, want)
		}
	}
}

// feeder returns a function that gives tr the next frame's result of one
// camera, profiled (every model exact) or not.
func feeder(tr *Trainer) func(profiling bool) {
	seq := uint64(0)
	return func(profiling bool) {
		seq++
		tr.Observe(profiledResult(pipeline.Plan{Camera: "cam", Seq: seq, Exact: threeModels, Profiling: profiling}))
	}
}

// Rotation turns (a model served without running on other frames, exact
// here beside another model) are pooled and fine-tune the links every
// TurnBatch; frames where only always-run models ran, or one model alone,
// are no training pairs and do not count.
func TestTrainerFineTunesOnRotationTurns(t *testing.T) {
	learner := &tableLearner{acc: matrix{"person": {"action": 0.9}}}
	var reasons []string
	tr := NewTrainer(TrainerConfig{BootstrapFrames: 4, Synchronous: true, TurnBatch: 3}, learner,
		func(l Links) { reasons = append(reasons, l.Reason) }, zerolog.Nop())
	seq := uint64(0)
	observe := func(p pipeline.Plan) {
		seq++
		p.Camera, p.Seq, p.CapturedAt = "cam", seq, time.Unix(int64(seq), 0)
		tr.Observe(profiledResult(p))
	}
	for range 4 {
		observe(pipeline.Plan{Exact: threeModels, Profiling: true})
	}
	for range 6 {
		observe(pipeline.Plan{Exact: []string{"person"}, Reused: []string{"action", "object"}}) // no pair
		observe(pipeline.Plan{Exact: []string{"person", "object"}, Reused: []string{"action"}}) // object's turn
	}
	if st := tr.Stats(); st.Turns.Load() != 6 || st.TurnTunings.Load() != 2 || learner.finetuned.Load() != 2 {
		t.Fatalf("turns %d, turn fine-tunings %d, learner fine-tunings %d; want 6, 2, 2", st.Turns.Load(), st.TurnTunings.Load(), learner.finetuned.Load())
	}
	if len(reasons) != 3 || reasons[1] != "turns" || reasons[2] != "turns" {
		t.Errorf("hand-overs %v", reasons)
	}
	off := NewTrainer(TrainerConfig{BootstrapFrames: 4, Synchronous: true}, &tableLearner{}, func(Links) {}, zerolog.Nop())
	off.Observe(profiledResult(pipeline.Plan{Camera: "cam", Seq: 1, Exact: []string{"person", "object"}, Reused: []string{"action"}}))
	if off.Stats().Turns.Load() != 0 {
		t.Error("TurnBatch 0 collects turns")
	}
}
