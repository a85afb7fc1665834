package scheduler

import (
	"math"
	"slices"
	"strings"

	"github.com/mlink-project/mlink/pipeline"
)

// ReuseEvidence knows how well a model's last exact output, reused age
// frames later, agrees with its exact output (measured on profiled frames).
// The selection's ages are frames of the stream it plans; evidence
// measured in seqs is asked through AtStride at the stream's step.
type ReuseEvidence interface {
	ReuseAccuracy(target string, age int) float64
}

// TemporalEvidence knows how well a model is predicted by its temporal
// link ensemble: the executed models' outputs plus its own last exact
// output, age frames old (ok false: not measured).
type TemporalEvidence interface {
	TemporalAccuracy(target string, executed []string, age int) (float64, bool)
}

// MotionEvidence knows how well a detector's last exact boxes, carried to
// a frame age frames later, agree with its exact output there: along their
// own motion (the tracker, assemble.Track) or along an executed source
// detector's motion scaled by gain (a delta link, assemble.Follow). ok is
// false where nothing was measured.
type MotionEvidence interface {
	TrackAccuracy(target string, age int) (float64, bool)
	// FollowLinks lists the delta links measured from source to target
	// (the variants of pipeline.FollowLink); FollowAccuracy is one's
	// accuracy at an age.
	FollowLinks(target, source string) []pipeline.FollowLink
	FollowAccuracy(target string, l pipeline.FollowLink, age int) (float64, bool)
}

// HybridChoice is mlink-hybrid's decision: which models run on every frame,
// which run on every k-th frame, and how every model is served on the frames
// where it does not run.
type HybridChoice struct {
	// Always run on every frame; their outputs are the link sources.
	Always []string
	// Every: models run on every Every[m]-th frame (k ≥ 2) only. Under a
	// time budget a model run on one frame in k costs a k-th of its time.
	Every map[string]int
	// Reused models take their own last exact output on frames where they
	// do not run; Predicted ones their link ensemble over Always; Temporal
	// ones (also in Predicted) their temporal ensemble, which adds their
	// own last exact output to the sources.
	Reused    []string
	Predicted []string
	Temporal  []string
	// Accuracy is each model's expected accuracy (1 when always run);
	// Expected their mean, the system metric.
	Accuracy map[string]float64
	Expected float64
	// Absent models are served by nothing between their runs (the
	// no-reuse ablation with no link source).
	Absent []string
	// Tracked reused detectors have their boxes carried along their own
	// motion; Follow ones along an always-run detector's (a delta link).
	Tracked []string
	Follow  map[string]pipeline.FollowLink
}

// HybridOptions turn mlink-hybrid's mechanisms off one at a time: the
// bench's ablations, which show what each contributes. The zero value is
// the full policy.
type HybridOptions struct {
	// NoLinks: frames between a model's runs are served by reuse only.
	NoLinks bool
	// NoReuse: they are served by links only (nothing, with no link source).
	NoReuse bool
	// NoRotation: a model runs on every frame or never.
	NoRotation bool
}

// Ablation names the options as the ablation policy's suffix
// (mlink-hybrid/no-links; "" for the full policy).
func (o HybridOptions) Ablation() string {
	switch {
	case o.NoLinks:
		return "no-links"
	case o.NoReuse:
		return "no-reuse"
	case o.NoRotation:
		return "no-rotation"
	}
	return ""
}

// periods are the rotation periods the options and budget allow.
func (o HybridOptions) periods(b Budget) []int {
	switch {
	case o.NoRotation:
		return []int{1, 0}
	case b.Capped():
		return append(slices.Clone(capPeriods), 0)
	}
	return hybridPeriods
}

// hybridPeriods are the rotation periods the hybrid considers: a model run
// on every k-th frame. 0 stands for never (the model is only run on
// profiling frames).
var hybridPeriods = []int{1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 0}

// neverAge is the reuse age assumed for a model that only runs on
// profiling frames: its last exact output is minutes old, which the
// evidence's oldest measured age stands for.
const neverAge = 1 << 20

// SelectHybrid chooses, for every model, how often it runs (every frame,
// every k-th frame, or never) and, for the frames where it does not, whether
// its reused last exact output or its link ensemble over the always-run
// models serves it — whichever the profiled evidence measures better. The
// choice maximises expected system accuracy under the budget greedily:
// repeatedly the move (a model run more often) with the highest accuracy
// gain per unit of budget that still fits. Running a model every k-th frame
// costs a k-th of its time but all of its memory (it stays loaded), so under
// a memory budget only whole models are worth choosing. It starts both from
// nothing and from MLink's own selection and keeps the better outcome.
//
// Under a capped time budget, periods are powers of two and a choice fits
// only if staggered phases keep every frame within the budget.
func SelectHybrid(models []string, costs map[string]Cost, b Budget, ev SetEvidence, reuse ReuseEvidence, opts HybridOptions) HybridChoice {
	e := newHybridEvaluator(ev, reuse, opts)
	fromNothing := hybridGreedy(models, costs, b, e, map[string]int{}, opts)
	start := map[string]int{}
	for _, m := range SelectMLink(models, costs, b, ev) {
		start[m] = 1
	}
	fromMLink := hybridGreedy(models, costs, b, e, start, opts)
	if fromMLink.Expected > fromNothing.Expected {
		return fromMLink
	}
	return fromNothing
}

func hybridGreedy(models []string, costs map[string]Cost, b Budget, e *hybridEvaluator, every map[string]int, opts HybridOptions) HybridChoice {
	best := e.evaluate(models, every)
	periods := opts.periods(b)
	for {
		var move struct {
			model string
			k     int
			ratio float64
			gain  float64
		}
		baseShare := hybridShare(models, costs, b, every)
		for _, m := range models {
			cur := every[m]
			for _, k := range periods {
				if k == 0 || (cur != 0 && k >= cur) {
					continue // only moves that run m more often
				}
				trial := withPeriod(every, m, k)
				if !hybridFits(models, costs, b, trial) {
					continue
				}
				gain := e.evaluate(models, trial).Expected - best.Expected
				if gain <= 1e-12 {
					continue
				}
				ratio := gain / math.Max(minShare, hybridShare(models, costs, b, trial)-baseShare)
				if ratio > move.ratio || (ratio == move.ratio && gain > move.gain) {
					move.model, move.k, move.ratio, move.gain = m, k, ratio, gain
				}
			}
		}
		if move.model == "" {
			return best
		}
		every = withPeriod(every, move.model, move.k)
		best = e.evaluate(models, every)
	}
}

func withPeriod(every map[string]int, m string, k int) map[string]int {
	out := make(map[string]int, len(every)+1)
	for n, v := range every {
		out[n] = v
	}
	out[m] = k
	return out
}

// hybridCost is the average cost per frame: a model run on every k-th
// frame costs ms/k and all of its memory.
func hybridCost(models []string, costs map[string]Cost, every map[string]int) Cost {
	var total Cost
	for _, m := range models {
		if k := every[m]; k > 0 {
			total.Memory += costs[m].Memory
			total.MS += costs[m].MS / float64(k)
		}
	}
	return total
}

// hybridFits: the mean cost within a mean budget; under a capped one, also
// every frame of the staggered cycle.
func hybridFits(models []string, costs map[string]Cost, b Budget, every map[string]int) bool {
	if !b.Fits(hybridCost(models, costs, every)) {
		return false
	}
	if b.Capped() {
		_, peak := staggerPhases(models, every, costs)
		return peak <= b.MS+1e-9
	}
	return true
}

func hybridShare(models []string, costs map[string]Cost, b Budget, every map[string]int) float64 {
	return b.Share(hybridCost(models, costs, every))
}

// hybridEvaluate computes the expected accuracy of a rotation assignment
// and how each model is served between its runs.
func hybridEvaluate(models []string, every map[string]int, ev SetEvidence, reuse ReuseEvidence, opts HybridOptions) HybridChoice {
	return newHybridEvaluator(ev, reuse, opts).evaluate(models, every)
}

// hybridEvaluator evaluates rotation assignments on one body of evidence.
// How a model is best served between its runs depends only on its period
// and the always-run set, which the greedy's trial assignments share by
// the thousand: each is worked out once.
type hybridEvaluator struct {
	ev     SetEvidence
	reuse  ReuseEvidence
	motion MotionEvidence
	opts   HybridOptions
	memo   map[servedKey]served
}

type servedKey struct {
	model  string
	k      int
	always string
}

// served is how a model not run on every frame is best served.
type served struct {
	how    servedHow
	acc    float64
	track  bool
	follow *pipeline.FollowLink
}

type servedHow uint8

const (
	servedReused servedHow = iota
	servedPredicted
	servedTemporal
	servedAbsent
)

func newHybridEvaluator(ev SetEvidence, reuse ReuseEvidence, opts HybridOptions) *hybridEvaluator {
	motion, _ := reuse.(MotionEvidence)
	return &hybridEvaluator{ev: ev, reuse: reuse, motion: motion, opts: opts, memo: map[servedKey]served{}}
}

func (e *hybridEvaluator) evaluate(models []string, every map[string]int) HybridChoice {
	ch := HybridChoice{Every: map[string]int{}, Accuracy: map[string]float64{}}
	for _, m := range models {
		if every[m] == 1 {
			ch.Always = append(ch.Always, m)
		}
	}
	always := strings.Join(ch.Always, "\x00")
	total := 0.0
	for _, m := range models {
		k := every[m]
		if k == 1 {
			ch.Accuracy[m] = 1
			total++
			continue
		}
		if k > 0 {
			ch.Every[m] = k
		}
		key := servedKey{m, k, always}
		s, ok := e.memo[key]
		if !ok {
			s = e.serve(m, k, ch.Always)
			e.memo[key] = s
		}
		ch.Accuracy[m] = s.acc
		switch s.how {
		case servedReused:
			ch.Reused = append(ch.Reused, m)
			switch {
			case s.follow != nil:
				if ch.Follow == nil {
					ch.Follow = map[string]pipeline.FollowLink{}
				}
				ch.Follow[m] = *s.follow
			case s.track:
				ch.Tracked = append(ch.Tracked, m)
			}
		case servedTemporal:
			ch.Predicted = append(ch.Predicted, m)
			ch.Temporal = append(ch.Temporal, m)
		case servedPredicted:
			ch.Predicted = append(ch.Predicted, m)
		case servedAbsent:
			ch.Absent = append(ch.Absent, m)
		}
		total += s.acc
	}
	if len(models) > 0 {
		ch.Expected = total / float64(len(models))
	}
	return ch
}

// serve works out how model m, run every k-th frame (0: never) beside the
// always-run models, is best served between its runs, and how well.
func (e *hybridEvaluator) serve(m string, k int, always []string) served {
	ev, reuse, motion, opts := e.ev, e.reuse, e.motion, e.opts
	ens := 0.0
	if len(always) > 0 {
		ens = PredictedAccuracy(m, always, ev)
	}
	// Temporal ensembles need a measurement at every age they serve.
	temporal := func(age int) (float64, bool) { return 0, false }
	if te, ok := ev.(TemporalEvidence); ok {
		temporal = func(age int) (float64, bool) { return te.TemporalAccuracy(m, always, age) }
	}
	var viaReuse, viaLinks, viaTemporal float64
	temporalOK := true
	if k == 0 {
		viaReuse, viaLinks = reuse.ReuseAccuracy(m, neverAge), ens
		viaTemporal, temporalOK = temporal(neverAge)
	} else {
		sumR, sumT := 0.0, 0.0
		for age := 1; age < k; age++ {
			sumR += reuse.ReuseAccuracy(m, age)
			t, ok := temporal(age)
			sumT += t
			temporalOK = temporalOK && ok
		}
		viaReuse = (1 + sumR) / float64(k)
		viaLinks = (1 + float64(k-1)*ens) / float64(k)
		viaTemporal = (1 + sumT) / float64(k)
	}
	// Reuse needs no executed source: with nothing always run it is the
	// only way to serve a model. Ties go to the simplest.
	canLinks := len(always) > 0 && !opts.NoLinks
	temporalOK = temporalOK && canLinks
	// A reused detector may do better carried along motion: its own (the
	// tracker, a reuse upgrade) or an always-run detector's (a delta link).
	var track bool
	var follow *pipeline.FollowLink
	if motion != nil && k > 1 {
		if acc, ok := motionFill(k, func(age int) (float64, bool) { return motion.TrackAccuracy(m, age) }); ok && acc > viaReuse && !opts.NoReuse {
			viaReuse, track = acc, true
		}
		if !opts.NoLinks {
			for _, src := range always {
				for _, l := range motion.FollowLinks(m, src) {
					acc, ok := motionFill(k, func(age int) (float64, bool) { return motion.FollowAccuracy(m, l, age) })
					if ok && acc > viaReuse {
						viaReuse, track, follow = acc, false, &l
					}
				}
			}
		}
	}
	reusable := !opts.NoReuse || follow != nil
	switch {
	case reusable && (!canLinks || (viaReuse >= viaLinks && (!temporalOK || viaReuse >= viaTemporal))):
		return served{how: servedReused, acc: viaReuse, track: track, follow: follow}
	case temporalOK && viaTemporal > viaLinks:
		return served{how: servedTemporal, acc: viaTemporal}
	case canLinks:
		return served{how: servedPredicted, acc: viaLinks}
	}
	// Nothing serves it between runs: exact on its turns only.
	acc := 0.0
	if k > 0 {
		acc = 1 / float64(k)
	}
	return served{how: servedAbsent, acc: acc}
}

// motionFill is a model run every k-th frame served by a motion fill in
// between: exact on its turn, acc(age) at ages 1 … k−1 (ok false unless
// measured at all of them).
func motionFill(k int, acc func(age int) (float64, bool)) (float64, bool) {
	sum := 1.0
	for age := 1; age < k; age++ {
		a, ok := acc(age)
		if !ok {
			return 0, false
		}
		sum += a
	}
	return sum / float64(k), true
}

// rotationPeriods is a choice as rotation periods: 1 for the models always
// run, k for those run every k-th frame, absent (0) for the others.
func rotationPeriods(always []string, every map[string]int) map[string]int {
	out := map[string]int{}
	for _, m := range always {
		out[m] = 1
	}
	for m, k := range every {
		out[m] = k
	}
	return out
}

// runsOn reports whether a model rotated every k frames runs on the
// camera's frame index; phases spread rotating models over frames so the
// per-frame load stays even.
func runsOn(index int64, k, phase int) bool {
	return k > 0 && (index+int64(phase))%int64(k) == 0
}

// phaseHorizon bounds the frames over which phases are balanced (the
// periods' least common multiple, capped).
const phaseHorizon = 240

func lcm(a, b int) int {
	g, x := a, b
	for x != 0 {
		g, x = x, g%x
	}
	return a / g * b
}
