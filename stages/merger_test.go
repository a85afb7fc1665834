package stages

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// resultSink collects results published on the bus.
type resultSink struct {
	mu      sync.Mutex
	results []*pipeline.Result
}

func collectResults(t *testing.T, nc *nats.Conn) *resultSink {
	s := &resultSink{}
	_, err := nc.Subscribe(pipeline.DefaultSubjects.AllResults(), func(m *nats.Msg) {
		r, err := pipeline.Unmarshal[pipeline.Result](m.Data)
		if err != nil {
			t.Error(err)
			return
		}
		s.mu.Lock()
		s.results = append(s.results, r)
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return s
}

func (s *resultSink) get() []*pipeline.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*pipeline.Result(nil), s.results...)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newTestMerger(t *testing.T, maxPending int) (*Merger, *resultSink, *fakeClock) {
	srv := startBus(t)
	sink := collectResults(t, connect(t, srv))
	m := NewMerger(connect(t, srv), pipeline.MergerConfig{Deadline: time.Second, MaxPending: maxPending}, zerolog.Nop())
	clock := &fakeClock{t: time.Unix(1000, 0)}
	m.now = clock.now
	return m, sink, clock
}

func plan(camera string, seq uint64, models ...string) *pipeline.Plan {
	return &pipeline.Plan{Camera: camera, Seq: seq, Policy: "all", Exact: models, CapturedAt: time.Unix(1000, 0), Token: testToken(camera, seq)}
}

func output(camera string, seq uint64, model string, count float64) *pipeline.Output {
	return &pipeline.Output{Camera: camera, Seq: seq, Model: model, Kind: pipeline.KindVector, Type: pipeline.TypeCount, Value: []float64{count}, Source: pipeline.SourceExact, Token: testToken(camera, seq)}
}

// testToken is the token the test helpers give a frame's plan and outputs.
func testToken(camera string, seq uint64) string { return fmt.Sprintf("token-%s-%d", camera, seq) }

func TestMergerEmitsCompleteFramesInOrder(t *testing.T) {
	m, sink, _ := newTestMerger(t, 100)
	m.AddPlan(plan("a", 1, "x", "y"))
	m.AddPlan(plan("a", 2, "x", "y"))
	m.AddPlan(plan("b", 1, "x"))
	// Frame 2 completes first but must wait for frame 1 of the same camera;
	// camera b is independent.
	m.AddOutput(output("a", 2, "x", 2))
	m.AddOutput(output("a", 2, "y", 2))
	m.AddOutput(output("b", 1, "x", 7))
	m.AddOutput(output("a", 1, "y", 1))
	m.AddOutput(output("a", 1, "x", 1))
	waitFor(t, 2*time.Second, "3 results", func() bool { return len(sink.get()) == 3 })
	var seqA []uint64
	for _, r := range sink.get() {
		if r.Partial || len(r.Missing) != 0 {
			t.Errorf("result %s/%d should be complete: %+v", r.Camera, r.Seq, r)
		}
		if r.Camera == "a" {
			seqA = append(seqA, r.Seq)
			if r.Outputs["x"].Value[0] != float64(r.Seq) || r.Outputs["y"] == nil {
				t.Errorf("outputs mixed up between frames: %+v", r.Outputs)
			}
		}
	}
	if len(seqA) != 2 || seqA[0] != 1 || seqA[1] != 2 {
		t.Errorf("camera a emitted %v, want [1 2]", seqA)
	}
}

func TestMergerEmitsPartialAtDeadline(t *testing.T) {
	m, sink, clock := newTestMerger(t, 100)
	m.AddPlan(plan("a", 1, "x", "y"))
	m.AddOutput(output("a", 1, "x", 3))
	m.expire()
	if len(sink.get()) != 0 {
		t.Fatal("emitted before the deadline")
	}
	clock.add(1500 * time.Millisecond)
	m.expire()
	waitFor(t, 2*time.Second, "partial result", func() bool { return len(sink.get()) == 1 })
	r := sink.get()[0]
	if !r.Partial || len(r.Missing) != 1 || r.Missing[0] != "y" || r.Outputs["x"] == nil {
		t.Fatalf("want partial with y missing, got %+v", r)
	}
	if r.LatencyMS != 1500 {
		t.Errorf("latency %v ms, want 1500", r.LatencyMS)
	}
	// The straggler arrives late: dropped, not a second result.
	m.AddOutput(output("a", 1, "y", 3))
	m.expire()
	time.Sleep(50 * time.Millisecond)
	if len(sink.get()) != 1 || m.Stats().LateOutputs.Load() != 1 {
		t.Fatalf("late output: %d results, %d late", len(sink.get()), m.Stats().LateOutputs.Load())
	}
}

func TestMergerMemoryIsBounded(t *testing.T) {
	m, sink, _ := newTestMerger(t, 10)
	for seq := uint64(1); seq <= 50; seq++ {
		m.AddPlan(plan("a", seq, "x")) // outputs never come
	}
	// Outputs with no plan at all must not accumulate either.
	for seq := uint64(1000); seq < 1050; seq++ {
		m.AddOutput(output("ghost", seq, "x", 1))
	}
	m.mu.Lock()
	n := len(m.pending)
	m.mu.Unlock()
	if n > 10 {
		t.Fatalf("%d frames pending, bound is 10", n)
	}
	waitFor(t, 2*time.Second, "evicted frames emitted", func() bool { return len(sink.get()) >= 40 })
	prev := uint64(0)
	for _, r := range sink.get() {
		if !r.Partial || r.Seq <= prev {
			t.Fatalf("evicted frames must be partial and in order: %d after %d partial=%v", r.Seq, prev, r.Partial)
		}
		prev = r.Seq
	}
}

func TestMergerFlushesPendingOnStop(t *testing.T) {
	m, sink, _ := newTestMerger(t, 100)
	m.AddPlan(plan("a", 1, "x"))
	m.AddPlan(plan("a", 2, "x"))
	m.flushAll()
	waitFor(t, 2*time.Second, "flushed results", func() bool { return len(sink.get()) == 2 })
}

func TestMergerOverNATS(t *testing.T) {
	srv := startBus(t)
	nc := connect(t, srv)
	sink := collectResults(t, nc)
	m := NewMerger(connect(t, srv), pipeline.MergerConfig{Deadline: time.Second, MaxPending: 100}, zerolog.Nop())
	ctx, cancel := contextWithCancel()
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("merger stopped: %v", err)
	}
	pub := func(subject string, data []byte, err error) {
		if err != nil {
			t.Fatal(err)
		}
		nc.Publish(subject, data)
	}
	d, err := pipeline.Marshal(plan("cam", 1, "x"))
	pub(pipeline.DefaultSubjects.Plan("cam"), d, err)
	nc.Publish(pipeline.DefaultSubjects.Outputs("cam", "x"), []byte("{not json"))
	d, err = pipeline.Marshal(output("cam", 1, "x", 4))
	pub(pipeline.DefaultSubjects.Outputs("cam", "x"), d, err)
	waitFor(t, 2*time.Second, "result", func() bool { return len(sink.get()) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m.Stats().BadMessages.Load() != 1 {
		t.Errorf("bad messages %d, want 1", m.Stats().BadMessages.Load())
	}
}

var (
	startBus = natstest.Start
	connect  = natstest.Connect
	waitFor  = natstest.WaitFor
)

func TestMergerFillsReusedModelsFromTheLastExactOutput(t *testing.T) {
	m, sink, _ := newTestMerger(t, 100)
	m.AddPlan(plan("a", 1, "x", "y"))
	m.AddOutput(output("a", 1, "x", 5))
	m.AddOutput(output("a", 1, "y", 7))
	// Frame 2 runs x only and reuses y.
	p := plan("a", 2, "x")
	p.Reused = []string{"y"}
	m.AddPlan(p)
	m.AddOutput(output("a", 2, "x", 6))
	// Camera b never ran y: nothing to reuse, said so.
	pb := plan("b", 1, "x")
	pb.Reused = []string{"y"}
	m.AddPlan(pb)
	m.AddOutput(output("b", 1, "x", 1))
	waitFor(t, 2*time.Second, "3 results", func() bool { return len(sink.get()) == 3 })
	for _, r := range sink.get() {
		switch {
		case r.Camera == "a" && r.Seq == 2:
			y := r.Outputs["y"]
			if r.Partial || y == nil || y.Source != pipeline.SourceReused || y.FromSeq != 1 || y.Value[0] != 7 || y.Seq != 2 {
				t.Fatalf("reused output %+v in %+v", y, r)
			}
		case r.Camera == "b":
			if y := r.Outputs["y"]; y == nil || y.Error == "" || y.Source != pipeline.SourceReused {
				t.Fatalf("camera b: %+v", y)
			}
		}
	}
}

// A seq no plan comes for gets a gap record once the frames after it have
// waited, so that every frame has a result.
func TestMergerEmitsGapRecords(t *testing.T) {
	m, sink, clock := newTestMerger(t, 100)
	m.AddPlan(plan("a", 1, "x"))
	m.AddOutput(output("a", 1, "x", 1))
	m.AddPlan(plan("a", 4, "x"))
	m.AddOutput(output("a", 4, "x", 4))
	m.expire()
	time.Sleep(50 * time.Millisecond)
	if n := len(sink.get()); n != 1 {
		t.Fatalf("%d results before the gap's wait, want 1", n)
	}
	clock.add(time.Second)
	m.expire()
	waitFor(t, 2*time.Second, "gap records and frame 4", func() bool { return len(sink.get()) == 4 })
	for i, r := range sink.get() {
		gap := r.Seq == 2 || r.Seq == 3
		if r.Seq != uint64(i+1) || gap != (r.Reason == pipeline.PartialLost) || gap != r.Partial {
			t.Errorf("result %d: seq %d partial %v reason %q", i, r.Seq, r.Partial, r.Reason)
		}
	}
}

// A camera whose seqs start again (a restarted ingest) is followed once
// its plans have all been refused for a deadline, not refused for ever.
func TestMergerFollowsARestartedCamera(t *testing.T) {
	m, sink, clock := newTestMerger(t, 100)
	for seq := uint64(100); seq < 103; seq++ {
		m.AddPlan(plan("a", seq, "x"))
		m.AddOutput(output("a", seq, "x", 1))
	}
	waitFor(t, 2*time.Second, "3 results", func() bool { return len(sink.get()) == 3 })
	m.AddPlan(plan("a", 1, "x"))
	if m.Rejects().Snapshot()[pipeline.RejectLate] != 1 {
		t.Fatalf("rejects %v, want one late plan", m.Rejects().Snapshot())
	}
	clock.add(time.Second)
	m.AddPlan(plan("a", 2, "x"))
	m.AddOutput(output("a", 2, "x", 1))
	waitFor(t, 2*time.Second, "the restarted camera's result", func() bool { return len(sink.get()) == 4 })
	if r := sink.get()[3]; r.Seq != 2 || r.Partial {
		t.Fatalf("%+v, want seq 2 complete", r)
	}
}
