package links

import (
	"math/rand"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

func countOut(name string, n float64) *pipeline.Output {
	return &pipeline.Output{Model: name, Kind: pipeline.KindVector, Type: pipeline.TypeCount, Value: []float64{n}, Source: pipeline.SourceExact}
}

func classOut(name string, classes []string, k int) *pipeline.Output {
	v := make([]float64, len(classes))
	v[k] = 1
	return &pipeline.Output{Model: name, Kind: pipeline.KindVector, Type: pipeline.TypeClass, Value: v, Label: classes[k], Source: pipeline.SourceExact}
}

func boxesOut(name string, typ pipeline.OutputType, boxes []pipeline.Box) *pipeline.Output {
	return &pipeline.Output{Model: name, Kind: pipeline.KindSequence, Type: typ, Value: []float64{float64(len(boxes))}, Boxes: boxes, Source: pipeline.SourceExact}
}

// makeTrace builds a one-camera trace of n frames at 10 fps.
func makeTrace(models []TraceModel, n int, gen func(i int) map[string]*pipeline.Output) (TraceHeader, []*TraceRecord) {
	h := TraceHeader{Format: traceFormat, Version: TraceVersion, Models: models, Cameras: []string{"cam"}, FPS: 10}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]*TraceRecord, n)
	for i := range recs {
		recs[i] = &TraceRecord{Camera: "cam", Seq: uint64(i + 1), Time: base.Add(time.Duration(i) * 100 * time.Millisecond), Outputs: gen(i)}
	}
	return h, recs
}

// person is a box at one of a few fixed places (a walkway seen by a fixed camera).
func person(slot int, rng *rand.Rand, jitter float32) pipeline.Box {
	x := 0.08 + 0.17*float32(slot)
	y := 0.3 + 0.1*float32(slot%2)
	j := func() float32 { return (rng.Float32()*2 - 1) * jitter }
	return pipeline.Box{X1: x + j(), Y1: y + j(), X2: x + 0.1 + j(), Y2: y + 0.3 + j(), Score: 1 + rng.Float32(), Class: "person"}
}

// randomPeople returns k distinct people among 5 places, in random order.
func randomPeople(k int, rng *rand.Rand, jitter float32) []pipeline.Box {
	perm := rng.Perm(5)
	out := make([]pipeline.Box, 0, k)
	for _, s := range perm[:k] {
		out = append(out, person(s, rng, jitter))
	}
	return out
}

// quickOptions are fast training options for synthetic tests.
func quickOptions() TrainOptions {
	return TrainOptions{Epochs: 60, Seed: 1, NoTemporal: true, Dropout: -1}
}

func mustTrain(t testing.TB, h TraceHeader, recs []*TraceRecord, o TrainOptions) *Set {
	t.Helper()
	s, err := Train(h, recs, o)
	if err != nil {
		t.Fatalf("Train: %v", err)
	}
	return s
}

func pair(t testing.TB, ev *Evaluation, src, tgt string) PairAccuracy {
	t.Helper()
	p, ok := ev.Pair(src, tgt)
	if !ok {
		t.Fatalf("no evaluation of the link %s -> %s", src, tgt)
	}
	return p
}

func constant(t testing.TB, ev *Evaluation, tgt string) Score {
	t.Helper()
	b, ok := ev.Baseline(tgt, "constant", 0)
	if !ok {
		t.Fatalf("no constant baseline for %s", tgt)
	}
	return b
}
