package assemble

import (
	"math"
	"slices"

	"github.com/mlink-project/mlink/pipeline"
)

// A cascade of ensembles (policy coe, pipeline.Cascade) is decided here
// once, for the live merger and for the replay alike: from the outputs a
// frame has so far, which tier answers, or which tier must run next.

// thetaSlack: θ is written to two decimals, so 0.67 means two of three
// members (2/3 = 0.6667).
const thetaSlack = 0.005

// Decision is where one cascade stands on a frame.
type Decision struct {
	// Tier is the tier that answered (Done), else the tier the frame waits
	// for: some of its members have no output yet (they must run, or are
	// running).
	Tier int
	Done bool
	// Answer is the answering tier's majority output, addressed as the
	// cascade's Output (Source predicted, Sources the members that agreed).
	// nil when no member of the answering tier has a usable output.
	Answer *pipeline.Output
	// Share is the answering (or last complete) tier's share of members
	// agreeing with its majority.
	Share float64
}

// Decide walks the cascade's tiers over a frame's outputs: a tier whose
// members have all answered accepts when the share agreeing with its
// majority is at least its θ, or when it is the last tier; else the next
// tier decides. A failed member agrees with nobody.
func Decide(c *pipeline.Cascade, outputs map[string]*pipeline.Output) Decision {
	for i, t := range c.Tiers {
		outs := make([]*pipeline.Output, len(t.Models))
		for j, m := range t.Models {
			outs[j] = outputs[m]
			if outs[j] == nil {
				return Decision{Tier: i}
			}
		}
		leader, agreeing, share := Majority(c, outs)
		if share+thetaSlack < t.Theta && i < len(c.Tiers)-1 {
			continue
		}
		d := Decision{Tier: i, Done: true, Share: share}
		if leader >= 0 {
			a := *outs[leader]
			a.Model, a.Source, a.InferMS, a.Worker, a.Pool, a.Token = c.Output, pipeline.SourcePredicted, 0, "", "", ""
			a.Sources = nil
			for _, j := range agreeing {
				a.Sources = append(a.Sources, t.Models[j])
			}
			a.Confidence = share
			d.Answer = &a
		}
		return d
	}
	return Decision{Tier: len(c.Tiers)} // no tiers: nothing to decide
}

// Majority returns the member most others agree with (ties: the earliest,
// so a tier lists its members closest to the final model first), the
// members agreeing with it (itself included) and their share of all
// members. leader is −1 when no member has a usable output.
func Majority(c *pipeline.Cascade, outs []*pipeline.Output) (leader int, agreeing []int, share float64) {
	leader = -1
	for i, a := range outs {
		if !usable(a) {
			continue
		}
		var with []int
		for j, b := range outs {
			if usable(b) && Agree(c, a, b) {
				with = append(with, j)
			}
		}
		if len(with) > len(agreeing) {
			leader, agreeing = i, with
		}
	}
	if len(outs) == 0 {
		return -1, nil, 0
	}
	return leader, agreeing, float64(len(agreeing)) / float64(len(outs))
}

// Agree reports whether two members' outputs agree under the cascade's
// rule: counts within its tolerance, or boxes matched one to one at IoU ≥
// pipeline.CascadeMinIoU.
func Agree(c *pipeline.Cascade, a, b *pipeline.Output) bool {
	if c.AgreeKind() == pipeline.AgreeBoxes {
		if len(a.Boxes) != len(b.Boxes) {
			return false
		}
		return len(MatchBoxes(a.Boxes, b.Boxes, pipeline.CascadeMinIoU, false)) == len(a.Boxes)
	}
	ca, oka := a.Count()
	cb, okb := b.Count()
	return oka && okb && math.Abs(ca-cb) <= c.Tolerance+1e-9
}

func usable(o *pipeline.Output) bool { return o != nil && o.Error == "" }

// Escalations lists the models a frame must run next: for every cascade of
// the plan whose outputs so far leave it undecided, the members of the
// tier it waits for that the plan does not run yet (a tier that
// disagreed defers to the next). Empty: no cascade needs more.
func Escalations(plan *pipeline.Plan, outputs map[string]*pipeline.Output) []string {
	var out []string
	for i := range plan.Cascades {
		c := &plan.Cascades[i]
		d := Decide(c, outputs)
		if d.Done || d.Tier >= len(c.Tiers) {
			continue
		}
		for _, m := range c.Tiers[d.Tier].Models {
			if !slices.Contains(plan.Exact, m) && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// Escalate makes plan run models as well (a cascade's next tier): they
// move from the reused models to the executed ones. The plan's slices are
// copied first: they may be the policy's.
func Escalate(plan *pipeline.Plan, models []string) {
	plan.Exact = slices.Clone(plan.Exact)
	plan.Reused = slices.DeleteFunc(slices.Clone(plan.Reused), func(m string) bool { return slices.Contains(models, m) })
	for _, m := range models {
		if !slices.Contains(plan.Exact, m) {
			plan.Exact = append(plan.Exact, m)
		}
	}
}

// Answers returns each decided cascade's answer as its Output's output on
// the frame, where that model did not itself run successfully (a model
// that ran keeps its own exact output). outputs are the frame's executed
// models' outputs.
func Answers(plan *pipeline.Plan, outputs map[string]*pipeline.Output) map[string]*pipeline.Output {
	out := map[string]*pipeline.Output{}
	for i := range plan.Cascades {
		c := &plan.Cascades[i]
		if usableExact(outputs[c.Output]) {
			continue
		}
		if d := Decide(c, outputs); d.Done && d.Answer != nil {
			a := *d.Answer
			a.Camera, a.Seq = plan.Camera, plan.Seq
			out[c.Output] = &a
		}
	}
	return out
}

// answered reports whether o is a cascade's answer for its Output on the
// frame (not exact, not reused from an earlier frame).
func answered(plan *pipeline.Plan, model string, o *pipeline.Output) bool {
	if o == nil || o.Error != "" || o.Source != pipeline.SourcePredicted {
		return false
	}
	return slices.ContainsFunc(plan.Cascades, func(c pipeline.Cascade) bool { return c.Output == model })
}
