package scheduler

import (
	"math"
	"slices"
	"sync"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/assemble"
)

// Turn evidence: every frame on which a rotating model runs on its turn is
// a measurement the budget paid for anyway. Its exact output now, its
// exact outputs on its earlier turns and the always-run detectors' outputs
// on both frames are what serving it between turns used: reusing the
// earlier output, tracking it, or moving it along a source's motion (a
// delta link). Scoring each of those, as production computes them, against
// the exact output gives every one of them a fresh point at the ages the
// selection serves — one period and its multiples — on the frames the
// selection is actually serving, not on the few profiled frames it was
// chosen on. A selection that rests on thin profiled evidence (a delta
// link measured on a dozen frames) is corrected within a few turns.

// turnHistory is how many earlier exact frames of a model a turn is
// measured against (ages of 1, 2 and 3 periods).
const turnHistory = 3

// turnWindow is how many recent measurements per (way of serving, age)
// are kept: the scene changes, and old turns say less about the next.
const turnWindow = 48

// turnPrior is the weight, in frames, of the profiled evidence's point
// against the turns' mean: profiled points in the bench rest on about a
// dozen frames.
const turnPrior = 10

// maxTurnAges bounds the ages kept per way of serving.
const maxTurnAges = 32

// turnMinPoint is the fewest turns an age needs to correct anything: the
// odd age a single turn measured (the first after a profiling window) is
// noise, and would set the correction of every younger age.
const turnMinPoint = 4

// turnReselect is how many turns (frames on which some rotating model ran
// on its turn and was measured) the controller waits between re-selections
// on the evidence they corrected.
const turnReselect = 12

// servingKind is a way of serving a model between its runs that a turn
// measures.
type servingKind uint8

const (
	servedByReuse servingKind = iota
	servedByTrack
	servedByFollow
)

// servingKey names one way of serving a target: reuse, the tracker, or a
// delta link (follow: its source, gain and variant).
type servingKey struct {
	kind   servingKind
	follow followKey // target always set; the link's fields for follow
}

// turnPoint is the ring of a serving key's recent scores at one age.
type turnPoint struct {
	scores [turnWindow]float64
	n      int // scores recorded (the ring holds the last turnWindow)
}

func (p *turnPoint) add(s float64) {
	p.scores[p.n%turnWindow] = s
	p.n++
}

func (p *turnPoint) mean() (float64, int) {
	n := min(p.n, turnWindow)
	sum := 0.0
	for _, s := range p.scores[:n] {
		sum += s
	}
	return sum / float64(max(n, 1)), n
}

// turnFrame is a frame on which a model ran: its exact outputs.
type turnFrame struct {
	seq     uint64
	outputs map[string]*pipeline.Output
}

// turnEvidence measures rotation turns. It is fed results (ObserveResult's
// goroutine) and read by selections (any goroutine).
type turnEvidence struct {
	mu sync.Mutex
	// frames: per camera and model, the latest frames it ran on (oldest
	// first, at most turnHistory).
	frames map[string]map[string][]turnFrame
	points map[servingKey]map[int]*turnPoint // by age in seqs
	// turns counts measured turn frames; selectedAt is turns at the last
	// re-selection on them.
	turns, selectedAt int
}

func newTurnEvidence() *turnEvidence {
	return &turnEvidence{frames: map[string]map[string][]turnFrame{}, points: map[servingKey]map[int]*turnPoint{}}
}

// observe records a result's exact outputs and, for every model sel
// rotates that ran on its turn (a frame that is not profiled), scores each
// way of serving it at the ages of its earlier runs. motion lists the
// delta links to score (those the evidence measured). It reports whether
// the frame was a measured turn.
func (t *turnEvidence) observe(r *pipeline.Result, sel *Selection, motion MotionEvidence) bool {
	exact := map[string]*pipeline.Output{}
	for name, o := range r.Outputs {
		if o != nil && o.Source == pipeline.SourceExact && o.Error == "" {
			exact[name] = withSeq(o, r.Seq)
		}
	}
	if len(exact) == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cam := t.frames[r.Camera]
	if cam == nil {
		cam = map[string][]turnFrame{}
		t.frames[r.Camera] = cam
	}
	measured := false
	for name, now := range exact {
		earlier := cam[name]
		if !r.Plan.Profiling && sel != nil && sel.Every[name] >= 2 && len(earlier) > 0 {
			t.measure(name, now, exact, earlier, sel.Exact, motion)
			measured = true
		}
		if n := len(earlier); n > 0 && earlier[n-1].seq >= r.Seq {
			earlier = nil // a camera restarted: its seqs start again
		}
		earlier = append(earlier, turnFrame{seq: r.Seq, outputs: exact})
		if len(earlier) > turnHistory {
			earlier = slices.Delete(earlier, 0, len(earlier)-turnHistory)
		}
		cam[name] = earlier
	}
	if measured {
		t.turns++
	}
	return measured
}

// measure scores the ways of serving target now from each earlier frame
// it ran on (t.mu held).
func (t *turnEvidence) measure(target string, now *pipeline.Output, exactNow map[string]*pipeline.Output, earlier []turnFrame, always []string, motion MotionEvidence) {
	for i, f := range earlier {
		if f.seq >= now.Seq {
			continue
		}
		age := int(now.Seq - f.seq)
		then := f.outputs[target]
		t.add(servingKey{kind: servedByReuse, follow: followKey{target: target}}, age, links.Accuracy(now.Type, then, now))
		if !assemble.Trackable(now.Type) {
			continue
		}
		var prior *pipeline.Output
		if i > 0 {
			prior = earlier[i-1].outputs[target]
		}
		tracked := &pipeline.Output{Type: now.Type, Boxes: assemble.Track(then, prior, float64(age))}
		t.add(servingKey{kind: servedByTrack, follow: followKey{target: target}}, age, boxAccuracy(tracked, now))
		if motion == nil {
			continue
		}
		for _, src := range always {
			srcThen, srcNow := f.outputs[src], exactNow[src]
			if src == target || srcThen == nil || srcNow == nil || !assemble.Trackable(srcNow.Type) {
				continue
			}
			for _, l := range motion.FollowLinks(target, src) {
				moved := &pipeline.Output{Type: now.Type, Boxes: assemble.Follow(then, srcThen, srcNow, l)}
				t.add(servingKey{kind: servedByFollow, follow: keyOfFollow(target, l)}, age, boxAccuracy(moved, now))
			}
		}
	}
}

// boxAccuracy scores predicted boxes as the evaluation does (with their
// count as the vector view).
func boxAccuracy(got, want *pipeline.Output) float64 {
	got.Value = []float64{float64(len(got.Boxes))}
	return links.Accuracy(want.Type, got, want)
}

func (t *turnEvidence) add(k servingKey, age int, score float64) {
	byAge := t.points[k]
	if byAge == nil {
		byAge = map[int]*turnPoint{}
		t.points[k] = byAge
	}
	p := byAge[age]
	if p == nil {
		if len(byAge) >= maxTurnAges {
			// A live stream's gaps (frames dropped, a reconnect) make odd
			// ages: the least measured one goes, so memory stays bounded.
			least, fewest := 0, math.MaxInt
			for a, q := range byAge {
				if q.n < fewest || (q.n == fewest && a > least) {
					least, fewest = a, q.n
				}
			}
			delete(byAge, least)
		}
		p = &turnPoint{}
		byAge[age] = p
	}
	p.add(score)
}

// due reports whether enough turns were measured since the last
// re-selection on them, and if so counts this one as made.
func (t *turnEvidence) due() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.turns-t.selectedAt < turnReselect {
		return false
	}
	t.selectedAt = t.turns
	return true
}

// onlinePoint is a turn-measured mean at an age.
type onlinePoint struct {
	age  int
	mean float64
	n    int
}

// correct returns ev with its reuse, tracker and delta-link accuracies
// corrected by the turns measured so far (ev itself when none were, or
// when it is corrected already).
func (t *turnEvidence) correct(ev SetEvidence) SetEvidence {
	if t == nil || ev == nil {
		return ev
	}
	if _, ok := ev.(turnCorrected); ok {
		return ev // never correct twice
	}
	if _, ok := ev.(ReuseEvidence); !ok {
		return ev // nothing it could correct
	}
	t.mu.Lock()
	pts := make(map[servingKey][]onlinePoint, len(t.points))
	for k, byAge := range t.points {
		for age, p := range byAge {
			if m, n := p.mean(); n >= turnMinPoint {
				pts[k] = append(pts[k], onlinePoint{age, m, n})
			}
		}
		slices.SortFunc(pts[k], func(a, b onlinePoint) int { return a.age - b.age })
	}
	t.mu.Unlock()
	if len(pts) == 0 {
		return ev
	}
	c := turnCorrected{SetEvidence: ev, points: pts, unmeasured: map[servingKind]float64{}}
	// The ways of serving no turn measured are as optimistic, in the
	// mean, as those the turns did measure: their error is scaled by the
	// measured ones' factor (geometric mean, weighted by turns), so a
	// re-selection does not trade a realistic value for an optimistic one.
	logSum, weight := map[servingKind]float64{}, map[servingKind]float64{}
	for k, ps := range pts {
		base := c.base(k)
		for _, p := range ps {
			if f, ok := c.factor(p, base); ok {
				logSum[k.kind] += float64(p.n) * math.Log(f)
				weight[k.kind] += float64(p.n)
			}
		}
	}
	for kind, w := range weight {
		c.unmeasured[kind] = math.Exp(logSum[kind] / w)
	}
	return c
}

// turnCorrected is evidence whose reuse, tracker and delta-link
// accuracies are corrected by turn measurements. Every way of serving is
// exact at age 0 and loses accuracy with age; what a profiled curve gets
// wrong on a few frames is mostly how fast. So the correction scales the
// curve's error (1 − accuracy): at an age A a turn measured, the error the
// turns' mean and the profiled value agree on (pooled, the turns weighing
// their number against turnPrior) over the profiled error is the factor;
// at younger ages the youngest measured age's factor holds, between
// measured ages it is interpolated, beyond the oldest it holds. Pair, set
// and temporal accuracies pass through.
type turnCorrected struct {
	SetEvidence
	points map[servingKey][]onlinePoint
	// unmeasured is the factor of the ways of serving no turn measured.
	unmeasured map[servingKind]float64
}

// base is the profiled accuracy of k by age.
func (e turnCorrected) base(k servingKey) func(int) (float64, bool) {
	switch k.kind {
	case servedByReuse:
		r, _ := e.SetEvidence.(ReuseEvidence)
		return func(a int) (float64, bool) { return r.ReuseAccuracy(k.follow.target, a), true }
	case servedByTrack:
		m, ok := e.SetEvidence.(MotionEvidence)
		return func(a int) (float64, bool) {
			if !ok {
				return 0, false
			}
			return m.TrackAccuracy(k.follow.target, a)
		}
	}
	m, ok := e.SetEvidence.(MotionEvidence)
	l := pipeline.FollowLink{Source: k.follow.source, Gain: k.follow.gain, Deaths: k.follow.deaths}
	if k.follow.births {
		l.Births = &pipeline.BoxMap{} // the key names births by their presence
	}
	return func(a int) (float64, bool) {
		if !ok {
			return 0, false
		}
		return m.FollowAccuracy(k.follow.target, l, a)
	}
}

// factor is the pooled error at p's age over the profiled error there
// (errFloor keeps a perfect profiled value from dividing by zero); ok
// false where nothing was profiled.
func (e turnCorrected) factor(p onlinePoint, base func(int) (float64, bool)) (float64, bool) {
	b, ok := base(p.age)
	if !ok {
		return 0, false
	}
	w := float64(p.n) / float64(p.n+turnPrior)
	pooled := (1-w)*b + w*p.mean
	return (1 - pooled + errFloor) / (1 - b + errFloor), true
}

// ReuseAccuracy implements ReuseEvidence.
func (e turnCorrected) ReuseAccuracy(target string, age int) float64 {
	r, ok := e.SetEvidence.(ReuseEvidence)
	if !ok {
		return 0
	}
	base := func(a int) (float64, bool) { return r.ReuseAccuracy(target, a), true }
	acc, _ := e.corrected(servingKey{kind: servedByReuse, follow: followKey{target: target}}, age, base)
	return acc
}

// TemporalAccuracy implements TemporalEvidence (uncorrected).
func (e turnCorrected) TemporalAccuracy(target string, executed []string, age int) (float64, bool) {
	if t, ok := e.SetEvidence.(TemporalEvidence); ok {
		return t.TemporalAccuracy(target, executed, age)
	}
	return 0, false
}

// TrackAccuracy implements MotionEvidence.
func (e turnCorrected) TrackAccuracy(target string, age int) (float64, bool) {
	m, ok := e.SetEvidence.(MotionEvidence)
	if !ok {
		return 0, false
	}
	base := func(a int) (float64, bool) { return m.TrackAccuracy(target, a) }
	return e.corrected(servingKey{kind: servedByTrack, follow: followKey{target: target}}, age, base)
}

// FollowLinks implements MotionEvidence.
func (e turnCorrected) FollowLinks(target, source string) []pipeline.FollowLink {
	if m, ok := e.SetEvidence.(MotionEvidence); ok {
		return m.FollowLinks(target, source)
	}
	return nil
}

// FollowAccuracy implements MotionEvidence.
func (e turnCorrected) FollowAccuracy(target string, l pipeline.FollowLink, age int) (float64, bool) {
	m, ok := e.SetEvidence.(MotionEvidence)
	if !ok {
		return 0, false
	}
	base := func(a int) (float64, bool) { return m.FollowAccuracy(target, l, a) }
	return e.corrected(servingKey{kind: servedByFollow, follow: keyOfFollow(target, l)}, age, base)
}

// corrected is base(age) moved by the turns' correction for k. Nothing
// measured in profiling (ok false) stays unmeasured: a turn point alone
// does not make a curve.
func (e turnCorrected) corrected(k servingKey, age int, base func(int) (float64, bool)) (float64, bool) {
	acc, ok := base(age)
	if !ok || age <= 0 || age >= neverAge {
		return acc, ok
	}
	pts := e.points[k]
	scale := func(f float64) float64 { return min(1, max(0, 1-(1-acc+errFloor)*f+errFloor)) }
	if len(pts) == 0 {
		if f, ok := e.unmeasured[k.kind]; ok {
			return scale(f), true
		}
		return acc, true
	}
	factor := func(p onlinePoint) float64 {
		f, _ := e.factor(p, base)
		return f
	}
	i, _ := slices.BinarySearchFunc(pts, age, func(p onlinePoint, a int) int { return p.age - a })
	var f float64
	switch {
	case i == len(pts):
		f = factor(pts[len(pts)-1])
	case pts[i].age == age || i == 0:
		f = factor(pts[i])
	default:
		lo, hi := pts[i-1], pts[i]
		fl, fh := factor(lo), factor(hi)
		f = fl + float64(age-lo.age)/float64(hi.age-lo.age)*(fh-fl)
	}
	return scale(f), true
}

// errFloor is the error a profiled accuracy of 1 is taken to have when
// scaled: a few frames that measured no error do not prove there is none.
const errFloor = 0.02

func withSeq(o *pipeline.Output, seq uint64) *pipeline.Output {
	if o.Seq == seq {
		return o
	}
	c := *o
	c.Seq = seq
	return &c
}
