package scheduler

import (
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// tableLearner "learns" a fixed accuracy table: the controller's logic is
// under test here; real link learning is tested in package links.
type tableLearner struct {
	acc       matrix
	trained   atomic.Int64
	finetuned atomic.Int64
	lastTrain atomic.Int64 // samples given to Train
}

type constPredictor struct{}

func (constPredictor) Predict(target string, exact map[string]*pipeline.Output) (pipeline.Output, error) {
	return pipeline.Output{Value: []float64{1}}, nil
}

func (l *tableLearner) Train(s []*links.TraceRecord) (Learned, error) {
	l.trained.Add(1)
	l.lastTrain.Store(int64(len(s)))
	return l.learned(constPredictor{}), nil
}

// learned is p with the table's measure; fine-tuning counts and keeps it.
func (l *tableLearner) learned(p Predictor) Learned {
	return testLearned{p: p, measure: func() SetEvidence { return setMatrix{l.acc} }, tuned: &l.finetuned}
}

// testLearned is a test learner's links: p predicts, measure is the fixed
// evidence, and fine-tuning (counted in tuned, if set) changes nothing.
type testLearned struct {
	p       Predictor
	measure func() SetEvidence
	tuned   *atomic.Int64
}

func (l testLearned) Predictor() Predictor { return l.p }
func (l testLearned) Measure([]*links.TraceRecord) (SetEvidence, error) {
	return l.measure(), nil
}
func (l testLearned) FineTune([]*links.TraceRecord) (Learned, error) {
	if l.tuned != nil {
		l.tuned.Add(1)
	}
	return l, nil
}

type setMatrix struct{ matrix }

func (m setMatrix) SetAccuracy(target string, executed []string) (float64, bool) { return 0, false }

var threeModels = []string{"person", "action", "object"}

func testController(t *testing.T, policy PolicyName, learner Learner) *Controller {
	t.Helper()
	c, err := NewController(ControllerConfig{
		Policy: policy, Models: threeModels, Budget: Budget{Memory: 5 * gb},
		Period: time.Minute, ProfileShare: 0.1, BootstrapFrames: 10, HoldOut: 0.3,
		HealthTimeout: 200 * time.Millisecond, TuneFrames: 1,
	}, learner, NewCostModel(paperCosts), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// profiledResult is what the merger emits for a profiling frame.
func profiledResult(p pipeline.Plan) *pipeline.Result {
	r := &pipeline.Result{Camera: p.Camera, Seq: p.Seq, CapturedAt: p.CapturedAt, Plan: p, Outputs: map[string]*pipeline.Output{}}
	for _, m := range p.Exact {
		r.Outputs[m] = &pipeline.Output{Model: m, Value: []float64{1}, Source: pipeline.SourceExact, InferMS: 10}
	}
	return r
}

func TestControllerBootstrapsThenRunsTheSelection(t *testing.T) {
	learner := &tableLearner{acc: matrix{
		"person": {"action": 0.95, "object": 0.93},
		"action": {"person": 0.2, "object": 0.3},
		"object": {"person": 0.6, "action": 0.9},
	}}
	c := testController(t, "mlink", learner)
	t0 := time.Unix(10_000, 0)
	// Cold start: every frame runs everything until links exist.
	for seq := uint64(1); seq <= 10; seq++ {
		p := c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(seq) * 100 * time.Millisecond)})
		if !p.Profiling || len(p.Exact) != 3 || len(p.Predicted) != 0 {
			t.Fatalf("cold-start frame %d: %+v", seq, p)
		}
		c.ObserveResult(profiledResult(p))
	}
	natstest.WaitFor(t, 5*time.Second, "the first selection", func() bool { return c.Selection() != nil })
	if learner.lastTrain.Load() != 7 {
		t.Errorf("trained on %d frames, want 7 (30%% held out)", learner.lastTrain.Load())
	}
	sel := c.Selection()
	if !reflect.DeepEqual(sel.Exact, []string{"person"}) || !reflect.DeepEqual(sel.Predicted, []string{"action", "object"}) {
		t.Fatalf("selection %v", sel)
	}
	if acc, ok := c.Stats().MeasuredAccuracy(); !ok || acc < 0.9 {
		t.Errorf("measured agreement %v %v, want ~0.94", acc, ok)
	}
	// After the profiling window (6 s of each minute) frames follow the selection.
	p := c.Plan(FrameInfo{Camera: "cam", Seq: 11, CapturedAt: t0.Add(10 * time.Second)})
	if p.Profiling || !reflect.DeepEqual(p.Exact, []string{"person"}) || len(p.Predicted) != 2 {
		t.Fatalf("plan after bootstrap: %+v", p)
	}
	// The next period starts with a profiling window...
	p = c.Plan(FrameInfo{Camera: "cam", Seq: 12, CapturedAt: t0.Add(61 * time.Second)})
	if !p.Profiling || len(p.Exact) != 3 {
		t.Fatalf("frame at the start of the next period should profile: %+v", p)
	}
	c.ObserveResult(profiledResult(p))
	// ...whose end (the first result not profiled) triggers measuring,
	// fine-tuning and re-selection.
	before := c.Stats().Selections.Load()
	p = c.Plan(FrameInfo{Camera: "cam", Seq: 13, CapturedAt: t0.Add(68 * time.Second)})
	if p.Profiling {
		t.Fatalf("frame after the window profiles: %+v", p)
	}
	c.ObserveResult(profiledResult(p))
	natstest.WaitFor(t, 5*time.Second, "re-selection after the window", func() bool { return c.Stats().Selections.Load() > before })
	if learner.finetuned.Load() != 1 || learner.trained.Load() != 1 {
		t.Errorf("trained %d fine-tuned %d, want 1 and 1", learner.trained.Load(), learner.finetuned.Load())
	}
}

func TestControllerPredictsAModelWhoseWorkersDied(t *testing.T) {
	learner := &tableLearner{acc: matrix{"person": {"action": 1, "object": 1}, "action": {"person": 1, "object": 1}, "object": {"person": 1, "action": 1}}}
	c := testController(t, "mlink", learner)
	c.cfg.Budget = Budget{Memory: 9 * gb} // two models fit
	t0 := time.Unix(20_000, 0)
	for seq := uint64(1); seq <= 10; seq++ {
		c.ObserveResult(profiledResult(c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0})))
	}
	natstest.WaitFor(t, 5*time.Second, "selection", func() bool { return c.Selection() != nil })
	exact := c.Selection().Exact
	if len(exact) != 2 {
		t.Fatalf("two models fit 9 GB, selected %v", exact)
	}
	later := t0.Add(30 * time.Second)
	beat := func(m string) {
		c.ObserveHeartbeat(&pipeline.Heartbeat{Model: m, At: time.Now(), LastProgress: time.Now()})
	}
	for _, m := range threeModels {
		beat(m)
	}
	if p := c.Plan(FrameInfo{Camera: "cam", Seq: 20, CapturedAt: later}); len(p.Exact) != 2 {
		t.Fatalf("all healthy: %+v", p)
	}
	// exact[0]'s workers go silent; the others keep beating.
	time.Sleep(300 * time.Millisecond)
	beat(exact[1])
	p := c.Plan(FrameInfo{Camera: "cam", Seq: 21, CapturedAt: later})
	if !reflect.DeepEqual(p.Exact, []string{exact[1]}) || !slices.Contains(p.Predicted, exact[0]) {
		t.Fatalf("dead %s must be predicted: %+v", exact[0], p)
	}
	// It comes back.
	beat(exact[0])
	if p := c.Plan(FrameInfo{Camera: "cam", Seq: 22, CapturedAt: later}); !slices.Contains(p.Exact, exact[0]) {
		t.Fatalf("recovered %s must run again: %+v", exact[0], p)
	}
}

func TestStandaloneControllerRunsWhatFitsAndNothingElse(t *testing.T) {
	c := testController(t, "standalone", nil)
	p := c.Plan(FrameInfo{Camera: "cam", Seq: 1, CapturedAt: time.Now()})
	if p.Profiling || !reflect.DeepEqual(p.Exact, []string{"action"}) || len(p.Predicted) != 0 {
		t.Fatalf("standalone at 5 GB runs the cheapest model only: %+v", p)
	}
	if sel := c.Selection(); !reflect.DeepEqual(sel.Absent, []string{"person", "object"}) {
		t.Errorf("absent %v", sel.Absent)
	}
}

func TestMLinkNeedsALearner(t *testing.T) {
	if _, err := NewController(ControllerConfig{Policy: "mlink", Models: threeModels}, nil, NewCostModel(nil), zerolog.Nop()); err == nil {
		t.Fatal("want an error")
	}
}

// slowLearner trains only when released.
type slowLearner struct {
	tableLearner
	release chan struct{}
}

func (l *slowLearner) Train(s []*links.TraceRecord) (Learned, error) {
	<-l.release
	return l.tableLearner.Train(s)
}

func TestControllerKeepsToTheBudgetWhileLinksTrain(t *testing.T) {
	learner := &slowLearner{tableLearner: tableLearner{acc: matrix{"person": {"action": 1, "object": 1}}}, release: make(chan struct{})}
	c := testController(t, "mlink", learner)
	t0 := time.Unix(30_000, 0)
	for seq := uint64(1); seq <= 10; seq++ {
		c.ObserveResult(profiledResult(c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0})))
	}
	natstest.WaitFor(t, 5*time.Second, "training to start", c.bootstrapTraining)
	p := c.Plan(FrameInfo{Camera: "cam", Seq: 11, CapturedAt: t0.Add(time.Second)})
	if p.Profiling || !reflect.DeepEqual(p.Exact, []string{"action"}) || !reflect.DeepEqual(p.Reused, []string{"person", "object"}) {
		t.Fatalf("while training: %+v, want the cheapest model run and the others reused", p)
	}
	close(learner.release)
	natstest.WaitFor(t, 5*time.Second, "selection", func() bool { return c.Selection() != nil })
}

func TestStandaloneMeasuresCostsBeforeSelecting(t *testing.T) {
	c, err := NewController(ControllerConfig{Policy: "standalone", Models: threeModels, Budget: Budget{MS: 100}, Period: time.Minute,
		ProfileShare: 0.1, BootstrapFrames: 10, HoldOut: 0.3}, nil, NewCostModel(nil), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(40_000, 0)
	p := c.Plan(FrameInfo{Camera: "cam", Seq: 1, CapturedAt: t0})
	if len(p.Exact) != 3 {
		t.Fatalf("with unmeasured costs every model runs to be measured: %+v", p)
	}
	r := profiledResult(p)
	for m, ms := range map[string]float64{"person": 60, "action": 30, "object": 20} {
		r.Outputs[m].InferMS = ms
	}
	c.ObserveResult(r)
	p = c.Plan(FrameInfo{Camera: "cam", Seq: 2, CapturedAt: t0.Add(time.Second)})
	if !reflect.DeepEqual(p.Exact, []string{"object", "action"}) {
		t.Fatalf("cheapest that fit 100 ms: got %v, want [object action]", p.Exact)
	}
}

// A camera that joins after the links exist (or a scheduler that took its
// links from the link store) profiles its first frame: reused models need
// an exact output to reuse.
func TestControllerProfilesANewCamerasFirstFrame(t *testing.T) {
	learner := &tableLearner{acc: matrix{"person": {"action": 0.95, "object": 0.93}, "object": {"action": 0.9}}}
	c := testController(t, "mlink", learner)
	t0 := time.Unix(30_000, 0)
	for seq := uint64(1); seq <= 10; seq++ {
		c.ObserveResult(profiledResult(c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0})))
	}
	natstest.WaitFor(t, 5*time.Second, "selection", func() bool { return c.Selection() != nil })
	later := t0.Add(10 * time.Second) // after the profiling window
	if p := c.Plan(FrameInfo{Camera: "cam", Seq: 11, CapturedAt: later}); p.Profiling {
		t.Fatalf("a known camera's frame profiled: %+v", p)
	}
	p := c.Plan(FrameInfo{Camera: "new", Seq: 1, CapturedAt: later})
	if !p.Profiling || !p.Sampled || len(p.Exact) != len(threeModels) {
		t.Fatalf("a new camera's first frame: %+v, want every model, profiled apart from the windows", p)
	}
	if p := c.Plan(FrameInfo{Camera: "new", Seq: 2, CapturedAt: later}); p.Profiling {
		t.Fatalf("a new camera's second frame profiled: %+v", p)
	}
}

// A model that ran and failed spent its time: the books charge it with
// the exact outputs' (a policy that ignored it would overspend its mean
// budget while models fail), and the cost model does not learn from it.
func TestBooksChargeFailedExecutions(t *testing.T) {
	c := testController(t, PolicyAll, nil)
	before := c.costs.Costs()[threeModels[1]].MS
	r := &pipeline.Result{Camera: "cam", Seq: 1, CapturedAt: time.Now(),
		Plan: pipeline.Plan{Camera: "cam", Seq: 1, Exact: threeModels[:2], Reused: threeModels[2:]},
		Outputs: map[string]*pipeline.Output{
			threeModels[0]: {Model: threeModels[0], Source: pipeline.SourceExact, InferMS: 30},
			threeModels[1]: {Model: threeModels[1], Source: pipeline.SourceExact, Error: "model failed", InferMS: 900},
			threeModels[2]: {Model: threeModels[2], Source: pipeline.SourceReused},
		}}
	c.ObserveResult(r)
	c.books.mu.Lock()
	spent := c.books.ledger.spent
	c.books.mu.Unlock()
	if spent != 930 {
		t.Errorf("books spent %.0f ms, want 930 (30 exact + 900 failed)", spent)
	}
	if after := c.costs.Costs()[threeModels[1]].MS; after != before {
		t.Errorf("the failed run moved %s's measured cost from %.1f to %.1f", threeModels[1], before, after)
	}
}
