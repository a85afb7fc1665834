package main

import (
	"fmt"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
)

func newLearner(cfg *pipeline.Config, models []string) (*scheduler.LinkLearner, error) {
	h := links.TraceHeader{Source: cfg.Dir}
	for _, name := range models {
		spec, ok := cfg.Model(name)
		if !ok {
			return nil, fmt.Errorf("learner: unknown model %q", name)
		}
		h.Models = append(h.Models, traceModel(spec))
	}
	return scheduler.NewLinkLearner(h, learnerOptions(cfg.Scheduler.Policy, cfg.Scheduler.TemporalLinks, cfg.Scheduler.Seed, 0)), nil
}

// learnerOptions trains temporal links (a model's own last exact output
// among the sources, which roughly doubles training time) only when asked
// and only for mlink-hybrid, the policy that can choose them; mlink is the
// paper's scheme and predicts from executed models only. epochs 0: the
// default.
func learnerOptions(policy pipeline.PolicyName, temporal bool, seed int64, epochs int) links.TrainOptions {
	info, _ := pipeline.LookupPolicy(policy)
	return links.TrainOptions{Seed: seed, Epochs: epochs, NoTemporal: !temporal || !info.TemporalLinks}
}

// traceModel describes a model's output for links.
func traceModel(spec *pipeline.ModelSpec) links.TraceModel {
	tm := links.TraceModel{Name: spec.Name, Type: spec.Output, Classes: spec.Classes}
	if spec.Backend == pipeline.BackendMOG2 && len(tm.Classes) == 0 {
		tm.Classes = []string{"none", "low", "medium", "high"}
	}
	return tm
}
