package links

import (
	"math/rand"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

var mtlLevels = []string{"none", "low", "high"}

var mtlModels = []TraceModel{
	{Name: "people", Type: pipeline.TypeBoxes, Classes: []string{"person"}},
	{Name: "crowd", Type: pipeline.TypeClass, Classes: mtlLevels},
}

// mtlFrames makes n synthetic frames: 4 regions of 8 "pixels" each, lit
// (bright) or not, plus 16 pixels of noise. With signal, the people
// detector sees one person per lit region (at the region's place) and the
// crowd class is none/low/high by how many are lit; without, both are
// drawn independently of the pixels.
func mtlFrames(n int, signal bool, rng *rand.Rand) []MTLSample {
	out := make([]MTLSample, n)
	for i := range out {
		f := make([]float64, 4*8+16)
		var lit []int
		for r := range 4 {
			level := 0.2
			if rng.Intn(2) == 0 {
				level = 0.8
				lit = append(lit, r)
			}
			for k := range 8 {
				f[r*8+k] = level + rng.NormFloat64()*0.1
			}
		}
		for k := 32; k < len(f); k++ {
			f[k] = rng.Float64()
		}
		if !signal {
			lit = lit[:0]
			for r := range 4 {
				if rng.Intn(2) == 0 {
					lit = append(lit, r)
				}
			}
		}
		var boxes []pipeline.Box
		for _, r := range lit {
			boxes = append(boxes, person(r, rng, 0.01))
		}
		level := 0
		switch {
		case len(lit) >= 3:
			level = 2
		case len(lit) >= 1:
			level = 1
		}
		out[i] = MTLSample{Features: f, Outputs: map[string]*pipeline.Output{
			"people": boxesOut("people", pipeline.TypeBoxes, boxes),
			"crowd":  classOut("crowd", mtlLevels, level),
		}}
	}
	return out
}

// mtlScores are held-out accuracies: people's count (strict) and boxes
// (matched IoU), crowd's class; and the count accuracy of the most
// frequent training count (the constant baseline).
type mtlScores struct{ count, boxes, class, constCount float64 }

func scoreMTL(t *testing.T, train, test []MTLSample) mtlScores {
	t.Helper()
	net, err := TrainMTL(mtlModels, train, MTLOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	freq := map[int]int{}
	for _, s := range train {
		freq[len(s.Outputs["people"].Boxes)]++
	}
	mode := 0
	for c, k := range freq {
		if k > freq[mode] || (k == freq[mode] && c < mode) {
			mode = c
		}
	}
	var s mtlScores
	for _, f := range test {
		p, err := net.Predict("people", f.Features)
		if err != nil {
			t.Fatal(err)
		}
		exact := f.Outputs["people"]
		s.count += CountAccuracy(p.Value[0], exact.Value[0])
		s.boxes += Accuracy(pipeline.TypeBoxes, &p, exact)
		s.constCount += CountAccuracy(float64(mode), exact.Value[0])
		c, err := net.Predict("crowd", f.Features)
		if err != nil {
			t.Fatal(err)
		}
		if c.Label == "" {
			t.Fatalf("crowd predicted without a label: %+v", c)
		}
		s.class += Accuracy(pipeline.TypeClass, &c, f.Outputs["crowd"])
	}
	n := float64(len(test))
	s.count, s.boxes, s.class, s.constCount = s.count/n, s.boxes/n, s.class/n, s.constCount/n
	return s
}

func TestMTLLearnsFromFrames(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	s := scoreMTL(t, mtlFrames(120, true, rng), mtlFrames(200, true, rng))
	t.Logf("signal: count %.2f boxes %.2f class %.2f (constant count %.2f)", s.count, s.boxes, s.class, s.constCount)
	if s.count < 0.85 || s.class < 0.85 {
		t.Errorf("count accuracy %.2f, class %.2f: want ≥ 0.85 when the pixels determine them", s.count, s.class)
	}
	if s.count < s.constCount+0.4 {
		t.Errorf("count accuracy %.2f is not far above the constant baseline's %.2f", s.count, s.constCount)
	}
	if s.boxes < 0.6 {
		t.Errorf("boxes matched IoU %.2f: want ≥ 0.6 (one person per lit region, at its place)", s.boxes)
	}
}

func TestMTLDoesNotLearnNoise(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	s := scoreMTL(t, mtlFrames(120, false, rng), mtlFrames(200, false, rng))
	t.Logf("noise: count %.2f boxes %.2f class %.2f (constant count %.2f)", s.count, s.boxes, s.class, s.constCount)
	if s.count > s.constCount+0.1 {
		t.Errorf("count accuracy %.2f on targets independent of the pixels: above the constant baseline's %.2f", s.count, s.constCount)
	}
	// crowd is low (1 or 2 of 4 lit) with probability 10/16 whatever the
	// pixels: the majority class's share.
	if s.class > 10.0/16+0.1 {
		t.Errorf("class accuracy %.2f on noise: above the majority class's share", s.class)
	}
}

func TestMTLRejectsBadInput(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	train := mtlFrames(20, true, rng)
	net, err := TrainMTL(mtlModels, train, MTLOptions{Epochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := net.Predict("people", []float64{1, 2}); err == nil {
		t.Error("predicting from 2 features of a network over 48: no error")
	}
	if _, err := net.Predict("cars", train[0].Features); err == nil {
		t.Error("predicting an unknown model: no error")
	}
	train[3].Features = train[3].Features[:10]
	if _, err := TrainMTL(mtlModels, train, MTLOptions{Epochs: 2}); err == nil {
		t.Error("training on frames with features of different lengths: no error")
	}
}

// BenchmarkMTLPredict is the network's own cost per predicted model on a
// frame of the bench's size (16×12 grey and its change: 384 features),
// which the bench does not charge: it is far below any model's.
func BenchmarkMTLPredict(b *testing.B) {
	rng := rand.New(rand.NewSource(5))
	samples := mtlFrames(40, true, rng)
	for i := range samples {
		f := make([]float64, 384)
		copy(f, samples[i].Features)
		samples[i].Features = f
	}
	net, err := TrainMTL(mtlModels, samples, MTLOptions{Epochs: 2})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := net.Predict("people", samples[0].Features); err != nil {
			b.Fatal(err)
		}
	}
}
