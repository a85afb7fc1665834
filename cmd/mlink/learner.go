package main

import (
	"fmt"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
)

func newLearner(cfg *pipeline.Config, models []string) (scheduler.Learner, error) {
	h := links.TraceHeader{Source: cfg.Dir}
	for _, name := range models {
		spec, ok := cfg.Model(name)
		if !ok {
			return nil, fmt.Errorf("learner: unknown model %q", name)
		}
		h.Models = append(h.Models, traceModel(spec))
	}
	// The policies predict from executed models or reuse a model's own
	// last output: temporal links (which take a model's own last output
	// too) double training time and measured no better than reuse on vtest
	// (hog_people 0.72 vs 0.74, lines 0.87 vs 0.87 at age 1).
	return scheduler.NewLinkLearner(h, links.TrainOptions{Seed: cfg.Scheduler.Seed, NoTemporal: true}), nil
}

// traceModel describes a model's output for links.
func traceModel(spec *pipeline.ModelSpec) links.TraceModel {
	tm := links.TraceModel{Name: spec.Name, Type: spec.Output, Classes: spec.Classes}
	if spec.Backend == pipeline.BackendMOG2 && len(tm.Classes) == 0 {
		tm.Classes = []string{"none", "low", "medium", "high"}
	}
	return tm
}
