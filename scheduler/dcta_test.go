package scheduler

import (
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
	truth := map[string]float64{"a": 100, "b": 60, "c": 40}
	c, err := NewController(ControllerConfig{Policy: PolicyDCTA, Models: []string{"a", "b", "c"}, Budget: b,
		Period: time.Hour, Importance: imp}, nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	spent := map[string]float64{}
	t0 := time.Unix(1000, 0)
	for i := range frames {
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
// frames, a little less while the cost probes are repaid): with equal
// importance each gets b and c (100 ms); with the entrance three times as
// important it gets more than an equal split — all three of its models
// (200 ms, worth 9; b and c on both are worth 8) — and the run stays
// within the budget.
func TestDCTASpendsTheSharedBudgetWhereItMatters(t *testing.T) {
	cams := []string{"entrance", "yard"}
	b := Budget{MS: 110, Mode: TimeMean}
	equal, _ := runDCTA(t, nil, b, cams, 200)
	if equal["entrance"] != equal["yard"] {
		t.Errorf("equal importance: spent %v, want an equal split", equal)
	}
	spent, c := runDCTA(t, Importance{"entrance": 3}, b, cams, 200)
	if spent["entrance"] <= spent["yard"] {
		t.Errorf("entrance 3× as important: spent %v, want more on the entrance than an equal split", spent)
	}
	total := spent["entrance"] + spent["yard"]
	if perFrame := total / (2 * 199); perFrame > b.MS+1e-9 {
		t.Errorf("%.1f ms per unprofiled frame over the %g ms budget", perFrame, b.MS)
	}
	sel := c.Selection()
	if sel == nil || len(sel.PerCamera["entrance"]) != 3 || len(sel.PerCamera["yard"]) != 0 {
		t.Errorf("selection %v: want every entrance model and none of the yard's", sel)
	}
	// Per output: the yard's person count alone outweighs the entrance.
	_, c = runDCTA(t, Importance{"entrance": 3, "yard/c": 10}, b, cams, 20)
	if sel := c.Selection(); sel == nil || !contains(sel.PerCamera["yard"], "c") {
		t.Errorf("selection %v: yard/c (importance 10, 40 ms) must run", sel)
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
