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

// Multiple choice: items sharing a Group are one task's intervals, at
// most one of them placed. Hand-computed optima, exact and greedy.
func TestMultipleChoiceKnapsackDecisionTable(t *testing.T) {
	// A task of 100 ms worth 1 on every frame, 0.9 on every second (50 ms),
	// 0.7 on every fourth (25 ms); a second task of 40 ms worth 0.5, 0.45
	// on every second (20 ms).
	a := func(g int, bins []int) []KnapsackItem {
		return []KnapsackItem{{Value: 1, Weight: 100, Group: g, Bins: bins}, {Value: 0.9, Weight: 50, Group: g, Bins: bins}, {Value: 0.7, Weight: 25, Group: g, Bins: bins}}
	}
	b := func(g int, bins []int) []KnapsackItem {
		return []KnapsackItem{{Value: 0.5, Weight: 40, Group: g, Bins: bins}, {Value: 0.45, Weight: 20, Group: g, Bins: bins}}
	}
	for _, tc := range []struct {
		name     string
		items    []KnapsackItem
		capacity []float64
		want     float64
		bins     []int
	}{
		// Room for all of a's options at once (175): still only one, the best.
		{"one task, ample room", a(1, nil), []float64{175}, 1, []int{0, -1, -1}},
		// 60 ms: a every fourth and b every second (45 ms, 1.15) beat a
		// every second alone (50 ms, 0.9).
		{"two tasks, 60 ms", append(a(1, nil), b(2, nil)...), []float64{60}, 1.15, []int{-1, -1, 0, -1, 0}},
		// 90 ms: a every second and b on every frame (90 ms, 1.4) beat both
		// every second (70 ms, 1.35) and a on every frame alone (1).
		{"two tasks, 90 ms", append(a(1, nil), b(2, nil)...), []float64{90}, 1.4, []int{-1, 0, -1, 0, -1}},
		// 130 ms: a on every frame and b every second (120 ms, 1.45) beat
		// a every second and b on every frame (90 ms, 1.4).
		{"two tasks, 130 ms", append(a(1, nil), b(2, nil)...), []float64{130}, 1.45, []int{0, -1, -1, -1, 0}},
		// 140 ms: both on every frame.
		{"two tasks, 140 ms", append(a(1, nil), b(2, nil)...), []float64{140}, 1.5, []int{0, -1, -1, 0, -1}},
		// Too little room for anything but a every fourth.
		{"two tasks, 25 ms", append(a(1, nil), b(2, nil)...), []float64{25}, 0.7, []int{-1, -1, 0, -1, -1}},
		// A camera's own bin each (a cap): a in bin 0 of 50 ms, b in bin 1
		// of 30 ms — b cannot borrow bin 0's room.
		{"own bins", append(a(1, []int{0}), b(2, []int{1})...), []float64{50, 30}, 1.35, []int{-1, 0, -1, -1, 1}},
		// Group zero items stand alone beside a group: in 75 ms, a every
		// fourth and both (1.3) beat a every second and one (1.2).
		{"singletons beside a task", append(a(1, nil), KnapsackItem{Value: 0.3, Weight: 25}, KnapsackItem{Value: 0.3, Weight: 25}), []float64{75}, 1.3, []int{-1, -1, 0, 0, 0}},
	} {
		for _, solver := range []struct {
			name  string
			solve func([]KnapsackItem, []float64) Packing
		}{{"exact", SolveKnapsackExact}, {"greedy", SolveKnapsackGreedy}} {
			got := solver.solve(tc.items, tc.capacity)
			if math.Abs(got.Value-tc.want) > 1e-9 {
				t.Errorf("%s, %s: value %g, want %g (packing %v)", tc.name, solver.name, got.Value, tc.want, got.Bin)
			}
			if !equalInts(got.Bin, tc.bins) {
				t.Errorf("%s, %s: packing %v, want %v", tc.name, solver.name, got.Bin, tc.bins)
			}
			checkPacking(t, tc.name, tc.items, tc.capacity, got)
		}
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
	placed := map[int]int{}
	for i, b := range p.Bin {
		if b < 0 {
			continue
		}
		if g := items[i].Group; g != 0 {
			if j, ok := placed[g]; ok {
				t.Errorf("%s: items %d and %d of group %d both placed", name, j, i, g)
			}
			placed[g] = i
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

// randomChoiceInstance is n tasks, each with DCTA's intervals {1, 2, 4,
// 8, 16}: a cost c / k and a long-tailed importance × a freshness gain
// that grows ever slower with the cost, as servedEvery's does.
func randomChoiceInstance(r *rand.Rand, n, bins int) ([]KnapsackItem, []float64) {
	var items []KnapsackItem
	total := 0.0
	for g := range n {
		imp, c := math.Exp(r.NormFloat64()), 5+r.Float64()*300
		halfLife := 1 + r.Float64()*15
		var only []int
		if bins > 1 && r.IntN(2) == 0 {
			only = []int{r.IntN(bins)}
		}
		for _, k := range []int{1, 2, 4, 8, 16} {
			gain := servedEvery(func(_ string, age int) float64 { return math.Exp2(-float64(age) / halfLife) }, "", k)
			items = append(items, KnapsackItem{Value: imp * gain, Weight: c / float64(k), Group: g + 1, Bins: only})
		}
		total += c
	}
	capacity := make([]float64, bins)
	for b := range capacity {
		capacity[b] = total * (0.1 + 0.4*r.Float64()) / float64(bins)
	}
	return items, capacity
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
// instances the size of a building's cameras' models on a few pools: every
// other one single items, the others multiple-choice tasks.
func TestKnapsackGreedyWithinItsGap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	worst, sum, worstChoice := 0.0, 0.0, 0.0
	const runs = 300
	for k := range runs {
		items, capacity := randomInstance(r, 4+k%14, 1+k%3)
		if k%2 == 1 {
			items, capacity = randomChoiceInstance(r, 2+k%10, 1+k%3)
		}
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
		if k%2 == 1 {
			worstChoice = max(worstChoice, gap)
		}
	}
	t.Logf("greedy vs exact on %d random instances: mean gap %.2f%%, worst %.2f%% (%.2f%% on the multiple-choice half)", runs, 100*sum/runs, 100*worst, 100*worstChoice)
	if worst > KnapsackGreedyGap {
		t.Errorf("worst gap %.3f over the stated %.2f", worst, KnapsackGreedyGap)
	}
	if mean := sum / runs; mean > 0.02 {
		t.Errorf("mean gap %.3f over 2%%", mean)
	}
}

// The re-solve time, exact and greedy, at live sizes: 2 cameras × 8 models
// on one pool, and 58 cameras × 8 models on 4 pools (greedy only); single
// items and tasks with DCTA's five intervals.
func BenchmarkKnapsackResolve(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	small, smallCap := randomInstance(r, 16, 1)
	large, largeCap := randomInstance(r, 58*8, 4)
	choice, choiceCap := randomChoiceInstance(r, ExactKnapsackLimit, 1)
	largeChoice, largeChoiceCap := randomChoiceInstance(r, 58*8, 4)
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
	b.Run("exact/16tasks×5intervals", func(b *testing.B) {
		for b.Loop() {
			SolveKnapsackExact(choice, choiceCap)
		}
	})
	b.Run("greedy/464tasks×5intervals-4pools", func(b *testing.B) {
		for b.Loop() {
			SolveKnapsackGreedy(largeChoice, largeChoiceCap)
		}
	})
}
