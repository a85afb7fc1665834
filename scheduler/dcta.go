package scheduler

import (
	"maps"
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
			Summary:  "DCTA: one time budget shared by all cameras, spent by importance × staleness gained (scheduler.importance) as a multiple-choice knapsack over every-k-th-frame intervals; the others reused"},
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
// shared by every camera. A task may run every k-th frame (k in
// dctaEvery) or not at all; run every k frames it is worth its importance
// × what that gains over not running it (its reused output's accuracy at
// every age: measured reuse evidence if the controller has it, else
// freshness decaying with age), and costs its model's measured time / k.
// Maximise the worth of the tasks run within the budget: a multiple-choice
// multiple knapsack (one choice of k per task). Under a mean budget the
// cameras' frames share one pool (N cameras: N × the budget per round of
// frames); under a cap each camera's frame is its own bin and a task runs
// on every frame or not at all. The knapsack is solved exactly up to
// ExactKnapsackLimit tasks, greedily (within KnapsackGreedyGap) beyond; it
// is re-solved every period (past overspending repaid), when a camera
// joins and when a model's measured cost drifts by a fifth. Between its
// turns, and when not run, a task reuses its last exact output (every
// camera's first frame runs every model: the cost probe). On one camera it
// degenerates to per-model intervals by importance and staleness.
type dctaScheme struct {
	importance Importance
}

// costDrift is the relative change of a model's measured cost that makes
// the allocation be solved again.
const costDrift = 0.2

// dctaEvery are the intervals a task may run at (every k-th frame).
var dctaEvery = []int{1, 2, 4, 8, 16}

// freshnessHalfLife is the staleness model without reuse evidence: a
// reused output age frames old is worth 2^(−age/freshnessHalfLife) of a
// fresh one.
const freshnessHalfLife = 8.0

// staleness is the worth of a model's last exact output reused age frames
// later.
type staleness func(model string, age int) float64

func freshness(_ string, age int) float64 { return math.Exp2(-float64(age) / freshnessHalfLife) }

// servedEvery is the mean worth of a model's outputs over the frames when
// it runs every k-th frame (k = 0: never, its output as old as the
// camera's first frame).
func servedEvery(stale staleness, model string, k int) float64 {
	if k == 0 {
		return stale(model, neverAge)
	}
	sum := 1.0
	for age := 1; age < k; age++ {
		sum += stale(model, age)
	}
	return sum / float64(k)
}

// dctaTask is the key of a camera's model in Selection.Every and phases.
func dctaTask(camera, model string) string { return camera + "/" + model }

func (d dctaScheme) Select(c *Controller, ev SetEvidence, costs map[string]Cost, b Budget) *Selection {
	stale := staleness(freshness)
	if _, ok := ev.(ReuseEvidence); ok {
		stale = c.streamEvidence(ev).ReuseAccuracy
	}
	cameras := c.camerasSeen()
	models := c.cfg.Models
	every := dctaEvery
	capacity := []float64{b.MS * float64(len(cameras))}
	if b.Capped() {
		every = []int{1}
		capacity = make([]float64, len(cameras))
		for i := range capacity {
			capacity[i] = b.MS
		}
	}
	type choice struct {
		camera, model string
		k             int
	}
	var items []KnapsackItem
	var choices []choice
	best, never := 0.0, 0.0 // Σ importance × worth: all run on every frame, none run
	for ci, cam := range cameras {
		for mi, m := range models {
			imp := d.importance.Of(cam, m)
			base := servedEvery(stale, m, 0)
			best += imp * servedEvery(stale, m, 1)
			never += imp * base
			for _, k := range every {
				gain := imp * (servedEvery(stale, m, k) - base)
				if gain <= 0 {
					continue
				}
				it := KnapsackItem{Value: gain, Weight: costs[m].MS / float64(k), Group: 1 + ci*len(models) + mi}
				if b.Capped() {
					it.Bins = []int{ci}
				}
				items = append(items, it)
				choices = append(choices, choice{cam, m, k})
			}
		}
	}
	start := time.Now()
	p := SolveKnapsack(items, capacity)
	took := time.Since(start)
	sel := &Selection{PerCamera: map[string][]string{}, Every: map[string]int{}, solvedMS: map[string]float64{}}
	run := map[string]bool{}
	for _, cam := range cameras {
		sel.PerCamera[cam] = []string{} // a camera given nothing is still solved for
	}
	rotating := map[string][]string{}
	for i, ch := range choices {
		if p.Bin[i] < 0 {
			continue
		}
		run[ch.model] = true
		if ch.k == 1 {
			sel.PerCamera[ch.camera] = append(sel.PerCamera[ch.camera], ch.model)
		} else {
			sel.Every[dctaTask(ch.camera, ch.model)] = ch.k
			rotating[ch.camera] = append(rotating[ch.camera], ch.model)
		}
	}
	// Each camera's rotating tasks take turns on different frames.
	sel.phases = map[string]int{}
	for cam, ms := range rotating {
		var tasks []string
		taskCosts := map[string]Cost{}
		for _, m := range ms {
			t := dctaTask(cam, m)
			tasks = append(tasks, t)
			taskCosts[t] = costs[m]
		}
		phases, _ := staggerPhases(tasks, sel.Every, taskCosts)
		maps.Copy(sel.phases, phases)
	}
	for _, m := range models {
		if run[m] {
			sel.Exact = append(sel.Exact, m) // run on some camera, on every frame or on its turns
		} else {
			sel.Reused = append(sel.Reused, m)
		}
		sel.solvedMS[m] = costs[m].MS
	}
	if best > 0 {
		sel.Expected = (never + p.Value) / best // the importance-weighted worth of the outputs served
	}
	c.log.Debug().Int("tasks", len(cameras)*len(models)).Int("items", len(items)).Dur("resolve", took).Float64("value", p.Value).Msg("dcta allocation solved")
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
	plan.Exact = slices.Clone(sel.PerCamera[f.Camera])
	for _, m := range c.cfg.Models {
		t := dctaTask(f.Camera, m)
		if k := sel.Every[t]; k > 1 && runsOn(index, k, sel.phases[t]) && c.Healthy(m) {
			plan.Exact = append(plan.Exact, m)
		}
	}
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
