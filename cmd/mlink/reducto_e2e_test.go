package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/stages/reducto"
)

var _ scheduler.FrameFilter = (*reducto.FrameFilter)(nil)

// Reducto in front of policy all on vtest: once its first segments are
// profiled, frames that barely change are kept from the models, and their
// results reuse every model's last exact output, so every result still has
// every model.
func TestEndToEndReductoFiltersFramesAndReusesResults(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface")
	cfg.Reducto.Enabled = true
	// vtest paced at its native 10 fps, as a camera: segments are cut on
	// capture times, which for a file read as fast as the pipeline goes are
	// its processing times (segments then hold as many frames as the
	// machine processes in a second). One-second segments of ten frames:
	// two profiled and sent whole (a third when the second's outputs are
	// late), then filtered ones.
	cfg.Cameras[0].Realtime = true
	cfg.Reducto.Segment = time.Second
	cfg.Reducto.BootstrapSegments = 2
	// Ten-frame signatures are noisy: no re-profiling by distance
	// (histograms are at most √2 apart), which is not what this tests.
	cfg.Reducto.DistanceBound = 1.5
	const frames = 120
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{maxFrames: frames, roles: "all"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	if err := a.wait(ctx); err != nil {
		t.Fatal(err)
	}
	// The filter forgets its cameras when it closes, at shutdown.
	fst, ok := a.reducto.Stats("plaza")
	results := storedResults(t, a, cfg)
	models := cfg.ModelNames()

	if len(results) != frames {
		t.Fatalf("%d results, want %d", len(results), frames)
	}
	bySeq := map[uint64]*pipeline.Result{}
	filtered := 0
	for i, r := range results {
		if r.Seq != uint64(i+1) {
			t.Fatalf("result %d has seq %d: seqs must be complete and in order", i, r.Seq)
		}
		bySeq[r.Seq] = r
		if r.Partial {
			t.Errorf("#%d is partial, missing %v", r.Seq, r.Missing)
		}
		reused := len(r.Plan.Exact) == 0
		if reused {
			filtered++
			if r.Plan.Profiling || !slices.Equal(r.Plan.Reused, models) {
				t.Errorf("#%d: a filtered frame's plan must reuse every model: %+v", r.Seq, r.Plan)
			}
		} else if !slices.Equal(r.Plan.Exact, models) || len(r.Plan.Reused) != 0 {
			t.Errorf("#%d: a sent frame runs every model under policy all: %+v", r.Seq, r.Plan)
		}
		for _, m := range models {
			o := r.Outputs[m]
			if o == nil {
				t.Fatalf("#%d has no output for %s: every result must have every model", r.Seq, m)
			}
			if o.Error != "" || len(o.Value) == 0 {
				t.Errorf("#%d %s: bad output %+v", r.Seq, m, o)
			}
			want := pipeline.SourceExact
			if reused {
				want = pipeline.SourceReused
			}
			if o.Source != want {
				t.Errorf("#%d %s: source %s, want %s", r.Seq, m, o.Source, want)
			}
			if !reused {
				continue
			}
			// The reused output is the latest sent frame's exact one.
			from := bySeq[o.FromSeq]
			if o.FromSeq == 0 || o.FromSeq >= r.Seq || from == nil || len(from.Plan.Exact) == 0 {
				t.Errorf("#%d %s reuses frame %d, which was not sent before it", r.Seq, m, o.FromSeq)
				continue
			}
			for s := o.FromSeq + 1; s < r.Seq; s++ {
				if len(bySeq[s].Plan.Exact) != 0 {
					t.Errorf("#%d %s reuses frame %d, but frame %d was sent since", r.Seq, m, o.FromSeq, s)
				}
			}
			if e := from.Outputs[m]; e.Label != o.Label || !slices.Equal(e.Value, o.Value) {
				t.Errorf("#%d %s: reused %v %q, frame %d said %v %q", r.Seq, m, o.Value, o.Label, o.FromSeq, e.Value, e.Label)
			}
		}
	}

	st := a.sched.Stats()
	t.Logf("reducto filtered %d of %d frames; executions %d of %d planned", filtered, frames, st.Executions.Load(), st.Planned.Load())
	// vtest's people walk slowly: measured here, 86 of the 120 frames are
	// filtered (every time: the capture times are paced). The floor leaves
	// room for a loaded machine that profiles a third segment.
	if filtered < frames/4 {
		t.Errorf("reducto filtered %d of %d frames, want at least %d", filtered, frames, frames/4)
	}
	if st.Filtered.Load() != int64(filtered) || st.FilterErrors.Load() != 0 {
		t.Errorf("scheduler counted %d filtered and %d filter errors; results show %d filtered",
			st.Filtered.Load(), st.FilterErrors.Load(), filtered)
	}
	if st.Executions.Load() != int64((frames-filtered)*len(models)) {
		t.Errorf("executions %d, want %d", st.Executions.Load(), (frames-filtered)*len(models))
	}
	if !ok || fst.ProfiledSegments < 2 || fst.Frames != frames || fst.Sent != int64(frames-filtered) {
		t.Errorf("filter stats %+v: want ≥ 2 profiled segments, %d frames, %d sent", fst, frames, frames-filtered)
	}
}
