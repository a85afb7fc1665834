package scheduler

import (
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

func init() {
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicyStandalone, Rank: 10, Needs: pipeline.NeedsBudget,
			Summary: "the cheapest models that fit the budget; the others are absent"},
		New: func(ControllerConfig) Scheme { return standaloneScheme{} },
	})
}

// standaloneScheme runs the cheapest models that fit. Costs are measured,
// not assumed: until every model's cost that the budget limits is known,
// every model runs (and is measured); the selection is redone every period.
type standaloneScheme struct{}

func (standaloneScheme) Select(c *Controller, _ SetEvidence, costs map[string]Cost, budget Budget) *Selection {
	sel := &Selection{Exact: SelectStandalone(c.cfg.Models, costs, budget)}
	sel.Absent = minus(c.cfg.Models, sel.Exact)
	sel.Expected = float64(len(sel.Exact)) / float64(len(c.cfg.Models))
	return sel
}

func (standaloneScheme) Plan(c *Controller, _ FrameInfo, _ int64, now time.Time, plan pipeline.Plan) pipeline.Plan {
	b := c.cfg.Budget
	sel, probe := c.periodicSelection(now, b.MS > 0, b.Memory > 0)
	if probe {
		return c.costProbe(plan)
	}
	plan.Exact = sel.Exact
	return plan
}

func (standaloneScheme) Observe(*Controller, *pipeline.Result) {}
