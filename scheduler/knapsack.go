package scheduler

import (
	"math"
	"slices"
	"sort"
)

// KnapsackItem is one option of a multiple-choice multiple knapsack: a
// model on a camera run every k-th frame, worth Value (its importance ×
// what running it so gains) when placed, costing Weight (its time per
// frame) in the bin it is placed in. Bins, if set, are the bins it may go
// to (a camera's own budget under a cap); nil: any. Items sharing a
// nonzero Group are alternatives — a task's intervals — of which at most
// one is placed; Group zero: an item on its own.
type KnapsackItem struct {
	Value, Weight float64
	Bins          []int
	Group         int
}

// Packing is a solution: Bin[i] is item i's bin, or -1 (not placed).
type Packing struct {
	Bin   []int
	Value float64
}

// allows reports whether item it may go to bin b.
func (it KnapsackItem) allows(b int) bool { return it.Bins == nil || slices.Contains(it.Bins, b) }

// ExactKnapsackLimit is the most tasks (groups of alternatives)
// SolveKnapsackExact is used for online; beyond it the greedy solver
// answers (its gap is tested on random instances against the exact one).
const ExactKnapsackLimit = 16

// groups returns, for each item, its group's dense index, and the items of
// each group (in first-appearance order).
func groups(items []KnapsackItem) (gid []int, members [][]int) {
	gid = make([]int, len(items))
	seen := map[int]int{}
	for i, it := range items {
		g, ok := seen[it.Group]
		if it.Group == 0 || !ok {
			g = len(members)
			members = append(members, nil)
			if it.Group != 0 {
				seen[it.Group] = g
			}
		}
		gid[i] = g
		members[g] = append(members[g], i)
	}
	return gid, members
}

// hullStep upgrades a group from item from (-1: nothing) to item to,
// adding dw weight and dv value.
type hullStep struct {
	group, from, to int
	dw, dv          float64
}

func (s hullStep) slope() float64 {
	if s.dw <= 0 {
		return math.Inf(1)
	}
	return s.dv / s.dw
}

// hullSteps are the steps along each group's upper convex hull of
// (weight, value) from (0, 0), all groups' sorted by slope, highest first:
// taken in order, fractionally at the end, they are the LP relaxation of
// the multiple-choice knapsack over one pooled bin.
func hullSteps(items []KnapsackItem, members [][]int) []hullStep {
	var steps []hullStep
	for g, in := range members {
		pts := slices.Clone(in)
		sort.SliceStable(pts, func(a, b int) bool {
			wa, wb := items[pts[a]].Weight, items[pts[b]].Weight
			return wa < wb || (wa == wb && items[pts[a]].Value > items[pts[b]].Value)
		})
		hull := []int{-1}
		at := func(h int) (float64, float64) {
			if h < 0 {
				return 0, 0
			}
			return items[h].Weight, items[h].Value
		}
		for _, i := range pts {
			w, v := at(i)
			if _, lv := at(hull[len(hull)-1]); v <= lv {
				continue // dominated: heavier and worth no more
			}
			for len(hull) >= 2 {
				w1, v1 := at(hull[len(hull)-2])
				w2, v2 := at(hull[len(hull)-1])
				if (v2-v1)*(w-w1) > (v-v1)*(w2-w1) {
					break // still concave
				}
				hull = hull[:len(hull)-1]
			}
			hull = append(hull, i)
		}
		for h := 1; h < len(hull); h++ {
			w0, v0 := at(hull[h-1])
			w1, v1 := at(hull[h])
			steps = append(steps, hullStep{group: g, from: hull[h-1], to: hull[h], dw: w1 - w0, dv: v1 - v0})
		}
	}
	sort.SliceStable(steps, func(a, b int) bool { return steps[a].slope() > steps[b].slope() })
	return steps
}

// SolveKnapsackExact maximises the value of the items placed in the bins
// (each bin's weights within its capacity, each item in at most one bin,
// at most one item of a group) by branch and bound over the groups, the
// densest first: each of a group's items tried in every bin it fits, and
// the group left out; a branch is cut when its value plus the LP
// relaxation of the groups left over all the capacity left cannot beat
// the best.
func SolveKnapsackExact(items []KnapsackItem, capacity []float64) Packing {
	_, members := groups(items)
	steps := hullSteps(items, members)
	order := groupsByDensity(items, members)
	rank := make([]int, len(members)) // a group's place in order
	for k, g := range order {
		rank[g] = k
	}
	for _, in := range members { // within a group, the most valuable first
		sort.SliceStable(in, func(a, b int) bool { return items[in[a]].Value > items[in[b]].Value })
	}
	left := slices.Clone(capacity)
	bin := make([]int, len(items))
	for i := range bin {
		bin[i] = -1
	}
	best := SolveKnapsackGreedy(items, capacity) // a good first bound
	bound := func(k int) float64 {
		room := 0.0
		for _, l := range left {
			room += max(0, l)
		}
		v := 0.0
		for _, s := range steps {
			if rank[s.group] < k {
				continue
			}
			if s.dw <= room {
				v += s.dv
				room -= s.dw
				continue
			}
			v += s.dv * room / s.dw
			break
		}
		return v
	}
	var walk func(k int, value float64)
	walk = func(k int, value float64) {
		if value > best.Value+1e-12 {
			best = Packing{Bin: slices.Clone(bin), Value: value}
		}
		if k == len(order) || value+bound(k) <= best.Value+1e-12 {
			return
		}
		for _, i := range members[order[k]] {
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
		}
		walk(k+1, value)
	}
	walk(0, 0)
	return best
}

// groupsByDensity orders the groups by their densest item, highest first
// (ties by index, for determinism).
func groupsByDensity(items []KnapsackItem, members [][]int) []int {
	best := make([]float64, len(members))
	order := make([]int, len(members))
	for g, in := range members {
		order[g] = g
		best[g] = math.Inf(-1)
		for _, i := range in {
			best[g] = max(best[g], density(items[i]))
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return best[order[a]] > best[order[b]] })
	return order
}

// packer is a packing being built: the bins' room left and each group's
// placed item (-1: none).
type packer struct {
	items  []KnapsackItem
	gid    []int
	p      Packing
	left   []float64
	chosen []int
	// emptiest: new items go to the bin with the most room that holds
	// them (worst fit), not the fullest (best fit).
	emptiest bool
}

func newPacker(items []KnapsackItem, capacity []float64) *packer {
	gid, members := groups(items)
	pk := &packer{items: items, gid: gid, p: Packing{Bin: make([]int, len(items))}, left: slices.Clone(capacity), chosen: make([]int, len(members))}
	for i := range pk.p.Bin {
		pk.p.Bin[i] = -1
	}
	for g := range pk.chosen {
		pk.chosen[g] = -1
	}
	return pk
}

func (pk *packer) remove(i int) {
	b := pk.p.Bin[i]
	pk.left[b] += pk.items[i].Weight
	pk.p.Value -= pk.items[i].Value
	pk.p.Bin[i] = -1
	pk.chosen[pk.gid[i]] = -1
}

func (pk *packer) place(i, b int) {
	pk.left[b] -= pk.items[i].Weight
	pk.p.Value += pk.items[i].Value
	pk.p.Bin[i] = b
	pk.chosen[pk.gid[i]] = i
}

// fit is the allowed bin that holds weight w with the least room left
// (the most, if emptiest); -1: none.
func (pk *packer) fit(i int, w float64) int {
	best := -1
	for b := range pk.left {
		if !pk.items[i].allows(b) || w > pk.left[b]+1e-9 {
			continue
		}
		if best < 0 || (!pk.emptiest && pk.left[b] < pk.left[best]) || (pk.emptiest && pk.left[b] > pk.left[best]) {
			best = b
		}
	}
	return best
}

// SolveKnapsackGreedy is the fast solver. One packing follows the groups'
// hull steps by slope (value gained per weight), each upgrading a group in
// its bin or moving it to another it fits; another places the items by
// value, the most valuable first, one per group. Each then makes exchange
// passes while they gain: an item replaces its group's and the
// lowest-density items of a bin when that gains value. Both are made with
// new items going to the fullest bin they fit (best fit) and to the
// emptiest (worst fit); the best of the four. Against SolveKnapsackExact its gap is within KnapsackGreedyGap on
// random instances (tested).
func SolveKnapsackGreedy(items []KnapsackItem, capacity []float64) Packing {
	_, members := groups(items)
	steps := hullSteps(items, members)
	dense := byDensity(items)
	byValue := make([]int, len(items))
	for i := range byValue {
		byValue[i] = i
	}
	sort.SliceStable(byValue, func(a, b int) bool { return items[byValue[a]].Value > items[byValue[b]].Value })
	var best Packing
	for _, emptiest := range []bool{false, true} {
		pk := newPacker(items, capacity)
		pk.emptiest = emptiest
		pk.followSteps(steps)
		pk.improve(dense)
		qk := newPacker(items, capacity)
		qk.emptiest = emptiest
		for _, i := range byValue {
			if qk.chosen[qk.gid[i]] >= 0 {
				continue
			}
			if b := qk.fit(i, items[i].Weight); b >= 0 {
				qk.place(i, b)
			}
		}
		qk.improve(byValue)
		for _, p := range []Packing{pk.p, qk.p} {
			if best.Bin == nil || p.Value > best.Value+1e-12 {
				best = p
			}
		}
	}
	return best
}

// followSteps takes the hull steps in order, each upgrading its group in
// its bin when the extra weight fits there, else moving it to the bin fit
// chooses; a step whose group is not where the step starts (an earlier
// one did not fit) is passed over.
func (pk *packer) followSteps(steps []hullStep) {
	items := pk.items
	for _, s := range steps {
		if pk.chosen[s.group] != s.from {
			continue
		}
		if s.from >= 0 {
			b := pk.p.Bin[s.from]
			if items[s.to].allows(b) && s.dw <= pk.left[b]+1e-9 {
				pk.remove(s.from)
				pk.place(s.to, b)
				continue
			}
		}
		if b := pk.fit(s.to, items[s.to].Weight); b >= 0 {
			if s.from >= 0 {
				pk.remove(s.from)
			}
			pk.place(s.to, b)
		}
	}
}

// improve makes exchange passes while they gain value (at most a few).
func (pk *packer) improve(order []int) {
	for range 4 {
		was := pk.p.Value
		pk.exchange(order)
		if pk.p.Value <= was+1e-12 {
			return
		}
	}
}

// exchange makes one pass over the items in order: an item worth more
// than its group's placed one takes a bin it may go to, in place of its
// group's item and of that bin's lowest-density items of other groups,
// when that gains value.
func (pk *packer) exchange(order []int) {
	items := pk.items
	for _, i := range order {
		g := pk.gid[i]
		cur := pk.chosen[g]
		if cur == i {
			continue
		}
		curValue := 0.0
		if cur >= 0 {
			curValue = items[cur].Value
		}
		if items[i].Value <= curValue+1e-12 {
			continue
		}
		for b := range pk.left {
			if !items[i].allows(b) {
				continue
			}
			room := pk.left[b]
			if cur >= 0 && pk.p.Bin[cur] == b {
				room += items[cur].Weight
			}
			var in []int
			for j, jb := range pk.p.Bin {
				if jb == b && pk.gid[j] != g {
					in = append(in, j)
				}
			}
			sort.Slice(in, func(x, y int) bool { return density(items[in[x]]) < density(items[in[y]]) })
			lost := curValue
			var out []int
			for _, j := range in {
				if items[i].Weight <= room+1e-9 {
					break
				}
				room += items[j].Weight
				lost += items[j].Value
				out = append(out, j)
			}
			if items[i].Weight <= room+1e-9 && items[i].Value > lost+1e-12 {
				if cur >= 0 {
					pk.remove(cur)
				}
				for _, j := range out {
					pk.remove(j)
				}
				pk.place(i, b)
				break
			}
		}
	}
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

// SolveKnapsack solves exactly up to ExactKnapsackLimit tasks (groups),
// greedily beyond.
func SolveKnapsack(items []KnapsackItem, capacity []float64) Packing {
	if _, members := groups(items); len(members) <= ExactKnapsackLimit {
		return SolveKnapsackExact(items, capacity)
	}
	return SolveKnapsackGreedy(items, capacity)
}
