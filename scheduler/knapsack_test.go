package scheduler

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Small instances whose optimum is computed by hand.
func TestKnapsackExactOnHandComputedInstances(t *testing.T) {
	for _, tc := range []struct {
		name     string
		items    []KnapsackItem
		capacity []float64
		want     float64
		bins     []int
	}{
		// One bin of 50: {20 (v 100), 30 (v 120)} = 220 beats the densest
		// first (10, v 60) + 20 = 160 (the textbook case greedy gets wrong).
		{"one bin", []KnapsackItem{{Value: 60, Weight: 10}, {Value: 100, Weight: 20}, {Value: 120, Weight: 30}}, []float64{50}, 220, []int{-1, 0, 0}},
		// Two bins of 10: the 6+4 and 5+5 pairs fill both (value 4 in all).
		{"two bins", []KnapsackItem{{Value: 1, Weight: 6}, {Value: 1, Weight: 5}, {Value: 1, Weight: 4}, {Value: 1, Weight: 5}}, []float64{10, 10}, 4, nil},
		// An item may only go to its own camera's bin.
		{"eligibility", []KnapsackItem{{Value: 5, Weight: 8, Bins: []int{0}}, {Value: 4, Weight: 8, Bins: []int{0}}, {Value: 1, Weight: 8, Bins: []int{1}}}, []float64{10, 10}, 6, []int{0, -1, 1}},
		// Nothing fits.
		{"nothing fits", []KnapsackItem{{Value: 5, Weight: 11}}, []float64{10}, 0, []int{-1}},
	} {
		got := SolveKnapsackExact(tc.items, tc.capacity)
		if math.Abs(got.Value-tc.want) > 1e-9 {
			t.Errorf("%s: value %g, want %g (packing %v)", tc.name, got.Value, tc.want, got.Bin)
		}
		if tc.bins != nil && !equalInts(got.Bin, tc.bins) {
			t.Errorf("%s: packing %v, want %v", tc.name, got.Bin, tc.bins)
		}
		checkPacking(t, tc.name, tc.items, tc.capacity, got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkPacking: every bin within capacity, items only in allowed bins,
// the value what the packing is worth.
func checkPacking(t *testing.T, name string, items []KnapsackItem, capacity []float64, p Packing) {
	t.Helper()
	used := make([]float64, len(capacity))
	v := 0.0
	for i, b := range p.Bin {
		if b < 0 {
			continue
		}
		if !items[i].allows(b) {
			t.Errorf("%s: item %d in bin %d, allowed %v", name, i, b, items[i].Bins)
		}
		used[b] += items[i].Weight
		v += items[i].Value
	}
	for b := range used {
		if used[b] > capacity[b]+1e-9 {
			t.Errorf("%s: bin %d holds %g over its %g", name, b, used[b], capacity[b])
		}
	}
	if math.Abs(v-p.Value) > 1e-9 {
		t.Errorf("%s: packing worth %g, reported %g", name, v, p.Value)
	}
}

func randomInstance(r *rand.Rand, n, bins int) ([]KnapsackItem, []float64) {
	items := make([]KnapsackItem, n)
	total := 0.0
	for i := range items {
		// Long-tailed importance (DCTA's observation), costs like models'.
		items[i] = KnapsackItem{Value: math.Exp(r.NormFloat64()), Weight: 5 + r.Float64()*300}
		total += items[i].Weight
	}
	capacity := make([]float64, bins)
	for b := range capacity {
		capacity[b] = total * (0.15 + 0.3*r.Float64()) / float64(bins)
	}
	return items, capacity
}

// The fast solver stays within its stated gap of the optimum on random
// instances the size of a building's cameras' models on a few pools.
func TestKnapsackGreedyWithinItsGap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	worst, sum := 0.0, 0.0
	const runs = 300
	for k := range runs {
		items, capacity := randomInstance(r, 4+k%14, 1+k%3)
		exact := SolveKnapsackExact(items, capacity)
		greedy := SolveKnapsackGreedy(items, capacity)
		checkPacking(t, "greedy", items, capacity, greedy)
		checkPacking(t, "exact", items, capacity, exact)
		if greedy.Value > exact.Value+1e-9 {
			t.Fatalf("instance %d: greedy %g above the exact optimum %g", k, greedy.Value, exact.Value)
		}
		gap := 0.0
		if exact.Value > 0 {
			gap = 1 - greedy.Value/exact.Value
		}
		worst, sum = max(worst, gap), sum+gap
	}
	t.Logf("greedy vs exact on %d random instances: mean gap %.2f%%, worst %.2f%%", runs, 100*sum/runs, 100*worst)
	if worst > KnapsackGreedyGap {
		t.Errorf("worst gap %.3f over the stated %.2f", worst, KnapsackGreedyGap)
	}
	if mean := sum / runs; mean > 0.02 {
		t.Errorf("mean gap %.3f over 2%%", mean)
	}
}

// The re-solve time, exact and greedy, at live sizes: 2 cameras × 8 models
// on one pool, and 58 cameras × 8 models on 4 pools (greedy only).
func BenchmarkKnapsackResolve(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	small, smallCap := randomInstance(r, 16, 1)
	large, largeCap := randomInstance(r, 58*8, 4)
	b.Run("exact/16items", func(b *testing.B) {
		for b.Loop() {
			SolveKnapsackExact(small, smallCap)
		}
	})
	b.Run("greedy/16items", func(b *testing.B) {
		for b.Loop() {
			SolveKnapsackGreedy(small, smallCap)
		}
	})
	b.Run("greedy/464items-4pools", func(b *testing.B) {
		for b.Loop() {
			SolveKnapsackGreedy(large, largeCap)
		}
	})
}
