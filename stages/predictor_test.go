package stages

import (
	"errors"
	"testing"
	"time"

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

func TestMergerAndPredictorCompletePredictedFrames(t *testing.T) {
	srv := startBus(t)
	nc := connect(t, srv)
	sink := collectResults(t, nc)
	m := NewMerger(connect(t, srv), pipeline.MergerConfig{Deadline: 5 * time.Second, MaxPending: 100}, zerolog.Nop())
	lp := NewLinkPredictor(connect(t, srv), zerolog.Nop())
	ctx, cancel := contextWithCancel()
	defer cancel()
	go m.Run(ctx)
	go lp.Run(ctx)
	<-m.Ready()
	<-lp.Ready()

	send := func(seq uint64, count float64) {
		p := &pipeline.Plan{Camera: "cam", Seq: seq, Policy: "mlink", Exact: []string{"a"}, Predicted: []string{"b", "c"}, CapturedAt: time.Now()}
		d, _ := pipeline.Marshal(p)
		nc.Publish(pipeline.PlanSubject("cam"), d)
		o := output("cam", seq, "a", count)
		d, _ = pipeline.Marshal(o)
		nc.Publish(pipeline.OutputsSubject("cam", "a"), d)
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
