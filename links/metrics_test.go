package links

import (
	"math"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

func TestCountAccuracyIsStrict(t *testing.T) {
	cases := []struct{ p, e, want float64 }{{3, 3, 1}, {3.4, 3, 1}, {3.5, 3, 0}, {2.6, 3, 1}, {0, 5, 0}}
	for _, c := range cases {
		if got := CountAccuracy(c.p, c.e); got != c.want {
			t.Errorf("CountAccuracy(%v, %v) = %v, want %v", c.p, c.e, got, c.want)
		}
	}
}

func TestGradedCountAccuracy(t *testing.T) {
	cases := []struct{ p, e, want float64 }{{4, 4, 1}, {3, 4, 0.75}, {4, 3, 0.75}, {0, 4, 0}, {0, 0, 1}, {8, 4, 0.5}}
	for _, c := range cases {
		if got := GradedCountAccuracy(c.p, c.e); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("GradedCountAccuracy(%v, %v) = %v, want %v", c.p, c.e, got, c.want)
		}
	}
}

func TestMatchedIoU(t *testing.T) {
	a := pipeline.Box{X1: 0, Y1: 0, X2: 0.5, Y2: 0.5}
	b := pipeline.Box{X1: 0.5, Y1: 0.5, X2: 1, Y2: 1}
	half := pipeline.Box{X1: 0, Y1: 0, X2: 0.5, Y2: 0.25}
	if got := MatchedIoU([]pipeline.Box{a, b}, []pipeline.Box{b, a}); math.Abs(got-1) > 1e-9 {
		t.Errorf("same set in another order: %v, want 1", got)
	}
	if got := MatchedIoU([]pipeline.Box{a}, []pipeline.Box{a, b}); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("one of two: %v, want 0.5", got)
	}
	if got := MatchedIoU([]pipeline.Box{half}, []pipeline.Box{a}); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("half overlap: %v, want 0.5", got)
	}
	if got := MatchedIoU(nil, nil); got != 1 {
		t.Errorf("both empty: %v, want 1", got)
	}
	if got := MatchedIoU([]pipeline.Box{a}, nil); got != 0 {
		t.Errorf("one empty: %v, want 0", got)
	}
}

func TestTokenAccuracy(t *testing.T) {
	if got := TokenAccuracy([]string{"a", "b", "c"}, []string{"a", "b", "c"}); got != 1 {
		t.Errorf("equal: %v", got)
	}
	if got := TokenAccuracy([]string{"a", "x", "c"}, []string{"a", "b", "c", "d"}); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("one substitution, one deletion of 4: %v, want 0.5", got)
	}
	if got := TokenAccuracy([]string{"x", "y", "z", "w", "v"}, []string{"a"}); got != 0 {
		t.Errorf("WER above 1 clamps to 0: %v", got)
	}
}

func TestAccuracyByType(t *testing.T) {
	cls := func(v ...float64) *pipeline.Output { return &pipeline.Output{Value: v} }
	if Accuracy(pipeline.TypeClass, cls(0.1, 0.9), cls(0.3, 0.7)) != 1 {
		t.Error("same argmax must agree")
	}
	if Accuracy(pipeline.TypeClass, cls(0.9, 0.1), cls(0.3, 0.7)) != 0 {
		t.Error("different argmax must disagree")
	}
	if Accuracy(pipeline.TypeCount, cls(2.2), cls(2)) != 1 || Accuracy(pipeline.TypeCount, cls(3), cls(2)) != 0 {
		t.Error("count accuracy by type")
	}
}
