package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// JellyBeanConfig is scheduler.jellybean: what policy jellybean (Wu et al.,
// VLDB 2023) plans against — the SLOs, the variants that can serve each
// task, and the worker pools with their prices. Every field may be left
// out: without variants each model is its own task (run it or not), and
// without pools the plan is priced at nothing.
type JellyBeanConfig struct {
	SLO JellyBeanSLO `yaml:"slo"`
	// Variants lists, per task, the models that can serve it; the first is
	// the task's reference (its most accurate variant), against which the
	// others' accuracy is measured on the profiling frames. A model is a
	// variant of one task at most; a model in none is a task of its own.
	Variants map[string][]string `yaml:"variants"`
	// Pools are the worker pools a plan may place models on.
	Pools []WorkerPool `yaml:"pools"`
	// FrameBytes is what one frame costs on a cross-tier link (the camera
	// is at the edge); OutputBytes what one model's output does (default
	// 100KB and 2KB).
	FrameBytes  ByteSize `yaml:"frame_bytes"`
	OutputBytes ByteSize `yaml:"output_bytes"`
}

// JellyBeanSLO are the service-level objectives a plan must meet.
type JellyBeanSLO struct {
	// ThroughputFPS is the frames per second every selected model must keep
	// up with (0: 10).
	ThroughputFPS float64 `yaml:"throughput_fps"`
	// Accuracy is the end-to-end target: the mean over tasks of each
	// task's accuracy (0: none).
	Accuracy float64 `yaml:"accuracy"`
	// Tasks are per-task accuracy targets, by task name (a task of
	// Variants, or a model that is a task of its own).
	Tasks map[string]float64 `yaml:"tasks"`
}

// WorkerPool is a pool of identical workers at one tier.
type WorkerPool struct {
	Name string `yaml:"name"`
	// Tier is edge, hub or cloud: data flows that way only.
	Tier string `yaml:"tier"`
	// PricePerHour is one worker's price.
	PricePerHour float64 `yaml:"price_per_hour"`
	// Workers is how many workers the pool has (its capacity).
	Workers int `yaml:"workers"`
	// Speed is one worker's throughput relative to the machine the model
	// costs were measured on (default 1: a worker keeps up with 1000/ms
	// frames per second of a model measured at ms).
	Speed float64 `yaml:"speed"`
	// LinkPricePerGB is the price of the bytes sent into this pool from a
	// lower tier (frames, and outputs on their way to the results).
	LinkPricePerGB float64 `yaml:"link_price_per_gb"`
}

// Tiers are the worker tiers, in the order data may flow.
var Tiers = []string{"edge", "hub", "cloud"}

// validateJellyBean checks scheduler.jellybean even when the policy is not
// jellybean, so that switching to it never reveals old mistakes.
func (c *Config) validateJellyBean(p *problems) {
	jb := c.Scheduler.JellyBean
	const at = "scheduler.jellybean"
	models := map[string]bool{}
	for _, m := range c.Models {
		models[m.Name] = true
	}
	if v := jb.SLO.ThroughputFPS; v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		p.add("%s.slo.throughput_fps: must be a number ≥ 0, got %g", at, v)
	}
	if v := jb.SLO.Accuracy; !(v >= 0 && v <= 1) {
		p.add("%s.slo.accuracy: must be within [0,1], got %g", at, v)
	}
	tasks := sortedKeys(jb.Variants)
	owner := map[string]string{}
	for _, task := range tasks {
		vs := jb.Variants[task]
		if err := ValidName(task); err != nil {
			p.add("%s.variants: task name: %v", at, err)
		}
		if models[task] && !slices.Contains(vs, task) {
			p.add("%s.variants.%s: a task named after a model must list it (a model is a task of its own otherwise)", at, task)
		}
		if len(vs) == 0 {
			p.add("%s.variants.%s: no models: list the models that can serve the task, the reference first", at, task)
		}
		for _, m := range vs {
			switch {
			case !models[m]:
				p.add("%s.variants.%s: %q is not a model of this config", at, task, m)
			case owner[m] == task:
				p.add("%s.variants.%s: %q listed twice", at, task, m)
			case owner[m] != "":
				p.add("%s.variants.%s: %q is already a variant of task %s (a model serves one task)", at, task, m, owner[m])
			default:
				owner[m] = task
			}
		}
	}
	for _, task := range sortedKeys(jb.SLO.Tasks) {
		if _, ok := jb.Variants[task]; !ok && (!models[task] || owner[task] != "") {
			p.add("%s.slo.tasks: %q is neither a task of %s.variants nor a model that is a task of its own", at, task, at)
		}
		if v := jb.SLO.Tasks[task]; !(v >= 0 && v <= 1) {
			p.add("%s.slo.tasks.%s: must be within [0,1], got %g", at, task, v)
		}
	}
	names := map[string]bool{}
	for i, pool := range jb.Pools {
		where := fmt.Sprintf("%s.pools[%d]", at, i)
		if pool.Name != "" {
			where = fmt.Sprintf("%s.pools[%d] (%s)", at, i, pool.Name)
		}
		if err := ValidName(pool.Name); err != nil {
			p.add("%s.name: %v", where, err)
		} else if names[pool.Name] {
			p.add("%s.name: duplicate pool name", where)
		}
		names[pool.Name] = true
		if !slices.Contains(Tiers, pool.Tier) {
			p.add("%s.tier: %q is not one of %s", where, pool.Tier, strings.Join(Tiers, ", "))
		}
		if pool.Workers < 1 {
			p.add("%s.workers: must be at least 1, got %d", where, pool.Workers)
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"price_per_hour", pool.PricePerHour}, {"speed", pool.Speed}, {"link_price_per_gb", pool.LinkPricePerGB}} {
			if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				p.add("%s.%s: must be a number ≥ 0, got %g", where, f.name, f.v)
			}
		}
	}
	if jb.FrameBytes < 0 || jb.OutputBytes < 0 {
		p.add("%s: frame_bytes and output_bytes must not be negative", at)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
