package scheduler

import (
	"math"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

func TestSkipIntervals(t *testing.T) {
	models := []string{"a", "b", "c"}
	costs := map[string]Cost{"a": {MS: 100}, "b": {MS: 50}, "c": {MS: 10}}
	for _, c := range []struct {
		b    Budget
		want map[string]int
	}{
		{Budget{MS: 60}, map[string]int{"a": 3, "b": 3, "c": 3}},                 // 160/3 = 53 ≤ 60
		{Budget{MS: 100}, map[string]int{"a": 2, "b": 2, "c": 2}},                // 80
		{Budget{MS: 200}, map[string]int{"a": 1, "b": 1, "c": 1}},                // everything fits
		{Budget{MS: 100, Mode: TimeCap}, map[string]int{"a": 2, "b": 2, "c": 2}}, // a | b+c
		{Budget{MS: 110, Mode: TimeCap}, map[string]int{"a": 2, "b": 2, "c": 2}}, // a+c | b
		// a alone is over the cap: it can run on no frame but a profiling one.
		{Budget{MS: 60, Mode: TimeCap}, map[string]int{"a": 0, "b": 1, "c": 1}},
		{Budget{MS: 55, Mode: TimeCap}, map[string]int{"a": 0, "b": 2, "c": 2}},
	} {
		got := SkipIntervals(models, costs, c.b)
		for _, m := range models {
			if got[m] != c.want[m] {
				t.Errorf("%s (%s): %s every %d, want %d", c.b, c.b.Mode, m, got[m], c.want[m])
			}
		}
	}
}

// The square-root rule against a brute-force scan of λ: the smallest λ on
// a fine grid whose intervals fit gives the same intervals, and the rule's
// answer fits while making no model run less often than needed.
func TestSkipPerModelIntervalsSquareRootRule(t *testing.T) {
	models := []string{"a", "b", "c"}
	costs := map[string]Cost{"a": {MS: 100}, "b": {MS: 25}, "c": {MS: 4}}
	got := SkipPerModelIntervals(models, costs, Budget{MS: 40})
	want := map[string]int{"a": 5, "b": 3, "c": 1}
	for _, m := range models {
		if got[m] != want[m] {
			t.Fatalf("intervals %v, want %v", got, want)
		}
	}
	for _, budget := range []float64{5, 13, 40, 77, 120} {
		got := SkipPerModelIntervals(models, costs, Budget{MS: budget})
		var brute map[string]int
		for lambda := 0.0; lambda < 100; lambda += 1e-4 {
			every, mean := map[string]int{}, 0.0
			for _, m := range models {
				k := max(1, int(math.Ceil(lambda*math.Sqrt(costs[m].MS))))
				every[m] = k
				mean += costs[m].MS / float64(k)
			}
			if mean <= budget {
				brute = every
				break
			}
		}
		for _, m := range models {
			if got[m] != brute[m] {
				t.Errorf("budget %g: intervals %v, brute force %v", budget, got, brute)
				break
			}
		}
	}
}

// Under a cap the intervals are powers of two and the staggered cycle
// keeps every frame within the cap.
func TestSkipPerModelIntervalsCapped(t *testing.T) {
	models := []string{"hog", "body", "face", "lines", "motion"}
	costs := map[string]Cost{"hog": {MS: 410}, "body": {MS: 190}, "face": {MS: 215}, "lines": {MS: 42}, "motion": {MS: 5}}
	b := Budget{MS: 500, Mode: TimeCap}
	every := SkipPerModelIntervals(models, costs, b)
	for m, k := range every {
		if k&(k-1) != 0 {
			t.Errorf("%s every %d: not a power of two", m, k)
		}
	}
	_, peak := staggerPhases(models, every, costs)
	if peak > b.MS {
		t.Fatalf("intervals %v: heaviest frame %.0f ms over the %g ms cap", every, peak, b.MS)
	}
	// The same under a mean budget may put more on one frame.
	if every["hog"] < 2 {
		t.Fatalf("hog every %d frames: with body and face it cannot run on every frame under the cap", every["hog"])
	}
}

// The policy probes costs on its first frame (every model, counted), then
// runs each model on its turns and reuses it between, and keeps the whole
// run's mean within a mean budget.
func TestSkipPolicyPlansAndPaysItsProbe(t *testing.T) {
	models := []string{"slow", "mid", "fast"}
	truth := map[string]float64{"slow": 300, "mid": 100, "fast": 10}
	for _, perModel := range []bool{false, true} {
		for _, b := range []Budget{{MS: 150, Mode: TimeMean}, {MS: 310, Mode: TimeCap}} {
			mode := b.Mode
			policy := PolicySkip
			if perModel {
				policy = PolicySkipPerModel
			}
			p, err := NewController(ControllerConfig{Policy: policy, Models: models, Budget: b, Period: 10 * time.Second},
				nil, NewCostModel(nil), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Unix(1000, 0)
			spent, maxUnprofiled := 0.0, 0.0
			const frames = 400
			for i := range frames {
				at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
				plan := p.Plan(FrameInfo{Camera: "cam", Seq: uint64(i + 1), CapturedAt: at})
				if i == 0 && (!plan.Profiling || len(plan.Exact) != 3) {
					t.Fatalf("first frame %+v: want the cost probe", plan)
				}
				if len(plan.Exact)+len(plan.Reused) != 3 {
					t.Fatalf("plan %+v does not serve every model", plan)
				}
				res := &pipeline.Result{Camera: "cam", Seq: uint64(i + 1), CapturedAt: at, Plan: plan, Outputs: map[string]*pipeline.Output{}}
				cost := 0.0
				for _, m := range plan.Exact {
					res.Outputs[m] = &pipeline.Output{Model: m, Source: pipeline.SourceExact, InferMS: truth[m]}
					cost += truth[m]
				}
				spent += cost
				if !plan.Profiling {
					maxUnprofiled = max(maxUnprofiled, cost)
				}
				p.ObserveResult(res)
			}
			name := p.Name() + "/" + string(mode)
			if mean := spent / frames; mean > b.MS {
				t.Errorf("%s: mean %.1f ms per frame over the %g ms budget", name, mean, b.MS)
			}
			if mode == TimeCap && maxUnprofiled > b.MS {
				t.Errorf("%s: a frame cost %.0f ms over the cap", name, maxUnprofiled)
			}
			if sel := p.Selection(); sel == nil || sel.Every["slow"] < 2 {
				t.Errorf("%s: selection %v: slow must skip frames", name, sel)
			}
		}
	}
}
