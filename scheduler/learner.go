package scheduler

import (
	"slices"
	"strings"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
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
func (l *LinkLearner) Train(samples []*links.TraceRecord) (Learned, error) {
	set, err := links.Train(l.header, samples, l.opts)
	if err != nil {
		return nil, err
	}
	return l.Adopt(set), nil
}

// Adopt takes links trained earlier (a restarted trainer role's stored
// links) as if this learner had trained them: they measure and fine-tune
// with its options.
func (l *LinkLearner) Adopt(set *links.Set) Learned { return &learnedSet{set: set, opts: l.opts} }

// learnedSet is a links.Set with the options that fine-tune it: the typed
// value the trainer passes around, so nothing downcasts a Predictor.
type learnedSet struct {
	set  *links.Set
	opts links.TrainOptions
}

// Predictor implements Learned: the set itself (a LinkSet).
func (l *learnedSet) Predictor() Predictor { return l.set }

// Measure implements Learned. The evaluation is attached to the set: the
// predictors' confidences and the scheduler of another process (through
// the link store) read it from there.
func (l *learnedSet) Measure(samples []*links.TraceRecord) (SetEvidence, error) {
	ev := l.set.Evaluate(samples) // attaches it
	return NewLinkEvidence(ev), nil
}

// FineTune implements Learned. A fine-tuned set starts without an
// evaluation; it carries the last measured one, so its predictions keep
// reporting a confidence and its published copy can be selected on.
func (l *learnedSet) FineTune(samples []*links.TraceRecord) (Learned, error) {
	tuned, err := l.set.FineTune(samples, l.opts)
	if err != nil {
		return nil, err
	}
	if tuned.Evaluation() == nil {
		tuned.SetEvaluation(l.set.Evaluation())
	}
	return &learnedSet{set: tuned, opts: l.opts}, nil
}

// LinkEvidence exposes a links.Evaluation to the scheduler. Build it with
// NewLinkEvidence: the selection asks for accuracies at many ages, and the
// index it builds once answers each in a map lookup.
type LinkEvidence struct {
	Eval *links.Evaluation
	ages *ageCurves // nil: built on every call
}

// NewLinkEvidence indexes ev's accuracies by age.
func NewLinkEvidence(ev *links.Evaluation) LinkEvidence {
	return LinkEvidence{Eval: ev, ages: indexAges(ev)}
}

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
// at a few ages (seq differences; AtStride asks in frames of a sampled
// stream): linear between measured ages, the youngest's value below them,
// and beyond the oldest falling to the constant guess (atAge; 0 when no
// age was measured).
func (e LinkEvidence) ReuseAccuracy(target string, age int) float64 {
	c := e.curves()
	pts := c.reuse[target]
	if len(pts) == 0 {
		return 0
	}
	return c.atAge(target, pts, age)
}

// TemporalAccuracy implements TemporalEvidence from the temporal ensembles
// measured at a few ages (interpolated and extrapolated like
// ReuseAccuracy: beyond the oldest age, falling to the constant guess). ok
// is false when the links have no temporal ensembles (trained without
// them) or none for exactly these sources.
func (e LinkEvidence) TemporalAccuracy(target string, executed []string, age int) (float64, bool) {
	c := e.curves()
	var srcs []string
	for _, x := range executed {
		if x != target {
			srcs = append(srcs, x)
		}
	}
	pts := c.temporal[temporalKey(target, srcs)]
	if len(pts) == 0 {
		return 0, false
	}
	return c.atAge(target, pts, age), true
}

// TrackAccuracy implements MotionEvidence: the tracker's accuracy at age
// (interpolated like ReuseAccuracy); ok false when it was not measured
// (not a detector, or too few consecutive profiled frames).
func (e LinkEvidence) TrackAccuracy(target string, age int) (float64, bool) {
	c := e.curves()
	pts := c.track[target]
	if len(pts) == 0 {
		return 0, false
	}
	return c.atAge(target, pts, age), true
}

// FollowLinks implements MotionEvidence: the delta links from source to
// target that were measured, in the evaluation's order.
func (e LinkEvidence) FollowLinks(target, source string) []pipeline.FollowLink {
	return e.curves().followLinks[[2]string{target, source}]
}

// FollowAccuracy implements MotionEvidence: the accuracy at age of
// target's delta link l; ok false when not measured.
func (e LinkEvidence) FollowAccuracy(target string, l pipeline.FollowLink, age int) (float64, bool) {
	c := e.curves()
	pts := c.follow[keyOfFollow(target, l)]
	if len(pts) == 0 {
		return 0, false
	}
	return c.atAge(target, pts, age), true
}

func (e LinkEvidence) curves() *ageCurves {
	if e.ages != nil {
		return e.ages
	}
	return indexAges(e.Eval)
}

// agePoint is an accuracy measured at an age (frames).
type agePoint struct {
	age int
	acc float64
}

// ageCurves are an evaluation's accuracies by age, sorted by age: reuse
// per target, temporal ensembles per target and source set.
type ageCurves struct {
	reuse    map[string][]agePoint
	temporal map[string][]agePoint
	constant map[string]float64
	// track per target; follow per delta link (followKey), and the links
	// measured per [target, source].
	track       map[string][]agePoint
	follow      map[followKey][]agePoint
	followLinks map[[2]string][]pipeline.FollowLink
}

// followKey names a delta link of a target: its source, gain and variant.
// Births' map is fitted once per source and target: whether there are
// births names it.
type followKey struct {
	target, source string
	gain           float64
	deaths, births bool
}

func keyOfFollow(target string, l pipeline.FollowLink) followKey {
	return followKey{target, l.Source, l.Gain, l.Deaths, l.Births != nil}
}

func indexAges(ev *links.Evaluation) *ageCurves {
	c := &ageCurves{reuse: map[string][]agePoint{}, temporal: map[string][]agePoint{}, constant: map[string]float64{},
		track: map[string][]agePoint{}, follow: map[followKey][]agePoint{}, followLinks: map[[2]string][]pipeline.FollowLink{}}
	for _, b := range ev.Baselines {
		switch b.Baseline {
		case links.BaselineReuse:
			c.reuse[b.Target] = append(c.reuse[b.Target], agePoint{b.Age, b.Accuracy})
		case links.BaselineConstant:
			c.constant[b.Target] = b.Accuracy
		case links.BaselineTrack:
			c.track[b.Target] = append(c.track[b.Target], agePoint{b.Age, b.Accuracy})
		case links.BaselineFollow:
			l := b.FollowLink()
			k := keyOfFollow(b.Target, l)
			if len(c.follow[k]) == 0 {
				c.followLinks[[2]string{b.Target, b.Source}] = append(c.followLinks[[2]string{b.Target, b.Source}], l)
			}
			c.follow[k] = append(c.follow[k], agePoint{b.Age, b.Accuracy})
		}
	}
	for _, pts := range c.follow {
		slices.SortFunc(pts, func(a, b agePoint) int { return a.age - b.age })
	}
	for _, t := range ev.TemporalEnsembles {
		k := temporalKey(t.Target, t.Sources)
		c.temporal[k] = append(c.temporal[k], agePoint{t.Age, t.Accuracy})
	}
	for _, m := range []map[string][]agePoint{c.reuse, c.temporal, c.track} {
		for _, pts := range m {
			slices.SortFunc(pts, func(a, b agePoint) int { return a.age - b.age })
		}
	}
	return c
}

// temporalKey names a target's temporal ensemble over a source set.
func temporalKey(target string, sources []string) string {
	return target + "<" + strings.Join(slices.Sorted(slices.Values(sources)), ",")
}

// atAge interpolates pts (sorted, not empty) linearly between measured
// ages and takes the youngest's value below them. Beyond the oldest
// measured age A nothing was measured, and an older output is worth less:
// the value falls linearly from A's to the target's constant-guess
// accuracy at 2A and stays there (0 when no constant was measured). It is
// never above A's value: where the constant guess measured better than the
// output A seqs old, nothing says an older one does better, so A's value
// holds. A model only run on profiling frames (neverAge) is thus worth the
// lower of the two, never more than the constant.
func (c *ageCurves) atAge(target string, pts []agePoint, age int) float64 {
	i, _ := slices.BinarySearchFunc(pts, age, func(p agePoint, a int) int { return p.age - a })
	switch {
	case i == len(pts):
		last := pts[len(pts)-1]
		floor := c.constant[target]
		if last.acc <= floor {
			return last.acc
		}
		over := float64(age-last.age) / float64(max(last.age, 1))
		return last.acc + min(over, 1)*(floor-last.acc)
	case pts[i].age == age || i == 0:
		return pts[i].acc
	default:
		lo, hi := pts[i-1], pts[i]
		return lo.acc + float64(age-lo.age)/float64(hi.age-lo.age)*(hi.acc-lo.acc)
	}
}
