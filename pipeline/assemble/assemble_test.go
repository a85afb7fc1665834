package assemble

import (
	"errors"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

func exactOut(seq uint64, model string, count float64) *pipeline.Output {
	return &pipeline.Output{Camera: "cam", Seq: seq, Model: model, Kind: pipeline.KindVector, Type: pipeline.TypeCount,
		Value: []float64{count}, Source: pipeline.SourceExact, InferMS: 5, Worker: "w/1"}
}

// sum predicts the sum of its sources' counts and names them; temporally,
// the last count plus the age plus the sum.
type sum struct{ fail map[string]error }

func (s sum) Predict(target string, exact map[string]*pipeline.Output) (pipeline.Output, error) {
	if err := s.fail[target]; err != nil {
		return pipeline.Output{}, err
	}
	o := pipeline.Output{Kind: pipeline.KindVector, Type: pipeline.TypeCount, Value: []float64{0}}
	for name, e := range exact {
		o.Value[0] += e.Value[0]
		o.Sources = append(o.Sources, name)
	}
	sort.Strings(o.Sources)
	if target == "nan" {
		o.Value[0] = math.NaN()
	}
	return o, nil
}

type temporalSum struct{ sum }

func (s temporalSum) PredictTemporal(target string, exact map[string]*pipeline.Output, last *pipeline.Output, age float64) (pipeline.Output, error) {
	o, err := s.Predict(target, exact)
	o.Value[0] += last.Value[0] + age
	o.Sources = append(o.Sources, target)
	return o, err
}

func TestSourcesHonourThePlanAndSkipFailures(t *testing.T) {
	exact := map[string]*pipeline.Output{"a": exactOut(5, "a", 1), "b": exactOut(5, "b", 2), "c": exactOut(5, "c", 3)}
	exact["c"].Error = "model failed"
	names := func(m map[string]*pipeline.Output) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	all := &pipeline.Plan{Exact: []string{"a", "b", "c"}}
	if got := names(Sources(all, exact)); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("no Sources in the plan: %v, want every executed model that did not fail", got)
	}
	// b rotates in on this frame: the links measured over a alone.
	only := &pipeline.Plan{Exact: []string{"a", "b", "c"}, Sources: []string{"a", "c", "zzz"}}
	if got := names(Sources(only, exact)); !slices.Equal(got, []string{"a"}) {
		t.Errorf("Sources [a c zzz]: %v, want [a]", got)
	}
}

func TestAssembleAFrame(t *testing.T) {
	plan := &pipeline.Plan{Camera: "cam", Seq: 7, Exact: []string{"a", "b", "rot"}, Sources: []string{"a", "b"},
		Predicted: []string{"p", "tmp", "bad", "nan"}, Temporal: []string{"tmp"}, Reused: []string{"r", "never"}}
	exact := map[string]*pipeline.Output{"a": exactOut(7, "a", 1), "rot": exactOut(7, "rot", 100),
		"b": {Camera: "cam", Seq: 7, Model: "b", Source: pipeline.SourceExact, Error: "corrupt frame"}}
	last := lastOf(exactOut(4, "r", 9), exactOut(5, "tmp", 10), exactOut(6, "a", 50))
	p := temporalSum{sum{fail: map[string]error{"bad": errors.New("boom")}}}
	out := Assemble(p, plan, exact, last)

	if len(out) != 9 {
		t.Errorf("%d outputs, want all 9 models of the plan: %v", len(out), out)
	}
	if out["a"] != exact["a"] || out["b"] != exact["b"] || out["b"].Error == "" {
		t.Errorf("executed outputs must pass as given (a failure stays an error): a %+v b %+v", out["a"], out["b"])
	}
	// p: from a only (b failed, rot is not a source).
	if o := out["p"]; o.Source != pipeline.SourcePredicted || o.Value[0] != 1 || !slices.Equal(o.Sources, []string{"a"}) ||
		o.Camera != "cam" || o.Seq != 7 || o.Model != "p" || o.Error != "" {
		t.Errorf("p: %+v, want predicted 1 from [a]", o)
	}
	// tmp: temporal, last 10 at seq 5 → age 2, plus a's 1.
	if o := out["tmp"]; o.Value[0] != 13 || !slices.Equal(o.Sources, []string{"a", "tmp"}) {
		t.Errorf("tmp: %+v, want temporal 10+2+1", o)
	}
	for _, m := range []string{"bad", "nan"} {
		if o := out[m]; o.Source != pipeline.SourcePredicted || o.Error == "" || !strings.Contains(o.Error, "predict "+m) || len(o.Value) != 0 {
			t.Errorf("%s: %+v, want a predicted error output", m, o)
		}
	}
	if o := out["r"]; o.Source != pipeline.SourceReused || o.FromSeq != 4 || o.Seq != 7 || o.InferMS != 0 || o.Value[0] != 9 {
		t.Errorf("r: %+v, want reused from #4", o)
	}
	if last.Get("r").Source != pipeline.SourceExact || last.Get("r").Seq != 4 {
		t.Errorf("reuse changed the last table: %+v", last.Get("r"))
	}
	if o := out["never"]; o.Source != pipeline.SourceReused || o.Error == "" {
		t.Errorf("never: %+v, want a reused error output", o)
	}

	UpdateLast(last, plan, out)
	if last.Get("a") != exact["a"] || last.Get("rot") != exact["rot"] {
		t.Errorf("last a %+v rot %+v: the frame's exact outputs", last.Get("a"), last.Get("rot"))
	}
	if last.Get("b") != nil {
		t.Error("a failed output became the last exact one")
	}
	if last.Get("tmp").Seq != 5 || last.Get("p") != nil {
		t.Errorf("predicted outputs are not exact: tmp %+v p %+v", last.Get("tmp"), last.Get("p"))
	}
}

func TestPredictWithoutLinksOrSources(t *testing.T) {
	req := &pipeline.PredictRequest{Camera: "cam", Seq: 3, Targets: []string{"x"}, Exact: map[string]*pipeline.Output{}}
	if o := Predict(nil, req, "x"); o.Error != "no links trained yet" || o.Source != pipeline.SourcePredicted || o.Model != "x" {
		t.Errorf("no links: %+v", o)
	}
	if o := Predict(sum{}, req, "x"); o.Error != "no exact output to predict from" {
		t.Errorf("no sources: %+v", o)
	}
	// Temporal links predict from the target's last output alone.
	req.Last = map[string]*pipeline.Output{"x": exactOut(1, "x", 4)}
	if o := Predict(temporalSum{}, req, "x"); o.Error != "" || o.Value[0] != 6 {
		t.Errorf("temporal without sources: %+v, want 4+2", o)
	}
	// A last output that is not older than the frame is no temporal input.
	req.Last["x"] = exactOut(3, "x", 4)
	if o := Predict(temporalSum{}, req, "x"); o.Error == "" {
		t.Errorf("last output of the same frame: %+v, want the ensemble's error", o)
	}
}

// lossySum also reports a loss per source with the output.
type lossySum struct{ sum }

func (s lossySum) PredictWithLosses(target string, exact map[string]*pipeline.Output) (pipeline.Output, error) {
	o, err := s.Predict(target, exact)
	o.LinkLosses = map[string]float64{}
	for name, e := range exact {
		o.LinkLosses[name+">"+target] = e.Value[0] / 10
	}
	return o, err
}

// The losses of links that report them ride with the prediction when the
// plan asks (active sampling reads them from the result); temporal
// predictions carry none, nor predictions of a plan that does not ask.
func TestPredictCarriesTheLinksLosses(t *testing.T) {
	req := &pipeline.PredictRequest{Camera: "cam", Seq: 3, Targets: []string{"x"},
		Exact: map[string]*pipeline.Output{"a": exactOut(3, "a", 1), "b": exactOut(3, "b", 2)}}
	if o := Predict(lossySum{}, req, "x"); o.Error != "" || o.Value[0] != 3 || o.LinkLosses != nil {
		t.Errorf("not asked for losses: %+v", o)
	}
	req.Losses = true
	o := Predict(lossySum{}, req, "x")
	if o.Error != "" || o.Value[0] != 3 || len(o.LinkLosses) != 2 || o.LinkLosses["a>x"] != 0.1 || o.LinkLosses["b>x"] != 0.2 {
		t.Errorf("with losses: %+v", o)
	}
	if o := Predict(sum{}, req, "x"); o.LinkLosses != nil {
		t.Errorf("links without losses: %+v", o)
	}
}

func TestRequest(t *testing.T) {
	if r := Request(&pipeline.Plan{Exact: []string{"a"}}, nil, nil); r != nil {
		t.Errorf("nothing predicted: %+v", r)
	}
	plan := &pipeline.Plan{Camera: "cam", Seq: 9, Exact: []string{"a", "b"}, Predicted: []string{"x", "y"}, Temporal: []string{"y", "z"}}
	outs := map[string]*pipeline.Output{"a": exactOut(9, "a", 1)}
	if Executed(plan, outs) {
		t.Error("b has not answered")
	}
	outs["b"] = exactOut(9, "b", 2)
	if !Executed(plan, outs) {
		t.Error("every executed model answered")
	}
	last := lastOf(exactOut(2, "x", 1), exactOut(3, "y", 1))
	r := Request(plan, outs, last)
	if r.Camera != "cam" || r.Seq != 9 || !slices.Equal(r.Targets, []string{"x", "y"}) || len(r.Exact) != 2 {
		t.Errorf("request %+v", r)
	}
	// Only temporal targets carry their last output.
	if len(r.Last) != 1 || r.Last["y"] != last.Get("y") {
		t.Errorf("last %+v, want y's only", r.Last)
	}
}

func TestReuseAllKeepsThePolicysSlices(t *testing.T) {
	models := make([]string, 2, 8) // spare capacity an append would write into
	copy(models, []string{"a", "b"})
	plan := pipeline.Plan{Exact: models, Predicted: []string{"c"}, Reused: []string{"d"}}
	ReuseAll(&plan)
	if plan.Exact != nil || plan.Predicted != nil || !slices.Equal(plan.Reused, []string{"a", "b", "c", "d"}) {
		t.Fatalf("plan %+v", plan)
	}
	if !slices.Equal(models[:cap(models)][:3], []string{"a", "b", ""}) {
		t.Fatalf("the policy's slice was written to: %v", models[:3])
	}
}

// lastOf is a table holding outs as the latest exact outputs.
func lastOf(outs ...*pipeline.Output) *Last {
	l := NewLast()
	for _, o := range outs {
		l.Set(o.Model, o)
	}
	return l
}
