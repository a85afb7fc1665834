package pipeline

import (
	"fmt"
	"math"
	"os"
	"slices"

	"gopkg.in/yaml.v3"
)

// AgreeKind is how the members of a cascade's tier are compared (CoE:
// Kolawole et al., "Agreement-Based Cascading").
type AgreeKind string

const (
	// AgreeCounts: two members agree when their counts (Value[0]) differ
	// by at most the cascade's tolerance. Every output has a count, so
	// detectors and counters may share a tier.
	AgreeCounts AgreeKind = "counts"
	// AgreeBoxes: two members agree when their boxes match one to one at
	// IoU ≥ CascadeMinIoU (so their counts are equal too).
	AgreeBoxes AgreeKind = "boxes"
)

// CascadeMinIoU is the IoU at which two members' boxes are the same
// detection (AgreeBoxes).
const CascadeMinIoU = 0.5

// ThetaCandidates are the agreement thresholds policy coe chooses a tier's
// θ from on its validation frames (the paper's relaxed 0.67 and unanimous
// 1.0), most permissive (cheapest) first.
var ThetaCandidates = []float64{0.67, 1.0}

// DefaultCascadeTarget is the share of a cascade's validation frames
// accepted by a tier that must agree (strictly) with the final model's
// own output for the tier to answer at a θ.
const DefaultCascadeTarget = 0.9

// CoEConfig configures policy coe (scheduler.coe).
type CoEConfig struct {
	// Cascades are the tasks answered by cascades of ensembles; the models
	// in none are served by frame skipping per model.
	Cascades []Cascade `yaml:"cascades"`
}

// Cascade is one task's cascade of ensembles: a frame runs the first
// tier's members; if the share of them agreeing with the majority is at
// least the tier's θ, the majority answers as Output; else the next tier
// runs; the last tier always answers. In a plan (Plan.Cascades) it carries
// the tiers the policy runs, with the θ it chose.
type Cascade struct {
	// Task names the cascade (reports, logs).
	Task string `yaml:"task" json:"task"`
	// Output is the model whose output the cascade answers: a member of
	// the last tier (so that it is exact when the last tier runs).
	Output string `yaml:"output" json:"output"`
	// Agree is how members are compared (default counts).
	Agree AgreeKind `yaml:"agree" json:"agree"`
	// Tolerance is the count difference two members may have and still
	// agree (AgreeCounts).
	Tolerance float64 `yaml:"tolerance" json:"tolerance,omitempty"`
	// Target is the strict agreement with Output's exact output that a
	// tier's accepted validation frames must keep (default
	// DefaultCascadeTarget): the final tier's accuracy, within it.
	Target float64       `yaml:"target_accuracy" json:"target_accuracy,omitempty"`
	Tiers  []CascadeTier `yaml:"tiers" json:"tiers"`
}

// CascadeTier is one tier: an ensemble run in parallel.
type CascadeTier struct {
	Models []string `yaml:"models" json:"models"`
	// Theta is the share of members that must agree with the majority for
	// the tier to answer. In a config 0 means "choose it on the validation
	// frames" from ThetaCandidates; in a plan it is the one chosen.
	Theta float64 `yaml:"theta" json:"theta"`
	// Pool is the worker pool the tier's models run on (a declared pool;
	// empty: the unpooled workers). Tiers go up, never down: a tier's pool
	// is at the tier (edge, hub, cloud) of the one before or above.
	Pool string `yaml:"pool" json:"pool,omitempty"`
}

// Members lists every model of the cascade, tier by tier.
func (c *Cascade) Members() []string {
	var out []string
	for _, t := range c.Tiers {
		out = append(out, t.Models...)
	}
	return out
}

// TargetAccuracy is Target, or its default when not set.
func (c *Cascade) TargetAccuracy() float64 {
	if c.Target > 0 {
		return c.Target
	}
	return DefaultCascadeTarget
}

// AgreeKind is Agree, or counts when not set.
func (c *Cascade) AgreeKind() AgreeKind {
	if c.Agree == "" {
		return AgreeCounts
	}
	return c.Agree
}

// validate reports every problem of the cascades against the configured
// models; a model may be in one cascade only, once (one output cannot have
// two answers).
func (cfg *CoEConfig) validate(p *problems, models []string, pools []WorkerPool) {
	tasks := map[string]bool{}
	owner := map[string]string{}
	for i, c := range cfg.Cascades {
		where := fmt.Sprintf("scheduler.coe.cascades[%d]", i)
		if c.Task != "" {
			where += " (" + c.Task + ")"
		}
		switch {
		case c.Task == "":
			p.add("%s.task: name the task (e.g. people)", where)
		case tasks[c.Task]:
			p.add("%s.task: duplicate task", where)
		}
		tasks[c.Task] = true
		if k := c.AgreeKind(); k != AgreeCounts && k != AgreeBoxes {
			p.add("%s.agree: %q is not one of counts, boxes", where, c.Agree)
		}
		if c.Tolerance < 0 || math.IsNaN(c.Tolerance) || math.IsInf(c.Tolerance, 0) {
			p.add("%s.tolerance: must be a count ≥ 0, got %g", where, c.Tolerance)
		}
		if c.Tolerance > 0 && c.AgreeKind() == AgreeBoxes {
			p.add("%s.tolerance: applies to agree: counts only (boxes agree by IoU ≥ %g)", where, CascadeMinIoU)
		}
		if c.Target < 0 || c.Target > 1 {
			p.add("%s.target_accuracy: must be within (0,1], got %g", where, c.Target)
		}
		if len(c.Tiers) < 2 {
			p.add("%s.tiers: a cascade needs at least two tiers (cheap ones first, the final one last), got %d", where, len(c.Tiers))
		}
		lowest := 0 // the tier index the cascade's pools have reached
		for ti, t := range c.Tiers {
			tw := fmt.Sprintf("%s.tiers[%d]", where, ti)
			if t.Pool != "" {
				if pool, ok := findPool(pools, t.Pool); !ok {
					p.add("%s.pool: %q is not a declared pool (declare it under pools)", tw, t.Pool)
				} else if ix := TierIndex(pool.Tier); ix >= 0 && ix < lowest {
					p.add("%s.pool: %s is at tier %s, below an earlier tier's pool: a cascade's frames go up the tiers, never down", tw, t.Pool, pool.Tier)
				} else if ix > lowest {
					lowest = ix
				}
			}
			if len(t.Models) == 0 {
				p.add("%s.models: a tier needs at least one model", tw)
			}
			if t.Theta != 0 && (t.Theta <= 0 || t.Theta > 1) {
				p.add("%s.theta: must be within (0,1] (or left out: chosen on the validation frames), got %g", tw, t.Theta)
			}
			for _, m := range t.Models {
				switch {
				case !slices.Contains(models, m):
					p.add("%s.models: %q is not a configured model", tw, m)
				case owner[m] != "":
					p.add("%s.models: %q is already in cascade %s: a model answers in one cascade, once", tw, m, owner[m])
				default:
					owner[m] = c.Task
				}
			}
		}
		if c.Output == "" {
			p.add("%s.output: name the model whose output the cascade answers (a member of the last tier)", where)
		} else if len(c.Tiers) > 0 && !slices.Contains(c.Tiers[len(c.Tiers)-1].Models, c.Output) {
			p.add("%s.output: %q is not in the last tier: the last tier always answers, so it must run the output's model", where, c.Output)
		}
	}
}

// Validate reports every problem of the cascades against models at once.
func (cfg *CoEConfig) Validate(models []string, pools []WorkerPool) error {
	var p problems
	cfg.validate(&p, models, pools)
	return p.err()
}

// ReadCoEConfig reads a config file's scheduler.coe alone: the bench takes
// a trace's cascades from the trace's profiling config, whose cameras and
// model files need not exist where the bench runs. The cascades are not
// validated here (Validate, against the trace's models and these pools).
func ReadCoEConfig(path string) (CoEConfig, []WorkerPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return CoEConfig{}, nil, fmt.Errorf("read cascades: %w", err)
	}
	var doc struct {
		Pools     []WorkerPool `yaml:"pools"`
		Scheduler struct {
			CoE CoEConfig `yaml:"coe"`
		} `yaml:"scheduler"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return CoEConfig{}, nil, fmt.Errorf("cascades in %s: %w (fix scheduler.coe and pools)", path, err)
	}
	return doc.Scheduler.CoE, doc.Pools, nil
}

// Escalation asks the scheduler to run more models on a frame it planned:
// a cascade's next tier, after the tier before disagreed (policy coe). The
// merger sends it on EscalateSubject; the scheduler re-sends the frame it
// kept to those models' workers with the frame's token. It takes an
// escalation only with the token of a frame it keeps, and only for models
// of that frame's later tiers, each once: a forged one can neither name a
// frame nor multiply work.
type Escalation struct {
	Camera string   `json:"camera"`
	Seq    uint64   `json:"seq"`
	Models []string `json:"models"`
	Token  string   `json:"token"`
}
