package scheduler

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

func init() {
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicyDCTA, Rank: 50, Needs: pipeline.NeedsTimeBudget,
			NeedsWhy: ": it allocates model time across cameras",
			Summary:  "DCTA: one time budget shared by all cameras, spent by importance (scheduler.importance) as a multiple knapsack; the others reused"},
		New: func(cfg ControllerConfig) Scheme { return dctaScheme{importance: cfg.Importance} },
	})
}

// PolicyDCTA allocates model executions across cameras by importance.
const PolicyDCTA PolicyName = "dcta"

// Importance weighs outputs: key "camera/model" for one camera's model,
// "camera" or "model" for all of a camera's or a model's; an output's
// weight is its own key's if set, else its camera's times its model's
// (each 1 when not set).
type Importance map[string]float64

// Of is the importance of model's output on camera.
func (imp Importance) Of(camera, model string) float64 {
	if w, ok := imp[camera+"/"+model]; ok {
		return w
	}
	w := 1.0
	if c, ok := imp[camera]; ok {
		w *= c
	}
	if m, ok := imp[model]; ok {
		w *= m
	}
	return w
}

// dctaScheme is DCTA's allocation (Chen et al., ICDCS 2019 / TPDS 2020):
// tasks — a model on a camera — differ in importance, and one budget is
// shared by every camera: maximise Σ importance over the tasks run, each
// task costing its model's measured time, within the budget. Under a mean
// budget the cameras' frames share one pool (N cameras: N × the budget per
// round of frames); under a cap each camera's frame is its own bin. The
// knapsack is solved exactly up to ExactKnapsackLimit tasks, greedily
// (within KnapsackGreedyGap) beyond; it is re-solved every period (past
// overspending repaid), when a camera joins and when a model's measured
// cost drifts by a fifth. Tasks not run reuse their last exact output
// (every camera's first frame runs every model: the cost probe). On one
// camera it degenerates to per-output importance within the budget.
type dctaScheme struct {
	importance Importance
}

// costDrift is the relative change of a model's measured cost that makes
// the allocation be solved again.
const costDrift = 0.2

func (d dctaScheme) Select(c *Controller, _ SetEvidence, costs map[string]Cost, b Budget) *Selection {
	cameras := c.camerasSeen()
	models := c.cfg.Models
	var items []KnapsackItem
	capacity := []float64{b.MS * float64(len(cameras))}
	if b.Capped() {
		capacity = make([]float64, len(cameras))
		for i := range capacity {
			capacity[i] = b.MS
		}
	}
	for ci, cam := range cameras {
		for _, m := range models {
			it := KnapsackItem{Value: d.importance.Of(cam, m), Weight: costs[m].MS}
			if b.Capped() {
				it.Bins = []int{ci}
			}
			items = append(items, it)
		}
	}
	start := time.Now()
	p := SolveKnapsack(items, capacity)
	took := time.Since(start)
	sel := &Selection{PerCamera: map[string][]string{}, solvedMS: map[string]float64{}}
	run := map[string]bool{}
	for ci, cam := range cameras {
		sel.PerCamera[cam] = []string{} // a camera given nothing is still solved for
		for mi, m := range models {
			if p.Bin[ci*len(models)+mi] >= 0 {
				sel.PerCamera[cam] = append(sel.PerCamera[cam], m)
				run[m] = true
			}
		}
	}
	for _, m := range models {
		if run[m] {
			sel.Exact = append(sel.Exact, m)
		} else {
			sel.Reused = append(sel.Reused, m)
		}
		sel.solvedMS[m] = costs[m].MS
	}
	total := 0.0
	for _, it := range items {
		total += it.Value
	}
	if total > 0 {
		sel.Expected = p.Value / total // the importance-weighted share of tasks run
	}
	c.log.Debug().Int("tasks", len(items)).Dur("resolve", took).Float64("value", p.Value).Msg("dcta allocation solved")
	return sel
}

func (d dctaScheme) Plan(c *Controller, f FrameInfo, index int64, now time.Time, plan pipeline.Plan) pipeline.Plan {
	sel, probe := c.periodicSelection(now, true, false)
	if probe || index == 0 {
		// The cost probe; a camera's first frame runs every model, so that
		// each has an output to reuse.
		return c.costProbe(plan)
	}
	if _, ok := sel.PerCamera[f.Camera]; !ok {
		c.reselect(now, "camera joined")
		sel = c.selection.Load()
	} else if drifted(sel.solvedMS, c.costs.Costs()) {
		c.reselect(now, "costs changed")
		sel = c.selection.Load()
	}
	plan.Exact = sel.PerCamera[f.Camera]
	plan.Reused = minus(c.cfg.Models, plan.Exact)
	return plan
}

func (dctaScheme) Observe(*Controller, *pipeline.Result) {}

// drifted: some model's cost moved by more than costDrift since solved.
func drifted(solved map[string]float64, now map[string]Cost) bool {
	for m, was := range solved {
		if was > 0 && math.Abs(now[m].MS-was) > costDrift*was {
			return true
		}
	}
	return false
}

// camerasSeen lists the cameras the controller has planned frames of
// (routing goroutine only), sorted.
func (c *Controller) camerasSeen() []string {
	var out []string
	for cam := range c.frameIndex {
		out = append(out, cam)
	}
	sort.Strings(out)
	return slices.Clip(out)
}
