package reducto

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mlink-project/mlink/links"
)

// synthSegment is a segment of n frames whose consecutive diffs scatter
// around level, and a people count that changes (±1) each time the motion
// accumulated since its last change passes a few frames' worth: counts
// follow the diffs, as a detector's follow the scene.
func synthSegment(seed uint64, n int, level float64) (Segment, []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	diffs := make([]float64, n-1)
	counts := make([]float64, n)
	counts[0] = 5
	acc, step := 0.0, level*(2+4*rng.Float64())
	for i := 1; i < n; i++ {
		diffs[i-1] = level * (0.2 + 1.6*rng.Float64())
		counts[i] = counts[i-1]
		if acc += diffs[i-1]; acc > step {
			acc, step = 0, level*(2+4*rng.Float64())
			if rng.IntN(2) == 0 && counts[i] > 1 {
				counts[i]--
			} else {
				counts[i]++
			}
		}
	}
	return Segment{Frames: n, Diffs: diffs, Accuracy: CountAccuracy(counts)}, counts
}

// naiveAccuracy replays thr with its own loop: a frame is sent iff the sum
// of the consecutive diffs since the last sent frame exceeds thr.
func naiveAccuracy(diffs, counts []float64, thr float64) (acc, sent float64) {
	last, since := 0, 0.0
	acc, sent = 1, 1
	for i := 1; i < len(counts); i++ {
		since += diffs[i-1]
		if since > thr {
			last, since = i, 0
			acc++
			sent++
			continue
		}
		acc += links.GradedCountAccuracy(counts[last], counts[i])
	}
	n := float64(len(counts))
	return acc / n, sent / n
}

func TestProfileMeetsTarget(t *testing.T) {
	const target = 0.9
	filtered := 0
	for seed := uint64(1); seed <= 20; seed++ {
		level := 0.002 * float64(seed)
		seg, counts := synthSegment(seed, 50, level)
		p, err := ProfileSegment(seg, SelectorOptions{Target: target})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Candidates) != DefaultCandidates {
			t.Fatalf("%d candidates, want %d", len(p.Candidates), DefaultCandidates)
		}
		if !slices.IsSortedFunc(p.Candidates, func(a, b Candidate) int { return cmpFloat(a.Threshold, b.Threshold) }) {
			t.Fatal("candidates are not in increasing order")
		}
		// The chosen threshold is the largest candidate that meets the
		// target, checked with an independent replay.
		want := 0.0
		for _, c := range p.Candidates {
			acc, sent := naiveAccuracy(seg.Diffs, counts, c.Threshold)
			if math.Abs(acc-c.Accuracy) > 1e-12 || math.Abs(sent-c.Sent) > 1e-12 {
				t.Fatalf("seed %d thr %g: accuracy %g sent %g, independent replay %g %g", seed, c.Threshold, c.Accuracy, c.Sent, acc, sent)
			}
			if acc >= target {
				want = max(want, c.Threshold)
			}
		}
		if p.Threshold != want {
			t.Errorf("seed %d: threshold %g, want %g", seed, p.Threshold, want)
		}
		if p.Accuracy < target {
			t.Errorf("seed %d: accuracy %g at the chosen threshold %g, below the target %g", seed, p.Accuracy, p.Threshold, target)
		}
		if p.Sent < 1 {
			filtered++
		}
	}
	if filtered < 15 {
		t.Errorf("only %d of 20 segments filter any frame: the test segments are too hard", filtered)
	}
}

func TestHigherTargetNeverLargerThreshold(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		seg, _ := synthSegment(seed, 50, 0.01)
		prev := math.Inf(1)
		for target := 0.5; target <= 1.0001; target += 0.01 {
			p, err := ProfileSegment(seg, SelectorOptions{Target: min(target, 1)})
			if err != nil {
				t.Fatal(err)
			}
			if p.Threshold > prev {
				t.Fatalf("seed %d: target %.2f gives threshold %g, above %g at a lower target", seed, target, p.Threshold, prev)
			}
			prev = p.Threshold
		}
		// The safety margin raises the target.
		a, _ := ProfileSegment(seg, SelectorOptions{Target: 0.85})
		b, _ := ProfileSegment(seg, SelectorOptions{Target: 0.85, SafetyMargin: 0.1})
		if b.Threshold > a.Threshold {
			t.Errorf("seed %d: margin 0.1 gives threshold %g, above %g without", seed, b.Threshold, a.Threshold)
		}
	}
}

func TestLabelAccuracyProfile(t *testing.T) {
	// Labels change at frames 20 and 40; diffs spike there. A threshold
	// below the spikes and above the quiet diffs keeps accuracy 1 while
	// sending almost nothing.
	labels := make([]string, 60)
	diffs := make([]float64, 59)
	for i := range labels {
		labels[i] = []string{"none", "low", "high"}[i/20]
		if i > 0 {
			diffs[i-1] = 0.001
			if i%20 == 0 {
				diffs[i-1] = 0.5
			}
		}
	}
	p, err := ProfileSegment(Segment{Frames: 60, Diffs: diffs, Accuracy: LabelAccuracy(labels)}, SelectorOptions{Target: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p.Accuracy != 1 || p.Sent > 4.0/60 {
		t.Errorf("threshold %g: accuracy %g, sent %g; want 1 and at most 4 frames", p.Threshold, p.Accuracy, p.Sent)
	}
}

func TestReplay(t *testing.T) {
	seg, _ := synthSegment(3, 30, 0.01)
	all := Replay(seg, -1)
	first := Replay(seg, math.Inf(1))
	for i := range all {
		if all[i] != i || first[i] != 0 {
			t.Fatalf("frame %d: from %d at −1 (want itself), %d at +Inf (want 0)", i, all[i], first[i])
		}
	}
	// An exact Between overrides the cumulative approximation.
	seg.Between = func(last, cur int) float64 { return float64(cur - last) }
	from := Replay(seg, 2.5) // every third frame
	for i, f := range from {
		if f != i-i%3 {
			t.Fatalf("frame %d uses frame %d, want %d", i, f, i-i%3)
		}
	}
}

func TestKNN(t *testing.T) {
	sel, err := NewSelector(SelectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var segs []Segment
	var thresholds []float64
	for k := range 5 {
		seg, _ := synthSegment(uint64(100+k), 50, 0.004*float64(k+1))
		if _, _, ok := sel.Threshold(seg.Diffs); ok {
			t.Fatalf("Threshold ok with %d profiled segments, before the bootstrap of 5", k)
		}
		p, err := sel.Profile(seg)
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, seg)
		thresholds = append(thresholds, p.Threshold)
	}
	if sel.Len() != 5 {
		t.Fatalf("Len %d, want 5", sel.Len())
	}
	// An identical signature gets the profiled threshold.
	for k, seg := range segs {
		thr, dist, ok := sel.Threshold(seg.Diffs)
		if !ok || dist != 0 || thr != thresholds[k] {
			t.Errorf("segment %d: threshold %g, distance %g, ok %v; want its profiled %g at distance 0", k, thr, dist, ok, thresholds[k])
		}
	}
	// A similar segment (same level, other noise) gets a weighted mean of
	// profiled thresholds.
	similar, _ := synthSegment(999, 50, 0.012)
	thr, dist, ok := sel.Threshold(similar.Diffs)
	if !ok || thr < slices.Min(thresholds) || thr > slices.Max(thresholds) {
		t.Errorf("similar segment: threshold %g (distance %g, ok %v), want within the profiled %v", thr, dist, ok, thresholds)
	}
	// A segment far busier than any profiled one is sent whole.
	busy := make([]float64, 49)
	for i := range busy {
		busy[i] = 0.5
	}
	if thr, dist, ok := sel.Threshold(busy); ok || dist <= DefaultDistanceBound {
		t.Errorf("busy segment: threshold %g, distance %g, ok %v; want not ok, beyond %g", thr, dist, ok, DefaultDistanceBound)
	}
	// So is a segment without diffs.
	if _, _, ok := sel.Threshold(nil); ok {
		t.Error("segment without diffs: ok")
	}
}

func TestKNNWeighting(t *testing.T) {
	// Three profiles: two alike with threshold 1, one different with
	// threshold 3. A query close to the two alike leans to 1.
	sel, _ := NewSelector(SelectorOptions{Bootstrap: 3, Bins: 4, DistanceBound: 2})
	sel.Add([]float64{0, 0, 0, 1}, 1)
	sel.Add([]float64{0, 0, 1, 1}, 1)
	sel.Add([]float64{1, 1, 1, 1}, 3)
	thr, _, ok := sel.Threshold([]float64{0, 0, 0, 1})
	if !ok || thr != 1 {
		t.Errorf("exact match: %g, %v; want 1", thr, ok)
	}
	thr, _, ok = sel.Threshold([]float64{0, 0, 0.6, 1})
	if !ok || thr <= 1 || thr >= 2 {
		t.Errorf("near the threshold-1 profiles: %g, %v; want in (1, 2)", thr, ok)
	}
}

func TestSignature(t *testing.T) {
	sel, _ := NewSelector(SelectorOptions{Bins: 10})
	sel.Add([]float64{0.1, 0.2, 0.3}, 0)
	sel.Add([]float64{0.5}, 0)
	h := sel.Signature([]float64{0.1, 0.5, 0.0, 0.9, 0.32})
	if len(h) != 12 {
		t.Fatalf("%d bins, want 10 + underflow + overflow", len(h))
	}
	want := []float64{0.2, 0, 0, 0, 0, 0.2, 0, 0, 0, 0.2, 0.2, 0.2} // 0.1 | 0.32 | 0.5 (closed last bin) | 0.0 below | 0.9 above
	for i := range want {
		if math.Abs(h[i]-want[i]) > 1e-12 {
			t.Fatalf("signature %v, want %v", h, want)
		}
	}
}

func TestSelectorValidation(t *testing.T) {
	_, err := NewSelector(SelectorOptions{Target: 1.5, Candidates: -1, K: -2, DistanceBound: -1, SafetyMargin: 2})
	for _, want := range []string{"target", "candidates", "k -2", "distance bound", "safety margin"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewSelector: %v; want it to mention %q", err, want)
		}
	}
	for _, seg := range []Segment{
		{},
		{Frames: 3, Diffs: []float64{1}, Accuracy: LabelAccuracy(nil)},
		{Frames: 2, Diffs: []float64{1}},
	} {
		if _, err := ProfileSegment(seg, SelectorOptions{}); err == nil {
			t.Errorf("ProfileSegment(%+v) accepted a bad segment", seg)
		}
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
