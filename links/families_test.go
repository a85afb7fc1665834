package links

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

var motionClasses = []string{"none", "low", "high"}

// familyCase is a synthetic relationship between a source and a target
// model, learnable by one link family.
type familyCase struct {
	name   string
	family string
	models []TraceModel
	// gen draws one frame; with related=false the target is drawn
	// independently of the source.
	gen func(rng *rand.Rand, related bool) map[string]*pipeline.Output
	// minStrict, minCount: the accuracy the link must reach on held-out
	// frames when the relationship holds (minCount < 0: not a count).
	minStrict, minCount float64
}

func familyCases() []familyCase {
	return []familyCase{
		{
			name: "count→count with noise", family: FamilyVec2Vec,
			models: []TraceModel{{Name: "src", Type: pipeline.TypeCount}, {Name: "tgt", Type: pipeline.TypeCount}},
			gen: func(rng *rand.Rand, related bool) map[string]*pipeline.Output {
				x := rng.Intn(9)
				y := rng.Intn(9)
				if related {
					// 90 % exact, 10 % off by one: the best link scores ≈ 0.9.
					y = x
					if rng.Float64() < 0.1 {
						y += 2*rng.Intn(2) - 1
					}
				}
				return map[string]*pipeline.Output{"src": countOut("src", float64(x)), "tgt": countOut("tgt", float64(max(y, 0)))}
			},
			minStrict: 0.8, minCount: 0.8,
		},
		{
			name: "boxes→count", family: FamilySeq2Vec,
			models: []TraceModel{{Name: "src", Type: pipeline.TypeBoxes}, {Name: "tgt", Type: pipeline.TypeCount}},
			gen: func(rng *rand.Rand, related bool) map[string]*pipeline.Output {
				k := rng.Intn(6)
				y := rng.Intn(6)
				if related {
					y = k
				}
				boxes := make([]pipeline.Box, k)
				for i := range boxes {
					x, yy := rng.Float32()*0.8, rng.Float32()*0.6
					boxes[i] = pipeline.Box{X1: x, Y1: yy, X2: x + 0.1, Y2: yy + 0.3, Score: rng.Float32() * 3}
				}
				return map[string]*pipeline.Output{"src": boxesOut("src", pipeline.TypeBoxes, boxes), "tgt": countOut("tgt", float64(y))}
			},
			minStrict: 0.9, minCount: 0.9,
		},
		{
			name: "count→class", family: FamilyVec2Vec,
			models: []TraceModel{{Name: "src", Type: pipeline.TypeCount}, {Name: "tgt", Type: pipeline.TypeClass, Classes: motionClasses}},
			gen: func(rng *rand.Rand, related bool) map[string]*pipeline.Output {
				x := rng.Intn(9)
				c := rng.Intn(3)
				if related {
					c = 0
					if x >= 2 {
						c = 1
					}
					if x >= 5 {
						c = 2
					}
				}
				return map[string]*pipeline.Output{"src": countOut("src", float64(x)), "tgt": classOut("tgt", motionClasses, c)}
			},
			minStrict: 0.9, minCount: -1,
		},
		{
			name: "count→boxes", family: FamilyVec2Seq,
			models: []TraceModel{{Name: "src", Type: pipeline.TypeCount}, {Name: "tgt", Type: pipeline.TypeBoxes, Classes: []string{"person"}}},
			gen: func(rng *rand.Rand, related bool) map[string]*pipeline.Output {
				x := rng.Intn(5)
				var boxes []pipeline.Box
				if related {
					// x people, always at the first x places.
					for s := 0; s < x; s++ {
						boxes = append(boxes, person(s, rng, 0.01))
					}
				} else {
					boxes = randomPeople(rng.Intn(5), rng, 0.01)
				}
				return map[string]*pipeline.Output{"src": countOut("src", float64(x)), "tgt": boxesOut("tgt", pipeline.TypeBoxes, boxes)}
			},
			minStrict: 0.6, minCount: 0.9,
		},
		{
			name: "boxes→boxes", family: FamilySeq2Seq,
			models: []TraceModel{{Name: "src", Type: pipeline.TypeBoxes}, {Name: "tgt", Type: pipeline.TypeBoxes, Classes: []string{"person"}}},
			gen: func(rng *rand.Rand, related bool) map[string]*pipeline.Output {
				src := randomPeople(rng.Intn(5), rng, 0.01)
				people := src
				if !related {
					people = randomPeople(rng.Intn(5), rng, 0.01)
				}
				// The target detector sees the same people's upper bodies.
				var tgt []pipeline.Box
				for _, b := range people {
					tgt = append(tgt, pipeline.Box{X1: b.X1, Y1: b.Y1, X2: b.X2, Y2: b.Y1 + 0.4*(b.Y2-b.Y1), Score: 1, Class: "person"})
				}
				return map[string]*pipeline.Output{"src": boxesOut("src", pipeline.TypeBoxes, src), "tgt": boxesOut("tgt", pipeline.TypeBoxes, tgt)}
			},
			minStrict: 0.5, minCount: 0.8,
		},
	}
}

// TestFamiliesLearnSyntheticRelationships trains each link family on a
// known relationship (300 frames, train on the first 2/3) and checks the
// held-out accuracy; with the target drawn independently of the source the
// same link must not beat the constant baseline.
func TestFamiliesLearnSyntheticRelationships(t *testing.T) {
	for _, c := range familyCases() {
		for _, related := range []bool{true, false} {
			name := c.name
			if !related {
				name += " (independent)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewSource(42))
				h, recs := makeTrace(c.models, 300, func(int) map[string]*pipeline.Output { return c.gen(rng, related) })
				train, eval := SplitByTime(recs, 2.0/3)
				s := mustTrain(t, h, train, quickOptions())
				ev := s.Evaluate(eval)
				p := pair(t, ev, "src", "tgt")
				if p.Kind != c.family {
					t.Errorf("link kind %s, want %s", p.Kind, c.family)
				}
				base := constant(t, ev, "tgt")
				desc := fmt.Sprintf("link strict %.3f%s, constant baseline %.3f%s", p.Accuracy, countDesc(p.Score), base.Accuracy, countDesc(base))
				t.Log(desc)
				if related {
					if p.Accuracy < c.minStrict {
						t.Errorf("strict accuracy below %.2f: %s", c.minStrict, desc)
					}
					if c.minCount >= 0 && (p.Count == nil || p.Count.Accuracy < c.minCount) {
						t.Errorf("count accuracy below %.2f: %s", c.minCount, desc)
					}
					if p.Accuracy < base.Accuracy+0.2 {
						t.Errorf("the link does not clearly beat the constant baseline: %s", desc)
					}
					return
				}
				if p.Accuracy > base.Accuracy+0.05 {
					t.Errorf("independent data, yet the link beats the constant baseline: %s", desc)
				}
				if p.Count != nil && p.Count.Accuracy > base.Count.Accuracy+0.05 {
					t.Errorf("independent data, yet the link's counts beat the constant baseline: %s", desc)
				}
			})
		}
	}
}

func countDesc(s Score) string {
	if s.Count == nil {
		return ""
	}
	return fmt.Sprintf(" (count %.3f, MAE %.2f)", s.Count.Accuracy, s.Count.MAE)
}
