package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

func TestAllPolicyRoutesEveryFrameToEveryModel(t *testing.T) {
	srv := startBus(t)
	nc := connect(t, srv)
	models := []string{"hog", "face", "motion"}
	policy, err := NewController(ControllerConfig{Policy: PolicyAll, Models: models}, nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	s := New(connect(t, srv), policy, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	var mu sync.Mutex
	var plans []*pipeline.Plan
	infers := map[string][]uint64{}
	nc.Subscribe(pipeline.DefaultSubjects.AllPlans(), func(m *nats.Msg) {
		p, err := pipeline.Unmarshal[pipeline.Plan](m.Data)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		plans = append(plans, p)
		mu.Unlock()
	})
	nc.Subscribe("mlink.infer.*", func(m *nats.Msg) {
		f, err := pipeline.DecodeFrame(m)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		infers[m.Subject] = append(infers[m.Subject], f.Seq)
		mu.Unlock()
	})
	nc.Flush()
	<-s.Ready()

	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3}
	for seq := uint64(1); seq <= 5; seq++ {
		f := &pipeline.Frame{Camera: "cam", Seq: seq, CapturedAt: time.Now(), Width: 4, Height: 4, JPEG: jpeg}
		nc.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("cam"), f))
	}
	// Not a JPEG, and a frame claiming another camera's subject: rejected.
	nc.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("cam"), &pipeline.Frame{Camera: "cam", Seq: 6, CapturedAt: time.Now(), Width: 4, Height: 4, JPEG: []byte("garbage")}))
	nc.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("cam"), &pipeline.Frame{Camera: "other", Seq: 7, CapturedAt: time.Now(), Width: 4, Height: 4, JPEG: jpeg}))
	// Still routing after bad input.
	nc.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("cam"), &pipeline.Frame{Camera: "cam", Seq: 8, CapturedAt: time.Now(), Width: 4, Height: 4, JPEG: jpeg}))

	waitFor(t, 5*time.Second, "plans and infer messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(plans) == 6 && len(infers["mlink.infer.motion"]) == 6
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range models {
		got := infers[pipeline.DefaultSubjects.Infer(m)]
		want := []uint64{1, 2, 3, 4, 5, 8}
		if len(got) != len(want) {
			t.Fatalf("%s got frames %v, want %v", m, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s got frames %v, want %v", m, got, want)
			}
		}
	}
	for _, p := range plans {
		if p.Policy != "all" || len(p.Exact) != 3 || len(p.Predicted) != 0 || p.CapturedAt.IsZero() {
			t.Errorf("bad plan %+v", p)
		}
	}
	if s.Stats().Rejected.Load() != 2 {
		t.Errorf("rejected %d frames, want 2", s.Stats().Rejected.Load())
	}
	if s.Stats().Executions.Load() != 18 || s.Stats().Planned.Load() != 18 {
		t.Errorf("executions %d planned %d, want 18 each", s.Stats().Executions.Load(), s.Stats().Planned.Load())
	}
}

func TestUnknownPolicy(t *testing.T) {
	if _, err := NewController(ControllerConfig{Policy: "nope", Models: []string{"a"}}, nil, nil, zerolog.Nop()); err == nil {
		t.Fatal("want an error")
	}
}

var (
	startBus = natstest.Start
	connect  = natstest.Connect
	waitFor  = natstest.WaitFor
)

// TestSchedulerTakesOnlyConfiguredCameras floods the scheduler with frames
// and results of made-up cameras, as any client of a server without auth
// can: none is planned, none gives the policy per-camera state, each is
// counted by reason, and the configured camera is planned throughout.
func TestSchedulerTakesOnlyConfiguredCameras(t *testing.T) {
	srv := startBus(t)
	nc := connect(t, srv)
	policy, err := NewController(ControllerConfig{Policy: PolicyAll, Models: []string{"hog"}}, nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	s := New(connect(t, srv), policy, zerolog.Nop())
	s.OnlyCameras([]pipeline.CameraConfig{{ID: "cam"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	var mu sync.Mutex
	planned := map[string]int{}
	nc.Subscribe(pipeline.DefaultSubjects.AllPlans(), func(m *nats.Msg) {
		if p, err := pipeline.Unmarshal[pipeline.Plan](m.Data); err == nil {
			mu.Lock()
			planned[p.Camera]++
			mu.Unlock()
		}
	})
	nc.Flush()
	<-s.Ready()

	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3}
	frame := func(camera string, seq uint64) *nats.Msg {
		return pipeline.FrameMsg(pipeline.DefaultSubjects.Frames(camera), &pipeline.Frame{Camera: camera, Seq: seq, CapturedAt: time.Now(), Width: 4, Height: 4, JPEG: jpeg})
	}
	const fakes = 500
	for i := range fakes {
		nc.PublishMsg(frame(fmt.Sprintf("fake-%d", i), 1))
		nc.PublishMsg(frame("cam", uint64(i+1)))
		// A result for a made-up camera, and one whose body names the
		// real camera on another camera's subject.
		data, _ := pipeline.Marshal(&pipeline.Result{Camera: fmt.Sprintf("fake-%d", i), Seq: 1, Outputs: map[string]*pipeline.Output{}})
		nc.Publish(pipeline.DefaultSubjects.Results(fmt.Sprintf("fake-%d", i)), data)
		data, _ = pipeline.Marshal(&pipeline.Result{Camera: "cam", Seq: uint64(i + 1), Outputs: map[string]*pipeline.Output{}})
		nc.Publish(pipeline.DefaultSubjects.Results("elsewhere"), data)
	}
	nc.Publish(pipeline.DefaultSubjects.Results("cam"), []byte("{not json"))
	waitFor(t, 10*time.Second, "every frame routed or refused", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return planned["cam"] == fakes && s.Rejects().Total() == 3*fakes+1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(planned) != 1 {
		t.Errorf("plans for %d cameras, want only cam's: %v", len(planned), len(planned))
	}
	got := s.Rejects().Snapshot()
	want := map[pipeline.RejectReason]uint64{
		pipeline.RejectUnknownCamera:  2 * fakes,
		pipeline.RejectCameraMismatch: fakes,
		pipeline.RejectMalformed:      1,
	}
	for reason, n := range want {
		if got[reason] != n {
			t.Errorf("rejected %d as %s, want %d (all: %v)", got[reason], reason, n, got)
		}
	}
	if n := len(policy.frameIndex); n != 1 {
		t.Errorf("the policy keeps state for %d cameras, want 1 (cam)", n)
	}
	if s.Stats().Rejected.Load() != fakes {
		t.Errorf("Stats().Rejected = %d frames, want %d", s.Stats().Rejected.Load(), fakes)
	}
}
