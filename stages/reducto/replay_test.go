package reducto

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// Threshold selection on the committed trace: the bootstrap segments of
// vtest.avi (5 × 50 frames at 10 fps) are profiled with every model's exact
// outputs, and the threshold chosen for each keeps the target accuracy
// when replayed independently on the real frames.
func TestSimulateVtestProfiledSegmentsMeetTarget(t *testing.T) {
	outputs := traceOutputs(t)
	const target = 0.9
	sim, err := SimulateVideo(vtestPath, outputs[:300], SimulateOptions{
		Filter: FilterOptions{Feature: FeatureArea, Selector: SelectorOptions{Target: target}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sim.Frames) != 300 || len(sim.Profiles) != 5 {
		t.Fatalf("%d frames and %d profiles, want 300 and 5", len(sim.Frames), len(sim.Profiles))
	}
	f := newFeature(t, FeatureArea)
	for _, p := range sim.Profiles {
		start := int(p.Segment) * 50
		prep := make([]*Prepared, 50)
		for i := range prep {
			if prep[i], err = f.Prepare(frame(t, start+i)); err != nil {
				t.Fatal(err)
			}
			defer prep[i].Close()
		}
		// Independent exact replay: diff to the last sent frame.
		acc, sent, last := 1.0, 1, 0
		for i := 1; i < 50; i++ {
			d, err := f.Diff(prep[last], prep[i])
			if err != nil {
				t.Fatal(err)
			}
			if d > p.Threshold {
				last = i
				acc++
				sent++
				continue
			}
			acc += GradedAccuracy(outputs[start+last], outputs[start+i])
		}
		acc /= 50
		t.Logf("segment %d: threshold %.4f accuracy %.3f sent %d/50", p.Segment, p.Threshold, acc, sent)
		if math.Abs(acc-p.Accuracy) > 1e-9 {
			t.Errorf("segment %d: profile says accuracy %g, independent replay %g", p.Segment, p.Accuracy, acc)
		}
		if p.Threshold > 0 && acc < target {
			t.Errorf("segment %d: accuracy %g at threshold %g, below the target %g", p.Segment, acc, p.Threshold, target)
		}
		if sent == 50 {
			t.Errorf("segment %d: the chosen threshold filters nothing", p.Segment)
		}
	}
	// Segment 5 is filtered by the k-NN's threshold, and every frame's
	// From is the last sent frame.
	sent, last := 0, -1
	for _, fr := range sim.Frames {
		if fr.Send {
			last = fr.Frame
		}
		if fr.From != last || (fr.Send != (fr.From == fr.Frame)) {
			t.Fatalf("frame %d: From %d, sent %v; last sent %d", fr.Frame, fr.From, fr.Send, last)
		}
		if fr.Segment == 5 {
			if fr.Profiling {
				t.Fatal("segment 5 profiled after a bootstrap of 5")
			}
			if fr.Send {
				sent++
			}
		}
	}
	if sent == 0 || sent >= 50 {
		t.Errorf("segment 5 sent %d/50 frames", sent)
	}
	if st := sim.Stats; st.Frames != 300 || st.ProfilingFrames != 250 || st.ProfiledSegments != 5 {
		t.Errorf("stats %+v", st)
	}
}

// shortVideo writes vtest's first n frames to an MJPG file, so the replay
// helpers can be compared with frames decoded from the same file.
func shortVideo(t *testing.T, n int) (string, []gocv.Mat) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "short.avi")
	first := frame(t, 0)
	w, err := gocv.VideoWriterFile(path, "MJPG", 10, first.Cols(), first.Rows(), true)
	if err != nil {
		t.Skipf("cannot write a test video: %v", err)
	}
	for i := range n {
		if err := w.Write(frame(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	var decoded []gocv.Mat
	if err := forEachFrame(path, func(_ int, img gocv.Mat) (bool, error) {
		decoded = append(decoded, img.Clone())
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, m := range decoded {
			m.Close()
		}
	})
	if len(decoded) != n {
		t.Skipf("wrote %d frames, read back %d", n, len(decoded))
	}
	return path, decoded
}

func TestReplayDiffsAndSweep(t *testing.T) {
	video, decoded := shortVideo(t, 40)
	f := newFeature(t, FeatureEdge)
	prep := make([]*Prepared, len(decoded))
	for i, img := range decoded {
		var err error
		if prep[i], err = f.Prepare(img); err != nil {
			t.Fatal(err)
		}
		defer prep[i].Close()
	}

	diffs, err := ReplayDiffs(video, FeatureEdge, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 40 || diffs[0] != 0 {
		t.Fatalf("%d diffs, first %g; want 40, first 0", len(diffs), diffs[0])
	}
	for i := 1; i < 40; i++ {
		want, _ := f.Diff(prep[i-1], prep[i])
		if diffs[i] != want || diffs[i] <= 0 {
			t.Fatalf("diff %d = %g, want %g > 0", i, diffs[i], want)
		}
	}

	thresholds := []float64{-1, 0.005, 0.01, 0.02, 1}
	from, err := SweepVideo(video, FeatureEdge, 0, thresholds)
	if err != nil {
		t.Fatal(err)
	}
	for k, thr := range thresholds {
		last, sent := 0, 1
		for i := 1; i < 40; i++ {
			if d, _ := f.Diff(prep[last], prep[i]); d > thr {
				last = i
				sent++
			}
			if from[k][i] != last {
				t.Fatalf("threshold %g, frame %d: uses frame %d, want %d", thr, i, from[k][i], last)
			}
		}
		t.Logf("threshold %g: %d/40 sent", thr, sent)
		switch thr {
		case -1:
			if sent != 40 {
				t.Errorf("threshold −1 sent %d, want all", sent)
			}
		case 1:
			if sent != 1 {
				t.Errorf("threshold 1 sent %d, want the first frame only", sent)
			}
		}
	}
}

func TestReplayBadInput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.avi")
	if _, err := ReplayDiffs(missing, FeatureEdge, 0); err == nil {
		t.Error("ReplayDiffs of a missing file gave no error")
	}
	if _, err := SweepVideo(missing, FeatureEdge, 0, []float64{0.1}); err == nil {
		t.Error("SweepVideo of a missing file gave no error")
	}
	if _, err := ReplayDiffs(vtestPath, "hog", 0); err == nil {
		t.Error("ReplayDiffs with an unknown feature gave no error")
	}
	if _, err := SimulateVideo(vtestPath, nil, SimulateOptions{}); err == nil {
		t.Error("SimulateVideo without outputs gave no error")
	}
}

// The whole of vtest.avi with the area feature, as the bench will run it.
func TestSimulateVtestWhole(t *testing.T) {
	outputs := traceOutputs(t)
	const target = 0.9
	sim, err := SimulateVideo(vtestPath, outputs, SimulateOptions{
		Filter: FilterOptions{Feature: FeatureArea, Selector: SelectorOptions{Target: target}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sim.Profiles {
		if p.Threshold > 0 && p.Accuracy < target {
			t.Errorf("segment %d: profiled accuracy %g below the target", p.Segment, p.Accuracy)
		}
	}
	var acc, filteredAcc float64
	var filtered, filteredSent int
	for _, fr := range sim.Frames {
		a := 1.0
		if !fr.Send {
			a = GradedAccuracy(outputs[fr.From], outputs[fr.Frame])
		}
		acc += a
		if !fr.Profiling {
			filtered++
			filteredAcc += a
			if fr.Send {
				filteredSent++
			}
		}
	}
	n := float64(len(sim.Frames))
	acc /= n
	filteredAcc /= float64(filtered)
	st := sim.Stats
	t.Logf("%d frames: sent %d (%d profiling), accuracy %.3f; filtered segments: %d frames, sent %d, accuracy %.3f; %d profiles",
		st.Frames, st.Sent, st.ProfilingFrames, acc, filtered, filteredSent, filteredAcc, len(sim.Profiles))
	// Measured: sent 294/795 (250 of them profiling), accuracy 0.912; the
	// filtered segments send 8 % of their frames at accuracy 0.87 (Reducto
	// also falls a little short of its target on unprofiled segments).
	if acc < 0.85 || float64(st.Sent)/n > 0.5 || filteredAcc < 0.8 || filteredSent == 0 || filteredSent*4 > filtered {
		t.Errorf("accuracy %.3f, sent %d/%d, filtered segments accuracy %.3f sent %d/%d", acc, st.Sent, st.Frames, filteredAcc, filteredSent, filtered)
	}
}

// With Lookahead a segment is decided on its own signature, which the live
// filter only has one segment later.
func TestSimulateLookahead(t *testing.T) {
	video, _ := shortVideo(t, 40)
	outputs := traceOutputs(t)[:40]
	run := func(lookahead bool) map[int64]Decision {
		sim, err := SimulateVideo(video, outputs, SimulateOptions{
			Lookahead: lookahead,
			// 5 frames a segment; no re-profiling, so both runs keep the
			// same five profiles.
			Filter: FilterOptions{Segment: 500 * time.Millisecond, Selector: SelectorOptions{DistanceBound: 10}},
		})
		if err != nil {
			t.Fatal(err)
		}
		first := map[int64]Decision{}
		for _, fr := range sim.Frames {
			if _, ok := first[fr.Segment]; !ok {
				first[fr.Segment] = fr.Decision
			}
		}
		return first
	}
	live, ahead := run(false), run(true)
	for s := int64(5); s < 7; s++ {
		if ahead[s].Profiling || live[s+1].Profiling {
			t.Fatalf("segment %d profiled", s)
		}
		if ahead[s].Distance != live[s+1].Distance || ahead[s].Threshold != live[s+1].Threshold {
			t.Errorf("segment %d with lookahead: %+v; live segment %d: %+v; want the same signature's threshold", s, ahead[s], s+1, live[s+1])
		}
	}
}
