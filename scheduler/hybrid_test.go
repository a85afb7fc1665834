package scheduler

import (
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

func contains(s []string, v string) bool { return slices.Contains(s, v) }

func sameStrings(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// reuseMatrix is SetEvidence whose ensembles are the best single link, with
// reuse accuracies by age.
type reuseMatrix struct {
	matrix
	reuse map[string]func(age int) float64
}

func (s reuseMatrix) SetAccuracy(target string, executed []string) (float64, bool) {
	best := 0.0
	for _, e := range executed {
		best = math.Max(best, s.PairAccuracy(e, target))
	}
	return best, true
}

func (s reuseMatrix) ReuseAccuracy(target string, age int) float64 {
	if f := s.reuse[target]; f != nil {
		return f(age)
	}
	return 0
}

// decay is a reuse accuracy falling from a at age 1 by d per frame, to floor.
func decay(a, d, floor float64) func(int) float64 {
	return func(age int) float64 { return math.Max(floor, a-d*float64(age-1)) }
}

func TestSelectHybridByHand(t *testing.T) {
	models := []string{"slow", "fast"}
	costs := map[string]Cost{"slow": {MS: 100}, "fast": {MS: 10}}
	// fast predicts slow poorly; slow's own output stays valid for a frame
	// or two; fast changes little.
	ev := reuseMatrix{
		matrix: matrix{"fast": {"slow": 0.25}, "slow": {"fast": 0.5}},
		reuse:  map[string]func(int) float64{"slow": decay(0.8, 0.2, 0), "fast": decay(0.95, 0.01, 0.9)},
	}
	cases := []struct {
		name   string
		budget Budget
		always []string
		every  map[string]int
		reused []string
	}{
		// 60 ms: slow every 2nd frame (50 ms) + fast always (10 ms):
		// slow (1 + 0.8)/2 = 0.9 beats running fast alone and predicting.
		{"time for half of slow", Budget{MS: 60}, []string{"fast"}, map[string]int{"slow": 2}, []string{"slow"}},
		// 110 ms: both on every frame.
		{"time for both", Budget{MS: 110}, []string{"slow", "fast"}, map[string]int{}, nil},
		// 10 ms: fast always (fast 1, slow predicted 0.25: 0.625) beats
		// slow every 10th frame for the same 10 ms (slow (1 + 0.8 + 0.6 +
		// 0.4 + 0.2)/10 = 0.3, fast reused 0.9: 0.6).
		{"time for fast", Budget{MS: 10}, []string{"fast"}, map[string]int{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := SelectHybrid(models, costs, c.budget, ev, ev, HybridOptions{})
			if !sameStrings(h.Always, c.always) || !reflect.DeepEqual(h.Every, c.every) {
				t.Fatalf("always %v every %v, want %v %v", h.Always, h.Every, c.always, c.every)
			}
			for _, m := range c.reused {
				if !contains(h.Reused, m) {
					t.Errorf("%s not reused between runs: reused %v predicted %v", m, h.Reused, h.Predicted)
				}
			}
			if !c.budget.Fits(hybridCost(models, costs, rotationPeriods(h.Always, h.Every))) {
				t.Errorf("choice over budget: %v", hybridCost(models, costs, rotationPeriods(h.Always, h.Every)))
			}
		})
	}
	// The expected accuracy at 60 ms: fast 1, slow 0.9.
	h := SelectHybrid(models, costs, Budget{MS: 60}, ev, ev, HybridOptions{})
	if math.Abs(h.Expected-0.95) > 1e-9 || math.Abs(h.Accuracy["slow"]-0.9) > 1e-9 {
		t.Errorf("expected %.4f (slow %.4f), want 0.95 (0.9)", h.Expected, h.Accuracy["slow"])
	}
}

// Under a memory budget a model run on every k-th frame still holds its
// memory: the hybrid runs whole models and reuses or predicts the rest.
func TestSelectHybridMemoryBudget(t *testing.T) {
	ev := reuseMatrix{
		matrix: matrix{"person": {"action": 0.95, "object": 0.93}, "action": {"person": 0.2, "object": 0.3}, "object": {"person": 0.6, "action": 0.9}},
		reuse:  map[string]func(int) float64{"action": decay(0.5, 0, 0.5), "object": decay(0.97, 0, 0.97)},
	}
	h := SelectHybrid(paperModels, paperCosts, Budget{Memory: 5 * gb}, ev, ev, HybridOptions{})
	if !sameStrings(h.Always, []string{"person"}) || len(h.Every) != 0 {
		t.Fatalf("always %v every %v, want person alone", h.Always, h.Every)
	}
	// object's reuse (0.97) beats its link from person (0.93); action's
	// link (0.95) beats reuse (0.5).
	if !contains(h.Reused, "object") || !contains(h.Predicted, "action") {
		t.Fatalf("reused %v predicted %v", h.Reused, h.Predicted)
	}
	if want := (1 + 0.95 + 0.97) / 3; math.Abs(h.Expected-want) > 1e-9 {
		t.Errorf("expected %.4f, want %.4f", h.Expected, want)
	}
}

func TestRotationPhasesSpreadLoad(t *testing.T) {
	every := map[string]int{"a": 2, "b": 2, "c": 3}
	costs := map[string]Cost{"a": {MS: 100}, "b": {MS: 100}, "c": {MS: 10}}
	ph, _ := staggerPhases([]string{"a", "b", "c"}, every, costs)
	if ph["a"] == ph["b"] {
		t.Fatalf("two models of period 2 share phase %d", ph["a"])
	}
	runs := map[string]int{}
	for i := int64(0); i < 12; i++ {
		for m, k := range every {
			if runsOn(i, k, ph[m]) {
				runs[m]++
			}
		}
	}
	if runs["a"] != 6 || runs["b"] != 6 || runs["c"] != 4 {
		t.Fatalf("runs in 12 frames: %v", runs)
	}
	// The expensive models never share a frame: HOG every 4th frame goes
	// where fullbody (every 2nd) does not run.
	every = map[string]int{"fullbody": 2, "hog": 4, "lines": 3}
	costs = map[string]Cost{"fullbody": {MS: 187}, "hog": {MS: 415}, "lines": {MS: 51}}
	ph, _ = staggerPhases([]string{"hog", "fullbody", "lines"}, every, costs)
	peak := 0.0
	for i := int64(0); i < 24; i++ {
		load := 0.0
		for m, k := range every {
			if runsOn(i, k, ph[m]) {
				load += costs[m].MS
			}
		}
		peak = max(peak, load)
	}
	if peak > 415+51 {
		t.Errorf("peak per-frame load %.0f ms: hog shares a frame with fullbody (phases %v)", peak, ph)
	}
}

// The controller's hybrid plans: rotating models are exact on their turn
// and reused or predicted between.
func TestControllerHybridPlan(t *testing.T) {
	models := []string{"slow", "fast"}
	costs := NewCostModel(map[string]Cost{"slow": {MS: 100}, "fast": {MS: 10}})
	ev := reuseMatrix{
		matrix: matrix{"fast": {"slow": 0.25}, "slow": {"fast": 0.5}},
		reuse:  map[string]func(int) float64{"slow": decay(0.8, 0.2, 0), "fast": decay(0.95, 0.01, 0.9)},
	}
	// The budget leaves room for the (tiny) profiling share it reserves.
	c, err := NewController(ControllerConfig{Policy: "mlink-hybrid", Models: models, Budget: Budget{MS: 60.01},
		Period: time.Hour, ProfileShare: 1e-6, BootstrapFrames: 4, HoldOut: 0.25, Synchronous: true,
		HealthTimeout: 50 * time.Millisecond},
		fixedLearner{ev}, costs, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	seq := uint64(0)
	next := func() pipeline.Plan {
		seq++
		p := c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(seq) * 100 * time.Millisecond)})
		res := &pipeline.Result{Camera: "cam", Seq: seq, Plan: p, Outputs: map[string]*pipeline.Output{}}
		for _, m := range p.Exact {
			res.Outputs[m] = &pipeline.Output{Model: m, Source: pipeline.SourceExact, Type: pipeline.TypeCount, Value: []float64{1}}
		}
		c.ObserveResult(res)
		return p
	}
	for range 4 { // cold start: every model profiled, links trained in line
		if p := next(); !p.Profiling || len(p.Exact) != 2 {
			t.Fatalf("cold start plan %+v", p)
		}
	}
	slowRuns := 0
	for range 10 {
		p := next()
		if p.Profiling || !contains(p.Exact, "fast") {
			t.Fatalf("plan %+v: fast must always run", p)
		}
		switch {
		case contains(p.Exact, "slow"):
			slowRuns++
			if contains(p.Reused, "slow") || contains(p.Predicted, "slow") {
				t.Fatalf("slow both run and served otherwise: %+v", p)
			}
		case !contains(p.Reused, "slow"):
			t.Fatalf("slow neither run nor reused: %+v", p)
		}
	}
	if slowRuns != 5 {
		t.Fatalf("slow ran on %d of 10 frames, want every 2nd (%v)", slowRuns, c.Selection())
	}
	if sel := c.Selection(); sel == nil || sel.Every["slow"] != 2 {
		t.Fatalf("selection %v", sel)
	}
	// slow's workers fall silent: its turns are skipped, its last output
	// reused, so frames do not wait for it.
	c.ObserveHeartbeat(&pipeline.Heartbeat{Model: "slow", At: time.Now(), LastProgress: time.Now()})
	time.Sleep(100 * time.Millisecond)
	for range 6 {
		if p := next(); contains(p.Exact, "slow") || !contains(p.Reused, "slow") {
			t.Fatalf("plan with slow's workers gone: %+v", p)
		}
	}
}

// fixedLearner "trains" a predictor and measures fixed evidence.
type fixedLearner struct{ ev reuseMatrix }

type nopPredictor struct{}

func (nopPredictor) Predict(target string, _ map[string]*pipeline.Output) (pipeline.Output, error) {
	return pipeline.Output{Model: target}, nil
}

func (f fixedLearner) Train([]*links.TraceRecord) (Learned, error) {
	return testLearned{p: nopPredictor{}, measure: func() SetEvidence { return f.ev }}, nil
}

func TestReuseAccuracyInterpolates(t *testing.T) {
	ev := LinkEvidence{Eval: &links.Evaluation{Baselines: []links.BaselineAccuracy{
		{Target: "m", Baseline: "reuse", Age: 1, Score: links.Score{Accuracy: 0.9}},
		{Target: "m", Baseline: "reuse", Age: 5, Score: links.Score{Accuracy: 0.5}},
		{Target: "m", Baseline: "constant", Score: links.Score{Accuracy: 0.1}},
	}}}
	// Beyond the oldest measured age (5) falling to the constant guess by
	// twice that age (TestAtAgeBeyondTheOldestMeasuredAge).
	for age, want := range map[int]float64{1: 0.9, 3: 0.7, 5: 0.5, 40: 0.1, 0: 0.9, 1000: 0.1} {
		if got := ev.ReuseAccuracy("m", age); math.Abs(got-want) > 1e-9 {
			t.Errorf("age %d: %v, want %v", age, got, want)
		}
	}
	if got := ev.ReuseAccuracy("other", 1); got != 0 {
		t.Errorf("unmeasured model: %v", got)
	}
}

// temporalMatrix adds temporal ensembles to reuseMatrix.
type temporalMatrix struct {
	reuseMatrix
	temporal map[string]func(age int) float64
}

func (m temporalMatrix) TemporalAccuracy(target string, executed []string, age int) (float64, bool) {
	f := m.temporal[target]
	if f == nil || len(executed) == 0 {
		return 0, false
	}
	return f(age), true
}

// Where a model's temporal ensemble (its own last output plus the executed
// models') measures best, the hybrid predicts it temporally.
func TestSelectHybridChoosesTemporalLinksWhereTheyMeasureBest(t *testing.T) {
	models := []string{"slow", "fast"}
	costs := map[string]Cost{"slow": {MS: 100}, "fast": {MS: 10}}
	ev := temporalMatrix{
		reuseMatrix: reuseMatrix{
			matrix: matrix{"fast": {"slow": 0.25}, "slow": {"fast": 0.5}},
			reuse:  map[string]func(int) float64{"slow": decay(0.8, 0.2, 0), "fast": decay(0.95, 0.01, 0.9)},
		},
		temporal: map[string]func(int) float64{"slow": decay(0.9, 0.05, 0.3)},
	}
	h := SelectHybrid(models, costs, Budget{MS: 60}, ev, ev, HybridOptions{})
	if !contains(h.Temporal, "slow") || !contains(h.Predicted, "slow") || contains(h.Reused, "slow") {
		t.Fatalf("temporal %v predicted %v reused %v: slow's temporal links (0.9 at age 1) beat reuse (0.8)", h.Temporal, h.Predicted, h.Reused)
	}
	if want := (1 + 0.9) / 2; h.Every["slow"] == 2 && math.Abs(h.Accuracy["slow"]-want) > 1e-9 {
		t.Errorf("slow every 2nd frame: accuracy %.3f, want %.3f", h.Accuracy["slow"], want)
	}
	// Without temporal evidence (links trained without them) nothing is
	// temporal.
	if h := SelectHybrid(models, costs, Budget{MS: 60}, ev.reuseMatrix, ev.reuseMatrix, HybridOptions{}); len(h.Temporal) != 0 {
		t.Fatalf("temporal %v without temporal evidence", h.Temporal)
	}
}

func TestTemporalAccuracyFromTheEvaluation(t *testing.T) {
	ens := func(srcs []string, age int, acc float64) links.EnsembleAccuracy {
		return links.EnsembleAccuracy{Target: "m", Sources: srcs, Age: age, Score: links.Score{Accuracy: acc}}
	}
	ev := LinkEvidence{Eval: &links.Evaluation{
		TemporalEnsembles: []links.EnsembleAccuracy{ens([]string{"a"}, 1, 0.9), ens([]string{"a"}, 5, 0.5), ens([]string{"a", "b"}, 1, 0.95)},
		Baselines:         []links.BaselineAccuracy{{Target: "m", Baseline: "constant", Score: links.Score{Accuracy: 0.2}}},
	}}
	for _, c := range []struct {
		executed []string
		age      int
		want     float64
		ok       bool
	}{
		{[]string{"a"}, 1, 0.9, true},
		{[]string{"a"}, 3, 0.7, true},
		{[]string{"a", "m"}, 5, 0.5, true}, // the target itself is no source
		{[]string{"b", "a"}, 1, 0.95, true},
		{[]string{"a"}, 1000, 0.2, true}, // far beyond: a constant guess at best
		{[]string{"b"}, 1, 0, false},
	} {
		got, ok := ev.TemporalAccuracy("m", c.executed, c.age)
		if ok != c.ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%v at age %d: %v %v, want %v %v", c.executed, c.age, got, ok, c.want, c.ok)
		}
	}
}

// motionMatrix adds the tracker and delta links to reuseMatrix.
type motionMatrix struct {
	reuseMatrix
	track  map[string]func(age int) float64
	follow map[[2]string]func(age int) float64 // [target, source], at gain 1
}

func (m motionMatrix) TrackAccuracy(target string, age int) (float64, bool) {
	if f := m.track[target]; f != nil {
		return f(age), true
	}
	return 0, false
}

func (m motionMatrix) FollowLinks(target, source string) []pipeline.FollowLink {
	if m.follow[[2]string{target, source}] != nil {
		return []pipeline.FollowLink{{Source: source, Gain: 1}}
	}
	return nil
}

func (m motionMatrix) FollowAccuracy(target string, l pipeline.FollowLink, age int) (float64, bool) {
	if f := m.follow[[2]string{target, l.Source}]; f != nil && l.Gain == 1 {
		return f(age), true
	}
	return 0, false
}

// A rotating detector is served by whichever of reuse, its tracker and a
// delta link from an always-run detector measures best; the no-links
// ablation keeps the tracker (a reuse upgrade) and loses the delta link.
func TestSelectHybridServesDetectorsByMeasuredMotion(t *testing.T) {
	models := []string{"slow", "fast"}
	costs := map[string]Cost{"slow": {MS: 100}, "fast": {MS: 10}}
	base := reuseMatrix{
		matrix: matrix{"fast": {"slow": 0.25}, "slow": {"fast": 0.5}},
		reuse:  map[string]func(int) float64{"slow": decay(0.8, 0.2, 0), "fast": decay(0.95, 0.01, 0.9)},
	}
	ev := motionMatrix{reuseMatrix: base,
		track:  map[string]func(int) float64{"slow": decay(0.85, 0.1, 0)},
		follow: map[[2]string]func(int) float64{{"slow", "fast"}: decay(0.9, 0.05, 0)},
	}
	h := SelectHybrid(models, costs, Budget{MS: 60}, ev, ev, HybridOptions{})
	if h.Every["slow"] != 2 || !contains(h.Always, "fast") {
		t.Fatalf("always %v every %v, want fast always and slow every 2nd frame", h.Always, h.Every)
	}
	if f, ok := h.Follow["slow"]; !ok || f.Source != "fast" || f.Gain != 1 || contains(h.Tracked, "slow") || !contains(h.Reused, "slow") {
		t.Fatalf("follow %v tracked %v reused %v: slow's delta link from fast (0.9 at age 1) beats its tracker (0.85) and reuse (0.8)",
			h.Follow, h.Tracked, h.Reused)
	}
	if want := (1 + 0.9) / 2; math.Abs(h.Accuracy["slow"]-want) > 1e-9 {
		t.Errorf("slow: accuracy %.3f, want %.3f", h.Accuracy["slow"], want)
	}
	h = SelectHybrid(models, costs, Budget{MS: 60}, ev, ev, HybridOptions{NoLinks: true})
	if len(h.Follow) != 0 || !contains(h.Tracked, "slow") {
		t.Fatalf("no-links: follow %v tracked %v, want slow tracked", h.Follow, h.Tracked)
	}
	if want := (1 + 0.85) / 2; math.Abs(h.Accuracy["slow"]-want) > 1e-9 {
		t.Errorf("no-links: slow %.3f, want %.3f", h.Accuracy["slow"], want)
	}
	// A tracker measured worse than reuse is not used.
	ev.track["slow"] = decay(0.7, 0.1, 0)
	if h := SelectHybrid(models, costs, Budget{MS: 60}, ev, ev, HybridOptions{NoLinks: true}); len(h.Tracked) != 0 {
		t.Fatalf("tracked %v though reuse measured better", h.Tracked)
	}
	// The plan carries the choice to the frames slow does not run on.
	ev.track["slow"] = decay(0.85, 0.1, 0)
	c, err := NewController(ControllerConfig{Policy: PolicyHybrid, Models: models, Budget: Budget{MS: 60.01},
		Period: time.Hour, ProfileShare: 1e-6, BootstrapFrames: 4, HoldOut: 0.25, Synchronous: true, HealthTimeout: time.Hour},
		fixedMotionLearner{ev}, NewCostModel(costs), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	followed := 0
	for seq := uint64(1); seq <= 14; seq++ {
		p := c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(seq) * 100 * time.Millisecond)})
		res := &pipeline.Result{Camera: "cam", Seq: seq, Plan: p, Outputs: map[string]*pipeline.Output{}}
		for _, m := range p.Exact {
			res.Outputs[m] = &pipeline.Output{Model: m, Source: pipeline.SourceExact, Type: pipeline.TypeBoxes, Value: []float64{0}}
		}
		c.ObserveResult(res)
		if seq > 4 && contains(p.Reused, "slow") {
			if p.Follow["slow"] != (pipeline.FollowLink{Source: "fast", Gain: 1}) {
				t.Fatalf("plan %+v: slow reused without its delta link", p)
			}
			followed++
		}
	}
	if followed != 5 {
		t.Fatalf("slow followed fast on %d of 10 frames, want every other one", followed)
	}
}

// fixedMotionLearner measures fixed evidence with motion.
type fixedMotionLearner struct{ ev motionMatrix }

func (f fixedMotionLearner) Train([]*links.TraceRecord) (Learned, error) {
	return testLearned{p: nopPredictor{}, measure: func() SetEvidence { return f.ev }}, nil
}

// Under a mean time budget a policy's evidence scales with the budget:
// at half of the total cost the bootstrap is half the configured frames,
// with at least minBootstrapFrames; under a cap it is as configured.
func TestBootstrapScalesWithTheBudget(t *testing.T) {
	models := []string{"slow", "fast"}
	costs := map[string]Cost{"slow": {MS: 100}, "fast": {MS: 10}}
	ev := reuseMatrix{
		matrix: matrix{"fast": {"slow": 0.25}, "slow": {"fast": 0.5}},
		reuse:  map[string]func(int) float64{"slow": decay(0.8, 0.2, 0), "fast": decay(0.95, 0.01, 0.9)},
	}
	profiledBeforeLinks := func(b Budget, bootstrap int) int {
		// Costs unknown at the start, as live and in the bench: the first
		// frame is the probe.
		c, err := NewController(ControllerConfig{Policy: PolicyHybrid, Models: models, Budget: b,
			Period: time.Hour, ProfileShare: 1e-6, BootstrapFrames: bootstrap, HoldOut: 0.25, Synchronous: true, HealthTimeout: time.Hour},
			fixedLearner{ev}, NewCostModel(map[string]Cost{}), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Unix(1000, 0)
		profiled := 0
		for seq := uint64(1); seq <= 2000 && c.Selection() == nil; seq++ {
			p := c.Plan(FrameInfo{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(seq) * 100 * time.Millisecond)})
			res := &pipeline.Result{Camera: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(seq) * 100 * time.Millisecond), Plan: p, Outputs: map[string]*pipeline.Output{}}
			for _, m := range p.Exact {
				res.Outputs[m] = &pipeline.Output{Model: m, Source: pipeline.SourceExact, Type: pipeline.TypeCount, Value: []float64{1}, InferMS: costs[m].MS}
			}
			if p.Profiling {
				profiled++
			}
			c.ObserveResult(res)
		}
		if c.Selection() == nil {
			t.Fatalf("budget %v: no links after 2000 frames", b)
		}
		return profiled
	}
	half := Budget{MS: 55} // half of 110 ms
	if n := profiledBeforeLinks(half, 60); n < 30 || n > 32 {
		t.Errorf("half the cost, bootstrap 60: %d frames profiled before the links, want 30 (+ the probe)", n)
	}
	if n := profiledBeforeLinks(half, 20); n < minBootstrapFrames || n > minBootstrapFrames+2 {
		t.Errorf("half the cost, bootstrap 20: %d frames profiled, want the floor %d", n, minBootstrapFrames)
	}
	if n := profiledBeforeLinks(Budget{MS: 55, Mode: TimeCap}, 60); n < 60 || n > 62 {
		t.Errorf("capped: %d frames profiled, want the configured 60", n)
	}
}
