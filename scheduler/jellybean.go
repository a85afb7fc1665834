package scheduler

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

func init() {
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicyJellyBean, Rank: 55, Links: true,
			Summary: "JellyBean: per task the cheapest variants meeting the SLOs (scheduler.jellybean), beam search then tier-by-tier placement on priced worker pools; the task's other variants predicted from the one run"},
		New: func(cfg ControllerConfig) Scheme { return &jellybeanScheme{cfg: cfg.JellyBean, pools: cfg.Pools} },
	})
}

// PolicyJellyBean selects model variants and places them on worker pools
// to meet SLOs at the lowest price.
const PolicyJellyBean PolicyName = "jellybean"

// Defaults of scheduler.jellybean.
const (
	defaultJellyFPS         = 10
	defaultJellyFrameBytes  = 100 << 10
	defaultJellyOutputBytes = 2 << 10
)

// jellybeanScheme is JellyBean (Wu, Lentz, Zhuo, Lu, VLDB 2023) over this
// pipeline's tasks. A task is served by one of its variants (models of the
// same task at different cost and accuracy); a variant's accuracy is the
// measured accuracy of the task's reference (its first variant) predicted
// from that variant alone, on the held-out profiling frames — the links'
// evidence every link policy uses. The selection is the cheapest plan that
// meets the SLOs (BeamSearch for the candidates, Place to price each); the
// chosen variants run on every frame and link ensembles over them predict
// the tasks' other variants. Under a budget the SLO plan's cost per frame
// exceeds, or when no plan meets the SLOs, the plan is instead the most
// accurate within the budget (a multiple-choice knapsack: per task one
// variant or none; a task not run reuses its last exact outputs), and the
// selection's reason says so. The placement is enforced: the controller
// routes each model's frames to the pools it was placed on (Controller.route).
type jellybeanScheme struct {
	cfg   pipeline.JellyBeanConfig
	pools []pipeline.WorkerPool
	last  atomic.Pointer[JellyPlan]
}

// JellyPlan is jellybean's decision, for the logs, the status and tests.
type JellyPlan struct {
	Tasks []Task
	// Run is each task's chosen variant ("" where the task is not run and
	// its models reuse their last exact outputs).
	Run map[string]string
	// Every is each run task's rate: its variant on every k-th frame (1
	// in an SLO plan; more within a budget the SLO plan does not fit).
	Every map[string]int
	// MS is the chosen variants' cost per frame; Accuracy the tasks' mean
	// accuracy by the evidence.
	MS, Accuracy float64
	Placement    Placement
	// Placed is false where the pools could not carry the plan (or there
	// are none): Placement is then empty.
	Placed bool
	// SLOMet: the plan meets every SLO. Refusal is why no plan does (an
	// *SLOError naming the SLO and the best achievable), or the placement
	// error of a plan made within the budget.
	SLOMet  bool
	Refusal error
	// OverBudget: the SLO plan costs more per frame than the budget; the
	// plan is the most accurate within it.
	OverBudget bool
}

// String renders the plan: $/hour, cross-tier traffic, variant and pools
// per task.
func (p *JellyPlan) String() string {
	var parts []string
	for _, t := range p.Tasks {
		v := p.Run[t.Name]
		if k := p.Every[t.Name]; k > 1 {
			v += fmt.Sprintf("/%d", k)
		}
		switch {
		case v == "":
			parts = append(parts, t.Name+"=reused")
		case p.Placed:
			parts = append(parts, fmt.Sprintf("%s=%s@%s", t.Name, v, strings.Join(p.Placement.Pools(p.Run[t.Name]), "+")))
		default:
			parts = append(parts, t.Name+"="+v)
		}
	}
	head := fmt.Sprintf("%.0f ms/frame, accuracy %.3f", p.MS, p.Accuracy)
	if p.Placed {
		head = fmt.Sprintf("$%.3f/h (compute %.3f, traffic %.3f; %.2f GB/h cross-tier), ", p.Placement.PerHour,
			p.Placement.ComputePerHour, p.Placement.TrafficPerHour, p.Placement.CrossTierGBPerHour) + head
	}
	return head + ": " + strings.Join(parts, " ")
}

// JellyBeanPlan is the plan of a jellybean controller's current selection
// (nil: another policy, or none yet).
func (c *Controller) JellyBeanPlan() *JellyPlan {
	if s, ok := c.scheme.(*jellybeanScheme); ok {
		return s.last.Load()
	}
	return nil
}

// jellybeanTasks groups the models into tasks, in the order of their
// first model (the workflow's order, which placement keeps): the configured
// variants (those loaded; the first loaded is the reference), and each
// other model a task of its own. Variants' accuracy is the reference's
// predicted from them alone (accuracy(ref, v)).
func jellybeanTasks(models []string, cfg pipeline.JellyBeanConfig, costs map[string]Cost, accuracy func(ref, v string) float64) []Task {
	taskOf := map[string]string{}
	for task, vs := range cfg.Variants {
		for _, m := range vs {
			taskOf[m] = task
		}
	}
	var tasks []Task
	seen := map[string]bool{}
	for _, m := range models {
		name, ok := taskOf[m]
		if !ok {
			name = m
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		variants := []string{m}
		if ok {
			variants = nil
			for _, v := range cfg.Variants[name] {
				if slices.Contains(models, v) {
					variants = append(variants, v)
				}
			}
		}
		t := Task{Name: name, Target: cfg.SLO.Tasks[name]}
		for i, v := range variants {
			acc := 1.0
			if i > 0 {
				acc = accuracy(variants[0], v)
			}
			t.Variants = append(t.Variants, Variant{Model: v, MS: costs[v].MS, Accuracy: acc})
		}
		tasks = append(tasks, t)
	}
	return tasks
}

// PlanJellyBean is JellyBean's SLO plan: the beam search's candidates,
// each placed and priced, the cheapest that the pools can carry. Without
// pools nothing is priced and the cheapest candidate per frame wins. An
// *SLOError says which SLO no plan meets and the best achievable.
func PlanJellyBean(tasks []Task, cfg pipeline.JellyBeanConfig, pools []pipeline.WorkerPool, k int) (*JellyPlan, error) {
	cands, err := BeamSearch(tasks, cfg.SLO.Accuracy, k)
	if err != nil {
		return nil, err
	}
	var best *JellyPlan
	var placeErr error
	for _, a := range cands {
		p := jellyPlanOf(tasks, a, nil)
		if len(pools) > 0 {
			if p.Placement, err = Place(p.operators(tasks, cfg), pools, jellyDemand(cfg)); err != nil {
				if placeErr == nil {
					placeErr = err // the cheapest candidate's
				}
				continue
			}
			p.Placed = true
		}
		if best == nil || (p.Placed && p.Placement.PerHour < best.Placement.PerHour-1e-12) {
			best = p
		}
	}
	if best == nil {
		return nil, placeErr
	}
	best.SLOMet = true
	return best, nil
}

func jellyDemand(cfg pipeline.JellyBeanConfig) Demand {
	d := Demand{FPS: cfg.SLO.ThroughputFPS, FrameBytes: float64(cfg.FrameBytes)}
	if d.FPS <= 0 {
		d.FPS = defaultJellyFPS
	}
	if d.FrameBytes <= 0 {
		d.FrameBytes = defaultJellyFrameBytes
	}
	return d
}

// jellyPlanOf is assignment a as a plan (a choice of -1: the task is not
// run), each task's variant run on every every[task]-th frame (nil or
// unset: every frame).
func jellyPlanOf(tasks []Task, a Assignment, every map[string]int) *JellyPlan {
	p := &JellyPlan{Tasks: tasks, Run: map[string]string{}, Every: map[string]int{}}
	for i, c := range a.Choice {
		if c < 0 {
			continue
		}
		v := tasks[i].Variants[c]
		k := max(1, every[tasks[i].Name])
		p.Run[tasks[i].Name] = v.Model
		p.Every[tasks[i].Name] = k
		p.MS += v.MS / float64(k)
		p.Accuracy += v.Accuracy
	}
	if len(tasks) > 0 {
		p.Accuracy /= float64(len(tasks))
	}
	return p
}

// models are the plan's chosen variants.
func (p *JellyPlan) models() []string {
	var out []string
	for _, t := range p.Tasks {
		if m := p.Run[t.Name]; m != "" {
			out = append(out, m)
		}
	}
	return out
}

// operators are the plan's chosen variants, the cheapest first: the tasks
// are independent, so any order is the workflow's, and this one keeps the
// light models at the edge and moves the plan up a tier only for the
// heavy ones (forward only, one heavy model early would take every later
// one up with it).
func (p *JellyPlan) operators(tasks []Task, cfg pipeline.JellyBeanConfig) []Operator {
	out := float64(cfg.OutputBytes)
	if out <= 0 {
		out = defaultJellyOutputBytes
	}
	var ops []Operator
	for _, t := range tasks {
		for _, v := range t.Variants {
			if p.Run[t.Name] == v.Model {
				// On every k-th frame: a k-th of the throughput.
				k := float64(max(1, p.Every[t.Name]))
				ops = append(ops, Operator{Model: v.Model, MS: v.MS / k, OutputBytes: out / k})
			}
		}
	}
	slices.SortStableFunc(ops, func(a, b Operator) int { return cmp.Compare(a.MS, b.MS) })
	return ops
}

// jellyEvery are the rates a task may be served at within a budget: its
// variant on every k-th frame.
var jellyEvery = []int{1, 2, 4, 8, 16}

// jellyEvidence is what the within-budget plan values outputs by:
// predicted(target, source) the accuracy of target predicted from source
// alone, reused(model, age) of model's last exact output age frames old
// (neverAge: from the last profiling frame).
type jellyEvidence struct {
	predicted func(target, source string) float64
	reused    func(model string, age int) float64
}

// served is the mean worth of task t's outputs when variant v runs on every
// k-th frame (the sum of servedAs over the task's variants).
func (e jellyEvidence) served(t Task, v Variant, k int) float64 {
	total := 0.0
	for _, o := range t.Variants {
		total += e.servedAs(o.Model, v.Model, k)
	}
	return total
}

// servedAs is the mean worth of model o's output when its task's variant v
// runs on every k-th frame: v exact on its turns and reused between them;
// another variant predicted from v on v's turns and reused (its last exact
// output, from the last profiling frame) between them.
func (e jellyEvidence) servedAs(o, v string, k int) float64 {
	if o == v {
		run := 1.0
		for age := 1; age < k; age++ {
			run += e.reused(o, age)
		}
		return run / float64(k)
	}
	return (e.predicted(o, v) + float64(k-1)*e.reused(o, neverAge)) / float64(k)
}

// unrun is the worth of task t's outputs when it is not run: each reused
// from the last profiling frame.
func (e jellyEvidence) unrun(t Task) float64 {
	total := 0.0
	for _, o := range t.Variants {
		total += e.reused(o.Model, neverAge)
	}
	return total
}

// mostAccurateWithin is the plan within budget b that serves the outputs
// best, when the SLO plan does not fit it: per task one variant run on
// every k-th frame (k in jellyEvery: the task at a k-th of the SLO's
// throughput), or none (every output of the task reused), maximising the
// worth of all outputs — each output counts, as each is one a user gets —
// by the multiple-choice knapsack solver. The plan is placed at the rates
// it serves, if it can be.
func mostAccurateWithin(tasks []Task, cfg pipeline.JellyBeanConfig, pools []pipeline.WorkerPool, costs map[string]Cost, b Budget, ev jellyEvidence) *JellyPlan {
	var items []KnapsackItem
	type choice struct{ task, variant, k int }
	var choices []choice
	capacity := b.MS
	weight := func(m string, k int) float64 { return costs[m].MS / float64(k) }
	every := jellyEvery
	if b.MS <= 0 || b.Capped() {
		every = []int{1} // memory is held on every frame; a cap binds every frame
	}
	if b.MS <= 0 {
		capacity = float64(b.Memory)
		weight = func(m string, _ int) float64 { return float64(costs[m].Memory) }
	}
	for ti, t := range tasks {
		base := ev.unrun(t)
		for vi, v := range t.Variants {
			for _, k := range every {
				gain := ev.served(t, v, k) - base
				if gain <= 0 {
					continue
				}
				items = append(items, KnapsackItem{Value: gain, Weight: weight(v.Model, k), Group: ti + 1})
				choices = append(choices, choice{ti, vi, k})
			}
		}
	}
	if capacity <= 0 {
		capacity = math.Inf(1) // no budget: every task's most valuable variant
	}
	packed := SolveKnapsack(items, []float64{capacity})
	a := Assignment{Choice: make([]int, len(tasks))}
	for i := range a.Choice {
		a.Choice[i] = -1
	}
	rates := map[string]int{}
	worth, outputs := 0.0, 0
	for _, t := range tasks {
		worth += ev.unrun(t)
		outputs += len(t.Variants)
	}
	for i, bin := range packed.Bin {
		if bin >= 0 {
			ch := choices[i]
			a.Choice[ch.task] = ch.variant
			rates[tasks[ch.task].Name] = ch.k
			worth += items[i].Value
		}
	}
	p := jellyPlanOf(tasks, a, rates)
	if outputs > 0 {
		p.Accuracy = worth / float64(outputs) // the outputs' mean worth
	}
	if len(pools) > 0 {
		var err error
		if p.Placement, err = Place(p.operators(tasks, cfg), pools, jellyDemand(cfg)); err == nil {
			p.Placed = true
		} else {
			p.Refusal = err
		}
	}
	return p
}

func (s *jellybeanScheme) Select(c *Controller, ev SetEvidence, costs map[string]Cost, b Budget) *Selection {
	if ev == nil {
		return nil // no evidence yet: the bootstrap's profiling
	}
	models := c.cfg.Models
	je := jellyEvidence{
		predicted: func(target, source string) float64 { return PredictedAccuracy(target, []string{source}, ev) },
		reused:    func(string, int) float64 { return 0 },
	}
	if _, ok := ev.(ReuseEvidence); ok {
		je.reused = c.streamEvidence(ev).ReuseAccuracy
	}
	tasks := jellybeanTasks(models, s.cfg, costs, je.predicted)
	plan, err := PlanJellyBean(tasks, s.cfg, s.pools, BeamWidth)
	note := ""
	switch {
	case err != nil:
		plan = mostAccurateWithin(tasks, s.cfg, s.pools, costs, b, je)
		plan.Refusal = err
		note = fmt.Sprintf("refused: %v; running the most accurate plan within the budget instead", err)
		c.log.Warn().Err(err).Msg("jellybean: no plan meets the SLOs")
	case !b.Fits(sum(costs, plan.models())):
		slo := plan
		plan = mostAccurateWithin(tasks, s.cfg, s.pools, costs, b, je)
		plan.OverBudget = true
		note = fmt.Sprintf("the SLO plan (%s) exceeds the budget %s: the most accurate plan within it, SLOs not met", slo, b)
	}
	s.last.Store(plan)
	// Once per selection: the plan, its price and placement (the
	// controller's "models selected" line says what runs).
	c.log.Info().Str("plan", plan.String()).Bool("slo_met", plan.SLOMet).Bool("over_budget", plan.OverBudget).Str("note", note).Msg("jellybean plan")
	sel := &Selection{Accuracy: map[string]float64{}, Every: map[string]int{}}
	run := map[string]bool{}
	for _, t := range tasks {
		if m := plan.Run[t.Name]; m != "" {
			run[m] = true
			if k := plan.Every[t.Name]; k > 1 {
				sel.Every[m] = k
			}
		}
	}
	for _, m := range models {
		if run[m] && sel.Every[m] == 0 {
			sel.Exact = append(sel.Exact, m)
		}
	}
	worth := float64(len(sel.Exact))
	for _, t := range tasks {
		v := plan.Run[t.Name]
		k := max(1, plan.Every[t.Name])
		for _, o := range t.Variants {
			switch {
			case v == "":
				sel.Reused = append(sel.Reused, o.Model)
				sel.Accuracy[o.Model] = je.reused(o.Model, neverAge)
			case k > 1:
				// Between the variant's turns; on them Plan runs it and
				// predicts the others.
				sel.Reused = append(sel.Reused, o.Model)
				sel.Accuracy[o.Model] = je.servedAs(o.Model, v, k)
			case o.Model != v:
				sel.Predicted = append(sel.Predicted, o.Model)
				sel.Accuracy[o.Model] = PredictedAccuracy(o.Model, sel.Exact, ev)
			default:
				continue // run on every frame: exact
			}
			worth += sel.Accuracy[o.Model]
		}
	}
	sel.Expected = worth / float64(max(1, len(models)))
	sel.phases, _ = staggerPhases(models, sel.Every, costs)
	if plan.Placed {
		sel.Placement = plan.Placement.Shares
	}
	sel.Reason = " (jellybean: " + plan.String()
	if note != "" {
		sel.Reason += "; " + note
	} else if plan.Refusal != nil {
		sel.Reason += "; not placed: " + plan.Refusal.Error()
	}
	sel.Reason += ")"
	return sel
}

// Plan is the link policies' plan; on the turn of a variant run every k-th
// frame, the task's other variants are predicted from it rather than
// reused.
func (s *jellybeanScheme) Plan(c *Controller, f FrameInfo, index int64, now time.Time, plan pipeline.Plan) pipeline.Plan {
	sel := c.selection.Load()
	plan = c.planWithLinks(f, index, now, plan)
	jp := s.last.Load()
	if sel == nil || jp == nil || plan.Profiling || len(sel.Every) == 0 {
		return plan
	}
	predicted := false
	for _, t := range jp.Tasks {
		v := jp.Run[t.Name]
		if sel.Every[v] <= 1 || !slices.Contains(plan.Exact, v) {
			continue
		}
		for _, o := range t.Variants {
			if o.Model != v && slices.Contains(plan.Reused, o.Model) {
				plan.Reused = slices.DeleteFunc(plan.Reused, func(m string) bool { return m == o.Model })
				plan.Predicted = append(plan.Predicted, o.Model)
				predicted = true
			}
		}
	}
	if predicted {
		plan.Sources = nil // every executed model: the turn's variant among them
	}
	return plan
}

func (*jellybeanScheme) Observe(c *Controller, r *pipeline.Result) { c.observeLinks(r) }

// measuredAccuracy: a reused model is worth its reuse, not its links.
func (*jellybeanScheme) measuredAccuracy(_ *Controller, sel *Selection, _ SetEvidence) map[string]float64 {
	return sel.Accuracy
}

// AsSLOError returns err's *SLOError, if it has one.
func AsSLOError(err error) (*SLOError, bool) {
	var e *SLOError
	ok := errors.As(err, &e)
	return e, ok
}
