package scheduler

import (
	"maps"
	"slices"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

func init() {
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicyHybrid, Rank: 40, Links: true, TemporalLinks: true,
			Summary: "beyond the paper: models may run on every k-th frame; each model not run is served by its link ensemble or its reused last output, whichever measured better"},
		New: func(ControllerConfig) Scheme { return hybridScheme{} },
	})
	// The ablations: one mechanism off each, to show what it contributes.
	for i, o := range []HybridOptions{{NoLinks: true}, {NoReuse: true}, {NoRotation: true}} {
		register(PolicySpec{
			PolicyInfo: pipeline.PolicyInfo{Name: PolicyHybrid + "/" + PolicyName(o.Ablation()), Rank: 41 + i, Links: true, TemporalLinks: true,
				Summary: "mlink-hybrid with " + o.off() + " off (an ablation)"},
			New: func(ControllerConfig) Scheme { return hybridScheme{options: o} },
		})
	}
}

// hybridScheme is mlink-hybrid: SelectHybrid over the links' and reuse's
// evidence, at the streams' measured step.
type hybridScheme struct {
	options HybridOptions
}

func (h hybridScheme) Select(c *Controller, ev SetEvidence, costs map[string]Cost, budget Budget) *Selection {
	if ev == nil {
		return nil // no links yet
	}
	sel := linkSelection(c.cfg.Models, costs, budget, ev, false)
	if _, ok := ev.(ReuseEvidence); !ok {
		return sel // no reuse measured: MLink's choice
	}
	// The hybrid may choose to run nothing between profiling frames
	// (every model reused) when the budget is spent.
	sev := c.streamEvidence(c.turns.correct(ev))
	ch := SelectHybrid(c.cfg.Models, costs, budget, sev, sev, h.options)
	sel.Exact, sel.Predicted, sel.Reused, sel.Every = ch.Always, ch.Predicted, ch.Reused, ch.Every
	sel.Temporal, sel.Absent = ch.Temporal, ch.Absent
	sel.Tracked, sel.Follow = ch.Tracked, ch.Follow
	sel.Accuracy, sel.Expected = ch.Accuracy, ch.Expected
	sel.phases, _ = staggerPhases(c.cfg.Models, ch.Every, costs)
	return sel
}

func (hybridScheme) Plan(c *Controller, f FrameInfo, index int64, now time.Time, plan pipeline.Plan) pipeline.Plan {
	return c.planWithLinks(f, index, now, plan)
}

func (hybridScheme) Observe(c *Controller, r *pipeline.Result) {
	c.observeLinks(r)
	c.observeTurns(r)
}

// turnSwitchMargin is how much more system accuracy a selection made on
// turn-corrected evidence must promise than the current one, on the same
// evidence, to replace it: half a point.
const turnSwitchMargin = 0.005

// worthSwitching implements turnMeasurer: next must beat cur, re-evaluated
// on the same turn-corrected evidence, by turnSwitchMargin — or cur must
// no longer fit the budget.
func (h hybridScheme) worthSwitching(c *Controller, cur, next *Selection, ev SetEvidence, costs map[string]Cost, budget Budget) bool {
	periods := rotationPeriods(cur.Exact, cur.Every)
	if maps.Equal(periods, rotationPeriods(next.Exact, next.Every)) {
		// The same rotations, served as the corrected evidence measures
		// best: switching costs nothing (the phases stay).
		return !sameServing(cur, next)
	}
	if !hybridFits(c.cfg.Models, costs, budget, periods) {
		return true
	}
	sev := c.streamEvidence(ev)
	stay := hybridEvaluate(c.cfg.Models, periods, sev, sev, h.options)
	c.log.Debug().Str("rotating", next.rotating()).Strs("exact", next.Exact).Float64("expected", next.Expected).
		Float64("staying", stay.Expected).Msg("turns measured: selection reconsidered")
	return next.Expected >= stay.Expected+turnSwitchMargin
}

// measuredAccuracy: a rotating or reused model is measured as the hybrid
// serves it (reuse at its age, or its links), not as links alone.
func (h hybridScheme) measuredAccuracy(c *Controller, sel *Selection, ev SetEvidence) map[string]float64 {
	if _, ok := ev.(ReuseEvidence); !ok {
		return nil
	}
	sev := c.streamEvidence(ev)
	return hybridEvaluate(c.cfg.Models, rotationPeriods(sel.Exact, sel.Every), sev, sev, h.options).Accuracy
}

// off names the mechanism an ablation turns off.
func (o HybridOptions) off() string {
	switch {
	case o.NoLinks:
		return "links"
	case o.NoReuse:
		return "reuse"
	case o.NoRotation:
		return "rotation"
	}
	return "nothing"
}

// sameServing: a and b serve every model they do not run alike (reused,
// tracked, moved by the same delta link, predicted, temporal).
func sameServing(a, b *Selection) bool {
	same := func(x, y []string) bool {
		return slices.Equal(slices.Sorted(slices.Values(x)), slices.Sorted(slices.Values(y)))
	}
	if !same(a.Reused, b.Reused) || !same(a.Predicted, b.Predicted) || !same(a.Temporal, b.Temporal) ||
		!same(a.Tracked, b.Tracked) || len(a.Follow) != len(b.Follow) {
		return false
	}
	for m, l := range a.Follow {
		o, ok := b.Follow[m]
		if !ok || keyOfFollow(m, l) != keyOfFollow(m, o) {
			return false
		}
	}
	return true
}
