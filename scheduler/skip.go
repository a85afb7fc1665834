package scheduler

import (
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

func init() {
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicySkip, Rank: 20, Needs: pipeline.NeedsTimeBudget, NeedsWhy: skipNeedsWhy,
			Summary: "frame skipping: every model on every k-th frame, k the smallest that fits; the last output reused in between"},
		New: func(ControllerConfig) Scheme { return skipScheme{intervals: SkipIntervals} },
	})
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicySkipPerModel, Rank: 21, Needs: pipeline.NeedsTimeBudget, NeedsWhy: skipNeedsWhy,
			Summary: "frame skipping per model: model i every max(1, ⌈λ·√cᵢ⌉) frames, λ the smallest that fits; the last output reused in between"},
		New: func(ControllerConfig) Scheme { return skipScheme{intervals: SkipPerModelIntervals} },
	})
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicySkipPerModelTrack, Rank: 22, Needs: pipeline.NeedsTimeBudget, NeedsWhy: skipNeedsWhy,
			Summary: "skip-per-model with a tracker: a detector's last boxes carried along their motion in between, as DeepStream's tracker does between interval frames"},
		New: func(ControllerConfig) Scheme { return skipScheme{intervals: SkipPerModelIntervals, track: true} },
	})
}

const skipNeedsWhy = ": skipping frames saves time, not memory"

// maxSkip bounds a skipping interval: a model run less often than this is
// in effect never run.
const maxSkip = 1 << 12

// skipScheme is frame skipping, what camera users run today and the
// baseline every claim of links is measured against: each model runs on
// its turns (every k-th frame) and reuses its last exact output between.
// Costs are measured as every policy measures them: the first frame runs
// every model (the cost probe, paid from the budget); then the intervals
// follow the measured costs, recomputed every period (and past
// overspending repaid). The two policies differ in their intervals only.
type skipScheme struct {
	intervals func(models []string, costs map[string]Cost, b Budget) map[string]int
	// track carries every reused detector's boxes along their motion
	// (assemble.Track decides by output type: other outputs are reused).
	track bool
}

func (s skipScheme) Select(c *Controller, _ SetEvidence, costs map[string]Cost, b Budget) *Selection {
	every := s.intervals(c.cfg.Models, costs, b)
	sel := &Selection{Every: map[string]int{}}
	for _, m := range c.cfg.Models {
		switch k := every[m]; k {
		case 1:
			sel.Exact = append(sel.Exact, m)
		case 0:
			sel.Reused = append(sel.Reused, m) // over a capped budget alone
		default:
			sel.Every[m] = k
			sel.Reused = append(sel.Reused, m)
		}
	}
	sel.phases, _ = staggerPhases(c.cfg.Models, every, costs)
	if s.track {
		sel.Tracked = sel.Reused
	}
	return sel
}

func (skipScheme) Plan(c *Controller, _ FrameInfo, index int64, now time.Time, plan pipeline.Plan) pipeline.Plan {
	sel, probe := c.periodicSelection(now, true, false)
	if probe || index == 0 {
		// The cost probe; or a camera's first frame: every model, so each
		// has an output to reuse (a late-joining camera).
		return c.costProbe(plan)
	}
	plan.Exact, plan.Reused, plan.Tracked = sel.Exact, sel.Reused, sel.Tracked
	c.takeTurns(&plan, index, sel, c.costs.Costs())
	return plan
}

func (skipScheme) Observe(*Controller, *pipeline.Result) {}

// SkipIntervals is the skip policy's choice: one interval k for every model,
// the smallest that fits the budget. Under a mean budget the models cost
// Σc/k per frame; under a capped one the models are staggered over the k
// phases (most expensive first, each onto the least-loaded phase) and every
// phase must fit. Where nothing fits (a model alone over the cap) the
// interval is the one the mean alone would need: the bench shows the row
// as not fitting.
func SkipIntervals(models []string, costs map[string]Cost, b Budget) map[string]int {
	out := map[string]int{}
	models = withinCap(models, costs, b, out)
	total := sum(costs, models).MS
	fits := func(k int) bool {
		if b.MS <= 0 {
			return true
		}
		if !b.Capped() {
			return total/float64(k) <= b.MS+1e-9
		}
		every := map[string]int{}
		for _, m := range models {
			every[m] = k
		}
		_, peak := staggerPhases(models, every, costs)
		return peak <= b.MS+1e-9
	}
	k := 1
	switch {
	case b.Capped():
		for k = 1; k <= 64 && !fits(k); k++ {
		}
		if k > 64 {
			k = int(math.Ceil(total / b.MS))
		}
	case b.MS > 0:
		k = int(math.Ceil(total/b.MS - 1e-9))
	}
	k = min(max(k, 1), maxSkip)
	for _, m := range models {
		out[m] = k
	}
	return out
}

// SkipPerModelIntervals is the square-root rule: model i every
// kᵢ = max(1, ⌈λ·√cᵢ⌉) frames with λ the smallest for which the models
// fit. Under a mean budget that is Σ cᵢ/kᵢ ≤ B; under a capped one kᵢ is
// rounded up to a power of two (so intervals divide each other and
// staggering can keep every frame within the cap) and the staggered cycle
// must fit. Where no λ fits, the largest intervals tried are returned.
func SkipPerModelIntervals(models []string, costs map[string]Cost, b Budget) map[string]int {
	never := map[string]int{}
	models = withinCap(models, costs, b, never)
	intervals := func(lambda float64) map[string]int {
		out := maps.Clone(never)
		for _, m := range models {
			// Just above a breakpoint λ·√c = n the interval is n+1.
			k := max(1, int(math.Floor(lambda*math.Sqrt(costs[m].MS)+1e-9))+1)
			if lambda == 0 {
				k = 1
			}
			if b.Capped() {
				k = nextPowerOfTwo(k)
			}
			out[m] = min(k, maxSkip)
		}
		return out
	}
	// Staggering is the costly check; under a cap few distinct interval
	// sets occur (powers of two), so each is checked once.
	staggered := map[string]bool{}
	fits := func(every map[string]int) bool {
		if b.MS <= 0 {
			return true
		}
		mean := 0.0
		key := ""
		for _, m := range models {
			mean += costs[m].MS / float64(every[m])
			key += strconv.Itoa(every[m]) + ","
		}
		if mean > b.MS+1e-9 {
			return false
		}
		if !b.Capped() {
			return true
		}
		ok, seen := staggered[key]
		if !seen {
			_, peak := staggerPhases(models, every, costs)
			ok = peak <= b.MS+1e-9
			staggered[key] = ok
		}
		return ok
	}
	// λ's breakpoints, where some interval grows by one.
	candidates := []float64{0}
	for _, m := range models {
		root := math.Sqrt(costs[m].MS)
		if root <= 0 {
			continue
		}
		for n := 1; n < maxSkip; n++ {
			candidates = append(candidates, float64(n)/root)
		}
	}
	sort.Float64s(candidates)
	candidates = slices.Compact(candidates)
	var last map[string]int
	for _, lambda := range candidates {
		every := intervals(lambda)
		if fits(every) {
			return every
		}
		last = every
		if b.Capped() && allAtLeast(every, 128) {
			break // beyond a cycle the staggering can balance
		}
	}
	return last
}

// withinCap returns the models that fit a capped budget on their own; the
// others are set to never run (interval 0) in never: under a cap they can
// run on no frame but a profiling one.
func withinCap(models []string, costs map[string]Cost, b Budget, never map[string]int) []string {
	if !b.Capped() {
		return models
	}
	var out []string
	for _, m := range models {
		if costs[m].MS <= b.MS+1e-9 {
			out = append(out, m)
		} else {
			never[m] = 0
		}
	}
	return out
}

// allAtLeast: every model that runs at all runs at most every k frames.
func allAtLeast(every map[string]int, k int) bool {
	for _, v := range every {
		if v > 0 && v < k {
			return false
		}
	}
	return true
}
