package scheduler

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/assemble"
)

func init() {
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicyCoE, Rank: 60, Needs: pipeline.NeedsTimeBudget,
			NeedsWhy: ": its cascades save time, not memory (every tier stays loaded)",
			Summary:  "CoE: per task a cascade of ensembles (scheduler.coe.cascades): tier 1 runs, a later tier only when the earlier one disagrees (θ chosen on the validation frames); cascades and the other models on every kᵢ-th frame by the square-root rule; the last output reused in between"},
		New: func(cfg ControllerConfig) Scheme { return newCoE(cfg.CoE.Cascades, cfg.Models) },
	})
}

// PolicyCoE answers tasks with cascades of ensembles.
const PolicyCoE PolicyName = "coe"

// coeScheme is CoE (Kolawole et al., "Agreement-Based Cascading", TMLR
// 2025) under a mean time budget. Each task's cascade runs its first tier
// on a frame; when the share of members agreeing with the majority is
// below the tier's θ the frame is escalated to the next tier, and the last
// tier always answers (assemble.Decide: the one decision the live merger
// and the replay share). θ of each tier is chosen on the validation frames
// — the policy's first bootstrapFrames profiled frames, never a scored one
// — as the cheapest candidate whose accepted frames keep the task's
// target agreement with the final model's own output; a tier that cannot
// keep it at any θ is not run (it would only add cost). The budget is kept
// as frame skipping per model keeps it: every cascade (at its expected
// cost per visit, measured deferrals included) and every model in no
// cascade is a unit run every kᵤ = max(1, ⌈λ·√cᵤ⌉) frames, λ the smallest
// that fits; in between, outputs reuse their last value (a cascade's
// output its last answer). With no cascades configured it is
// skip-per-model.
type coeScheme struct {
	cascades []pipeline.Cascade // as configured

	mu sync.Mutex
	// validation holds the exact outputs of the profiled frames until θ is
	// chosen.
	validation []map[string]*pipeline.Output
	// chosen are the cascades as they run (tiers that answer, with their
	// θ); nil until validated.
	chosen []pipeline.Cascade
	// reach counts, per chosen cascade and tier, the frames that visited
	// the tier (validation frames as the chosen θ would have routed them,
	// then the frames served): a cascade's expected cost.
	reach [][]int
	// reselect: θ were chosen since the last selection.
	reselect bool
}

// coeUnitPrefix names a cascade among the units the budget is shared by
// (':' is in no model name).
const coeUnitPrefix = "coe:"

func newCoE(cascades []pipeline.Cascade, models []string) *coeScheme {
	s := &coeScheme{}
	for _, c := range cascades {
		if CheckCascade(c, models) == nil {
			s.cascades = append(s.cascades, c)
		}
	}
	if len(s.cascades) == 0 {
		s.chosen = []pipeline.Cascade{} // nothing to validate: skip-per-model from the cost probe on
	}
	return s
}

// CheckCascade reports a cascade naming a model that is not among models
// (a replay of a trace recorded with other models).
func CheckCascade(c pipeline.Cascade, models []string) error {
	for _, m := range c.Members() {
		if !slices.Contains(models, m) {
			return fmt.Errorf("coe cascade %s: model %q is not among the models (%v): declare the cascade over the models this run has", c.Task, m, models)
		}
	}
	return nil
}

// CoEThetas chooses each cascade's tiers and θ on validation frames (every
// member's exact output on each): tier by tier, among the frames the
// earlier tiers did not answer, the most permissive θ of
// pipeline.ThetaCandidates whose accepted frames' answers agree with the
// output model's own exact output at least the cascade's target on
// average (strict accuracy: links.Accuracy). A configured θ is kept. A
// tier no θ qualifies for is left out; the last tier always answers.
func CoEThetas(cascades []pipeline.Cascade, frames []map[string]*pipeline.Output) []pipeline.Cascade {
	out := make([]pipeline.Cascade, 0, len(cascades))
	for _, c := range cascades {
		run := c
		run.Tiers = nil
		reaching := frames
		last := len(c.Tiers) - 1
		for i, t := range c.Tiers {
			if i == last {
				run.Tiers = append(run.Tiers, pipeline.CascadeTier{Models: t.Models, Theta: 1})
				break
			}
			theta := t.Theta
			if theta == 0 {
				for _, cand := range pipeline.ThetaCandidates {
					if n, acc := acceptedAccuracy(&c, t.Models, cand, reaching); n > 0 && acc >= c.TargetAccuracy()-1e-9 {
						theta = cand
						break
					}
				}
			}
			if theta == 0 {
				continue
			}
			tier := pipeline.CascadeTier{Models: t.Models, Theta: theta}
			run.Tiers = append(run.Tiers, tier)
			var rest []map[string]*pipeline.Output
			for _, f := range reaching {
				if !accepts(&run, tier, f) {
					rest = append(rest, f)
				}
			}
			reaching = rest
		}
		out = append(out, run)
	}
	return out
}

// accepts: the tier alone, at its θ, answers the frame.
func accepts(c *pipeline.Cascade, t pipeline.CascadeTier, f map[string]*pipeline.Output) bool {
	one := *c
	one.Tiers = []pipeline.CascadeTier{t, {}} // a second tier keeps the first from being the last
	d := assemble.Decide(&one, f)
	return d.Done && d.Tier == 0
}

// acceptedAccuracy is how many of frames the tier accepts at theta, and
// the mean strict accuracy of its answers there against the output
// model's exact output.
func acceptedAccuracy(c *pipeline.Cascade, models []string, theta float64, frames []map[string]*pipeline.Output) (int, float64) {
	t := pipeline.CascadeTier{Models: models, Theta: theta}
	n, sum := 0, 0.0
	for _, f := range frames {
		exact := f[c.Output]
		if exact == nil || exact.Error != "" || !accepts(c, t, f) {
			continue
		}
		one := *c
		one.Tiers = []pipeline.CascadeTier{t, {}}
		a := assemble.Decide(&one, f).Answer
		n++
		if a != nil {
			sum += links.Accuracy(exact.Type, a, exact)
		}
	}
	if n == 0 {
		return 0, 0
	}
	return n, sum / float64(n)
}

// validated returns the chosen cascades (nil while validating) and
// whether a selection with them is yet to be made.
func (s *coeScheme) validated() ([]pipeline.Cascade, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	again := s.reselect
	s.reselect = false
	return s.chosen, again
}

// units are what the budget is shared by: each chosen cascade, then each
// model in none of their tiers, in the controller's order.
func coeUnits(chosen []pipeline.Cascade, models []string) (units []string, cascadeOf map[string]*pipeline.Cascade) {
	cascadeOf = map[string]*pipeline.Cascade{}
	inTier := map[string]bool{}
	for i := range chosen {
		c := &chosen[i]
		u := coeUnitPrefix + c.Task
		units = append(units, u)
		cascadeOf[u] = c
		for _, m := range c.Members() {
			inTier[m] = true
		}
	}
	for _, m := range models {
		if !inTier[m] {
			units = append(units, m)
		}
	}
	return units, cascadeOf
}

// expectedMS is a cascade's cost per visit: each tier's cost times the
// share of visits that reach it.
func expectedMS(c *pipeline.Cascade, reach []int, costs map[string]Cost) float64 {
	ms := 0.0
	for t, tier := range c.Tiers {
		share := 1.0
		if t > 0 {
			share = 0
			if t < len(reach) && reach[0] > 0 {
				share = float64(reach[t]) / float64(reach[0])
			}
		}
		ms += share * sum(costs, tier.Models).MS
	}
	return ms
}

// worstMS is a cascade's cost on a frame that visits every tier.
func worstMS(c *pipeline.Cascade, costs map[string]Cost) float64 {
	return sum(costs, c.Members()).MS
}

func (s *coeScheme) Select(c *Controller, _ SetEvidence, costs map[string]Cost, b Budget) *Selection {
	s.mu.Lock()
	chosen := s.chosen
	reach := make([][]int, len(s.reach))
	for i := range s.reach {
		reach[i] = slices.Clone(s.reach[i])
	}
	s.mu.Unlock()
	units, cascadeOf := coeUnits(chosen, c.cfg.Models)
	unitCosts := map[string]Cost{}
	for i, u := range units {
		if cc := cascadeOf[u]; cc != nil {
			ms := expectedMS(cc, reach[i], costs)
			if b.Capped() {
				ms = worstMS(cc, costs) // no frame may go over: the one that visits every tier
			}
			unitCosts[u] = Cost{MS: ms}
			continue
		}
		unitCosts[u] = costs[u]
	}
	every := SkipPerModelIntervals(units, unitCosts, b)
	sel := &Selection{Every: map[string]int{}}
	sel.phases, _ = staggerPhases(units, every, unitCosts)
	for _, u := range units {
		k := every[u]
		models := []string{u}
		if cc := cascadeOf[u]; cc != nil {
			models = cc.Members()
			if k > 0 {
				sel.Every[u] = k
			}
		}
		for _, m := range models {
			switch {
			case k == 1:
				sel.Exact = append(sel.Exact, m)
			case k == 0:
				sel.Reused = append(sel.Reused, m)
			default:
				sel.Every[m] = k // a rotating model: loaded between its turns
				sel.Reused = append(sel.Reused, m)
			}
		}
	}
	sel.Placement = tierPlacement(s.cascades)
	if chosen == nil {
		sel.Reason = " (validating the cascades)"
	}
	return sel
}

// tierPlacement places each cascade member on its tier's pool (all of its
// frames); members of tiers without a pool run on the unpooled workers.
// Dropped tiers keep their pools: validation frames run them.
func tierPlacement(cascades []pipeline.Cascade) map[string][]Share {
	var out map[string][]Share
	for _, c := range cascades {
		for _, t := range c.Tiers {
			if t.Pool == "" {
				continue
			}
			if out == nil {
				out = map[string][]Share{}
			}
			for _, m := range t.Models {
				out[m] = []Share{{Pool: t.Pool, Fraction: 1}}
			}
		}
	}
	return out
}

func (s *coeScheme) Plan(c *Controller, f FrameInfo, index int64, now time.Time, plan pipeline.Plan) pipeline.Plan {
	sel, probe := c.periodicSelection(now, true, false)
	if probe || index == 0 {
		// The cost probe, and a camera's first frame: every model, so that
		// each has an output to reuse.
		return c.costProbe(plan)
	}
	costs := c.costs.Costs()
	chosen, again := s.validated()
	if chosen == nil {
		// Validating: every model on the frames the books afford (paid at
		// the budget's pace), their outputs reused on the others.
		if !c.pacesEvidence() || c.books.affords(sum(costs, c.cfg.Models).MS, c.cfg.Budget.MS) {
			plan.Exact, plan.Profiling = c.cfg.Models, true
			return plan
		}
		plan.Reused = c.cfg.Models
		return plan
	}
	if again {
		c.reselect(now, "cascades validated")
		sel = c.selection.Load()
	}
	units, cascadeOf := coeUnits(chosen, c.cfg.Models)
	paced := c.pacesEvidence()
	frameMS := 0.0
	// The units on every frame first: they always run. Then the turns,
	// only when the books afford them — a cascade's as if it visited every
	// tier — so that the run's mean never ends over the budget.
	for _, rotating := range []bool{false, true} {
		for _, u := range units {
			k := unitEvery(sel, u)
			if k == 0 || (k > 1) != rotating || !runsOn(index, k, sel.phases[u]) {
				continue
			}
			cc := cascadeOf[u]
			run, ms := []string{u}, costs[u].MS
			if cc != nil {
				run, ms = cc.Tiers[0].Models, worstMS(cc, costs)
			}
			if slices.ContainsFunc(run, func(m string) bool { return !c.Healthy(m) }) {
				continue // a tier waits for every member: not with one gone
			}
			if rotating && paced && !c.books.affords(frameMS+ms, c.cfg.Budget.MS) {
				continue
			}
			frameMS += ms
			plan.Exact = append(plan.Exact, run...)
			if cc != nil {
				plan.Cascades = append(plan.Cascades, *cc)
			}
		}
	}
	plan.Reused = minus(c.cfg.Models, plan.Exact)
	return plan
}

// unitEvery is the unit's interval in the selection: a model run on every
// frame is among its exact ones.
func unitEvery(sel *Selection, u string) int {
	if k, ok := sel.Every[u]; ok {
		return k
	}
	if slices.Contains(sel.Exact, u) {
		return 1
	}
	return 0
}

func (s *coeScheme) Observe(c *Controller, r *pipeline.Result) {
	if len(s.cascades) == 0 || r.Partial {
		return
	}
	exact := map[string]*pipeline.Output{}
	for m, o := range r.Outputs {
		if o.Source == pipeline.SourceExact && o.Error == "" {
			exact[m] = o
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chosen == nil {
		if !r.Plan.Profiling {
			return
		}
		s.validation = append(s.validation, exact)
		if len(s.validation) < c.bootstrapFrames() {
			return
		}
		s.chosen = CoEThetas(s.cascades, s.validation)
		s.reach = make([][]int, len(s.chosen))
		for i := range s.chosen {
			s.reach[i] = make([]int, len(s.chosen[i].Tiers))
			for _, f := range s.validation {
				s.count(i, assemble.Decide(&s.chosen[i], f).Tier)
			}
		}
		s.validation, s.reselect = nil, true
		c.log.Info().Str("cascades", fmt.Sprint(s.chosen)).Msg("coe: θ chosen on the validation frames")
		return
	}
	for _, pc := range r.Plan.Cascades {
		for i := range s.chosen {
			if s.chosen[i].Task == pc.Task {
				if d := assemble.Decide(&pc, exact); d.Done {
					s.count(i, d.Tier)
				}
			}
		}
	}
}

// count books one visit of cascade i answered at tier.
func (s *coeScheme) count(i, tier int) {
	for t := 0; t <= tier && t < len(s.reach[i]); t++ {
		s.reach[i][t]++
	}
}
