package pipeline

import (
	"math"
	"slices"
)

// JellyBeanConfig is scheduler.jellybean: what policy jellybean (Wu et al.,
// VLDB 2023) plans against — the SLOs, the variants that can serve each
// task, and the worker pools with their prices. Every field may be left
// out: without variants each model is its own task (run it or not), and
// without pools (the top-level section) the plan is priced at nothing.
type JellyBeanConfig struct {
	SLO JellyBeanSLO `yaml:"slo"`
	// Variants lists, per task, the models that can serve it; the first is
	// the task's reference (its most accurate variant), against which the
	// others' accuracy is measured on the profiling frames. A model is a
	// variant of one task at most; a model in none is a task of its own.
	Variants map[string][]string `yaml:"variants"`
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
