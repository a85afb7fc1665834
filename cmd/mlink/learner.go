package main

import (
	"fmt"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
)

// linkLearner adapts package links to the scheduler's Learner: it trains
// links.Sets on profiled frames and measures them with links.Evaluate.
type linkLearner struct {
	header links.TraceHeader
	opts   links.TrainOptions
}

func newLearner(cfg *pipeline.Config, models []string) (scheduler.Learner, error) {
	h := links.TraceHeader{Source: cfg.Dir}
	for _, name := range models {
		spec, ok := cfg.Model(name)
		if !ok {
			return nil, fmt.Errorf("learner: unknown model %q", name)
		}
		h.Models = append(h.Models, traceModel(spec))
	}
	// The mlink policy predicts from executed models only: temporal links
	// (which take a model's own last output) would double training time
	// for evidence this policy does not use.
	return &linkLearner{header: h, opts: links.TrainOptions{Seed: cfg.Scheduler.Seed, NoTemporal: true}}, nil
}

// traceModel describes a model's output for links.
func traceModel(spec *pipeline.ModelSpec) links.TraceModel {
	tm := links.TraceModel{Name: spec.Name, Type: spec.Output, Classes: spec.Classes}
	if spec.Backend == pipeline.BackendMOG2 && len(tm.Classes) == 0 {
		tm.Classes = []string{"none", "low", "medium", "high"}
	}
	return tm
}

func (l *linkLearner) Train(samples []*links.TraceRecord) (scheduler.Predictor, error) {
	return links.Train(l.header, samples, l.opts)
}

func (l *linkLearner) Measure(p scheduler.Predictor, samples []*links.TraceRecord) (scheduler.SetEvidence, error) {
	set, ok := p.(*links.Set)
	if !ok {
		return nil, fmt.Errorf("learner: cannot measure a %T", p)
	}
	ev := set.Evaluate(samples)
	set.SetEvaluation(ev)
	return evidence{ev}, nil
}

func (l *linkLearner) FineTune(p scheduler.Predictor, samples []*links.TraceRecord) (scheduler.Predictor, error) {
	set, ok := p.(*links.Set)
	if !ok {
		return nil, fmt.Errorf("learner: cannot fine-tune a %T", p)
	}
	return set.FineTune(samples, l.opts)
}

// evidence exposes a links.Evaluation to the scheduler.
type evidence struct{ ev *links.Evaluation }

func (e evidence) PairAccuracy(src, tgt string) float64 { return e.ev.PairAccuracy(src, tgt) }

func (e evidence) SetAccuracy(target string, executed []string) (float64, bool) {
	en, ok := e.ev.Ensemble(target, executed)
	if !ok {
		return 0, false
	}
	return en.Accuracy, true
}
