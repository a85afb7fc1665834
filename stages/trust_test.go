package stages

import (
	"context"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/ingest"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/stages/opencv"
	"github.com/mlink-project/mlink/stages/vision"
)

const vtestPath = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

// needFile skips a test whose input is not installed, except under CI=true,
// where a skip would hide a gap: there it fails.
func needFile(t *testing.T, path, install string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing (CI=true: this test must run; %s): %v", path, install, err)
		}
		t.Skipf("%s missing (%s): %v", path, install, err)
	}
}

// trustPipeline is a running pipeline on an embedded NATS server without
// authentication: a real camera (vtest.avi paced as a live camera), the
// scheduler with the all policy, a MOG2 model worker and the merger, and an
// attacker's connection that publishes on the same subjects.
type trustPipeline struct {
	attacker *nats.Conn
	merger   *Merger
	worker   *ModelWorker
	camera   *ingest.Camera
	// stopCamera stops the camera alone (the rest runs on).
	stopCamera context.CancelFunc

	mu      sync.Mutex
	results []*pipeline.Result
}

func startTrustPipeline(t *testing.T) *trustPipeline {
	t.Helper()
	srv := startBus(t)
	return startPipeline(t, func(string) *nats.Conn { return connect(t, srv) }, 2*time.Second)
}

// startPipeline runs the pipeline with connections from dial (one per
// stage, named) and the merger's deadline.
//
// With ackResults the merger publishes results as mlink run's does, with
// JetStream acknowledgements (the results stream must exist).
type pipelineOption int

const ackResults pipelineOption = 1

func startPipeline(t *testing.T, dial func(name string) *nats.Conn, deadline time.Duration, opts ...pipelineOption) *trustPipeline {
	t.Helper()
	needFile(t, vtestPath, "apt-get install opencv-doc")
	p := &trustPipeline{attacker: dial("attacker")}
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

	obs := dial("observer")
	if _, err := obs.Subscribe(pipeline.DefaultSubjects.AllResults(), func(m *nats.Msg) {
		r, err := pipeline.Unmarshal[pipeline.Result](m.Data)
		if err != nil {
			t.Errorf("bad result: %v", err)
			return
		}
		p.mu.Lock()
		p.results = append(p.results, r)
		p.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}

	p.merger = NewMerger(dial("merger"), pipeline.MergerConfig{Deadline: deadline, MaxPending: 256}, zerolog.Nop())
	p.merger.OnlyCameras([]pipeline.CameraConfig{{ID: "plaza"}})
	if slices.Contains(opts, ackResults) {
		if err := p.merger.AckResults(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	run("merger", p.merger.Run)
	<-p.merger.Ready()

	spec := &pipeline.ModelSpec{Name: "motion", Backend: pipeline.BackendMOG2, Output: pipeline.TypeClass, Workers: 1, Queue: 8}
	w, err := NewModelWorker(dial("worker"), spec, func(s *pipeline.ModelSpec) (vision.Backend, error) { return opencv.NewMOG2(s) }, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	p.worker = w
	run("worker", w.Run)
	<-w.Ready()

	policy, err := scheduler.NewController(scheduler.ControllerConfig{Policy: scheduler.PolicyAll, Models: []string{"motion"},
		Period: time.Hour, HealthTimeout: time.Hour}, nil, scheduler.NewCostModel(nil), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	sched := scheduler.New(dial("scheduler"), policy, zerolog.Nop())
	sched.OnlyCameras([]pipeline.CameraConfig{{ID: "plaza"}})
	run("scheduler", sched.Run)
	<-sched.Ready()

	cam, err := ingest.NewCamera(pipeline.CameraConfig{
		ID: "plaza", Source: pipeline.SourceFile, URL: vtestPath, Realtime: true, Loop: true, Width: 320,
	}, pipeline.IngestConfig{}, dial("camera"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	p.camera = cam
	camCtx, stopCamera := context.WithCancel(ctx)
	p.stopCamera = stopCamera
	run("camera", func(context.Context) error { return cam.Run(camCtx, 0) })
	p.waitResults(t, 3)
	return p
}

func (p *trustPipeline) get() []*pipeline.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*pipeline.Result(nil), p.results...)
}

// waitResults waits for n more results than there are now.
func (p *trustPipeline) waitResults(t *testing.T, n int) {
	t.Helper()
	want := len(p.get()) + n
	waitFor(t, 60*time.Second, strconv.Itoa(want)+" results", func() bool { return len(p.get()) >= want })
}

// lastSeq is the seq of the newest result of the real camera.
func (p *trustPipeline) lastSeq() uint64 {
	rs := p.get()
	return rs[len(rs)-1].Seq
}

// checkIntact asserts that the camera's results since seq from are
// complete, consecutive and in order, except the seqs spoiled (a forged
// frame's own seq may be lost or taken), and contain no forged value.
func (p *trustPipeline) checkIntact(t *testing.T, from uint64, spoiled ...uint64) {
	t.Helper()
	next := uint64(0)
	for _, r := range p.get() {
		if r.Camera != "plaza" {
			t.Errorf("a result for camera %q, which is not configured", r.Camera)
			continue
		}
		if r.Seq <= from {
			continue
		}
		if next != 0 {
			for next < r.Seq && contains(spoiled, next) {
				next++
			}
			if r.Seq != next {
				t.Errorf("result seq %d after %d: the camera's results are not consecutive", r.Seq, next-1)
			}
		}
		next = r.Seq + 1
		o := r.Outputs["motion"]
		if (r.Partial || o == nil || o.Error != "") && !contains(spoiled, r.Seq) {
			t.Errorf("result %d is not complete and exact: partial=%v missing=%v output=%+v", r.Seq, r.Partial, r.Missing, o)
		}
		if o != nil && o.Worker == "forger" {
			t.Errorf("result %d carries a forged output", r.Seq)
		}
	}
}

// rssBytes is the process's resident memory.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

func contains(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (p *trustPipeline) publish(t *testing.T, subject string, data []byte) {
	t.Helper()
	if err := p.attacker.Publish(subject, data); err != nil {
		t.Fatal(err)
	}
	if err := p.attacker.Flush(); err != nil {
		t.Fatal(err)
	}
}

func mustMarshal[T pipeline.Plan | pipeline.Output](t *testing.T, v *T) []byte {
	t.Helper()
	d, err := pipeline.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func waitReject(t *testing.T, r *pipeline.Rejects, reason pipeline.RejectReason, n uint64) {
	t.Helper()
	waitFor(t, 30*time.Second, "rejection "+string(reason), func() bool { return r.Snapshot()[reason] >= n })
}

// A plan with seq 2^64−1 stopped a camera until restart on main; it is
// refused as out of the seq window, and the camera goes on.
func TestForgedPlanFarAheadIsRejected(t *testing.T) {
	p := startTrustPipeline(t)
	from := p.lastSeq()
	p.publish(t, pipeline.DefaultSubjects.Plan("plaza"), mustMarshal(t, &pipeline.Plan{
		Camera: "plaza", Seq: math.MaxUint64, Exact: []string{"motion"}, Token: pipeline.NewToken(), CapturedAt: time.Now(),
	}))
	waitReject(t, p.merger.Rejects(), pipeline.RejectSeqOutOfWindow, 1)
	p.waitResults(t, 20)
	p.checkIntact(t, from)
	for _, r := range p.get() {
		if r.Seq == math.MaxUint64 {
			t.Fatal("the forged plan was emitted as a result")
		}
	}
}

// The camera comes from the subject: a plan whose body names another
// camera is refused.
func TestPlanBodyCameraMustMatchSubject(t *testing.T) {
	p := startTrustPipeline(t)
	from := p.lastSeq()
	p.publish(t, pipeline.DefaultSubjects.Plan("plaza"), mustMarshal(t, &pipeline.Plan{
		Camera: "lobby", Seq: from + 3, Exact: []string{"motion"}, Token: pipeline.NewToken(), CapturedAt: time.Now(),
	}))
	waitReject(t, p.merger.Rejects(), pipeline.RejectCameraMismatch, 1)
	p.waitResults(t, 10)
	p.checkIntact(t, from)
}

// A forged frame 15 seqs ahead made every real frame before it late on
// main; now it may spoil only its own seq.
func TestForgedFrameAheadSpoilsOnlyItsOwnSeq(t *testing.T) {
	p := startTrustPipeline(t)
	jpeg, err := os.ReadFile("../cmd/mlink/testdata/vtest-frame.jpg")
	if err != nil {
		t.Fatal(err)
	}
	w, h, err := pipeline.JPEGSize(jpeg)
	if err != nil {
		t.Fatal(err)
	}
	from := p.lastSeq()
	forged := from + 15
	if err := p.attacker.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("plaza"), &pipeline.Frame{
		Camera: "plaza", Seq: forged, CapturedAt: time.Now(), Width: w, Height: h, JPEG: jpeg,
	})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the real frames past the forged one", func() bool { return p.lastSeq() > forged+5 })
	p.checkIntact(t, from, forged)
}

// Outputs for future seqs won on main, and the real ones were dropped as
// late; outputs need their frame's plan's token and a model it names.
func TestForgedOutputsAreRejected(t *testing.T) {
	p := startTrustPipeline(t)
	rejects := p.merger.Rejects()
	// A blind forger: outputs for the next seqs, before their plans.
	from := p.lastSeq()
	for seq := from + 1; seq <= from+20; seq++ {
		p.publish(t, pipeline.DefaultSubjects.Outputs("plaza", "motion"), mustMarshal(t, &pipeline.Output{
			Camera: "plaza", Seq: seq, Model: "motion", Kind: pipeline.KindVector, Type: pipeline.TypeClass,
			Value: []float64{1, 0, 0, 0}, Label: "none", Source: pipeline.SourceExact, Worker: "forger", Token: "guess",
		}))
	}
	waitReject(t, rejects, pipeline.RejectNoPlan, 1)
	// A forger that reads the plans: a wrong token, a model the plan does
	// not name, and a body that names another model than the subject.
	sub, err := p.attacker.Subscribe(pipeline.DefaultSubjects.Plan("plaza"), func(m *nats.Msg) {
		plan, err := pipeline.Unmarshal[pipeline.Plan](m.Data)
		if err != nil {
			return
		}
		forge := func(subjectModel, model, token string) {
			d, _ := pipeline.Marshal(&pipeline.Output{Camera: "plaza", Seq: plan.Seq, Model: model, Kind: pipeline.KindVector,
				Type: pipeline.TypeCount, Value: []float64{99}, Source: pipeline.SourceExact, Worker: "forger", Token: token})
			p.attacker.Publish(pipeline.DefaultSubjects.Outputs("plaza", subjectModel), d)
		}
		forge("motion", "motion", plan.Token+"x")
		forge("hog", "hog", plan.Token)
		forge("motion", "hog", plan.Token)
	})
	if err != nil {
		t.Fatal(err)
	}
	p.waitResults(t, 20)
	sub.Unsubscribe()
	p.waitResults(t, 3)
	for _, reason := range []pipeline.RejectReason{pipeline.RejectBadToken, pipeline.RejectModelNotPlanned, pipeline.RejectModelMismatch} {
		if rejects.Snapshot()[reason] == 0 {
			t.Errorf("no %s rejection: %v", reason, rejects.Snapshot())
		}
	}
	p.checkIntact(t, from)
}

// Plans for made-up cameras created merger state that was never freed and
// partial results; now they are refused and keep no state.
func TestPlansForUnknownCamerasKeepNoState(t *testing.T) {
	p := startTrustPipeline(t)
	from := p.lastSeq()
	const fakes = 2000
	for i := range fakes {
		cam := "fake-" + strconv.Itoa(i)
		p.attacker.Publish(pipeline.DefaultSubjects.Plan(cam), mustMarshal(t, &pipeline.Plan{
			Camera: cam, Seq: 1, Exact: []string{"motion"}, Token: pipeline.NewToken(), CapturedAt: time.Now(),
		}))
	}
	waitReject(t, p.merger.Rejects(), pipeline.RejectUnknownCamera, fakes)
	p.waitResults(t, 10)
	p.merger.mu.Lock()
	cams := len(p.merger.cams)
	p.merger.mu.Unlock()
	if cams != 1 {
		t.Errorf("the merger keeps state for %d cameras, want 1", cams)
	}
	p.checkIntact(t, from)
}

// A 12000×12000 JPEG of 844 KB took RSS to 1.5 GB in three frames on
// main; the worker now refuses frames over the limit, and frames whose
// JPEG is not the size their headers say, before decoding them.
func TestOversizedAndMislabelledFramesAreNotDecoded(t *testing.T) {
	p := startTrustPipeline(t)
	jpeg, err := os.ReadFile("../cmd/mlink/testdata/vtest-frame.jpg")
	if err != nil {
		t.Fatal(err)
	}
	w, h, _ := pipeline.JPEGSize(jpeg)
	from := p.lastSeq()
	decoded := p.worker.Stats().Frames.Load()
	bomb := withSize(jpeg, 12000, 12000)
	if bw, bh, err := pipeline.JPEGSize(bomb); err != nil || bw != 12000 || bh != 12000 {
		t.Fatalf("the bomb reads %d×%d (%v)", bw, bh, err)
	}
	send := func(data []byte, fw, fh int) {
		if err := p.attacker.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Infer("motion"), &pipeline.Frame{
			Camera: "plaza", Seq: from, CapturedAt: time.Now(), Width: fw, Height: fh, JPEG: data,
		})); err != nil {
			t.Fatal(err)
		}
	}
	rssBefore := rssBytes(t)
	for range 3 {
		send(bomb, 12000, 12000) // honest headers, over the limit
		send(bomb, w, h)         // headers that lie about the JPEG
	}
	send(jpeg, w*2, h*2) // a real JPEG, mislabelled
	rejects := p.worker.Rejects()
	waitReject(t, rejects, pipeline.RejectFrameTooLarge, 6)
	waitReject(t, rejects, pipeline.RejectSizeMismatch, 1)
	p.waitResults(t, 10)
	// Decoded, each bomb is 432 MB of BGR: three took RSS to 1.5 GB on main.
	grew := rssBytes(t) - rssBefore
	t.Logf("RSS %d MB before the bombs, %+d MB after", rssBefore>>20, grew>>20)
	if grew > 200<<20 {
		t.Errorf("RSS grew by %d MB: a bomb was decoded", grew>>20)
	}
	// Every frame the worker decoded since is a real one with a result.
	if got, real := p.worker.Stats().Frames.Load()-decoded, len(p.get()); got > int64(real) {
		t.Errorf("the worker ran %d frames, more than the real ones", got)
	}
	p.checkIntact(t, from)
}
