package scheduler

import (
	"math/rand"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

// drlsScene is a hand-made instance where one model's output tells whether
// another's is worth running: a scene's person count walks at random;
// "cheap" (1 ms) and "dear" (10 ms) both count it, and "still" (5 ms)
// never changes. Under a mean budget of 3 ms/frame the right order is
// cheap on every frame, dear only once cheap has seen the count change
// since dear last ran, still never past the bootstrap.
type drlsScene struct {
	counts []float64
}

var drlsSceneCosts = map[string]Cost{"cheap": {MS: 1}, "dear": {MS: 10}, "still": {MS: 5}}

func newDRLSScene(frames int, seed int64) drlsScene {
	rng := rand.New(rand.NewSource(seed))
	counts := make([]float64, frames)
	n := 3.0
	for i := range counts {
		if rng.Float64() < 0.08 {
			if n > 0 && rng.Intn(2) == 0 {
				n--
			} else {
				n++
			}
		}
		counts[i] = n
	}
	return drlsScene{counts: counts}
}

func (s drlsScene) output(model string, frame int) *pipeline.Output {
	v := s.counts[frame]
	if model == "still" {
		v = 1
	}
	return &pipeline.Output{Model: model, Type: pipeline.TypeCount, Value: []float64{v},
		Source: pipeline.SourceExact, InferMS: drlsSceneCosts[model].MS}
}

// runDRLSScene runs policy over the scene, every model answering exactly
// what it ran on and reusing its last output otherwise, and returns the
// mean strict accuracy over every model on the frames not profiled, and
// the mean cost per frame over all.
func runDRLSScene(t *testing.T, policy PolicyName, scene drlsScene, seed int64) (accuracy, msPerFrame float64) {
	t.Helper()
	models := []string{"cheap", "dear", "still"}
	c, err := NewController(ControllerConfig{
		Policy: policy, Models: models, Budget: Budget{MS: 3},
		Period: time.Hour, ProfileShare: 0.01, BootstrapFrames: 200, HoldOut: 0.3,
		HealthTimeout: time.Duration(1<<62 - 1), Synchronous: true, Seed: seed,
	}, nil, NewCostModel(drlsSceneCosts), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(0, 0)
	last := map[string]*pipeline.Output{}
	var sum, spent float64
	scored := 0
	for i := range scene.counts {
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		plan := c.Plan(FrameInfo{Camera: "cam", Seq: uint64(i + 1), CapturedAt: at})
		plan.CapturedAt = at
		r := &pipeline.Result{Camera: "cam", Seq: uint64(i + 1), CapturedAt: at, Plan: plan, Outputs: map[string]*pipeline.Output{}}
		for _, m := range plan.Exact {
			o := scene.output(m, i)
			r.Outputs[m], last[m] = o, o
			spent += o.InferMS
		}
		if !plan.Profiling {
			for _, m := range models {
				exact := scene.output(m, i)
				if served := last[m]; served != nil {
					sum += links.Accuracy(pipeline.TypeCount, served, exact)
				}
				scored++
			}
		}
		c.ObserveResult(r)
	}
	return sum / float64(scored), spent / float64(len(scene.counts))
}

// The learned order runs dear when cheap's output says the scene changed:
// it beats a random order and frame skipping per model at the same cost,
// on scenes other than the one it was trained on (each run learns on its
// own bootstrap).
func TestDRLSLearnsWhichOutputMakesAModelWorthRunning(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		scene := newDRLSScene(2000, seed)
		learned, ms := runDRLSScene(t, PolicyDRLS, scene, seed)
		if ms > 3+1e-9 {
			t.Fatalf("scene %d: drls spent %.3f ms/frame over the 3 ms budget", seed, ms)
		}
		random, rms := runDRLSScene(t, PolicyDRLSRandom, scene, seed)
		skipped, sms := runDRLSScene(t, PolicySkipPerModel, scene, seed)
		t.Logf("scene %d: drls %.3f (%.2f ms), random %.3f (%.2f ms), skip-per-model %.3f (%.2f ms)", seed, learned, ms, random, rms, skipped, sms)
		if rms > 3+1e-9 || sms > 3+1e-9 {
			t.Fatalf("scene %d: a baseline over budget: random %.3f, skip-per-model %.3f ms/frame", seed, rms, sms)
		}
		if learned < random+0.02 || learned < skipped+0.01 {
			t.Errorf("scene %d: drls %.3f does not beat a random order %.3f and skipping %.3f at the same budget", seed, learned, random, skipped)
		}
	}
}

// The value regression on the scene's profiled frames weighs cheap's
// change positively for dear, and gives still no value.
func TestDRLSValueWeighsTheInformativeOutput(t *testing.T) {
	scene := newDRLSScene(400, 7)
	models := []string{"cheap", "dear", "still"}
	var seq []drlsFrame
	for i := 0; i < len(scene.counts); i += 3 {
		f := drlsFrame{index: int64(i), out: map[string]*pipeline.Output{}}
		for _, m := range models {
			f.out[m] = scene.output(m, i)
		}
		seq = append(seq, f)
	}
	v := fitDRLS(models, [][]drlsFrame{seq})
	now := map[string]*pipeline.Output{"cheap": scene.output("cheap", 0), "still": scene.output("still", 0)}
	moved := map[string]*pipeline.Output{"cheap": &pipeline.Output{Type: pipeline.TypeCount, Value: []float64{99}}, "still": now["still"]}
	quiet := v.predict("dear", drlsFeatures("dear", 3, models, now, now))
	changed := v.predict("dear", drlsFeatures("dear", 3, models, now, moved))
	if changed < quiet+0.3 {
		t.Errorf("dear's value: %.3f after cheap's output changed, %.3f when it did not: want the change to count", changed, quiet)
	}
	if still := v.predict("still", drlsFeatures("still", 30, models, now, moved)); still > 0.01 {
		t.Errorf("still's value %.3f: its output never changes", still)
	}
}
