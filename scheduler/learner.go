package scheduler

import (
	"fmt"
	"slices"

	"github.com/mlink-project/mlink/links"
)

// LinkLearner is the Learner of package links: it trains links.Sets on
// profiled frames and measures them with links' own evaluation (pairs,
// ensembles over executed sets, reuse of a model's own output at ages).
type LinkLearner struct {
	header links.TraceHeader
	opts   links.TrainOptions
}

// NewLinkLearner learns links between the models of header.
func NewLinkLearner(header links.TraceHeader, opts links.TrainOptions) *LinkLearner {
	return &LinkLearner{header: header, opts: opts}
}

// Train implements Learner.
func (l *LinkLearner) Train(samples []*links.TraceRecord) (Predictor, error) {
	return links.Train(l.header, samples, l.opts)
}

// Measure implements Learner.
func (l *LinkLearner) Measure(p Predictor, samples []*links.TraceRecord) (SetEvidence, error) {
	set, ok := p.(*links.Set)
	if !ok {
		return nil, fmt.Errorf("learner: cannot measure a %T", p)
	}
	ev := set.Evaluate(samples)
	set.SetEvaluation(ev)
	return LinkEvidence{ev}, nil
}

// FineTune implements Learner.
func (l *LinkLearner) FineTune(p Predictor, samples []*links.TraceRecord) (Predictor, error) {
	set, ok := p.(*links.Set)
	if !ok {
		return nil, fmt.Errorf("learner: cannot fine-tune a %T", p)
	}
	return set.FineTune(samples, l.opts)
}

// LinkEvidence exposes a links.Evaluation to the scheduler.
type LinkEvidence struct{ Eval *links.Evaluation }

// PairAccuracy implements Evidence.
func (e LinkEvidence) PairAccuracy(src, tgt string) float64 { return e.Eval.PairAccuracy(src, tgt) }

// SetAccuracy implements SetEvidence.
func (e LinkEvidence) SetAccuracy(target string, executed []string) (float64, bool) {
	en, ok := e.Eval.Ensemble(target, executed)
	if !ok {
		return 0, false
	}
	return en.Accuracy, true
}

// ReuseAccuracy implements ReuseEvidence from the reuse baselines measured
// at a few ages: linear between measured ages, the nearest measured age
// outside them (0 when none was measured). Far beyond the oldest measured
// age (a model only run on profiling frames, minutes ago) an old output is
// worth no more than a constant guess: the lower of the two.
func (e LinkEvidence) ReuseAccuracy(target string, age int) float64 {
	acc := e.reuseAccuracy(target, age)
	oldest := 0
	for _, b := range e.Eval.Baselines {
		if b.Target == target && b.Baseline == "reuse" {
			oldest = max(oldest, b.Age)
		}
	}
	if age > 10*oldest {
		if c, ok := e.Eval.Baseline(target, "constant", 0); ok {
			acc = min(acc, c.Accuracy)
		}
	}
	return acc
}

func (e LinkEvidence) reuseAccuracy(target string, age int) float64 {
	var lo, hi *links.BaselineAccuracy
	for i := range e.Eval.Baselines {
		b := &e.Eval.Baselines[i]
		if b.Target != target || b.Baseline != "reuse" {
			continue
		}
		if b.Age <= age && (lo == nil || b.Age > lo.Age) {
			lo = b
		}
		if b.Age >= age && (hi == nil || b.Age < hi.Age) {
			hi = b
		}
	}
	switch {
	case lo == nil && hi == nil:
		return 0
	case lo == nil:
		return hi.Accuracy
	case hi == nil || hi.Age == lo.Age:
		return lo.Accuracy
	}
	f := float64(age-lo.Age) / float64(hi.Age-lo.Age)
	return lo.Accuracy + f*(hi.Accuracy-lo.Accuracy)
}

// TemporalAccuracy implements TemporalEvidence from the temporal ensembles
// measured at a few ages (interpolated like ReuseAccuracy; far beyond the
// oldest age, no better than a constant guess). ok is false when the
// links have no temporal ensembles (trained without them) or none for
// exactly these sources.
func (e LinkEvidence) TemporalAccuracy(target string, executed []string, age int) (float64, bool) {
	var lo, hi *links.EnsembleAccuracy
	oldest := 0
	for i := range e.Eval.TemporalEnsembles {
		t := &e.Eval.TemporalEnsembles[i]
		if t.Target != target || !sameSources(t.Sources, executed, target) {
			continue
		}
		oldest = max(oldest, t.Age)
		if t.Age <= age && (lo == nil || t.Age > lo.Age) {
			lo = t
		}
		if t.Age >= age && (hi == nil || t.Age < hi.Age) {
			hi = t
		}
	}
	var acc float64
	switch {
	case lo == nil && hi == nil:
		return 0, false
	case lo == nil:
		acc = hi.Accuracy
	case hi == nil || hi.Age == lo.Age:
		acc = lo.Accuracy
	default:
		f := float64(age-lo.Age) / float64(hi.Age-lo.Age)
		acc = lo.Accuracy + f*(hi.Accuracy-lo.Accuracy)
	}
	if age > 10*oldest {
		if c, ok := e.Eval.Baseline(target, "constant", 0); ok {
			acc = min(acc, c.Accuracy)
		}
	}
	return acc, true
}

// sameSources: the ensemble's sources are exactly the executed models
// other than the target.
func sameSources(sources, executed []string, target string) bool {
	n := 0
	for _, x := range executed {
		if x == target {
			continue
		}
		if !slices.Contains(sources, x) {
			return false
		}
		n++
	}
	return n == len(sources)
}
