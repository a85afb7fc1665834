package pipeline

import (
	"strings"
	"testing"
)

// Every problem of the cascades is reported at once, each saying where.
func TestCoECascadesAreValidatedAllAtOnce(t *testing.T) {
	models := []string{"small", "tiny", "big", "other"}
	good := CoEConfig{Cascades: []Cascade{{Task: "people", Output: "big", Tolerance: 1,
		Tiers: []CascadeTier{{Models: []string{"small", "tiny"}}, {Models: []string{"big"}}}}}}
	if err := good.Validate(models); err != nil {
		t.Fatalf("a good cascade: %v", err)
	}
	bad := CoEConfig{Cascades: []Cascade{
		{Task: "people", Output: "small", Agree: "labels", Tolerance: -1,
			Tiers: []CascadeTier{{Models: []string{"small", "nope"}, Theta: 1.5}, {Models: []string{"big"}}}},
		{Task: "people", Output: "other", Agree: AgreeBoxes, Tolerance: 2,
			Tiers: []CascadeTier{{Models: []string{"small"}}}},
	}}
	err := bad.Validate(models)
	if err == nil {
		t.Fatal("bad cascades validate")
	}
	for _, want := range []string{
		`cascades[0] (people).agree: "labels"`,
		"cascades[0] (people).tolerance: must be a count ≥ 0",
		"cascades[0] (people).tiers[0].theta: must be within (0,1]",
		`cascades[0] (people).tiers[0].models: "nope" is not a configured model`,
		`cascades[0] (people).output: "small" is not in the last tier`,
		"cascades[1] (people).task: duplicate task",
		"cascades[1] (people).tolerance: applies to agree: counts only",
		"cascades[1] (people).tiers: a cascade needs at least two tiers",
		`cascades[1] (people).tiers[0].models: "small" is already in cascade people`,
		`cascades[1] (people).output: "other" is not in the last tier`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
