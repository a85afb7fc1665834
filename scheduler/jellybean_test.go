package scheduler

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// Three tasks with two or three variants each, per-task targets: people at
// 0.8 takes hog_960 (30 ms, 0.85) over fullbody (50 ms) and the reference
// (100 ms); faces at 0.75 cannot take the fast cascade (0.7) nor BlazeFace
// (0.6) and runs the reference; motion has no target and runs its cheapest.
func TestBeamSearchPicksTheCheapestVariantsMeetingTheTargets(t *testing.T) {
	tasks := []Task{
		{Name: "people", Target: 0.8, Variants: []Variant{{"hog", 100, 1}, {"hog_960", 30, 0.85}, {"fullbody", 50, 0.9}}},
		{Name: "faces", Target: 0.75, Variants: []Variant{{"haar", 60, 1}, {"haar_fast", 40, 0.7}, {"blaze", 5, 0.6}}},
		{Name: "motion", Variants: []Variant{{"motion", 19, 1}, {"motion_blobs", 6, 0.5}}},
	}
	cands, err := BeamSearch(tasks, 0, BeamWidth)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cands[0].Models(tasks), []string{"hog_960", "haar", "motion_blobs"}; !reflect.DeepEqual(got, want) {
		t.Errorf("cheapest assignment %v, want %v", got, want)
	}
	if cands[0].MS != 96 {
		t.Errorf("cheapest assignment costs %g ms, want 96", cands[0].MS)
	}
	// Every candidate meets the targets, cheapest first.
	for i, a := range cands {
		for ti, c := range a.Choice {
			if v := tasks[ti].Variants[c]; v.Accuracy < tasks[ti].Target {
				t.Errorf("candidate %d runs %s at %.2f under %s's target %.2f", i, v.Model, v.Accuracy, tasks[ti].Name, tasks[ti].Target)
			}
		}
		if i > 0 && a.MS < cands[i-1].MS {
			t.Errorf("candidate %d (%g ms) cheaper than %d (%g ms)", i, a.MS, i-1, cands[i-1].MS)
		}
	}
	// 3 × 1 × 2 assignments meet the targets.
	if len(cands) != 6 {
		t.Errorf("%d candidates, want the 6 that meet the targets", len(cands))
	}
}

// Where the beam's width matters: a mean accuracy of 0.9 over three tasks.
// From the sink backwards a beam of one keeps c1 (10 ms, 0.8), which
// forces b2 and then the expensive a2 (140 ms in all); a beam of ten keeps
// c2 too and finds a1 b2 c2 (70 ms, mean exactly 0.9).
func TestBeamWidthMattersWhenACheapChoiceForcesExpensiveOnes(t *testing.T) {
	tasks := []Task{
		{Name: "a", Variants: []Variant{{"a1", 10, 0.7}, {"a2", 100, 1}}},
		{Name: "b", Variants: []Variant{{"b1", 10, 0.8}, {"b2", 30, 1}}},
		{Name: "c", Variants: []Variant{{"c1", 10, 0.8}, {"c2", 30, 1}}},
	}
	for _, tc := range []struct {
		k      int
		models []string
		ms     float64
	}{
		{1, []string{"a2", "b2", "c1"}, 140},
		{BeamWidth, []string{"a1", "b2", "c2"}, 70},
	} {
		cands, err := BeamSearch(tasks, 0.9, tc.k)
		if err != nil {
			t.Fatal(err)
		}
		if got := cands[0].Models(tasks); !reflect.DeepEqual(got, tc.models) || cands[0].MS != tc.ms {
			t.Errorf("K=%d: %v at %g ms, want %v at %g ms", tc.k, got, cands[0].MS, tc.models, tc.ms)
		}
		if cands[0].Accuracy < 0.9-1e-9 {
			t.Errorf("K=%d: mean accuracy %.3f under the 0.9 target", tc.k, cands[0].Accuracy)
		}
	}
}

// Refusals name the SLO and the best any plan achieves.
func TestUnmeetableSLOsAreRefusedByName(t *testing.T) {
	tasks := []Task{
		{Name: "people", Target: 0.5, Variants: []Variant{{"hog", 100, 1}}},
		{Name: "faces", Target: 0.95, Variants: []Variant{{"haar", 60, 0.9}, {"blaze", 5, 0.6}}},
	}
	_, err := BeamSearch(tasks, 0, BeamWidth)
	e, ok := AsSLOError(err)
	if !ok || e.SLO != "accuracy of task faces" || e.Best != 0.9 || !strings.Contains(err.Error(), "best achievable is 0.9") {
		t.Errorf("faces' target: got %v", err)
	}
	tasks[1].Target = 0
	_, err = BeamSearch(tasks, 0.99, BeamWidth)
	if e, ok := AsSLOError(err); !ok || e.SLO != "accuracy" || math.Abs(e.Best-0.95) > 1e-9 {
		t.Errorf("mean target: got %v", err)
	}
	// Two workers at speed 1 carry 100 ms of model time 20 times a second.
	pools := []pipeline.WorkerPool{{Name: "box", Tier: "edge", PricePerHour: 0.1, Workers: 2}}
	_, err = Place([]Operator{{Model: "hog", MS: 100}}, pools, Demand{FPS: 30})
	e, ok = AsSLOError(err)
	if !ok || e.SLO != "throughput_fps" || math.Abs(e.Best-20) > 1e-6 || !strings.Contains(err.Error(), "SLO throughput_fps 30 cannot be met: the best achievable is 20") {
		t.Errorf("throughput: got %v", err)
	}
	_, err = PlanJellyBean(tasks, pipeline.JellyBeanConfig{SLO: pipeline.JellyBeanSLO{ThroughputFPS: 30}}, pools, BeamWidth)
	if e, ok := AsSLOError(err); !ok || e.SLO != "throughput_fps" {
		t.Errorf("plan over the pools' throughput: got %v", err)
	}
}

// In a tier an operator takes the cheapest single worker that keeps up
// with it, else workers by cost per unit of throughput. At 10 fps: a
// (40 ms, 0.4 of a worker) fits one Pi (speed 0.5, $0.05); b (120 ms, 1.2)
// fits no Pi but one NUC (speed 1.5, $0.20) — taken though three Pis
// would be cheaper: the rule prefers one worker; c (160 ms, 1.6) fits no
// single worker left and is spread over four Pis, the cheapest per unit of
// throughput ($0.10 against the NUC's $0.13).
func TestPlacementTakesTheCheapestSingleWorkerElseFillsByCostPerThroughput(t *testing.T) {
	pools := []pipeline.WorkerPool{
		{Name: "nuc", Tier: "edge", PricePerHour: 0.2, Workers: 1, Speed: 1.5},
		{Name: "pi", Tier: "edge", PricePerHour: 0.05, Workers: 6, Speed: 0.5},
	}
	pl, err := Place([]Operator{{Model: "a", MS: 40}, {Model: "b", MS: 120}, {Model: "c", MS: 160}}, pools, Demand{FPS: 10, FrameBytes: 1e5})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]Share{
		"a": {{Pool: "pi", Workers: 1, Fraction: 1}},
		"b": {{Pool: "nuc", Workers: 1, Fraction: 1}},
		"c": {{Pool: "pi", Workers: 4, Fraction: 1}},
	}
	if !reflect.DeepEqual(pl.Shares, want) {
		t.Errorf("shares %v, want %v", pl.Shares, want)
	}
	if math.Abs(pl.ComputePerHour-0.45) > 1e-9 || pl.TrafficPerHour != 0 || pl.CrossTierGBPerHour != 0 {
		t.Errorf("bill %+v, want $0.45/h of compute and no cross-tier traffic (all at the edge)", pl)
	}
	// One more Pi-sized operator fills the edge: it moves up, to nothing.
	_, err = Place([]Operator{{Model: "a", MS: 40}, {Model: "b", MS: 120}, {Model: "c", MS: 160}, {Model: "d", MS: 50}, {Model: "e", MS: 5}}, pools, Demand{FPS: 10})
	if _, ok := AsSLOError(err); !ok {
		t.Errorf("a sixth Pi and a seventh: want a throughput refusal, got %v", err)
	}
}

// Forward only: once y (150 ms, 1.5 workers: more than the edge has left)
// goes to the cloud, z follows it there though a camera worker is free.
// Every frame to y and z crosses (2 × 10 fps × 100 kB × 3600 s = 7.2 GB/h)
// and x's outputs go up to the results in the cloud (10 × 2 kB × 3600 s =
// 0.072 GB/h), at the cloud's $0.10/GB: $0.7272/h of traffic beside two
// GPU workers' $2/h.
func TestPlacementIsForwardOnlyAndCostsCrossTierBytes(t *testing.T) {
	pools := []pipeline.WorkerPool{
		{Name: "gpu", Tier: "cloud", PricePerHour: 1, Workers: 2, Speed: 4, LinkPricePerGB: 0.1},
		{Name: "cam", Tier: "edge", PricePerHour: 0, Workers: 2},
	}
	ops := []Operator{{Model: "x", MS: 50, OutputBytes: 2000}, {Model: "y", MS: 150, OutputBytes: 2000}, {Model: "z", MS: 20, OutputBytes: 2000}}
	pl, err := Place(ops, pools, Demand{FPS: 10, FrameBytes: 1e5})
	if err != nil {
		t.Fatal(err)
	}
	for m, pool := range map[string]string{"x": "cam", "y": "gpu", "z": "gpu"} {
		if got := pl.Pools(m); !slices.Equal(got, []string{pool}) {
			t.Errorf("%s on %v, want %s", m, got, pool)
		}
	}
	if !reflect.DeepEqual(pl.Workers, map[string]int{"cam": 1, "gpu": 2}) {
		t.Errorf("workers %v", pl.Workers)
	}
	if math.Abs(pl.CrossTierGBPerHour-7.272) > 1e-9 || math.Abs(pl.TrafficPerHour-0.7272) > 1e-9 ||
		math.Abs(pl.ComputePerHour-2) > 1e-9 || math.Abs(pl.PerHour-2.7272) > 1e-9 {
		t.Errorf("bill %+v, want 7.272 GB/h, $0.7272 + $2 = $2.7272/h", pl)
	}
}

// The candidate cheapest per frame is not always the cheapest per hour,
// which is why the beam keeps ten. At 10 fps: hog_960 (120 ms: 1.2 of a
// worker) fits no Pi (speed 0.5) but the one NUC (speed 1.5, $0.30), which
// the single-worker rule takes; fullbody (160 ms, 1.6) fits no single
// worker and fills four Pis ($0.20). With BlazeFace on one more Pi, the
// plan with fullbody costs $0.25/h against $0.35/h; one beam wide, only
// hog_960's is priced.
func TestPlanJellyBeanPicksTheCheapestPlacedCandidate(t *testing.T) {
	tasks := []Task{
		{Name: "people", Target: 0.8, Variants: []Variant{{"hog", 300, 1}, {"hog_960", 120, 0.85}, {"fullbody", 160, 0.9}}},
		{Name: "faces", Variants: []Variant{{"blaze", 5, 1}}},
	}
	cfg := pipeline.JellyBeanConfig{SLO: pipeline.JellyBeanSLO{ThroughputFPS: 10}}
	pools := []pipeline.WorkerPool{
		{Name: "nuc", Tier: "edge", PricePerHour: 0.3, Workers: 1, Speed: 1.5},
		{Name: "pi", Tier: "edge", PricePerHour: 0.05, Workers: 6, Speed: 0.5},
	}
	for _, tc := range []struct {
		k       int
		people  string
		perHour float64
	}{{1, "hog_960", 0.35}, {BeamWidth, "fullbody", 0.25}} {
		p, err := PlanJellyBean(tasks, cfg, pools, tc.k)
		if err != nil {
			t.Fatal(err)
		}
		if !p.SLOMet || !p.Placed || p.Run["people"] != tc.people || p.Run["faces"] != "blaze" {
			t.Errorf("K=%d: plan %s, want people on %s", tc.k, p, tc.people)
		}
		if math.Abs(p.Placement.PerHour-tc.perHour) > 1e-9 {
			t.Errorf("K=%d: $%.4f/h, want $%.2f", tc.k, p.Placement.PerHour, tc.perHour)
		}
	}
	p, _ := PlanJellyBean(tasks, cfg, pools, BeamWidth)
	if !strings.Contains(p.String(), "people=fullbody@pi faces=blaze@pi") || !strings.HasPrefix(p.String(), "$0.250/h") {
		t.Errorf("plan renders as %q", p)
	}
}

// jellybeanController is a jellybean controller over models (links
// arrive from elsewhere: no learner needed).
func jellybeanController(t *testing.T, models []string, cfg pipeline.JellyBeanConfig, pools []pipeline.WorkerPool) *Controller {
	t.Helper()
	c, err := NewController(ControllerConfig{Policy: PolicyJellyBean, Models: models, Period: time.Hour,
		RemoteTraining: true, JellyBean: cfg, Pools: pools}, nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The selection: the SLO plan when it fits the budget (the task's other
// variants predicted from the one run, the models of no task run as tasks
// of their own); the most accurate plan within the budget when it does
// not, with the reason saying so; and a refusal naming the SLO when no
// plan meets them.
func TestJellyBeanSelection(t *testing.T) {
	models := []string{"hog", "hog_960", "haar", "haar_fast", "motion"}
	costs := map[string]Cost{"hog": {MS: 1200}, "hog_960": {MS: 360}, "haar": {MS: 600}, "haar_fast": {MS: 400}, "motion": {MS: 7}}
	ev := reuseMatrix{matrix: matrix{
		"hog_960":   {"hog": 0.8},
		"haar_fast": {"haar": 0.9},
		"haar":      {"haar_fast": 0.95},
		"hog":       {"hog_960": 0.9},
	}}
	cfg := pipeline.JellyBeanConfig{
		SLO:      pipeline.JellyBeanSLO{Tasks: map[string]float64{"people": 0.75, "faces": 0.85}},
		Variants: map[string][]string{"people": {"hog", "hog_960"}, "faces": {"haar", "haar_fast"}},
	}
	c := jellybeanController(t, models, cfg, nil)
	s := c.scheme
	sel := s.Select(c, ev, costs, Budget{})
	if want := []string{"hog_960", "haar_fast", "motion"}; !slices.Equal(sel.Exact, want) {
		t.Errorf("exact %v, want %v", sel.Exact, want)
	}
	if want := []string{"hog", "haar"}; !slices.Equal(sel.Predicted, want) || len(sel.Reused) != 0 {
		t.Errorf("predicted %v reused %v, want %v predicted", sel.Predicted, sel.Reused, want)
	}
	if p := c.JellyBeanPlan(); p == nil || !p.SLOMet || p.MS != 767 {
		t.Errorf("plan %v, want the SLO plan at 767 ms", p)
	}
	// 500 ms per frame (no reuse measured: a reused output is worth
	// nothing): haar_fast on every frame (1 + 0.9 for haar) and motion
	// (1) take 407 ms; hog_960 on every 4th frame (90 ms) serves people a
	// quarter of the time ((1 + 0.8) / 4) — more than hog_960 on every
	// frame with haar_fast on every 4th (1.8 + 1.9 / 4).
	sel = s.Select(c, ev, costs, Budget{MS: 500})
	if want := []string{"haar_fast", "motion"}; !slices.Equal(sel.Exact, want) {
		t.Errorf("within 500 ms: exact %v, want %v", sel.Exact, want)
	}
	if !slices.Equal(sel.Reused, []string{"hog", "hog_960"}) || !slices.Equal(sel.Predicted, []string{"haar"}) || sel.Every["hog_960"] != 4 {
		t.Errorf("within 500 ms: reused %v predicted %v every %v, want hog_960 every 4th frame", sel.Reused, sel.Predicted, sel.Every)
	}
	if !strings.Contains(sel.Reason, "exceeds the budget") || !c.JellyBeanPlan().OverBudget {
		t.Errorf("within 500 ms: reason %q does not say the SLO plan is over the budget", sel.Reason)
	}
	// A reference always meets its task's target: what a plan can miss is
	// the throughput. Three workers at speed 1, one a model, keep up with
	// the cheapest plan at 2.5 fps at most (haar_fast's 400 ms).
	cfg.SLO.ThroughputFPS = 10
	c = jellybeanController(t, models, cfg, []pipeline.WorkerPool{{Name: "box", Tier: "edge", PricePerHour: 0.1, Workers: 3}})
	sel = c.scheme.Select(c, ev, costs, Budget{MS: 2000})
	if !strings.Contains(sel.Reason, "refused: SLO throughput_fps 10 cannot be met: the best achievable is 2.5 fps") {
		t.Errorf("reason %q does not refuse the throughput SLO with the best achievable", sel.Reason)
	}
	if p := c.JellyBeanPlan(); p.SLOMet || p.Refusal == nil || sum(costs, sel.Exact).MS > 2000 {
		t.Errorf("refused plan %v (exact %v): want the most accurate plan within 2000 ms", p, sel.Exact)
	}
}

// Without variants every model is a task of its own: the SLO plan runs
// every model, and under a budget the selection is which models run.
func TestJellyBeanWithoutVariantsRunsModelsOrNot(t *testing.T) {
	models := []string{"a", "b", "c"}
	costs := map[string]Cost{"a": {MS: 100}, "b": {MS: 60}, "c": {MS: 50}}
	c := jellybeanController(t, models, pipeline.JellyBeanConfig{}, nil)
	ev := reuseMatrix{matrix: matrix{}}
	if sel := c.scheme.Select(c, ev, costs, Budget{}); !slices.Equal(sel.Exact, models) {
		t.Errorf("no budget: exact %v, want every model", sel.Exact)
	}
	// Within 120 ms: b and c on every frame (110 ms), a on every 16th
	// (6.25 ms), reused between.
	sel := c.scheme.Select(c, ev, costs, Budget{MS: 120})
	if !slices.Equal(sel.Exact, []string{"b", "c"}) || !slices.Equal(sel.Reused, []string{"a"}) || len(sel.Predicted) != 0 || sel.Every["a"] != 16 {
		t.Errorf("within 120 ms: %s, want b and c run, a on every 16th frame", sel)
	}
}

// A variant run on every k-th frame: on its turns it runs and the task's
// other variants are predicted from it (every executed model a source);
// between them the task's outputs are reused.
func TestJellyBeanPlanPredictsTheSiblingsOnAVariantsTurns(t *testing.T) {
	models := []string{"hog", "hog_960", "haar", "haar_fast", "motion"}
	costs := map[string]Cost{"hog": {MS: 1200}, "hog_960": {MS: 360}, "haar": {MS: 600}, "haar_fast": {MS: 400}, "motion": {MS: 7}}
	ev := reuseMatrix{matrix: matrix{"hog_960": {"hog": 0.8}, "haar_fast": {"haar": 0.9}}}
	c, err := NewController(ControllerConfig{Policy: PolicyJellyBean, Models: models, Period: time.Hour, Budget: Budget{MS: 500},
		RemoteTraining: true, JellyBean: pipeline.JellyBeanConfig{
			Variants: map[string][]string{"people": {"hog", "hog_960"}, "faces": {"haar", "haar_fast"}},
		}}, nil, NewCostModel(costs), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	c.InstallLinks(Links{Predictor: constPredictor{}, Evidence: ev, Reason: "bootstrap", At: t0})
	if k := c.Selection().Every["hog_960"]; k != 4 {
		t.Fatalf("selection %s: want hog_960 on every 4th frame", c.Selection())
	}
	turns := 0
	for i := range 17 {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		plan := c.Plan(FrameInfo{Camera: "cam", Seq: uint64(i + 1), CapturedAt: at})
		if i > 0 { // the books pace the turns by what was spent (the profiled frame left out: no debt)
			res := &pipeline.Result{Camera: "cam", Seq: uint64(i + 1), CapturedAt: at, Plan: plan, Outputs: map[string]*pipeline.Output{}}
			for _, m := range plan.Exact {
				res.Outputs[m] = &pipeline.Output{Model: m, Source: pipeline.SourceExact, InferMS: costs[m].MS}
			}
			c.ObserveResult(res)
		}
		if i == 0 {
			if !plan.Profiling {
				t.Fatalf("the camera's first frame %+v: want it profiled", plan)
			}
			continue
		}
		if len(plan.Models()) != len(models) {
			t.Fatalf("frame %d: plan %+v does not serve every model", i, plan)
		}
		onTurn := slices.Contains(plan.Exact, "hog_960")
		switch {
		case onTurn:
			turns++
			if !slices.Contains(plan.Predicted, "hog") || slices.Contains(plan.Reused, "hog") || plan.Sources != nil {
				t.Errorf("frame %d, hog_960's turn: %+v, want hog predicted from every executed model", i, plan)
			}
		case !slices.Contains(plan.Reused, "hog") || !slices.Contains(plan.Reused, "hog_960"):
			t.Errorf("frame %d, between turns: %+v, want hog and hog_960 reused", i, plan)
		}
		if !slices.Contains(plan.Exact, "haar_fast") || !slices.Contains(plan.Predicted, "haar") {
			t.Errorf("frame %d: %+v, want haar_fast run and haar predicted", i, plan)
		}
	}
	if turns != 4 {
		t.Errorf("hog_960 ran on %d of 16 frames, want 4", turns)
	}
}
