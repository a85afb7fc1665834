package scheduler

import (
	"math"
	"sort"
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
func SelectHybrid(models []string, costs map[string]Cost, b Budget, ev SetEvidence, reuse ReuseEvidence) HybridChoice {
	fromNothing := hybridGreedy(models, costs, b, ev, reuse, map[string]int{})
	start := map[string]int{}
	for _, m := range SelectMLink(models, costs, b, ev) {
		start[m] = 1
	}
	fromMLink := hybridGreedy(models, costs, b, ev, reuse, start)
	if fromMLink.Expected > fromNothing.Expected {
		return fromMLink
	}
	return fromNothing
}

func hybridGreedy(models []string, costs map[string]Cost, b Budget, ev SetEvidence, reuse ReuseEvidence, every map[string]int) HybridChoice {
	best := hybridEvaluate(models, every, ev, reuse)
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
			for _, k := range hybridPeriods {
				if k == 0 || (cur != 0 && k >= cur) {
					continue // only moves that run m more often
				}
				trial := withPeriod(every, m, k)
				if !b.Fits(hybridCost(models, costs, trial)) {
					continue
				}
				gain := hybridEvaluate(models, trial, ev, reuse).Expected - best.Expected
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
		best = hybridEvaluate(models, every, ev, reuse)
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

func hybridShare(models []string, costs map[string]Cost, b Budget, every map[string]int) float64 {
	return b.Share(hybridCost(models, costs, every))
}

// hybridEvaluate computes the expected accuracy of a rotation assignment
// and how each model is served between its runs.
func hybridEvaluate(models []string, every map[string]int, ev SetEvidence, reuse ReuseEvidence) HybridChoice {
	ch := HybridChoice{Every: map[string]int{}, Accuracy: map[string]float64{}}
	for _, m := range models {
		if every[m] == 1 {
			ch.Always = append(ch.Always, m)
		}
	}
	total := 0.0
	for _, m := range models {
		k := every[m]
		if k == 1 {
			ch.Accuracy[m] = 1
			total++
			continue
		}
		ens := 0.0
		if len(ch.Always) > 0 {
			ens = PredictedAccuracy(m, ch.Always, ev)
		}
		// Temporal ensembles need a measurement at every age they serve.
		temporal := func(age int) (float64, bool) { return 0, false }
		if te, ok := ev.(TemporalEvidence); ok {
			temporal = func(age int) (float64, bool) { return te.TemporalAccuracy(m, ch.Always, age) }
		}
		var viaReuse, viaLinks, viaTemporal float64
		temporalOK := true
		if k == 0 {
			viaReuse, viaLinks = reuse.ReuseAccuracy(m, neverAge), ens
			viaTemporal, temporalOK = temporal(neverAge)
		} else {
			ch.Every[m] = k
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
		switch {
		case (viaReuse >= viaLinks && (!temporalOK || viaReuse >= viaTemporal)) || len(ch.Always) == 0:
			ch.Reused = append(ch.Reused, m)
			ch.Accuracy[m] = viaReuse
		case temporalOK && viaTemporal > viaLinks:
			ch.Predicted = append(ch.Predicted, m)
			ch.Temporal = append(ch.Temporal, m)
			ch.Accuracy[m] = viaTemporal
		default:
			ch.Predicted = append(ch.Predicted, m)
			ch.Accuracy[m] = viaLinks
		}
		total += ch.Accuracy[m]
	}
	if len(models) > 0 {
		ch.Expected = total / float64(len(models))
	}
	return ch
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

// rotationPhases gives each rotating model a phase so that the frames
// where expensive models run are spread out: models in decreasing cost
// each take the phase that keeps the per-frame load most even over the
// periods' common cycle (least sum of squared loads). A frame carrying
// several expensive models at once would hold up the camera's later
// frames. (Periods without a common factor meet on some frame whatever
// the phases.)
func rotationPhases(models []string, every map[string]int, costs map[string]Cost) map[string]int {
	var rotating []string
	horizon := 1
	for _, m := range models {
		if k := every[m]; k > 1 {
			rotating = append(rotating, m)
			horizon = min(phaseHorizon, lcm(horizon, k))
		}
	}
	sort.SliceStable(rotating, func(a, b int) bool { return costs[rotating[a]].MS > costs[rotating[b]].MS })
	load := make([]float64, horizon)
	phases := map[string]int{}
	for _, m := range rotating {
		k := every[m]
		best, bestSpread := 0, math.Inf(1)
		for ph := range k {
			spread := 0.0
			for i := 0; i < horizon; i++ {
				l := load[i]
				if runsOn(int64(i), k, ph) {
					l += max(costs[m].MS, 1e-9)
				}
				spread += l * l
			}
			if spread < bestSpread*(1-1e-12) {
				best, bestSpread = ph, spread
			}
		}
		phases[m] = best
		for i := 0; i < horizon; i++ {
			if runsOn(int64(i), k, best) {
				load[i] += max(costs[m].MS, 1e-9)
			}
		}
	}
	return phases
}

func lcm(a, b int) int {
	g, x := a, b
	for x != 0 {
		g, x = x, g%x
	}
	return a / g * b
}
