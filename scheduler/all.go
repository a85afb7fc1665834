package scheduler

import (
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

func init() {
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicyAll, Rank: 0,
			Summary: "every model on every frame: the reference every other policy is measured against"},
		New: func(ControllerConfig) Scheme { return allScheme{} },
	})
}

// allScheme runs every model on every frame: the reference every other
// policy is measured against, and what profiling frames do. Its selection,
// every model, is made when the controller starts.
type allScheme struct{}

func (allScheme) Select(c *Controller, _ SetEvidence, _ map[string]Cost, _ Budget) *Selection {
	return &Selection{Exact: c.cfg.Models, Expected: 1}
}

func (allScheme) Plan(c *Controller, _ FrameInfo, _ int64, _ time.Time, plan pipeline.Plan) pipeline.Plan {
	plan.Exact = c.cfg.Models
	return plan
}

func (allScheme) Observe(*Controller, *pipeline.Result) {}

func (allScheme) selectsAtStart() {}
