package scheduler

import (
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

func coeCount(model string, n float64) *pipeline.Output {
	return &pipeline.Output{Model: model, Type: pipeline.TypeCount, Value: []float64{n}, Source: pipeline.SourceExact}
}

// validationFrame: tier 1's counts a, b, c and the final model's own.
func validationFrame(a, b, c, big float64) map[string]*pipeline.Output {
	return map[string]*pipeline.Output{"a": coeCount("a", a), "b": coeCount("b", b), "c": coeCount("c", c), "big": coeCount("big", big)}
}

func coeTestCascade(target, theta float64) pipeline.Cascade {
	return pipeline.Cascade{Task: "people", Output: "big", Agree: pipeline.AgreeCounts, Target: target,
		Tiers: []pipeline.CascadeTier{{Models: []string{"a", "b", "c"}, Theta: theta}, {Models: []string{"big"}}}}
}

// Hand-computed: 6 unanimous frames the final model agrees with, 3 frames
// 2 of 3 agree and are right, 2 where they agree and are wrong. At θ=0.67
// tier 1 accepts 11, 9 right (0.82); at θ=1 it accepts the 6, all right.
func TestCoEThetaKeepsTheFinalTiersAccuracyOnValidationFrames(t *testing.T) {
	var frames []map[string]*pipeline.Output
	for range 6 {
		frames = append(frames, validationFrame(2, 2, 2, 2))
	}
	for range 3 {
		frames = append(frames, validationFrame(3, 3, 5, 3))
	}
	for range 2 {
		frames = append(frames, validationFrame(4, 4, 1, 6))
	}
	frames = append(frames, validationFrame(1, 3, 5, 3)) // no majority: deferred at either θ
	cases := []struct {
		name   string
		c      pipeline.Cascade
		tiers  int
		theta  float64
		reason string
	}{
		{"target 0.9: unanimous only", coeTestCascade(0.9, 0), 2, 1, "0.67 keeps 0.82 < 0.9, 1.0 keeps 1.0"},
		{"target 0.8: two of three", coeTestCascade(0.8, 0), 2, 0.67, "0.67 keeps 0.82 ≥ 0.8: the cheaper θ"},
		{"a configured θ is kept", coeTestCascade(0.99, 0.67), 2, 0.67, "θ given"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := CoEThetas([]pipeline.Cascade{tc.c}, frames)[0]
			if len(got.Tiers) != tc.tiers || got.Tiers[0].Theta != tc.theta {
				t.Fatalf("tiers %+v, want %d with θ₁ = %g (%s)", got.Tiers, tc.tiers, tc.theta, tc.reason)
			}
			if last := got.Tiers[len(got.Tiers)-1]; last.Models[0] != "big" || last.Theta != 1 {
				t.Errorf("last tier %+v: the final model always answers", last)
			}
		})
	}
	// One unanimous frame wrong in six: 5/6 = 0.83 at θ=1, worse at 0.67:
	// tier 1 cannot keep 0.9 and is not run.
	frames[0] = validationFrame(2, 2, 2, 4)
	got := CoEThetas([]pipeline.Cascade{coeTestCascade(0.9, 0)}, frames)[0]
	if len(got.Tiers) != 1 || got.Tiers[0].Models[0] != "big" {
		t.Fatalf("tiers %+v, want the final tier alone", got.Tiers)
	}
}

// A cascade's expected cost per visit counts each later tier at the share
// of visits that reach it.
func TestCoEExpectedCost(t *testing.T) {
	c := coeTestCascade(0.9, 1)
	costs := map[string]Cost{"a": {MS: 10}, "b": {MS: 20}, "c": {MS: 30}, "big": {MS: 600}}
	if got, want := expectedMS(&c, []int{10, 3}, costs), 60+0.3*600; got != want {
		t.Fatalf("expected %g ms, want %g", got, want)
	}
	if got := worstMS(&c, costs); got != 660 {
		t.Fatalf("worst %g ms, want 660", got)
	}
}
