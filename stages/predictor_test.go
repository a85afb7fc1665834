package stages

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// doubler predicts a target's count as twice the first source's count.
type doubler struct{ factor float64 }

func (d doubler) Predict(target string, exact map[string]*pipeline.Output) (pipeline.Output, error) {
	for _, o := range exact {
		return pipeline.Output{Kind: pipeline.KindVector, Type: pipeline.TypeCount, Value: []float64{d.factor * o.Value[0]}, Sources: []string{o.Model}, Confidence: 0.9}, nil
	}
	return pipeline.Output{}, errors.New("no source")
}

// startMergerAndPredictor runs a merger and a link predictor on a fresh
// bus until the test ends; nc publishes, sink collects the results.
func startMergerAndPredictor(t *testing.T) (nc *nats.Conn, sink *resultSink, lp *LinkPredictor) {
	t.Helper()
	srv := startBus(t)
	nc = connect(t, srv)
	sink = collectResults(t, nc)
	m := NewMerger(connect(t, srv), pipeline.MergerConfig{Deadline: 5 * time.Second, MaxPending: 100}, zerolog.Nop())
	lp = NewLinkPredictor(connect(t, srv), zerolog.Nop())
	ctx, cancel := contextWithCancel()
	t.Cleanup(cancel)
	go m.Run(ctx)
	go lp.Run(ctx)
	<-m.Ready()
	<-lp.Ready()
	return nc, sink, lp
}

func TestMergerAndPredictorCompletePredictedFrames(t *testing.T) {
	nc, sink, lp := startMergerAndPredictor(t)

	send := func(seq uint64, count float64) {
		p := &pipeline.Plan{Camera: "cam", Seq: seq, Policy: "mlink", Exact: []string{"a"}, Predicted: []string{"b", "c"}, CapturedAt: time.Now(), Token: testToken("cam", seq)}
		d, _ := pipeline.Marshal(p)
		nc.Publish(pipeline.DefaultSubjects.Plan("cam"), d)
		o := output("cam", seq, "a", count)
		d, _ = pipeline.Marshal(o)
		nc.Publish(pipeline.DefaultSubjects.Outputs("cam", "a"), d)
	}
	// No links yet: predicted outputs carry an error, the frame still completes.
	send(1, 3)
	waitFor(t, 5*time.Second, "result 1", func() bool { return len(sink.get()) == 1 })
	r := sink.get()[0]
	if r.Partial || r.Outputs["b"] == nil || r.Outputs["b"].Error == "" {
		t.Fatalf("without links: %+v", r.Outputs["b"])
	}
	lp.SetPredictor(doubler{2})
	send(2, 3)
	waitFor(t, 5*time.Second, "result 2", func() bool { return len(sink.get()) == 2 })
	lp.SetPredictor(doubler{3}) // hot swap
	send(3, 3)
	waitFor(t, 5*time.Second, "results 2 and 3", func() bool { return len(sink.get()) == 3 })
	for i, want := range map[int]float64{1: 6, 2: 9} {
		r := sink.get()[i]
		for _, target := range []string{"b", "c"} {
			o := r.Outputs[target]
			if o == nil || o.Source != pipeline.SourcePredicted || o.Value[0] != want || o.Sources[0] != "a" {
				t.Fatalf("frame %d %s: %+v, want predicted %v from a", r.Seq, target, o, want)
			}
		}
		if r.Outputs["a"].Source != pipeline.SourceExact || r.Partial {
			t.Fatalf("frame %d: %+v", r.Seq, r)
		}
	}
	if lp.Stats().Predictions.Load() != 4 || lp.Stats().Errors.Load() != 2 {
		t.Errorf("predictions %d errors %d, want 4 and 2", lp.Stats().Predictions.Load(), lp.Stats().Errors.Load())
	}
}

// temporalDoubler also predicts temporally: the target's last exact value
// plus the age.
type temporalDoubler struct{ doubler }

func (temporalDoubler) PredictTemporal(target string, exact map[string]*pipeline.Output, last *pipeline.Output, age float64) (pipeline.Output, error) {
	return pipeline.Output{Kind: pipeline.KindVector, Type: pipeline.TypeCount, Value: []float64{last.Value[0] + age}, Sources: []string{target}}, nil
}

// A plan's temporal targets are predicted from their own last exact output:
// the merger sends it, the predictor uses the temporal links.
func TestTemporalTargetsGetTheirLastExactOutput(t *testing.T) {
	nc, sink, lp := startMergerAndPredictor(t)
	lp.SetPredictor(temporalDoubler{doubler{2}})
	plan := func(p *pipeline.Plan) {
		d, _ := pipeline.Marshal(p)
		nc.Publish(pipeline.DefaultSubjects.Plan(p.Camera), d)
	}
	out := func(o *pipeline.Output) {
		d, _ := pipeline.Marshal(o)
		nc.Publish(pipeline.DefaultSubjects.Outputs(o.Camera, o.Model), d)
	}
	// Frame 1: b runs (exact 10). Frames 2 and 4: b is temporal.
	plan(&pipeline.Plan{Camera: "cam", Seq: 1, Exact: []string{"a", "b"}, CapturedAt: time.Now(), Token: testToken("cam", 1)})
	out(output("cam", 1, "a", 1))
	out(output("cam", 1, "b", 10))
	waitFor(t, 5*time.Second, "result 1", func() bool { return len(sink.get()) == 1 })
	for _, seq := range []uint64{2, 4} {
		plan(&pipeline.Plan{Camera: "cam", Seq: seq, Exact: []string{"a"}, Predicted: []string{"b", "c"}, Temporal: []string{"b"}, CapturedAt: time.Now(), Token: testToken("cam", seq)})
		out(output("cam", seq, "a", 1))
	}
	// Seq 3 never comes: its gap record comes before 4.
	waitFor(t, 5*time.Second, "results 2, 3 (a gap record) and 4", func() bool { return len(sink.get()) == 4 })
	if g := sink.get()[2]; g.Seq != 3 || !g.Partial || g.Reason != pipeline.PartialLost || len(g.Outputs) != 0 {
		t.Fatalf("result #3: %+v, want a gap record", g)
	}
	for i, want := range map[int]float64{1: 11, 3: 13} { // 10 + age 1, 10 + age 3
		r := sink.get()[i]
		if o := r.Outputs["b"]; o == nil || o.Source != pipeline.SourcePredicted || o.Value[0] != want {
			t.Fatalf("#%d b: %+v, want temporal %v", r.Seq, o, want)
		}
		if o := r.Outputs["c"]; o == nil || o.Value[0] != 2 { // not temporal: the ensemble
			t.Fatalf("#%d c: %+v, want 2", r.Seq, o)
		}
	}
}
