package links

import (
	"slices"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

const zooTrace = "../testdata/traces/vtest-zoo.trace.gz"

// baseline finds a measured baseline (source and gain for follow).
func baseline(t *testing.T, ev *Evaluation, target, kind, source string, gain float64, age int) float64 {
	t.Helper()
	for _, b := range ev.Baselines {
		if b.Target == target && b.Baseline == kind && b.Source == source && b.Gain == gain && b.Age == age {
			return b.Accuracy
		}
	}
	t.Fatalf("no %s baseline of %s (source %q, gain %g) at age %d", kind, target, source, gain, age)
	return 0
}

// On the zoo trace the cheap HOG sees the people the full HOG sees, at a
// coarser scale: moving HOG's last boxes along the cheap HOG's motion (a
// delta link) beats reusing them, and beats carrying them along their own
// motion (the tracker), which itself beats reuse. Measured on held-out
// frames: 0.43 reuse, 0.57 track, 0.63 follow at age 5 (seqs, 10 fps).
func TestZooDeltaLinkBeatsReuseAndTracker(t *testing.T) {
	h, recs, err := ReadTrace(zooTrace)
	if err != nil {
		t.Fatal(err)
	}
	keep := []string{"hog_people", "hog_people_960", "motion_blobs"}
	h.Models = slices.DeleteFunc(h.Models, func(m TraceModel) bool { return !slices.Contains(keep, m.Name) })
	train, eval := SplitByTime(recs, 0.1)
	s := mustTrain(t, h, train, TrainOptions{Epochs: 5, Seed: 1, NoTemporal: true})
	ev := s.Evaluate(eval)
	for _, age := range []int{2, 5} {
		reuse := baseline(t, ev, "hog_people", BaselineReuse, "", 0, age)
		track := baseline(t, ev, "hog_people", BaselineTrack, "", 0, age)
		follow := baseline(t, ev, "hog_people", BaselineFollow, "hog_people_960", 1, age)
		t.Logf("age %d: reuse %.3f track %.3f follow %.3f", age, reuse, track, follow)
		if follow < reuse+0.08 || follow < track+0.02 || track < reuse+0.03 {
			t.Errorf("age %d: reuse %.3f track %.3f follow %.3f: want follow ≥ reuse+0.08 and ≥ track+0.02, track ≥ reuse+0.03",
				age, reuse, track, follow)
		}
	}
	// A count is no detector: no motion baselines.
	for _, b := range ev.Baselines {
		if b.Target == "motion_blobs" && (b.Baseline == BaselineTrack || b.Baseline == BaselineFollow) {
			t.Fatalf("motion baseline for a count: %+v", b)
		}
	}
}

// A delta link whose source does not move equals reuse: on a static
// target and source, follow scores exactly what reuse does.
func TestDeltaLinkOnAStaticSceneEqualsReuse(t *testing.T) {
	still := []pipeline.Box{{X1: 0.1, Y1: 0.1, X2: 0.2, Y2: 0.3, Class: "person"}, {X1: 0.5, Y1: 0.5, X2: 0.6, Y2: 0.7, Class: "person"}}
	models := []TraceModel{{Name: "big", Type: pipeline.TypeBoxes}, {Name: "small", Type: pipeline.TypeBoxes}}
	h, recs := makeTrace(models, 60, func(i int) map[string]*pipeline.Output {
		n := 1 + i%2 // the count flickers, the boxes do not move
		return map[string]*pipeline.Output{
			"big":   boxesOut("big", pipeline.TypeBoxes, still[:n]),
			"small": boxesOut("small", pipeline.TypeBoxes, still),
		}
	})
	s := mustTrain(t, h, recs[:30], quickOptions())
	ev := s.Evaluate(recs[30:])
	for _, age := range []int{1, 2, 5} {
		reuse := baseline(t, ev, "big", BaselineReuse, "", 0, age)
		for _, g := range FollowGains {
			if f := baseline(t, ev, "big", BaselineFollow, "small", g, age); f != reuse {
				t.Errorf("age %d gain %g: follow %.4f, reuse %.4f: a static source must change nothing", age, g, f, reuse)
			}
		}
	}
}
