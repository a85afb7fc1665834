package scheduler

import (
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

func init() {
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicyMLink, Rank: 30, Needs: pipeline.NeedsBudget, Links: true,
			Summary: "MLink (the paper): the selection that maximises expected accuracy; the others predicted by link ensembles"},
		New: func(ControllerConfig) Scheme { return mlinkScheme{} },
	})
}

// mlinkScheme is the paper's policy: profiling windows measure links, the
// models whose links predict the others best within the budget run, and
// link ensembles over them predict the rest.
type mlinkScheme struct{}

func (mlinkScheme) Select(c *Controller, ev SetEvidence, costs map[string]Cost, budget Budget) *Selection {
	if ev == nil {
		return nil // no links yet
	}
	return linkSelection(c.cfg.Models, costs, budget, ev, true)
}

func (mlinkScheme) Plan(c *Controller, f FrameInfo, index int64, now time.Time, plan pipeline.Plan) pipeline.Plan {
	return c.planWithLinks(f, index, now, plan)
}

func (mlinkScheme) Observe(c *Controller, r *pipeline.Result) { c.observeLinks(r) }

// linkSelection is MLink's selection over the links' evidence. With
// cheapest, a budget that nothing fits runs the cheapest model anyway:
// links need a source.
func linkSelection(models []string, costs map[string]Cost, budget Budget, ev SetEvidence, cheapest bool) *Selection {
	sel := &Selection{Exact: SelectMLink(models, costs, budget, ev), Accuracy: map[string]float64{}}
	if len(sel.Exact) == 0 && cheapest {
		sel.Exact = SelectStandalone(models, costs, Budget{})[:1]
		sel.Reason = " (no model fits the budget: running the cheapest)"
	}
	sel.Predicted = minus(models, sel.Exact)
	for _, m := range sel.Predicted {
		sel.Accuracy[m] = PredictedAccuracy(m, sel.Exact, ev)
	}
	sel.Expected = ExpectedAccuracy(models, sel.Exact, ev)
	return sel
}
