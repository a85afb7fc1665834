package scheduler

import (
	"math"
	"reflect"
	"testing"
)

// matrix is Evidence from a table: acc[source][target].
type matrix map[string]map[string]float64

func (m matrix) PairAccuracy(s, t string) float64 { return m[s][t] }

const gb = int64(1) << 30

// The paper's systems: person counting 4.6 GB, action/traffic class 1.5 GB,
// object/vehicle counting 3.7 GB.
var paperCosts = map[string]Cost{
	"person": {Memory: 46 * gb / 10},
	"action": {Memory: 15 * gb / 10},
	"object": {Memory: 37 * gb / 10},
}
var paperModels = []string{"person", "action", "object"}

func TestActivationProbabilitiesByHand(t *testing.T) {
	acc := matrix{
		"person": {"action": 0.8, "object": 0.9},
		"action": {"person": 0.3, "object": 0.4},
		"object": {"person": 0.85, "action": 0.7},
	}
	b := Budget{Memory: 5 * gb}
	p := ActivationProbabilities(paperModels, paperCosts, b, acc)
	// c = 0.92, 0.3, 0.74 (shares of 5 GB); w = 2/0.3.
	// person: P1 = .85, P2 = (.3+.85)/2 = .575 → (1.275)/(6.667*.92) = 0.20788
	// action: P1 = .35, P2 = (.8+.7)/2 = .75   → (0.6)/(6.667*.3)    = 0.3
	// object: P1 = .775, P2 = (.9+.4)/2 = .65  → (1.125)/(6.667*.74) = 0.22804
	want := map[string]float64{"person": 0.20788, "action": 0.3, "object": 0.22804}
	for m, w := range want {
		if math.Abs(p[m]-w) > 1e-4 {
			t.Errorf("P_%s = %.5f, want %.5f", m, p[m], w)
		}
		if p[m] < 0 || p[m] > 1 {
			t.Errorf("P_%s = %v outside [0,1]", m, p[m])
		}
	}
}

func TestSelectionOnThePapersThreeModels(t *testing.T) {
	// Person counting predicts the others well and is hard to predict: MLink
	// must pick it although it is the most expensive.
	acc := matrix{
		"person": {"action": 0.95, "object": 0.93},
		"action": {"person": 0.2, "object": 0.3},
		"object": {"person": 0.6, "action": 0.9},
	}
	cases := []struct {
		name       string
		budget     Budget
		standalone []string
		mlink      []string
	}{
		// 5 GB: one model fits (any two exceed it).
		{"5GB", Budget{Memory: 5 * gb}, []string{"action"}, []string{"person"}},
		// 9 GB: two fit; person+object = 8.3 GB.
		{"9GB", Budget{Memory: 9 * gb}, []string{"action", "object"}, []string{"person", "object"}},
		// 20 GB: everything.
		{"20GB", Budget{Memory: 20 * gb}, []string{"action", "object", "person"}, nil},
		// 1 GB: nothing fits.
		{"1GB", Budget{Memory: 1 * gb}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := SelectStandalone(paperModels, paperCosts, c.budget); !reflect.DeepEqual(got, c.standalone) {
				t.Errorf("standalone chose %v, want %v", got, c.standalone)
			}
			got := SelectMLink(paperModels, paperCosts, c.budget, acc)
			want := c.mlink
			if c.name == "20GB" {
				if len(got) != 3 {
					t.Errorf("mlink chose %v, want all three", got)
				}
				return
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("mlink chose %v, want %v", got, want)
			}
		})
	}
	// At 5 GB mlink's expected accuracy: person 1, action .95, object .93.
	if got := ExpectedAccuracy(paperModels, []string{"person"}, acc); math.Abs(got-(1+0.95+0.93)/3) > 1e-9 {
		t.Errorf("expected accuracy %v", got)
	}
	// Standalone scores unrun models 0 (no links): 1/3.
	if got := ExpectedAccuracy(paperModels, []string{"action"}, matrix{}); math.Abs(got-1.0/3) > 1e-9 {
		t.Errorf("standalone accuracy %v, want 1/3", got)
	}
}

func TestGreedySkipsAModelThatDoesNotFitAndGoesOn(t *testing.T) {
	costs := map[string]Cost{"a": {MS: 30}, "b": {MS: 50}, "c": {MS: 10}}
	acc := matrix{"a": {"b": 1, "c": 1}, "b": {"a": 1, "c": 1}, "c": {"a": 0, "b": 0}}
	// P orders a (cheap, predicts all), b, then c; a+b = 80 > 60 so b is
	// skipped and c still fits.
	got := SelectMLink([]string{"a", "b", "c"}, costs, Budget{MS: 60}, acc)
	if !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Errorf("chose %v, want [a c]", got)
	}
}

func TestParseBudget(t *testing.T) {
	cases := map[string]Budget{"5GB": {Memory: 5 * gb}, "40ms": {MS: 40}, "5GB,40ms": {Memory: 5 * gb, MS: 40}, "512MB": {Memory: 512 << 20}}
	for in, want := range cases {
		got, err := ParseBudget(in)
		if err != nil || got != want {
			t.Errorf("ParseBudget(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "-5ms", "0GB", "xms"} {
		if _, err := ParseBudget(bad); err == nil {
			t.Errorf("ParseBudget(%q) should fail", bad)
		}
	}
}

func TestShareTakesTheBindingResource(t *testing.T) {
	b := Budget{Memory: 10 * gb, MS: 100}
	if s := b.Share(Cost{Memory: 2 * gb, MS: 50}); math.Abs(s-0.5) > 1e-9 {
		t.Errorf("share %v, want 0.5 (time binds)", s)
	}
	if b.Fits(Cost{Memory: 11 * gb, MS: 1}) || !b.Fits(Cost{Memory: 10 * gb, MS: 100}) {
		t.Error("Fits is wrong at the edges")
	}
}
