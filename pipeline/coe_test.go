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
	if err := good.Validate(models, nil); err != nil {
		t.Fatalf("a good cascade: %v", err)
	}
	bad := CoEConfig{Cascades: []Cascade{
		{Task: "people", Output: "small", Agree: "labels", Tolerance: -1,
			Tiers: []CascadeTier{{Models: []string{"small", "nope"}, Theta: 1.5}, {Models: []string{"big"}}}},
		{Task: "people", Output: "other", Agree: AgreeBoxes, Tolerance: 2,
			Tiers: []CascadeTier{{Models: []string{"small"}}}},
	}}
	err := bad.Validate(models, nil)
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

// A tier's pool must be declared, and a cascade's frames only go up the
// tiers (edge → hub → cloud).
func TestCoETierPoolsAreDeclaredAndGoUp(t *testing.T) {
	models := []string{"small", "tiny", "big"}
	pools := []WorkerPool{{Name: "box", Tier: "edge", Workers: 1}, {Name: "gpu", Tier: "cloud", Workers: 1}}
	cascade := func(pools ...string) CoEConfig {
		return CoEConfig{Cascades: []Cascade{{Task: "people", Output: "big", Tiers: []CascadeTier{
			{Models: []string{"small"}, Pool: pools[0]}, {Models: []string{"tiny"}, Pool: pools[1]}, {Models: []string{"big"}, Pool: pools[2]}}}}}
	}
	for _, ok := range [][]string{{"box", "", "gpu"}, {"", "", ""}, {"box", "box", "gpu"}, {"gpu", "", "gpu"}} {
		c := cascade(ok...)
		if err := c.Validate(models, pools); err != nil {
			t.Errorf("tier pools %q: %v", ok, err)
		}
	}
	c := cascade("gpu", "box", "nowhere")
	err := c.Validate(models, pools)
	if err == nil {
		t.Fatal("a tier going down and an undeclared pool validate")
	}
	for _, want := range []string{
		"cascades[0] (people).tiers[1].pool: box is at tier edge, below an earlier tier's pool",
		`cascades[0] (people).tiers[2].pool: "nowhere" is not a declared pool`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
