package scheduler

import (
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// Frame-skipping policies: what camera users run today, and the baseline
// every claim of links is measured against.
const (
	// PolicySkip runs every model on every k-th frame, k the smallest that
	// fits, and reuses the last exact output in between: DeepStream's
	// nvinfer interval for all models, Frigate's detect fps.
	PolicySkip = "skip"
	// PolicySkipPerModel runs model i every kᵢ = max(1, ⌈λ·√cᵢ⌉) frames, λ
	// the smallest that fits (the square root minimises total staleness for
	// the cost): DeepStream's per-model interval set by a rule a user could
	// apply by hand, with no learning.
	PolicySkipPerModel = "skip-per-model"
)

// maxSkip bounds a skipping interval: a model run less often than this is
// in effect never run.
const maxSkip = 1 << 12

// SkipConfig configures a frame-skipping policy.
type SkipConfig struct {
	// PerModel: each model its own interval by the square-root rule.
	PerModel bool
	Models   []string
	Budget   Budget
	// Period is how often the intervals are recomputed from the measured
	// costs (and past overspending repaid).
	Period time.Duration
}

// SkipPolicy implements both frame-skipping baselines. Costs are measured
// as every policy measures them: the first frame runs every model (the cost
// probe, paid from the budget); then intervals follow the measured costs.
type SkipPolicy struct {
	cfg   SkipConfig
	costs *CostModel
	log   zerolog.Logger
	books budgetBooks

	// Routing-goroutine state.
	frameIndex map[string]int64
	every      map[string]int // each model's interval (0: never)
	phases     map[string]int
	// sel is read by status lines from other goroutines.
	sel atomic.Pointer[Selection]
}

// NewSkipPolicy creates a frame-skipping policy over costs (memory may be
// known at load; times are measured as frames run).
func NewSkipPolicy(cfg SkipConfig, costs *CostModel, log zerolog.Logger) *SkipPolicy {
	if cfg.Period <= 0 {
		cfg.Period = time.Hour
	}
	return &SkipPolicy{cfg: cfg, costs: costs, log: pipeline.Component(log, "skip"), frameIndex: map[string]int64{}}
}

// Name implements Policy.
func (p *SkipPolicy) Name() string {
	if p.cfg.PerModel {
		return PolicySkipPerModel
	}
	return PolicySkip
}

// Selection is the current intervals (nil before costs are measured).
func (p *SkipPolicy) Selection() *Selection { return p.sel.Load() }

// Plan implements Policy.
func (p *SkipPolicy) Plan(f FrameInfo) pipeline.Plan {
	now := f.CapturedAt
	if now.IsZero() {
		now = time.Now()
	}
	index := p.frameIndex[f.Camera]
	p.frameIndex[f.Camera] = index + 1
	plan := pipeline.Plan{Camera: f.Camera, Seq: f.Seq, Policy: p.Name()}
	if sel := p.sel.Load(); sel == nil || now.Sub(sel.At) >= p.cfg.Period {
		if !p.costsKnown() {
			// The cost probe, the one exception to a capped budget.
			plan.Exact, plan.Profiling = p.cfg.Models, true
			return plan
		}
		p.reselect(now)
	}
	if index == 0 {
		// A camera's first frame: every model, so each has an output to
		// reuse (a late-joining camera; on the first camera, the probe).
		plan.Exact, plan.Profiling = p.cfg.Models, true
		return plan
	}
	// Under a mean budget a turn the books cannot afford now waits for the
	// model's next one, so the run's mean never ends over the budget.
	costs := p.costs.Costs()
	paced := p.cfg.Budget.MS > 0 && !p.cfg.Budget.Capped()
	frameMS := 0.0
	for _, m := range p.cfg.Models {
		if p.every[m] == 1 {
			plan.Exact = append(plan.Exact, m)
			frameMS += costs[m].MS
		}
	}
	for _, m := range p.cfg.Models {
		k := p.every[m]
		switch {
		case k == 1:
		case runsOn(index, k, p.phases[m]) && (!paced || p.books.affords(frameMS+costs[m].MS, p.cfg.Budget.MS)):
			plan.Exact = append(plan.Exact, m)
			frameMS += costs[m].MS
		default:
			plan.Reused = append(plan.Reused, m)
		}
	}
	return plan
}

// ObserveResult implements Observer: execution times feed the costs and
// the budget's ledger.
func (p *SkipPolicy) ObserveResult(r *pipeline.Result) {
	spent := 0.0
	for name, o := range r.Outputs {
		if o.Source == pipeline.SourceExact && o.Error == "" {
			p.costs.ObserveMS(name, o.InferMS)
			spent += o.InferMS
		}
	}
	p.books.charge(r.CapturedAt, spent, p.cfg.Budget.MS)
}

// ObserveHeartbeat implements Observer (memory measured by workers).
func (p *SkipPolicy) ObserveHeartbeat(hb *pipeline.Heartbeat) {
	if hb.MemoryBytes > 0 {
		p.costs.SetMemory(hb.Model, hb.MemoryBytes)
	}
}

func (p *SkipPolicy) costsKnown() bool {
	costs := p.costs.Costs()
	for _, m := range p.cfg.Models {
		if costs[m].MS <= 0 {
			return false
		}
	}
	return true
}

func (p *SkipPolicy) reselect(now time.Time) {
	costs := p.costs.Costs()
	debt, horizon := p.books.debtAndHorizon(p.cfg.Period, now)
	b := meanSelectionBudget(p.cfg.Budget, debt, horizon)
	var every map[string]int
	if p.cfg.PerModel {
		every = SkipPerModelIntervals(p.cfg.Models, costs, b)
	} else {
		every = SkipIntervals(p.cfg.Models, costs, b)
	}
	sel := &Selection{At: now, Reason: "costs measured", Every: map[string]int{}, Budget: b}
	for _, m := range p.cfg.Models {
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
	sel.phases, _ = staggerPhases(p.cfg.Models, every, costs)
	p.every, p.phases = every, sel.phases
	p.sel.Store(sel)
	p.log.Info().Str("budget", p.cfg.Budget.String()).Str("selection_budget", b.String()).Str("intervals", sel.rotating()).
		Strs("every_frame", sel.Exact).Msg("skipping intervals set")
}

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
