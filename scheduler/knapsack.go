package scheduler

import (
	"math"
	"slices"
	"sort"
)

// KnapsackItem is one task of a multiple knapsack: a model on a camera,
// worth Value (its importance) when it runs, costing Weight (its time per
// frame) in the bin it is placed in. Bins, if set, are the bins it may go
// to (a camera's own budget under a cap); nil: any.
type KnapsackItem struct {
	Value, Weight float64
	Bins          []int
}

// Packing is a solution: Bin[i] is item i's bin, or -1 (not run).
type Packing struct {
	Bin   []int
	Value float64
}

// allows reports whether item it may go to bin b.
func (it KnapsackItem) allows(b int) bool { return it.Bins == nil || slices.Contains(it.Bins, b) }

// ExactKnapsackLimit is the most items SolveKnapsackExact is used for
// online; beyond it the greedy solver answers (its gap is tested on
// random instances against the exact one).
const ExactKnapsackLimit = 24

// SolveKnapsackExact maximises the value of the items placed in the bins
// (each bin's weights within its capacity, each item in at most one bin)
// by branch and bound: items by value density, each tried in every bin it
// fits and left out; a branch is cut when its value plus the fractional
// relaxation of the rest over all the capacity left cannot beat the best.
func SolveKnapsackExact(items []KnapsackItem, capacity []float64) Packing {
	order := byDensity(items)
	left := slices.Clone(capacity)
	bin := make([]int, len(items))
	for i := range bin {
		bin[i] = -1
	}
	best := SolveKnapsackGreedy(items, capacity) // a good first bound
	var walk func(k int, value float64)
	walk = func(k int, value float64) {
		if value > best.Value+1e-12 {
			best = Packing{Bin: slices.Clone(bin), Value: value}
		}
		if k == len(order) || value+relaxation(items, order[k:], left) <= best.Value+1e-12 {
			return
		}
		i := order[k]
		it := items[i]
		for b := range left {
			if it.allows(b) && it.Weight <= left[b]+1e-9 {
				left[b] -= it.Weight
				bin[i] = b
				walk(k+1, value+it.Value)
				bin[i] = -1
				left[b] += it.Weight
			}
		}
		walk(k+1, value)
	}
	walk(0, 0)
	return best
}

// relaxation bounds what the items in order can add within the capacity
// left: the fractional knapsack over the bins' total (an upper bound, as
// splitting items and pooling bins only loosen the problem).
func relaxation(items []KnapsackItem, order []int, left []float64) float64 {
	room := 0.0
	for _, l := range left {
		room += max(0, l)
	}
	v := 0.0
	for _, i := range order {
		it := items[i]
		if room <= 0 {
			break
		}
		if it.Weight <= room {
			v += it.Value
			room -= it.Weight
			continue
		}
		v += it.Value * room / it.Weight
		break
	}
	return v
}

// SolveKnapsackGreedy is the fast solver: items in order, each into the
// fullest bin it still fits (best fit); then every item left out is tried
// in place of the lowest-density items of a bin whose removal makes room,
// when that gains value; the better of value-density and value order. Against SolveKnapsackExact its gap is
// within KnapsackGreedyGap on random instances (tested).
func SolveKnapsackGreedy(items []KnapsackItem, capacity []float64) Packing {
	// Density first, and value first: the better of the two (the classic
	// guard against one valuable, bulky item that density order leaves out).
	p := greedyPack(items, capacity, byDensity(items))
	byValue := make([]int, len(items))
	for i := range byValue {
		byValue[i] = i
	}
	sort.SliceStable(byValue, func(a, b int) bool { return items[byValue[a]].Value > items[byValue[b]].Value })
	if q := greedyPack(items, capacity, byValue); q.Value > p.Value+1e-12 {
		return q
	}
	return p
}

// greedyPack places the items in order, each into the fullest bin it fits,
// then makes one exchange pass.
func greedyPack(items []KnapsackItem, capacity []float64, order []int) Packing {
	left := slices.Clone(capacity)
	p := Packing{Bin: make([]int, len(items))}
	for i := range p.Bin {
		p.Bin[i] = -1
	}
	for _, i := range order {
		it := items[i]
		best := -1
		for b := range left {
			if it.allows(b) && it.Weight <= left[b]+1e-9 && (best < 0 || left[b] < left[best]) {
				best = b
			}
		}
		if best >= 0 {
			p.Bin[i] = best
			left[best] -= it.Weight
			p.Value += it.Value
		}
	}
	// One exchange pass: an item left out replaces the lowest-density
	// items of one bin when it is worth more than they are.
	for _, i := range order {
		if p.Bin[i] >= 0 {
			continue
		}
		it := items[i]
		for b := range left {
			if !it.allows(b) {
				continue
			}
			var in []int
			for j, jb := range p.Bin {
				if jb == b {
					in = append(in, j)
				}
			}
			sort.Slice(in, func(x, y int) bool { return density(items[in[x]]) < density(items[in[y]]) })
			room, lost := left[b], 0.0
			var out []int
			for _, j := range in {
				if it.Weight <= room+1e-9 {
					break
				}
				room += items[j].Weight
				lost += items[j].Value
				out = append(out, j)
			}
			if it.Weight <= room+1e-9 && it.Value > lost+1e-12 {
				for _, j := range out {
					p.Bin[j] = -1
				}
				p.Bin[i] = b
				left[b] = room - it.Weight
				p.Value += it.Value - lost
				break
			}
		}
	}
	return p
}

// KnapsackGreedyGap is the greedy solver's stated gap: on random instances
// (TestKnapsackGreedyWithinItsGap) its value is at least (1 − gap) of the
// exact optimum on each.
const KnapsackGreedyGap = 0.15

func density(it KnapsackItem) float64 {
	if it.Weight <= 0 {
		return math.Inf(1)
	}
	return it.Value / it.Weight
}

// byDensity orders item indices by value density, highest first (ties by
// index, for determinism).
func byDensity(items []KnapsackItem) []int {
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return density(items[order[a]]) > density(items[order[b]]) })
	return order
}

// SolveKnapsack solves exactly up to ExactKnapsackLimit items, greedily
// beyond.
func SolveKnapsack(items []KnapsackItem, capacity []float64) Packing {
	if len(items) <= ExactKnapsackLimit {
		return SolveKnapsackExact(items, capacity)
	}
	return SolveKnapsackGreedy(items, capacity)
}
