package scheduler

import (
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
		New: func(cfg ControllerConfig) Scheme { return &jellybeanScheme{cfg: cfg.JellyBean} },
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
// selection's reason says so. Placement is computed and reported, not
// enforced: every model's workers are one queue group today.
type jellybeanScheme struct {
	cfg  pipeline.JellyBeanConfig
	last atomic.Pointer[JellyPlan]
}

// JellyPlan is jellybean's decision, for the logs, the status and tests.
type JellyPlan struct {
	Tasks []Task
	// Run is each task's chosen variant ("" where the task is not run and
	// its models reuse their last exact outputs).
	Run map[string]string
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
		switch {
		case v == "":
			parts = append(parts, t.Name+"=reused")
		case p.Placed:
			parts = append(parts, fmt.Sprintf("%s=%s@%s", t.Name, v, strings.Join(p.Placement.Pools(v), "+")))
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
func PlanJellyBean(tasks []Task, cfg pipeline.JellyBeanConfig, k int) (*JellyPlan, error) {
	cands, err := BeamSearch(tasks, cfg.SLO.Accuracy, k)
	if err != nil {
		return nil, err
	}
	var best *JellyPlan
	var placeErr error
	for _, a := range cands {
		p := jellyPlanOf(tasks, a)
		if len(cfg.Pools) > 0 {
			if p.Placement, err = Place(p.operators(tasks, cfg), cfg.Pools, jellyDemand(cfg)); err != nil {
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
// run).
func jellyPlanOf(tasks []Task, a Assignment) *JellyPlan {
	p := &JellyPlan{Tasks: tasks, Run: map[string]string{}}
	for i, c := range a.Choice {
		if c < 0 {
			continue
		}
		v := tasks[i].Variants[c]
		p.Run[tasks[i].Name] = v.Model
		p.MS += v.MS
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

// operators are the plan's chosen variants in task order.
func (p *JellyPlan) operators(tasks []Task, cfg pipeline.JellyBeanConfig) []Operator {
	out := float64(cfg.OutputBytes)
	if out <= 0 {
		out = defaultJellyOutputBytes
	}
	var ops []Operator
	for _, t := range tasks {
		for _, v := range t.Variants {
			if p.Run[t.Name] == v.Model {
				ops = append(ops, Operator{Model: v.Model, MS: v.MS, OutputBytes: out})
			}
		}
	}
	return ops
}

// mostAccurateWithin is the plan within budget b that serves the tasks
// best: per task one variant or none (its models reused, worth unrun), the
// sum over tasks of accuracy × the task's outputs (every output is one a
// user gets) maximised by the knapsack solver. The plan is placed if it
// can be.
func mostAccurateWithin(tasks []Task, cfg pipeline.JellyBeanConfig, costs map[string]Cost, b Budget, unrun func(Task) float64) *JellyPlan {
	var items []KnapsackItem
	type ref struct{ task, variant int }
	var refs []ref
	capacity := b.MS
	weight := func(m string) float64 { return costs[m].MS }
	if b.MS <= 0 {
		capacity = float64(b.Memory)
		weight = func(m string) float64 { return float64(costs[m].Memory) }
	}
	for ti, t := range tasks {
		base := unrun(t)
		for vi, v := range t.Variants {
			gain := (v.Accuracy - base) * float64(len(t.Variants))
			if gain <= 0 {
				continue
			}
			items = append(items, KnapsackItem{Value: gain, Weight: weight(v.Model), Group: ti + 1})
			refs = append(refs, ref{ti, vi})
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
	for i, bin := range packed.Bin {
		if bin >= 0 {
			a.Choice[refs[i].task] = refs[i].variant
		}
	}
	p := jellyPlanOf(tasks, a)
	// A task not run counts at its reused worth.
	for _, t := range tasks {
		if p.Run[t.Name] == "" && len(tasks) > 0 {
			p.Accuracy += unrun(t) / float64(len(tasks))
		}
	}
	if len(cfg.Pools) > 0 {
		var err error
		if p.Placement, err = Place(p.operators(tasks, cfg), cfg.Pools, jellyDemand(cfg)); err == nil {
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
	tasks := jellybeanTasks(models, s.cfg, costs, func(ref, v string) float64 { return PredictedAccuracy(ref, []string{v}, ev) })
	unrun := func(Task) float64 { return 0 }
	if _, ok := ev.(ReuseEvidence); ok {
		sev := c.streamEvidence(ev)
		unrun = func(t Task) float64 { return sev.ReuseAccuracy(t.Variants[0].Model, neverAge) }
	}
	plan, err := PlanJellyBean(tasks, s.cfg, BeamWidth)
	note := ""
	switch {
	case err != nil:
		plan = mostAccurateWithin(tasks, s.cfg, costs, b, unrun)
		plan.Refusal = err
		note = fmt.Sprintf("refused: %v; running the most accurate plan within the budget instead", err)
		c.log.Warn().Err(err).Msg("jellybean: no plan meets the SLOs")
	case !b.Fits(sum(costs, plan.models())):
		slo := plan
		plan = mostAccurateWithin(tasks, s.cfg, costs, b, unrun)
		plan.OverBudget = true
		note = fmt.Sprintf("the SLO plan (%s) exceeds the budget %s: the most accurate plan within it, SLOs not met", slo, b)
	}
	s.last.Store(plan)
	sel := &Selection{Accuracy: map[string]float64{}}
	run := map[string]bool{}
	for _, m := range plan.Run {
		run[m] = true
	}
	for _, m := range models {
		if run[m] {
			sel.Exact = append(sel.Exact, m)
		}
	}
	for _, t := range tasks {
		for _, v := range t.Variants {
			switch {
			case run[v.Model]:
			case plan.Run[t.Name] != "":
				sel.Predicted = append(sel.Predicted, v.Model)
				sel.Accuracy[v.Model] = PredictedAccuracy(v.Model, sel.Exact, ev)
			default:
				sel.Reused = append(sel.Reused, v.Model)
				sel.Accuracy[v.Model] = unrun(Task{Variants: []Variant{v}})
			}
		}
	}
	total := float64(len(sel.Exact))
	for _, acc := range sel.Accuracy {
		total += acc
	}
	sel.Expected = total / float64(max(1, len(models)))
	sel.Reason = " (jellybean: " + plan.String()
	if note != "" {
		sel.Reason += "; " + note
	} else if plan.Refusal != nil {
		sel.Reason += "; not placed: " + plan.Refusal.Error()
	}
	sel.Reason += ")"
	return sel
}

func (*jellybeanScheme) Plan(c *Controller, f FrameInfo, index int64, now time.Time, plan pipeline.Plan) pipeline.Plan {
	return c.planWithLinks(f, index, now, plan)
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
