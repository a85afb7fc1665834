package stages_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/scheduler/replay"
	"github.com/mlink-project/mlink/stages"
)

// liveReplayFrames is the slice of the committed trace replayed both ways:
// long enough for a cold start, link-served frames with rotations, one
// re-profiling window and the re-selection after it.
const liveReplayFrames = 200

// The bench claims to run the scheduler's own code: a recorded trace
// replayed under mlink-hybrid through the live pipeline — the scheduler
// and its controller, the merger and the link predictor on an embedded
// NATS server, with model workers that answer from the trace — gives, frame
// by frame, the plans and outputs scheduler/replay gives.
func TestLivePipelineMatchesTheReplay(t *testing.T) {
	start := time.Now()
	full, err := replay.Load("../links/testdata/vtest.trace.gz")
	if err != nil {
		t.Fatal(err)
	}
	tr := &replay.Trace{Header: full.Header, Records: full.Records[:liveReplayFrames]}
	opts := liveReplayOptions(tr)

	var want []*pipeline.Result
	opts.OnResult = func(r *pipeline.Result) { want = append(want, r) }
	if _, err := replay.Run(tr, opts); err != nil {
		t.Fatal(err)
	}
	replayed := time.Since(start)

	opts.Learner = newLiveReplayLearner(tr) // its own links, trained again
	got, ctrl := runLive(t, tr, opts)
	if len(got) != len(want) {
		t.Fatalf("live: %d results, replay %d", len(got), len(want))
	}

	seen := map[string]int{}
	for i, w := range want {
		w = roundTrip(t, w) // what a subscriber of the replay's result would read
		g := got[i]
		where := fmt.Sprintf("frame #%d", w.Seq)
		if g.Seq != w.Seq || !g.CapturedAt.Equal(w.CapturedAt) || g.Partial {
			t.Fatalf("%s: live #%d at %v partial %v, replay at %v", where, g.Seq, g.CapturedAt, g.Partial, w.CapturedAt)
		}
		comparePlans(t, where, &g.Plan, &w.Plan)
		if len(g.Outputs) != len(w.Outputs) {
			t.Fatalf("%s: live outputs %v, replay %v", where, keys(g.Outputs), keys(w.Outputs))
		}
		for m, wo := range w.Outputs {
			go1, wo1 := comparable(g.Outputs[m]), comparable(wo)
			if !reflect.DeepEqual(go1, wo1) {
				t.Fatalf("%s %s:\nlive   %+v\nreplay %+v", where, m, go1, wo1)
			}
			kind := string(wo.Source)
			switch {
			case wo.Error != "":
				kind += " (error)"
			case wo.Source == pipeline.SourcePredicted && slices.Contains(w.Plan.Temporal, m):
				kind += " (temporal)"
			}
			seen[kind]++
			if kind == string(pipeline.SourcePredicted) && len(g.Outputs[m].LinkLosses) > 0 {
				// Active sampling reads them from the result.
				seen["predicted with link losses"]++
			}
			checkLinkSources(t, where, m, &w.Plan, wo)
		}
		if len(w.Plan.Sources) > 0 && len(w.Plan.Sources) < len(w.Plan.Exact) && len(w.Plan.Predicted) > 0 {
			seen["frames predicted beside a rotating model"]++
		}
		if w.Plan.Profiling {
			seen["profiled frames"]++
		}
	}
	selections := ctrl.Stats().Selections.Load()
	t.Logf("%d frames identical (replay %s, both %s); selections %d, last: %s; outputs by source: %v",
		len(want), replayed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), selections, ctrl.Selection(), seen)
	// The slice must exercise what the test is about.
	for _, kind := range []string{"exact", "predicted", "predicted (temporal)", "reused", "frames predicted beside a rotating model", "predicted with link losses"} {
		if seen[kind] == 0 {
			t.Errorf("no %s on the slice: the settings no longer exercise it", kind)
		}
	}
	if selections < 2 {
		t.Errorf("%d selections: want the bootstrap's and the re-profiling's", selections)
	}
}

// liveReplayOptions: mlink-hybrid capped at a third of the models' time, a short
// cold start, and a period that re-profiles once within the slice.
func liveReplayOptions(tr *replay.Trace) replay.Options {
	var total float64
	for _, c := range tr.Costs() {
		total += c.MS
	}
	return replay.Options{
		Policy: "mlink-hybrid",
		// A capped budget profiles whole windows (under a mean one evidence
		// is paced, and the slice would end before the re-profiling).
		Budget:       scheduler.Budget{MS: total / 3, Mode: scheduler.TimeCap},
		FPS:          tr.Header.FPS,
		TrainShare:   30.0 / liveReplayFrames, // 30 cold-start frames
		Period:       10 * time.Second,
		ProfileShare: 0.1, // 10 frames at 10 fps
		HoldOut:      0.3,
		TuneFrames:   10, // the window's frames fine-tune the links
		// Active sampling on: the predicted outputs carry their links'
		// losses (Plan.Losses), which it reads.
		ActiveShare: 0.05,
		Learner:     newLiveReplayLearner(tr),
		Log:         zerolog.Nop(),
	}
}

// newLiveReplayLearner trains temporal links too (mlink-hybrid uses them
// where they measure best), with fewer epochs than the paper's to keep the
// test short.
func newLiveReplayLearner(tr *replay.Trace) scheduler.Learner {
	return scheduler.NewLinkLearner(tr.Header, links.TrainOptions{Seed: 1, Epochs: 30})
}

// runLive runs the trace through the live stages: each frame is published
// once the previous one's result is out, so the controller sees results in
// the replay's order.
func runLive(t *testing.T, tr *replay.Trace, opts replay.Options) ([]*pipeline.Result, *scheduler.Controller) {
	t.Helper()
	srv := natstest.Start(t)
	schedConn, mergerConn, predictorConn, workerConn, nc := natstest.Connect(t, srv), natstest.Connect(t, srv),
		natstest.Connect(t, srv), natstest.Connect(t, srv), natstest.Connect(t, srv)
	// Registered after the connections: the stages stop before those close.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}

	// The controller as replay (and mlink run with scheduler.in_line_training)
	// configures it.
	ctrl, err := scheduler.NewController(scheduler.ControllerConfig{
		Policy:          scheduler.PolicyName(opts.Policy),
		Models:          tr.Models(),
		Budget:          opts.Budget,
		Period:          opts.Period,
		ProfileShare:    opts.ProfileShare,
		BootstrapFrames: max(2, int(float64(len(tr.Records))*opts.TrainShare+0.5)),
		HoldOut:         opts.HoldOut,
		Synchronous:     true,
		TuneFrames:      opts.TuneFrames,
		ActiveShare:     opts.ActiveShare,
		ActiveBatch:     opts.ActiveBatch,
		CoE:             opts.CoE,
	}, opts.Learner, scheduler.NewCostModel(tr.Costs()), opts.Log)
	if err != nil {
		t.Fatal(err)
	}
	lp := stages.NewLinkPredictor(predictorConn, opts.Log)
	ctrl.OnPredictor(func(p scheduler.Predictor) { lp.SetPredictor(p) })
	sched := scheduler.New(schedConn, ctrl, opts.Log)
	sched.ObserveInLine()
	merger := stages.NewMerger(mergerConn, pipeline.MergerConfig{Deadline: time.Minute, MaxPending: 100}, opts.Log)
	run("scheduler", sched.Run)
	run("merger", merger.Run)
	run("predictor", lp.Run)
	<-sched.Ready()
	<-merger.Ready()
	<-lp.Ready()
	serveTrace(t, workerConn, tr)

	results := make(chan *pipeline.Result, 1)
	sub, err := nc.Subscribe(pipeline.DefaultSubjects.AllResults(), func(m *nats.Msg) {
		r, err := pipeline.Unmarshal[pipeline.Result](m.Data)
		if err != nil {
			t.Error(err)
			return
		}
		results <- r
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	first := tr.Records[0]
	var out []*pipeline.Result
	for _, rec := range tr.Records {
		if rec.Camera != first.Camera {
			t.Fatalf("the slice has a second camera %q: pacing assumes one", rec.Camera)
		}
		// Frames on the media clock, as replay.Options.FPS places them.
		at := first.Time.Add(time.Duration(float64(rec.Seq-first.Seq) / opts.FPS * float64(time.Second)))
		f := &pipeline.Frame{Camera: rec.Camera, Seq: rec.Seq, CapturedAt: at, Width: 768, Height: 576,
			JPEG: []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0}} // the stand-in workers never decode it
		if err := nc.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames(rec.Camera), f)); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-results:
			if r.Seq != rec.Seq {
				t.Fatalf("published #%d, result #%d", rec.Seq, r.Seq)
			}
			out = append(out, r)
		case <-time.After(30 * time.Second):
			t.Fatalf("no result for #%d", rec.Seq)
		}
	}
	return out, ctrl
}

// serveTrace stands in for the model workers: each answers its
// mlink.infer.<model> frames with the trace's output for (camera, seq), as
// stages.ModelWorker publishes one, taking the model's recorded mean time
// (what replay charges, so both cost models stay the same).
func serveTrace(t *testing.T, nc *nats.Conn, tr *replay.Trace) {
	t.Helper()
	type key struct {
		camera string
		seq    uint64
	}
	recs := map[key]*links.TraceRecord{}
	for _, r := range tr.Records {
		recs[key{r.Camera, r.Seq}] = r
	}
	costs := tr.Costs()
	for _, spec := range tr.Header.Models {
		model, typ := spec.Name, spec.Type
		_, err := nc.QueueSubscribe(pipeline.DefaultSubjects.Infer(model), pipeline.DefaultSubjects.InferQueue(model), func(m *nats.Msg) {
			f, err := pipeline.DecodeFrame(m)
			if err != nil {
				t.Errorf("stand-in %s: %v", model, err)
				return
			}
			var out pipeline.Output
			if rec := recs[key{f.Camera, f.Seq}]; rec != nil && rec.Outputs[model] != nil {
				out = *rec.Outputs[model]
				out.InferMS = costs[model].MS
				out.Worker = "trace-stand-in"
			} else {
				// A model that failed when the trace was recorded fails again.
				out = pipeline.Output{Kind: typ.Kind(), Type: typ, Error: replay.NotRecorded}
			}
			out.Camera, out.Seq, out.Model, out.Source, out.Token = f.Camera, f.Seq, model, pipeline.SourceExact, f.Token
			data, err := pipeline.Marshal(&out)
			if err == nil {
				err = nc.Publish(pipeline.DefaultSubjects.Outputs(f.Camera, model), data)
			}
			if err != nil {
				t.Errorf("stand-in %s: %v", model, err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func comparePlans(t *testing.T, where string, g, w *pipeline.Plan) {
	t.Helper()
	same := g.Camera == w.Camera && g.Seq == w.Seq && g.Policy == w.Policy && g.Profiling == w.Profiling && g.Sampled == w.Sampled &&
		slices.Equal(g.Exact, w.Exact) && slices.Equal(g.Predicted, w.Predicted) && slices.Equal(g.Reused, w.Reused) &&
		slices.Equal(g.Temporal, w.Temporal) && slices.Equal(g.Sources, w.Sources) && reflect.DeepEqual(g.Cascades, w.Cascades)
	if !same {
		t.Fatalf("%s: plans differ\nlive   %+v\nreplay %+v", where, g, w)
	}
}

// checkLinkSources: a predicted output comes from the plan's sources (and,
// temporally, the model's own last output) only.
func checkLinkSources(t *testing.T, where, model string, plan *pipeline.Plan, o *pipeline.Output) {
	t.Helper()
	if o.Source != pipeline.SourcePredicted || o.Error != "" {
		return
	}
	allowed := plan.Sources
	if len(allowed) == 0 {
		allowed = plan.Exact
	}
	for _, s := range o.Sources {
		if !slices.Contains(allowed, s) && s != model {
			t.Errorf("%s %s predicted from %s, not one of the plan's sources %v", where, model, s, allowed)
		}
	}
}

// comparable is an output without the worker's name (a replay has no
// workers); the rest must match exactly.
func comparable(o *pipeline.Output) *pipeline.Output {
	if o == nil {
		return nil
	}
	c := *o
	c.Worker = ""
	return &c
}

func roundTrip(t *testing.T, r *pipeline.Result) *pipeline.Result {
	t.Helper()
	data, err := pipeline.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pipeline.Unmarshal[pipeline.Result](data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(m map[string]*pipeline.Output) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
