package scheduler

import (
	"math"
	"testing"

	"github.com/mlink-project/mlink/links"
)

// Beyond the oldest measured age nothing was measured: the value falls
// from the oldest's to the constant guess by twice that age, is never
// above the oldest's, and a model only run on profiling frames (neverAge)
// is worth no more than the constant.
func TestAtAgeBeyondTheOldestMeasuredAge(t *testing.T) {
	type pt = agePoint
	cases := []struct {
		name     string
		pts      []agePoint
		constant float64
		hasConst bool
		want     map[int]float64
	}{
		{"falls to the constant by 2×", []pt{{1, 0.9}, {5, 0.5}}, 0.1, true,
			map[int]float64{5: 0.5, 6: 0.42, 8: 0.26, 10: 0.1, 50: 0.1, neverAge: 0.1}},
		{"a 10-frame window's age 5 does not stand in for age 50", []pt{{1, 0.95}, {2, 0.9}, {5, 0.8}}, 0.3, true,
			map[int]float64{7: 0.6, 10: 0.3, 50: 0.3}},
		{"the constant above reuse: the oldest value holds", []pt{{1, 0.3}, {10, 0.2}}, 0.4, true,
			map[int]float64{10: 0.2, 15: 0.2, 20: 0.2, neverAge: 0.2}},
		{"no constant measured: falls to 0", []pt{{10, 0.8}}, 0, false,
			map[int]float64{1: 0.8, 10: 0.8, 15: 0.4, 20: 0, neverAge: 0}},
		{"interpolation and younger ages unchanged", []pt{{10, 0.8}, {20, 0.6}}, 0.2, true,
			map[int]float64{1: 0.8, 10: 0.8, 15: 0.7, 20: 0.6, 30: 0.4, 40: 0.2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			curves := &ageCurves{constant: map[string]float64{}}
			if c.hasConst {
				curves.constant["m"] = c.constant
			}
			for age, want := range c.want {
				if got := curves.atAge("m", c.pts, age); math.Abs(got-want) > 1e-9 {
					t.Errorf("age %d: %.4f, want %.4f", age, got, want)
				}
			}
			// Beyond the oldest: never increasing, never above its value.
			last := c.pts[len(c.pts)-1]
			prev := last.acc
			for age := last.age; age <= 5*last.age; age++ {
				got := curves.atAge("m", c.pts, age)
				if got > prev+1e-12 || got > last.acc+1e-12 {
					t.Fatalf("age %d: %.4f after %.4f (oldest measured %.4f)", age, got, prev, last.acc)
				}
				prev = got
			}
			if c.hasConst && curves.atAge("m", c.pts, neverAge) > c.constant+1e-12 {
				t.Errorf("never run: above the constant %.3f", c.constant)
			}
		})
	}
	// Temporal ensembles extrapolate the same way, to the target's constant.
	ev := NewLinkEvidence(&links.Evaluation{
		TemporalEnsembles: []links.EnsembleAccuracy{
			{Target: "m", Sources: []string{"a"}, Age: 1, Score: links.Score{Accuracy: 0.9, Frames: 10}},
			{Target: "m", Sources: []string{"a"}, Age: 5, Score: links.Score{Accuracy: 0.6, Frames: 10}},
		},
		Baselines: []links.BaselineAccuracy{{Target: "m", Baseline: "constant", Score: links.Score{Accuracy: 0.2, Frames: 10}}},
	})
	for age, want := range map[int]float64{5: 0.6, 8: 0.36, 10: 0.2, neverAge: 0.2} {
		if got, ok := ev.TemporalAccuracy("m", []string{"a"}, age); !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("temporal at age %d: %.4f %v, want %.4f", age, got, ok, want)
		}
	}
}
