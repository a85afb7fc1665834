package scheduler

import (
	"math"
	"sort"
)

// Evidence is what the scheduler has measured, on profiled frames, of how
// well models predict each other. Accuracies are in [0,1].
type Evidence interface {
	// PairAccuracy is p(g_ij): how well target is predicted from source
	// alone by their link.
	PairAccuracy(source, target string) float64
}

// SetEvidence also knows how well a target is predicted from a set of
// executed models (its link ensemble over that set).
type SetEvidence interface {
	Evidence
	// SetAccuracy is the accuracy of predicting target from the executed
	// set; ok is false when nothing was measured for that set.
	SetAccuracy(target string, executed []string) (acc float64, ok bool)
}

// minShare keeps a free model (zero measured cost) from dividing by zero.
const minShare = 1e-9

// ActivationProbabilities computes MLink's P_i for each model:
//
//	P1_i = mean_{j≠i} p(g_ij)   how well i predicts the others
//	P2_i = mean_{j≠i} p(g_ji)   how well the others predict i
//	P_i  = (1 + P1_i − P2_i) / (w · c_i),  w = 2 / min_i c_i
//
// c_i is the model's cost as a share of the budget (Budget.Share), so a
// budget on memory, on time, or on both ranks models consistently. P_i is
// in [0,1]: high for a cheap model that predicts others well and is hard to
// predict itself.
func ActivationProbabilities(models []string, costs map[string]Cost, b Budget, ev Evidence) map[string]float64 {
	p := make(map[string]float64, len(models))
	if len(models) == 0 {
		return p
	}
	minC := math.Inf(1)
	for _, m := range models {
		minC = math.Min(minC, math.Max(minShare, b.Share(costs[m])))
	}
	w := 2 / minC
	for _, i := range models {
		var p1, p2 float64
		n := 0
		for _, j := range models {
			if i == j {
				continue
			}
			p1 += ev.PairAccuracy(i, j)
			p2 += ev.PairAccuracy(j, i)
			n++
		}
		if n > 0 {
			p1 /= float64(n)
			p2 /= float64(n)
		}
		ci := math.Max(minShare, b.Share(costs[i]))
		p[i] = (1 + p1 - p2) / (w * ci)
	}
	return p
}

// SelectMLink is MLink's greedy selection: models in decreasing order of
// activation probability, each added when the set still fits the budget (a
// model that does not fit is skipped and the next tried). Ties go to the
// cheaper model, then to config order.
func SelectMLink(models []string, costs map[string]Cost, b Budget, ev Evidence) []string {
	p := ActivationProbabilities(models, costs, b, ev)
	order := append([]string(nil), models...)
	sort.SliceStable(order, func(x, y int) bool {
		a, c := order[x], order[y]
		if p[a] != p[c] {
			return p[a] > p[c]
		}
		return b.Share(costs[a]) < b.Share(costs[c])
	})
	return greedyFit(order, costs, b)
}

// ExpectedAccuracy is the system metric of a selection: the mean over all
// models of their accuracy, where executed models count 1 and every other
// model counts the measured accuracy of its prediction from the executed set
// (its ensemble where measured, else its best single link). With nothing
// executed every model scores 0.
func ExpectedAccuracy(models, executed []string, ev Evidence) float64 {
	if len(models) == 0 {
		return 0
	}
	run := map[string]bool{}
	for _, m := range executed {
		run[m] = true
	}
	total := 0.0
	for _, j := range models {
		if run[j] {
			total++
			continue
		}
		total += PredictedAccuracy(j, executed, ev)
	}
	return total / float64(len(models))
}

// PredictedAccuracy is how well target is predicted from the executed set.
func PredictedAccuracy(target string, executed []string, ev Evidence) float64 {
	if len(executed) == 0 {
		return 0
	}
	if se, ok := ev.(SetEvidence); ok {
		if acc, ok := se.SetAccuracy(target, executed); ok {
			return acc
		}
	}
	best := 0.0
	for _, s := range executed {
		best = math.Max(best, ev.PairAccuracy(s, target))
	}
	return best
}
