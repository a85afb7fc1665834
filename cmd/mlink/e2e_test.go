package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/ingest/rtsptest"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

const vtestPath = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

// demoConfig loads configs/demo.yaml, set up for a test: vtest read as a
// file (not paced, no loop), a private NATS port and store. keep, when
// given, selects the models to run.
func demoConfig(t testing.TB, keep ...string) *pipeline.Config {
	t.Helper()
	if _, err := os.Stat(vtestPath); err != nil {
		t.Skip("sample video missing: run `make deps`")
	}
	cfg, err := pipeline.LoadConfig("../../configs/demo.yaml")
	if err != nil {
		t.Fatalf("demo config: %v (run `make deps`)", err)
	}
	cfg.Cameras[0].Realtime, cfg.Cameras[0].Loop = false, false
	cfg.NATS.Listen = "127.0.0.1:-1"
	cfg.NATS.DataDir = t.TempDir()
	cfg.Merger.Deadline = 30 * time.Second
	if len(keep) > 0 {
		var models []pipeline.ModelSpec
		for _, name := range keep {
			spec, ok := cfg.Model(name)
			if !ok {
				t.Fatalf("demo config has no model %q", name)
			}
			models = append(models, *spec)
		}
		cfg.Models = models
		// The demo's cascades and variants name models not kept: a test
		// that wants them declares its own.
		cfg.Scheduler.CoE = pipeline.CoEConfig{}
		cfg.Scheduler.JellyBean = pipeline.JellyBeanConfig{}
	}
	return cfg
}

// testLogger logs warnings into the test's output; MLINK_TEST_LOG=debug or
// info shows more.
func testLogger(t *testing.T) zerolog.Logger {
	level, err := zerolog.ParseLevel(os.Getenv("MLINK_TEST_LOG"))
	if err != nil || os.Getenv("MLINK_TEST_LOG") == "" {
		level = zerolog.WarnLevel
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(level).With().Timestamp().Logger()
}

// runToCompletion runs the app until its cameras' frames have their results,
// then returns every result kept in the durable results stream.
func runToCompletion(t *testing.T, cfg *pipeline.Config, maxFrames int) (*app, []*pipeline.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{maxFrames: maxFrames, roles: "all"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	if err := a.wait(ctx); err != nil {
		t.Fatal(err)
	}
	return a, storedResults(t, a, cfg)
}

// collected are the results a test's pipeline emitted, in order.
type collected struct {
	mu      sync.Mutex
	results []*pipeline.Result
}

// startCollecting starts cfg's whole pipeline in this process and collects
// every result it emits; the pipeline stops when the test ends, or after
// timeout.
func startCollecting(t *testing.T, cfg *pipeline.Config, timeout time.Duration) (*app, *collected) {
	t.Helper()
	return startCollectingWith(t, cfg, timeout, runOptions{roles: "all"})
}

// startCollectingWith is startCollecting with o's roles and pool.
func startCollectingWith(t *testing.T, cfg *pipeline.Config, timeout time.Duration, o runOptions) (*app, *collected) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	c := &collected{}
	o.onResult = func(r *pipeline.Result) {
		c.mu.Lock()
		c.results = append(c.results, r)
		c.mu.Unlock()
	}
	a, err := startApp(ctx, cfg, o, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.shutdown)
	return a, c
}

// checkExactOrLastReused asserts that every result carries every model's
// output and that each output is either exact or its model's last exact
// output reused: what a policy that predicts nothing may produce.
func checkExactOrLastReused(t *testing.T, results []*pipeline.Result, cfg *pipeline.Config, policy string) {
	t.Helper()
	lastExact := map[string]uint64{}
	for _, r := range results {
		for _, m := range cfg.Models {
			o := r.Outputs[m.Name]
			if o == nil {
				t.Fatalf("frame %d has no %s output (partial %v)", r.Seq, m.Name, r.Partial)
			}
			switch o.Source {
			case pipeline.SourceExact:
				lastExact[m.Name] = r.Seq
			case pipeline.SourceReused:
				if o.FromSeq != lastExact[m.Name] {
					t.Errorf("frame %d: %s reused from %d, its last exact output is from %d", r.Seq, m.Name, o.FromSeq, lastExact[m.Name])
				}
			default:
				t.Errorf("frame %d: %s is %s: %s predicts nothing", r.Seq, m.Name, o.Source, policy)
			}
		}
	}
}

// storedResults reads every result from the JetStream stream, as a
// subscriber that was away would.
func storedResults(t *testing.T, a *app, cfg *pipeline.Config) []*pipeline.Result {
	t.Helper()
	var out []*pipeline.Result
	for _, data := range storedMessages(t, a, cfg) {
		r, err := pipeline.Unmarshal[pipeline.Result](data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// storedMessages returns the bytes of every result in the results stream:
// in process with every permission from the embedded server, else from
// cfg's server.
func storedMessages(t *testing.T, a *app, cfg *pipeline.Config) [][]byte {
	t.Helper()
	var nc *nats.Conn
	var err error
	if a.srv != nil {
		nc, err = a.srv.Connect(t.Name()) // in-process, every permission
	} else {
		nc, err = nats.Connect(cfg.NATS.URL)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, pipeline.SubjectsFor(&cfg.NATS).ResultsStream(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := js.Stream(ctx, pipeline.SubjectsFor(&cfg.NATS).ResultsStream())
	info, _ := stream.Info(ctx)
	var out [][]byte
	for uint64(len(out)) < info.State.Msgs {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m.Data())
		}
	}
	return out
}

// checkComplete asserts that camera has results for seqs 1..n, in order,
// each with every model exact and no error.
func checkComplete(t *testing.T, results []*pipeline.Result, camera string, n int, models []string) []*pipeline.Result {
	t.Helper()
	var mine []*pipeline.Result
	for _, r := range results {
		if r.Camera == camera {
			mine = append(mine, r)
		}
	}
	if len(mine) != n {
		t.Fatalf("camera %s: %d results, want %d", camera, len(mine), n)
	}
	for i, r := range mine {
		if r.Seq != uint64(i+1) {
			t.Fatalf("camera %s: result %d has seq %d: seqs must be complete and in order", camera, i, r.Seq)
		}
		if r.Partial {
			t.Errorf("%s #%d is partial, missing %v", camera, r.Seq, r.Missing)
		}
		for _, m := range models {
			o := r.Outputs[m]
			if o == nil {
				t.Fatalf("%s #%d has no output for %s", camera, r.Seq, m)
			}
			if o.Error != "" || o.Source != pipeline.SourceExact || len(o.Value) == 0 {
				t.Errorf("%s #%d %s: bad output %+v", camera, r.Seq, m, o)
			}
		}
		if r.LatencyMS <= 0 || r.CapturedAt.IsZero() || r.Plan.Policy != "all" {
			t.Errorf("%s #%d: bad metadata %+v", camera, r.Seq, r)
		}
	}
	return mine
}

func TestEndToEndAllModelsOnVtest(t *testing.T) {
	cfg := demoConfig(t)
	const frames = 12
	a, results := runToCompletion(t, cfg, frames)
	mine := checkComplete(t, results, "plaza", frames, cfg.ModelNames())

	// vtest shows 5-8 people on every frame: the person detectors must see
	// some, and the motion model must see them move once it has learnt the
	// background.
	hogSeen, bodySeen := 0, 0
	for _, r := range mine {
		if n, _ := r.Outputs["hog_people"].Count(); n >= 2 {
			hogSeen++
		}
		full, _ := r.Outputs["fullbody"].Count()
		upper, _ := r.Outputs["upperbody"].Count()
		if full+upper >= 1 {
			bodySeen++
		}
		for _, b := range r.Outputs["hog_people"].Boxes {
			if b.X1 < 0 || b.Y1 < 0 || b.X2 > 1 || b.Y2 > 1 || b.X2 <= b.X1 || b.Y2 <= b.Y1 {
				t.Errorf("#%d: HOG box outside the frame: %+v", r.Seq, b)
			}
		}
	}
	if hogSeen < frames*3/4 {
		t.Errorf("HOG saw >=2 people on %d of %d frames; vtest always shows 5-8", hogSeen, frames)
	}
	if bodySeen < frames/2 {
		t.Errorf("Haar body cascades saw people on only %d of %d frames", bodySeen, frames)
	}
	if lbl := mine[len(mine)-1].Outputs["motion"].Label; lbl == "" || lbl == "none" {
		t.Errorf("motion level on the last frame is %q; people walk on every vtest frame", lbl)
	}
	if n, _ := mine[len(mine)-1].Outputs["lines"].Count(); n < 5 {
		t.Errorf("M-LSD found %v line segments on the plaza; its paving and buildings have dozens", n)
	}
	st := a.cameras[0].Stats()
	if st.Published != frames || st.Dropped != 0 {
		t.Errorf("camera published %d dropped %d; a file is read without drops", st.Published, st.Dropped)
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestEndToEndAgainstExternalNATSServer(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("nats-server not installed: run `make deps`")
	}
	port := freePort(t)
	srv := exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", t.TempDir())
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })

	cfg := demoConfig(t, "face_haar", "face_blazeface")
	cfg.NATS.URL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// As in a deployment: two worker processes share the models' frames
	// through queue groups; cameras, scheduler and merger run apart.
	var workers []*app
	for i := 0; i < 2; i++ {
		w, err := startApp(ctx, cfg, runOptions{roles: "worker"}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer w.shutdown()
		if w.srv != nil {
			t.Fatal("with nats.url set, no embedded server may start")
		}
		workers = append(workers, w)
	}
	const frames = 40
	a, err := startApp(ctx, cfg, runOptions{roles: "ingest,scheduler,merger", maxFrames: frames}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	if len(a.workers) != 0 {
		t.Fatal("the control process must not load models")
	}
	if err := a.wait(ctx); err != nil {
		t.Fatal(err)
	}
	checkComplete(t, storedResults(t, a, cfg), "plaza", frames, cfg.ModelNames())
	for m := range cfg.Models {
		var total int64
		for i, w := range workers {
			n := w.liveWorkers()[m].Stats().Frames.Load()
			if n == 0 {
				t.Errorf("worker process %d ran no frame of %s: the queue group should share them", i, cfg.Models[m].Name)
			}
			total += n
		}
		if total != frames {
			t.Errorf("%s ran %d times for %d frames: each frame must go to exactly one worker", cfg.Models[m].Name, total, frames)
		}
	}
}

func TestEndToEndOverRTSPWithServerRestart(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed: run `make deps`")
	}
	h264 := filepath.Join(t.TempDir(), "vtest.h264")
	if err := rtsptest.TranscodeH264(vtestPath, h264); err != nil {
		t.Fatal(err)
	}
	rtsp, err := rtsptest.Start(h264, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rtsp.Stop() })

	cfg := demoConfig(t, "motion", "face_blazeface")
	cfg.Cameras[0] = pipeline.CameraConfig{ID: "gate", Source: pipeline.SourceRTSP, URL: rtsp.URL(), JPEGQuality: 90,
		ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{roles: "all"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	natstest.WaitFor(t, 20*time.Second, "10 results over RTSP", func() bool { return a.results.count("gate") >= 10 })

	rtsp.Stop()
	time.Sleep(time.Second)
	before := a.results.count("gate")
	if rtsp, err = rtsptest.Start(h264, rtsp.Addr()); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 30*time.Second, "results after the RTSP server restarted", func() bool {
		return a.results.count("gate") >= before+10
	})
	st := a.cameras[0].Stats()
	if st.Reconnects < 1 {
		t.Errorf("camera reconnects = %d after a server restart", st.Reconnects)
	}
	a.results.mu.Lock()
	lastSeq := a.results.lastSeq["gate"]
	outOfSeq := a.results.outOfSeq
	a.results.mu.Unlock()
	if lastSeq < uint64(before+10) || outOfSeq != 0 {
		t.Errorf("seq must keep increasing across the reconnect: last %d, out of order %d", lastSeq, outOfSeq)
	}
}

func TestUnreachableCameraDoesNotStallOthers(t *testing.T) {
	cfg := demoConfig(t, "motion")
	dead := pipeline.CameraConfig{ID: "dead", Source: pipeline.SourceRTSP, URL: fmt.Sprintf("rtsp://127.0.0.1:%d/x", freePort(t)),
		JPEGQuality: 90, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}
	cfg.Cameras = append([]pipeline.CameraConfig{dead}, cfg.Cameras...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{roles: "all", maxFrames: 100}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	natstest.WaitFor(t, 60*time.Second, "100 results of the live camera", func() bool { return a.results.count("plaza") >= 100 })
	st := a.cameras[0].Stats()
	if st.Connected || st.Published != 0 || st.Errors < 2 || st.LastError == "" {
		t.Errorf("dead camera should keep retrying with errors: %+v", st)
	}
}

func TestCorruptFramesAreRejectedAndThePipelineGoesOn(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_haar")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// No camera: the test publishes the frames itself.
	cfg.Cameras = nil
	a, err := startApp(ctx, cfg, runOptions{roles: "all"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	nc, err := a.srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	good, err := os.ReadFile("testdata/vtest-frame.jpg")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(seq uint64, body []byte) {
		f := &pipeline.Frame{Camera: "cam", Seq: seq, CapturedAt: time.Now(), Width: 768, Height: 576, JPEG: body}
		if err := nc.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("cam"), f)); err != nil {
			t.Fatal(err)
		}
	}
	publish(1, good)
	publish(2, []byte("this is not a jpeg"))                                 // rejected by the scheduler
	publish(3, append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, make([]byte, 500)...)) // a JPEG header over garbage
	publish(4, good)
	natstest.WaitFor(t, 30*time.Second, "results of frames 1 to 4", func() bool { return a.results.count("cam") >= 4 })
	time.Sleep(200 * time.Millisecond)
	results := storedResults(t, a, cfg)
	if len(results) != 4 {
		t.Fatalf("%d results, want 4 (frame 2, rejected, has a gap record)", len(results))
	}
	bySeq := map[uint64]*pipeline.Result{}
	for _, r := range results {
		bySeq[r.Seq] = r
	}
	if bySeq[1] == nil || bySeq[2] == nil || bySeq[3] == nil || bySeq[4] == nil {
		t.Fatalf("results for seqs %v", keys(bySeq))
	}
	if g := bySeq[2]; g.Reason != pipeline.PartialLost || len(g.Outputs) != 0 {
		t.Fatalf("frame 2, rejected by the scheduler: %+v, want a gap record", g)
	}
	for _, m := range cfg.ModelNames() {
		if o := bySeq[3].Outputs[m]; o == nil || !strings.Contains(o.Error, "corrupt frame") {
			t.Errorf("frame 3, model %s: want a corrupt-frame error, got %+v", m, o)
		}
		if o := bySeq[4].Outputs[m]; o == nil || o.Error != "" {
			t.Errorf("frame 4 after the corrupt ones, model %s: %+v", m, o)
		}
	}
	if a.sched.Stats().Rejected.Load() != 1 {
		t.Errorf("scheduler rejected %d frames, want 1", a.sched.Stats().Rejected.Load())
	}
}

func keys(m map[uint64]*pipeline.Result) []uint64 {
	var out []uint64
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCorruptModelIsDisabledAndTheRestRuns(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface")
	bad := filepath.Join(t.TempDir(), "corrupt.onnx")
	if err := os.WriteFile(bad, []byte("definitely not protobuf"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Models[1].File = bad
	const frames = 5
	a, results := runToCompletion(t, cfg, frames)
	checkComplete(t, results, "plaza", frames, []string{"motion"})
	for _, r := range results {
		if _, ok := r.Outputs["face_blazeface"]; ok {
			t.Fatalf("#%d has an output of the model that failed to load", r.Seq)
		}
	}
	if len(a.failedModels) != 1 || !strings.Contains(a.failedModels["face_blazeface"].Error(), "face_blazeface") {
		t.Errorf("failed models: %v", a.failedModels)
	}
}

func TestValidateListsEveryProblemAndExits2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`
cameras:
  - {id: cam, source: file, url: /nonexistent.avi}
models:
  - {name: face, backend: onnx, decoder: blazeface, file: /nonexistent.onnx}
  - {name: x, backend: caffe}
scheduler: {policy: psychic}
`), 0o644)
	err := cmdValidate([]string{"-c", path})
	var ce *pipeline.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a config error (exit 2), got %v", err)
	}
	for _, want := range []string{"/nonexistent.avi", "/nonexistent.onnx", "make deps", `"caffe"`, `"psychic"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validate output lacks %q:\n%v", want, err)
		}
	}
	if len(ce.Problems) != 4 {
		t.Errorf("want 4 problems, got %d: %v", len(ce.Problems), ce.Problems)
	}
}

func TestEndToEndMLinkPolicyPredictsWhatDoesNotFit(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface", "lines", "fullbody", "upperbody", "face_haar")
	cfg.Cameras[0].Loop = true
	cfg.Scheduler.Policy = "mlink"
	cfg.Scheduler.BootstrapFrames = 40
	// Periods run on the frames' capture times, which for a file are its
	// media clock: one hour at 0.1% profiles the first 3.6 s (36 frames),
	// inside the bootstrap, and nothing after it within the test.
	cfg.Scheduler.Period = time.Hour
	cfg.Scheduler.ProfileShare = 0.001
	cfg.Scheduler.Seed = 1
	// About a third of the models' total time per frame.
	cfg.Budget.MSPerFrame = 270

	var mu sync.Mutex
	var linked []*pipeline.Result // results of frames planned with links
	var all int
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{roles: "all", onResult: func(r *pipeline.Result) {
		mu.Lock()
		defer mu.Unlock()
		all++
		if len(r.Plan.Predicted) > 0 {
			linked = append(linked, r)
		}
	}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	natstest.WaitFor(t, 7*time.Minute, "25 frames served with links", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(linked) >= 25
	})
	sel := a.control.Selection()
	t.Logf("selection: %s", sel)
	if len(sel.Exact) == 0 || len(sel.Predicted) < 2 {
		t.Errorf("a third of the budget should run few models and predict the rest: %s", sel)
	}
	costs := a.costs.Costs()
	var used float64
	for _, m := range sel.Exact {
		used += costs[m].MS
	}
	if used > cfg.Budget.MSPerFrame {
		t.Errorf("selected models cost %.0f ms, budget %.0f ms", used, cfg.Budget.MSPerFrame)
	}
	mu.Lock()
	results := append([]*pipeline.Result(nil), linked...)
	mu.Unlock()
	for _, r := range results {
		if r.Partial {
			t.Errorf("#%d partial, missing %v", r.Seq, r.Missing)
		}
		for _, m := range cfg.ModelNames() {
			o := r.Outputs[m]
			if o == nil {
				t.Fatalf("#%d lacks %s: every result must have every model", r.Seq, m)
			}
			if slices.Contains(r.Plan.Predicted, m) != (o.Source == pipeline.SourcePredicted) {
				t.Errorf("#%d %s: source %s does not match the plan %+v", r.Seq, m, o.Source, r.Plan)
			}
			if o.Source == pipeline.SourcePredicted && (o.Error != "" || len(o.Sources) == 0 || len(o.Value) == 0) {
				t.Errorf("#%d %s: bad predicted output %+v", r.Seq, m, o)
			}
		}
	}
	acc, ok := a.control.Stats().MeasuredAccuracy()
	t.Logf("measured agreement of predicted outputs on held-out profiling frames: %.3f; expected system accuracy %.3f", acc, sel.Expected)
	// Floor: links must deliver something where Standalone delivers nothing
	// (it scores unrun models 0). Measured here: 0.34 for this selection;
	// the floor leaves room for a slower machine choosing another set.
	if !ok || acc < 0.15 {
		t.Errorf("measured accuracy of predicted outputs %.3f (reported %v), floor 0.15", acc, ok)
	}
	if sel.Expected <= float64(len(sel.Exact))/float64(len(cfg.Models)) {
		t.Errorf("expected system accuracy %.3f does not beat Standalone's %d/%d", sel.Expected, len(sel.Exact), len(cfg.Models))
	}
}

// withModels is a copy of cfg that loads only the named models.
func withModels(t *testing.T, cfg *pipeline.Config, names ...string) *pipeline.Config {
	c := *cfg
	c.Models = nil
	for _, n := range names {
		spec, ok := cfg.Model(n)
		if !ok {
			t.Fatalf("no model %q", n)
		}
		c.Models = append(c.Models, *spec)
	}
	return &c
}

func TestDeadWorkerIsPredictedUntilItComesBack(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface", "lines")
	cfg.Cameras[0].Loop = true
	cfg.Scheduler.Policy = "mlink"
	cfg.Scheduler.BootstrapFrames = 20
	cfg.Scheduler.Period, cfg.Scheduler.ProfileShare = time.Hour, 0.001
	cfg.Budget.MSPerFrame = 100_000 // everything fits: a model is predicted only when it is down
	cfg.Merger.Deadline = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var last *pipeline.Result
	control, err := startApp(ctx, cfg, runOptions{roles: "scheduler,predictor,merger", onResult: func(r *pipeline.Result) {
		mu.Lock()
		last = r
		mu.Unlock()
	}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer control.shutdown()
	remote := *cfg
	remote.NATS.URL = control.srv.ClientURL()
	start := func(c *pipeline.Config, roles string) *app {
		a, err := startApp(ctx, c, runOptions{roles: roles}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	others := start(withModels(t, &remote, "motion", "face_blazeface"), "worker")
	defer others.shutdown()
	linesWorker := start(withModels(t, &remote, "lines"), "worker")
	cameras := start(&remote, "ingest")
	defer cameras.shutdown()

	linesSource := func() pipeline.Source {
		mu.Lock()
		defer mu.Unlock()
		if last == nil || last.Outputs["lines"] == nil || last.Partial {
			return ""
		}
		return last.Outputs["lines"].Source
	}
	natstest.WaitFor(t, 2*time.Minute, "links trained", func() bool { return control.control.Selection() != nil })
	natstest.WaitFor(t, 30*time.Second, "lines exact with its worker up", func() bool { return linesSource() == pipeline.SourceExact })

	linesWorker.shutdown() // the only worker of lines dies
	natstest.WaitFor(t, 30*time.Second, "lines predicted while its worker is down", func() bool { return linesSource() == pipeline.SourcePredicted })
	if control.control.Healthy("lines") {
		t.Error("lines should be unhealthy")
	}
	mu.Lock()
	r := last
	mu.Unlock()
	if o := r.Outputs["lines"]; len(o.Sources) == 0 || !slices.Contains(r.Plan.Predicted, "lines") {
		t.Errorf("degraded result should say lines was predicted and from what: %+v plan %+v", o, r.Plan)
	}

	back := start(withModels(t, &remote, "lines"), "worker")
	defer back.shutdown()
	natstest.WaitFor(t, 30*time.Second, "lines exact again once a worker is back", func() bool { return linesSource() == pipeline.SourceExact })
}

func TestPredictorInAnotherProcessFollowsTheLinkStore(t *testing.T) {
	cfg := cheapLinkedConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel) // cleanups run last first: the other processes, the control one, then this
	var linked linkedResults
	control, err := startApp(ctx, cfg, runOptions{roles: "scheduler,merger", onResult: linked.add}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(control.shutdown)
	if control.predictor != nil {
		t.Fatal("the control process must not run a predictor here")
	}
	startRoles(t, ctx, cfg, control, "predictor", "worker", "ingest")
	results := linked.waitFor(t, 20, "20 frames served with links from the other process")
	checkPredicted(t, results, 10)
}
