package scheduler

import (
	"maps"
	"slices"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// Routing: a selection's Placement says which worker pools run each model
// and in what proportions. route writes, for every model a frame may
// execute (its exact models and every cascade member, which an escalation
// may add), the pool the frame goes to (Plan.Pools; absent: the unpooled
// workers). Pools take turns by smooth weighted round robin over their
// shares (nginx's upstream balancing: each pick adds every pool's weight
// to its credit and takes the total from the chosen one's, so that shares
// 0.75/0.25 interleave A A B A rather than A A A B). A pool whose workers
// of the model are not answering is passed over: the model's other
// placement pools, then the unpooled workers, then any pool whose workers
// of it answer take the frame (counted in PoolFallbacks), so that a
// missing pool costs placement, not results.

// poolRouter holds the round robin's credits per model and pool.
type poolRouter struct {
	credit map[string]map[string]float64
}

// pick is the smooth weighted round robin over shares.
func (r *poolRouter) pick(model string, shares []Share) string {
	if len(shares) == 1 {
		return shares[0].Pool
	}
	if r.credit == nil {
		r.credit = map[string]map[string]float64{}
	}
	cr := r.credit[model]
	if cr == nil {
		cr = map[string]float64{}
		r.credit[model] = cr
	}
	total, best := 0.0, -1
	for i, s := range shares {
		w := max(s.Fraction, 0)
		total += w
		cr[s.Pool] += w
		if best < 0 || cr[s.Pool] > cr[shares[best].Pool] {
			best = i
		}
	}
	cr[shares[best].Pool] -= total
	return shares[best].Pool
}

// route fills plan.Pools from the current selection's placement and the
// pools' health.
func (c *Controller) route(plan *pipeline.Plan) {
	sel := c.selection.Load()
	models := plan.Exact
	if len(plan.Cascades) > 0 {
		models = slices.Clone(models) // the plan's own slice stays as it is
		for _, cc := range plan.Cascades {
			models = append(models, cc.Members()...)
		}
	}
	if len(models) == 0 || (!c.pooledHeard.Load() && (sel == nil || len(sel.Placement) == 0)) {
		return // nothing placed and no pooled worker heard of: the default subjects
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for _, m := range models {
		if _, done := plan.Pools[m]; done {
			continue
		}
		var shares []Share
		if sel != nil {
			shares = sel.Placement[m]
		}
		pool, how := c.poolFor(m, shares, now)
		switch how {
		case routeFallback:
			c.stats.PoolFallbacks.Add(1)
		case routeUnserved:
			c.stats.PoolUnserved.Add(1)
			c.logUnservedOnce(m, shares)
		}
		if pool == "" {
			continue
		}
		if plan.Pools == nil {
			plan.Pools = map[string]string{}
		}
		plan.Pools[m] = pool
	}
}

// routeOutcome says how a model's pool was chosen for a frame.
type routeOutcome int

const (
	// routePlaced: where the placement says (or placed nowhere).
	routePlaced routeOutcome = iota
	// routeFallback: the placement's pool has had workers of the model,
	// and they stopped answering.
	routeFallback
	// routeUnserved: the placement's pool has never had a worker of the
	// model while others have (an all-in-one process without --pool, or
	// a pool not started): a deployment that does not match the
	// placement, not a failure.
	routeUnserved
)

// poolFor chooses model's pool for one frame ("": the unpooled workers)
// and says how.
func (c *Controller) poolFor(model string, shares []Share, now time.Time) (pool string, how routeOutcome) {
	heard := c.pools[model]
	alive := func(p string) bool {
		h := heard[p]
		return h != nil && h.alive(now, c.cfg.HealthTimeout)
	}
	planned := ""
	if len(shares) > 0 {
		planned = c.router.pick(model, shares)
	}
	if len(heard) == 0 || alive(planned) {
		return planned, routePlaced // its workers may be starting: as placed
	}
	passedOver := routePlaced
	if planned != "" {
		passedOver = routeFallback
		if heard[planned] == nil {
			passedOver = routeUnserved
		}
	}
	for _, s := range shares {
		if alive(s.Pool) {
			return s.Pool, passedOver
		}
	}
	if alive("") {
		return "", passedOver
	}
	if passedOver == routePlaced {
		passedOver = routeFallback // placed nowhere, and the unpooled workers are gone
	}
	for _, p := range slices.Sorted(maps.Keys(heard)) {
		if alive(p) {
			return p, passedOver
		}
	}
	return planned, routePlaced // nobody answers: healthyPlan's business
}

// logUnservedOnce warns, once per model, that its placement's pools have
// no workers of it, so its frames go elsewhere (counted in PoolUnserved).
// c.mu is held.
func (c *Controller) logUnservedOnce(model string, shares []Share) {
	if c.unservedLogged[model] {
		return
	}
	if c.unservedLogged == nil {
		c.unservedLogged = map[string]bool{}
	}
	c.unservedLogged[model] = true
	pools := make([]string, len(shares))
	for i, s := range shares {
		pools[i] = s.Pool
	}
	c.log.Warn().Str("model", model).Strs("placement", pools).
		Msg("no worker of the model has joined its placement pool: its frames go to the workers that have it (start workers with `mlink run --pool NAME` to follow the placement)")
}

// alive: heard within timeout, and not stuck with frames queued.
func (h *modelHealth) alive(now time.Time, timeout time.Duration) bool {
	if now.Sub(h.lastBeat) > timeout {
		return false
	}
	return h.queued == 0 || now.Sub(h.lastProgress) <= timeout
}
