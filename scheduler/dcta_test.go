package scheduler

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// runDCTA plans frames of cameras alternately, answering each with the
// models' true times, and returns each camera's model time over the
// unprofiled frames and the controller.
func runDCTA(t *testing.T, imp Importance, b Budget, cameras []string, frames int) (map[string]float64, *Controller) {
	t.Helper()
	return runDCTAWith(t, imp, b, cameras, frames, func(int) map[string]float64 { return map[string]float64{"a": 100, "b": 60, "c": 40} })
}

// runDCTAWith is runDCTA with the models' true times on frame i truthAt(i).
func runDCTAWith(t *testing.T, imp Importance, b Budget, cameras []string, frames int, truthAt func(i int) map[string]float64) (map[string]float64, *Controller) {
	t.Helper()
	c, err := NewController(ControllerConfig{Policy: PolicyDCTA, Models: []string{"a", "b", "c"}, Budget: b,
		Period: time.Hour, Importance: imp}, nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	spent := map[string]float64{}
	t0 := time.Unix(1000, 0)
	for i := range frames {
		truth := truthAt(i)
		for k, cam := range cameras {
			at := t0.Add(time.Duration(i)*100*time.Millisecond + time.Duration(k)*time.Millisecond)
			plan := c.Plan(FrameInfo{Camera: cam, Seq: uint64(i + 1), CapturedAt: at})
			if len(plan.Models()) != 3 {
				t.Fatalf("plan %+v does not serve every model", plan)
			}
			res := &pipeline.Result{Camera: cam, Seq: uint64(i + 1), CapturedAt: at, Plan: plan, Outputs: map[string]*pipeline.Output{}}
			for _, m := range plan.Exact {
				res.Outputs[m] = &pipeline.Output{Model: m, Source: pipeline.SourceExact, InferMS: truth[m]}
				if !plan.Profiling {
					spent[cam] += truth[m]
				}
			}
			c.ObserveResult(res)
		}
	}
	return spent, c
}

// Two cameras, one budget of 110 ms per frame shared (220 ms per pair of
// frames, a little less while the cost probes are repaid); a task run
// every k frames costs its time / k and is worth its importance × the
// freshness it gains. With equal importance the split is near equal (the
// intervals are discrete: 120 and 95 ms is the best fit); with the
// entrance three times as important it gets more than either equal share
// — b and c on every frame and a on every second (180 ms) — while the
// yard's models only take turns; the run stays within the budget.
func TestDCTASpendsTheSharedBudgetWhereItMatters(t *testing.T) {
	cams := []string{"entrance", "yard"}
	b := Budget{MS: 110, Mode: TimeMean}
	equal, _ := runDCTA(t, nil, b, cams, 200)
	if lo, hi := min(equal["entrance"], equal["yard"]), max(equal["entrance"], equal["yard"]); lo < 0.75*hi {
		t.Errorf("equal importance: spent %v, want a near-equal split", equal)
	}
	spent, c := runDCTA(t, Importance{"entrance": 3}, b, cams, 200)
	if spent["entrance"] <= max(equal["entrance"], equal["yard"]) || spent["entrance"] <= spent["yard"] {
		t.Errorf("entrance 3× as important: spent %v, want more on the entrance than an equal split %v", spent, equal)
	}
	total := spent["entrance"] + spent["yard"]
	if perFrame := total / (2 * 199); perFrame > b.MS+1e-9 {
		t.Errorf("%.1f ms per unprofiled frame over the %g ms budget", perFrame, b.MS)
	}
	sel := c.Selection()
	if sel == nil || !equalStrings(sel.PerCamera["entrance"], []string{"b", "c"}) || sel.Every["entrance/a"] != 2 ||
		len(sel.PerCamera["yard"]) != 0 || sel.Every["yard/a"] < 2 {
		t.Errorf("selection %v: want the entrance's b and c on every frame and a on every second, the yard's on turns only", sel)
	}
	// Mirrored importance, mirrored allocation.
	if mirror, _ := runDCTA(t, Importance{"yard": 3}, b, cams, 200); mirror["yard"] != spent["entrance"] || mirror["entrance"] != spent["yard"] {
		t.Errorf("yard 3× as important: spent %v, want the mirror of %v", mirror, spent)
	}
	// Per output: the yard's person count alone outweighs the entrance.
	_, c = runDCTA(t, Importance{"entrance": 3, "yard/c": 10}, b, cams, 20)
	if sel := c.Selection(); sel == nil || !contains(sel.PerCamera["yard"], "c") {
		t.Errorf("selection %v: yard/c (importance 10, 40 ms) must run on every frame", sel)
	}
}

func equalStrings(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || strings.Join(a, ",") == strings.Join(b, ","))
}

// The worth of running a model every k frames under the staleness model
// (half-life 8 frames): every frame 1; every second (1 + 2^(−1/8)) / 2;
// never, an output as old as the first frame: nothing.
func TestServedEvery(t *testing.T) {
	for _, tc := range []struct {
		k    int
		want float64
	}{{1, 1}, {2, (1 + math.Exp2(-1.0/8)) / 2}, {4, (1 + math.Exp2(-1.0/8) + math.Exp2(-2.0/8) + math.Exp2(-3.0/8)) / 4}, {0, 0}} {
		if got := servedEvery(freshness, "m", tc.k); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("every %d: %g, want %g", tc.k, got, tc.want)
		}
	}
	// Reuse evidence, where there is some, replaces the model: reused
	// outputs worth 0.9 at every age.
	constant := func(string, int) float64 { return 0.9 }
	if got := servedEvery(constant, "m", 4); math.Abs(got-(1+3*0.9)/4) > 1e-9 {
		t.Errorf("constant reuse 0.9, every 4: %g", got)
	}
}

// When a model's measured cost moves by more than a fifth the allocation
// is solved again, well before the period (an hour) is over: a at 400 ms
// instead of 100 no longer fits on every second entrance frame.
func TestDCTAResolvesWhenCostsDrift(t *testing.T) {
	b := Budget{MS: 110, Mode: TimeMean}
	truthAt := func(i int) map[string]float64 {
		if i < 100 {
			return map[string]float64{"a": 100, "b": 60, "c": 40}
		}
		return map[string]float64{"a": 400, "b": 60, "c": 40}
	}
	_, before := runDCTA(t, Importance{"entrance": 3}, b, []string{"entrance", "yard"}, 100)
	_, c := runDCTAWith(t, Importance{"entrance": 3}, b, []string{"entrance", "yard"}, 300, truthAt)
	was, sel := before.Selection(), c.Selection()
	if sel == nil || !strings.Contains(sel.Reason, "costs changed") || sel.solvedMS["a"] <= 1.2*was.solvedMS["a"] {
		t.Fatalf("selection %v (reason %q, solved with a at %.0f ms): want it re-solved on a's drift from %.0f ms", sel, sel.Reason, sel.solvedMS["a"], was.solvedMS["a"])
	}
	if sel.Every["entrance/a"] <= was.Every["entrance/a"] {
		t.Errorf("a's interval on the entrance %d after the drift, %d before: want it run less often", sel.Every["entrance/a"], was.Every["entrance/a"])
	}
}

// Under a cap each camera's frame is its own bin: importance cannot move
// time between cameras, and no unprofiled frame goes over the cap.
func TestDCTAUnderACapKeepsEachFrameWithin(t *testing.T) {
	b := Budget{MS: 100, Mode: TimeCap}
	_, c := runDCTA(t, Importance{"entrance": 3}, b, []string{"entrance", "yard"}, 50)
	sel := c.Selection()
	for cam, ms := range sel.PerCamera {
		cost := 0.0
		for _, m := range ms {
			cost += map[string]float64{"a": 100, "b": 60, "c": 40}[m]
		}
		if cost > b.MS || cost < 100 {
			t.Errorf("%s runs %v (%.0f ms): want the cap filled and not exceeded", cam, ms, cost)
		}
	}
}

func TestImportanceOf(t *testing.T) {
	imp := Importance{"entrance": 3, "hog": 2, "entrance/face": 7}
	for _, tc := range []struct {
		cam, model string
		want       float64
	}{{"entrance", "hog", 6}, {"entrance", "face", 7}, {"yard", "hog", 2}, {"yard", "face", 1}} {
		if got := imp.Of(tc.cam, tc.model); got != tc.want {
			t.Errorf("%s/%s: %g, want %g", tc.cam, tc.model, got, tc.want)
		}
	}
}
