package scheduler

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// fakeFilter filters the frames in drop and fails on those in fail.
type fakeFilter struct {
	drop, fail map[uint64]bool

	mu       sync.Mutex
	asked    []uint64
	observed []uint64
}

func (f *fakeFilter) Filter(fr *pipeline.Frame) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, fr.Seq)
	if f.fail[fr.Seq] {
		return false, errors.New("cannot decode")
	}
	return !f.drop[fr.Seq], nil
}

func (f *fakeFilter) ObserveResult(r *pipeline.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observed = append(f.observed, r.Seq)
}

func (f *fakeFilter) Close() error { return nil }

// twoPlusOnePolicy executes a and b and predicts c; the frames in profile
// are profiling frames that run all three.
type twoPlusOnePolicy struct {
	profile map[uint64]bool
	planned []uint64 // routing goroutine only; read after Run returns
}

func (p *twoPlusOnePolicy) Name() string { return "two-plus-one" }

func (p *twoPlusOnePolicy) Plan(f FrameInfo) pipeline.Plan {
	p.planned = append(p.planned, f.Seq)
	plan := pipeline.Plan{Camera: f.Camera, Seq: f.Seq, Policy: p.Name()}
	if p.profile[f.Seq] {
		plan.Exact, plan.Profiling = []string{"a", "b", "c"}, true
		return plan
	}
	plan.Exact, plan.Predicted = []string{"a", "b"}, []string{"c"}
	return plan
}

func TestFilteredFramesReuseEveryModelAndReachNoWorker(t *testing.T) {
	srv := startBus(t)
	nc := connect(t, srv)
	policy := &twoPlusOnePolicy{profile: map[uint64]bool{4: true}}
	// 2 and 3 are filtered; 4 too, but it is a profiling frame; 5 fails.
	filter := &fakeFilter{drop: map[uint64]bool{2: true, 3: true, 4: true}, fail: map[uint64]bool{5: true}}
	s := New(connect(t, srv), policy, zerolog.Nop())
	s.SetFilter(filter)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	var mu sync.Mutex
	plans := map[uint64]*pipeline.Plan{}
	infers := map[uint64][]string{}
	nc.Subscribe(pipeline.DefaultSubjects.AllPlans(), func(m *nats.Msg) {
		p, err := pipeline.Unmarshal[pipeline.Plan](m.Data)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		plans[p.Seq] = p
		mu.Unlock()
	})
	nc.Subscribe("mlink.infer.*", func(m *nats.Msg) {
		f, err := pipeline.DecodeFrame(m)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		infers[f.Seq] = append(infers[f.Seq], m.Subject)
		mu.Unlock()
	})
	nc.Flush()
	<-s.Ready()

	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3}
	for seq := uint64(1); seq <= 6; seq++ {
		f := &pipeline.Frame{Camera: "cam", Seq: seq, CapturedAt: time.Now(), Width: 4, Height: 4, JPEG: jpeg}
		nc.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("cam"), f))
	}
	// A frame rejected before the filter: not a JPEG.
	nc.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("cam"), &pipeline.Frame{Camera: "cam", Seq: 7, CapturedAt: time.Now(), Width: 4, Height: 4, JPEG: []byte("garbage")}))
	// Results reach the filter.
	for seq := uint64(1); seq <= 2; seq++ {
		data, _ := pipeline.Marshal(&pipeline.Result{Camera: "cam", Seq: seq, Outputs: map[string]*pipeline.Output{}})
		nc.Publish(pipeline.DefaultSubjects.Results("cam"), data)
	}
	waitFor(t, 5*time.Second, "plans, infer messages and observed results", func() bool {
		mu.Lock()
		defer mu.Unlock()
		filter.mu.Lock()
		defer filter.mu.Unlock()
		// Frames sent: 1 (2 models), 4 (3, profiling), 5 (2), 6 (2).
		n := 0
		for _, subjects := range infers {
			n += len(subjects)
		}
		return len(plans) == 6 && n == 9 && len(filter.observed) == 2
	})
	time.Sleep(50 * time.Millisecond) // a stray infer message would land now
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, seq := range []uint64{2, 3} {
		p := plans[seq]
		if len(p.Exact) != 0 || len(p.Predicted) != 0 || !slices.Equal(p.Reused, []string{"a", "b", "c"}) || p.Profiling {
			t.Errorf("filtered frame %d: plan %+v, want every model reused", seq, p)
		}
		if len(infers[seq]) != 0 {
			t.Errorf("filtered frame %d went to %v", seq, infers[seq])
		}
	}
	if p := plans[4]; !p.Profiling || !slices.Equal(p.Exact, []string{"a", "b", "c"}) || len(p.Reused) != 0 || len(infers[4]) != 3 {
		t.Errorf("profiling frame 4 was filtered: plan %+v, sent to %v", p, infers[4])
	}
	for _, seq := range []uint64{1, 5, 6} {
		if p := plans[seq]; !slices.Equal(p.Exact, []string{"a", "b"}) || !slices.Equal(p.Predicted, []string{"c"}) || len(infers[seq]) != 2 {
			t.Errorf("frame %d: plan %+v, sent to %v; want the policy's plan", seq, p, infers[seq])
		}
	}
	if !slices.Equal(policy.planned, []uint64{1, 2, 3, 4, 5, 6}) {
		t.Errorf("policy planned %v: it must see filtered frames too", policy.planned)
	}
	if !slices.Equal(filter.asked, []uint64{1, 2, 3, 4, 5, 6}) {
		t.Errorf("filter asked about %v", filter.asked)
	}
	st := s.Stats()
	if st.Filtered.Load() != 2 || st.FilterErrors.Load() != 1 || st.Frames.Load() != 6 || st.Rejected.Load() != 1 {
		t.Errorf("filtered %d, filter errors %d, frames %d, rejected %d; want 2, 1, 6, 1",
			st.Filtered.Load(), st.FilterErrors.Load(), st.Frames.Load(), st.Rejected.Load())
	}
	if st.Executions.Load() != 9 || st.Planned.Load() != 18 {
		t.Errorf("executions %d of %d planned, want 9 of 18", st.Executions.Load(), st.Planned.Load())
	}
}
