package assemble

import (
	"slices"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

func count(model string, n float64) *pipeline.Output {
	return &pipeline.Output{Model: model, Type: pipeline.TypeCount, Value: []float64{n}, Source: pipeline.SourceExact}
}

func boxes(model string, bs ...pipeline.Box) *pipeline.Output {
	return &pipeline.Output{Model: model, Type: pipeline.TypeBoxes, Value: []float64{float64(len(bs))}, Boxes: bs, Source: pipeline.SourceExact}
}

func box(x float32) pipeline.Box { return pipeline.Box{X1: x, Y1: 0.1, X2: x + 0.1, Y2: 0.3} }

// people: three cheap counters, then the final detector.
func peopleCascade(theta, tol float64) pipeline.Cascade {
	return pipeline.Cascade{Task: "people", Output: "big", Agree: pipeline.AgreeCounts, Tolerance: tol,
		Tiers: []pipeline.CascadeTier{{Models: []string{"a", "b", "c"}, Theta: theta}, {Models: []string{"big"}, Theta: 1}}}
}

// Hand-computed exits: counts 3, 3, 4 agree 2 of 3 with the majority (3).
func TestCascadeDecisionTable(t *testing.T) {
	failed := &pipeline.Output{Model: "c", Error: "worker overloaded"}
	cases := []struct {
		name       string
		c          pipeline.Cascade
		outs       map[string]*pipeline.Output
		done       bool
		tier       int
		share      float64
		answer     float64
		answerFrom []string
	}{
		{"tier 1 incomplete waits for it", peopleCascade(1, 0), map[string]*pipeline.Output{"a": count("a", 3), "b": count("b", 3)}, false, 0, 0, 0, nil},
		{"unanimous at θ=1 exits at tier 1", peopleCascade(1, 0), map[string]*pipeline.Output{"a": count("a", 3), "b": count("b", 3), "c": count("c", 3)}, true, 0, 1, 3, []string{"a", "b", "c"}},
		{"2 of 3 at θ=1 defers to tier 2", peopleCascade(1, 0), map[string]*pipeline.Output{"a": count("a", 3), "b": count("b", 3), "c": count("c", 4)}, false, 1, 0, 0, nil},
		{"2 of 3 at θ=0.67 exits with the majority", peopleCascade(0.67, 0), map[string]*pipeline.Output{"a": count("a", 4), "b": count("b", 3), "c": count("c", 3)}, true, 0, 2.0 / 3, 3, []string{"b", "c"}},
		{"1 of 3 at θ=0.67 defers", peopleCascade(0.67, 0), map[string]*pipeline.Output{"a": count("a", 1), "b": count("b", 3), "c": count("c", 5)}, false, 1, 0, 0, nil},
		{"tolerance 1 makes 3, 3, 4 unanimous around 3", peopleCascade(1, 1), map[string]*pipeline.Output{"a": count("a", 3), "b": count("b", 3), "c": count("c", 4)}, true, 0, 1, 3, []string{"a", "b", "c"}},
		{"tolerance 1: 2, 3, 4 centre on 3", peopleCascade(1, 1), map[string]*pipeline.Output{"a": count("a", 2), "b": count("b", 3), "c": count("c", 4)}, true, 0, 1, 3, []string{"a", "b", "c"}},
		{"a failed member agrees with nobody", peopleCascade(1, 0), map[string]*pipeline.Output{"a": count("a", 3), "b": count("b", 3), "c": failed}, false, 1, 0, 0, nil},
		{"the last tier always answers", peopleCascade(1, 0), map[string]*pipeline.Output{"a": count("a", 1), "b": count("b", 3), "c": count("c", 5), "big": count("big", 6)}, true, 1, 1, 6, []string{"big"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(&tc.c, tc.outs)
			if d.Done != tc.done || d.Tier != tc.tier {
				t.Fatalf("done %v at tier %d, want %v at %d", d.Done, d.Tier, tc.done, tc.tier)
			}
			if !d.Done {
				return
			}
			if d.Share < tc.share-1e-9 || d.Share > tc.share+1e-9 {
				t.Errorf("share %g, want %g", d.Share, tc.share)
			}
			if d.Answer == nil || d.Answer.Value[0] != tc.answer || d.Answer.Model != "big" || d.Answer.Source != pipeline.SourcePredicted {
				t.Fatalf("answer %+v, want %g as big's predicted output", d.Answer, tc.answer)
			}
			if !slices.Equal(d.Answer.Sources, tc.answerFrom) {
				t.Errorf("answered from %v, want %v", d.Answer.Sources, tc.answerFrom)
			}
		})
	}
}

// Boxes agree when they match one to one at IoU ≥ 0.5: a shift of a tenth
// of a box keeps IoU 0.82; a second box, or one moved by a box width, do
// not.
func TestCascadeBoxAgreement(t *testing.T) {
	c := pipeline.Cascade{Task: "people", Output: "big", Agree: pipeline.AgreeBoxes,
		Tiers: []pipeline.CascadeTier{{Models: []string{"a", "b", "c"}, Theta: 0.67}, {Models: []string{"big"}}}}
	a := boxes("a", box(0.1), box(0.5))
	b := boxes("b", box(0.11), box(0.51))
	if !Agree(&c, a, b) {
		t.Fatal("slightly shifted boxes do not agree")
	}
	if Agree(&c, a, boxes("x", box(0.1))) {
		t.Error("2 boxes agree with 1")
	}
	if Agree(&c, a, boxes("x", box(0.1), box(0.7))) {
		t.Error("a box a width away agrees")
	}
	if !Agree(&c, boxes("x"), boxes("y")) {
		t.Error("two empty detections disagree")
	}
	d := Decide(&c, map[string]*pipeline.Output{"a": a, "b": b, "c": boxes("c", box(0.3))})
	if !d.Done || d.Tier != 0 || len(d.Answer.Boxes) != 2 || d.Answer.Boxes[0] != a.Boxes[0] {
		t.Fatalf("2 of 3 agreeing boxes at θ=0.67: %+v, want a's boxes from tier 1", d)
	}
	c.Tiers[0].Theta = 1
	if d := Decide(&c, map[string]*pipeline.Output{"a": a, "b": b, "c": boxes("c", box(0.3))}); d.Done {
		t.Fatalf("2 of 3 at θ=1 answered: %+v", d)
	}
}

// The two rounds of a frame, as the merger and the replay run them: tier 1
// disagrees, the next tier is escalated, its output answers; on a frame
// where tier 1 agrees the answer serves the final model and is what the
// next frames reuse.
func TestCascadeEscalationAndAnswers(t *testing.T) {
	plan := pipeline.Plan{Camera: "cam", Seq: 5, Exact: []string{"a", "b", "c", "m"}, Reused: []string{"big"},
		Cascades: []pipeline.Cascade{peopleCascade(1, 0)}}
	exact := map[string]*pipeline.Output{"a": count("a", 3), "b": count("b", 3), "c": count("c", 4), "m": count("m", 1)}
	esc := Escalations(&plan, exact)
	if !slices.Equal(esc, []string{"big"}) {
		t.Fatalf("escalations %v, want [big]", esc)
	}
	Escalate(&plan, esc)
	if !slices.Contains(plan.Exact, "big") || slices.Contains(plan.Reused, "big") {
		t.Fatalf("escalated plan %+v: big should run", plan)
	}
	if esc := Escalations(&plan, exact); esc != nil {
		t.Fatalf("waiting for big, escalations %v", esc)
	}
	exact["big"] = count("big", 4)
	if esc := Escalations(&plan, exact); esc != nil {
		t.Fatalf("decided, escalations %v", esc)
	}
	last := NewLast()
	out := Assemble(nil, &plan, exact, last)
	if out["big"] != exact["big"] {
		t.Fatalf("big ran: its own output should stay, got %+v", out["big"])
	}
	UpdateLast(last, &plan, out)

	// Frame 6: tier 1 agrees on 2; big does not run and gets 2.
	plan = pipeline.Plan{Camera: "cam", Seq: 6, Exact: []string{"a", "b", "c"}, Reused: []string{"big"},
		Cascades: []pipeline.Cascade{peopleCascade(1, 0)}}
	exact = map[string]*pipeline.Output{"a": count("a", 2), "b": count("b", 2), "c": count("c", 2)}
	if esc := Escalations(&plan, exact); esc != nil {
		t.Fatalf("tier 1 agreed, escalations %v", esc)
	}
	out = Assemble(nil, &plan, exact, last)
	if o := out["big"]; o == nil || o.Value[0] != 2 || o.Source != pipeline.SourcePredicted || o.Seq != 6 {
		t.Fatalf("big on frame 6: %+v, want tier 1's 2, predicted", o)
	}
	UpdateLast(last, &plan, out)
	// Frame 7: the cascade's turn is not this frame: big reuses frame 6's answer.
	plan = pipeline.Plan{Camera: "cam", Seq: 7, Reused: []string{"a", "b", "c", "big"}}
	out = Assemble(nil, &plan, nil, last)
	if o := out["big"]; o == nil || o.Value[0] != 2 || o.Source != pipeline.SourceReused || o.FromSeq != 6 {
		t.Fatalf("big on frame 7: %+v, want frame 6's answer reused", o)
	}
}
