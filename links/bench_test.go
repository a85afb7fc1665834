package links

import (
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// benchSet trains (briefly: the cost of a prediction does not depend on
// the weights) a two-model set and returns it with a typical source output.
func benchSet(b testing.TB, src, tgt TraceModel, o TrainOptions) (*Set, map[string]*pipeline.Output) {
	rng := rand.New(rand.NewSource(1))
	gen := func(m TraceModel) *pipeline.Output {
		switch m.Type {
		case pipeline.TypeCount:
			return countOut(m.Name, float64(rng.Intn(8)))
		case pipeline.TypeClass:
			return classOut(m.Name, m.Classes, rng.Intn(len(m.Classes)))
		case pipeline.TypeLines:
			var lines []pipeline.Box
			for i := 0; i < 40+rng.Intn(10); i++ { // M-LSD gives 40–50 segments on vtest
				x, y := rng.Float32(), rng.Float32()
				lines = append(lines, pipeline.Box{X1: x, Y1: y, X2: x + 0.1, Y2: y + 0.05, Score: rng.Float32()})
			}
			return boxesOut(m.Name, m.Type, lines)
		}
		return boxesOut(m.Name, m.Type, randomPeople(1+rng.Intn(5), rng, 0.02)) // 1–5 people, as on vtest
	}
	h, recs := makeTrace([]TraceModel{src, tgt}, 40, func(int) map[string]*pipeline.Output {
		return map[string]*pipeline.Output{src.Name: gen(src), tgt.Name: gen(tgt)}
	})
	o.Epochs, o.Seed = 1, 1
	s, err := Train(h, recs, o)
	if err != nil {
		b.Fatal(err)
	}
	return s, map[string]*pipeline.Output{src.Name: gen(src)}
}

var (
	mCount  = TraceModel{Name: "count", Type: pipeline.TypeCount}
	mCount2 = TraceModel{Name: "count2", Type: pipeline.TypeCount}
	mClass  = TraceModel{Name: "motion", Type: pipeline.TypeClass, Classes: []string{"none", "low", "medium", "high"}}
	mBoxes  = TraceModel{Name: "people", Type: pipeline.TypeBoxes, Classes: []string{"person"}}
	mBoxes2 = TraceModel{Name: "bodies", Type: pipeline.TypeBoxes, Classes: []string{"person"}}
	mLines  = TraceModel{Name: "lines", Type: pipeline.TypeLines}
)

func benchPredict(b *testing.B, src, tgt TraceModel, o TrainOptions) {
	s, exact := benchSet(b, src, tgt, o)
	if _, err := s.Predict(tgt.Name, exact); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Predict(tgt.Name, exact); err != nil {
			b.Fatal(err)
		}
	}
}

// Vec→vec: a count predicting a count (MLP, 1 → 2 → 1) and a class.
func BenchmarkPredictVec2Vec(b *testing.B)      { benchPredict(b, mCount, mCount2, TrainOptions{}) }
func BenchmarkPredictVec2VecClass(b *testing.B) { benchPredict(b, mCount, mClass, TrainOptions{}) }

// Seq→vec: 1–5 boxes (GRU encoder) predicting a count.
func BenchmarkPredictSeq2Vec(b *testing.B) { benchPredict(b, mBoxes, mCount, TrainOptions{}) }

// Seq→vec from ~45 line segments (the longest sequences on vtest).
func BenchmarkPredictSeq2VecLines(b *testing.B) { benchPredict(b, mLines, mCount, TrainOptions{}) }

// Vec→seq: a count predicting boxes (set decoder).
func BenchmarkPredictVec2Seq(b *testing.B) { benchPredict(b, mCount, mBoxes, TrainOptions{}) }

// Seq→seq: boxes predicting boxes, with the set decoder and the attention decoder.
func BenchmarkPredictSeq2Seq(b *testing.B) { benchPredict(b, mBoxes, mBoxes2, TrainOptions{}) }
func BenchmarkPredictSeq2SeqAttention(b *testing.B) {
	benchPredict(b, mBoxes, mBoxes2, TrainOptions{SeqDecoder: DecoderAttention})
}

// Seq→seq: ~45 segments predicting ~45 segments, the worst case on vtest.
func BenchmarkPredictSeq2SeqLines(b *testing.B) { benchPredict(b, mLines, mLines2, TrainOptions{}) }
func BenchmarkPredictSeq2SeqLinesAttention(b *testing.B) {
	benchPredict(b, mLines, mLines2, TrainOptions{SeqDecoder: DecoderAttention})
}

var mLines2 = TraceModel{Name: "lines2", Type: pipeline.TypeLines}

// BenchmarkPredictTemporal: a temporal count prediction from a source and
// the target's last output.
func BenchmarkPredictTemporal(b *testing.B) {
	s, exact := benchSet(b, mCount, mCount2, TrainOptions{})
	last := countOut(mCount2.Name, 3)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.PredictTemporal(mCount2.Name, exact, last, 2); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPredictEnsembleVtest: hog_people's ensemble over all 7 other
// models of the real vtest trace (7 links, 6 of them with a GRU encoder).
func BenchmarkPredictEnsembleVtest(b *testing.B) {
	h, recs, err := ReadTrace(vtestTrace)
	if err != nil {
		b.Fatal(err)
	}
	s, err := Train(h, recs[:40], TrainOptions{Epochs: 1, NoTemporal: true})
	if err != nil {
		b.Fatal(err)
	}
	exact := without(recs[100].Outputs, "hog_people")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Predict("hog_people", exact); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPredictVec2VecIsCheap guards the hot path: a vec→vec prediction
// must cost well under 1 % of the cheapest model (~5 ms on these
// machines), i.e. far below 50 µs, even on a loaded machine (median of
// 2000 calls).
func TestPredictVec2VecIsCheap(t *testing.T) {
	s, exact := benchSet(t, mCount, mCount2, TrainOptions{})
	d := make([]time.Duration, 2000)
	for i := range d {
		start := time.Now()
		if _, err := s.Predict(mCount2.Name, exact); err != nil {
			t.Fatal(err)
		}
		d[i] = time.Since(start)
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	t.Logf("vec→vec predict: median %v, p99 %v", d[len(d)/2], d[len(d)*99/100])
	if d[len(d)/2] > 50*time.Microsecond {
		t.Errorf("median vec→vec prediction %v, want well under 50µs", d[len(d)/2])
	}
}

// BenchmarkTrainVec2VecLink: one vec→vec link with the published defaults
// (80 frames, the first 10 % of vtest; 100 epochs, batch 32). The set has
// two models: two links and two ensembles per op.
func BenchmarkTrainVec2VecLink(b *testing.B) {
	h, recs := countPairTrace(80, 1, func(_ *rand.Rand, x int) int { return x })
	for i := 0; i < b.N; i++ {
		if _, err := Train(h, recs, TrainOptions{Seed: 1, NoTemporal: true, Workers: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTrainVtest trains every link of the real trace on its first
// 10 % (what `mlink links train` does): 56 pure links, 64 temporal links
// and 16 ensembles.
func BenchmarkTrainVtest(b *testing.B) {
	h, recs, err := ReadTrace(vtestTrace)
	if err != nil {
		b.Fatal(err)
	}
	train, _ := SplitByTime(recs, 0.1)
	for i := 0; i < b.N; i++ {
		if _, err := Train(h, train, TrainOptions{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
