package scheduler

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// orderPolicy records the order of its plans and observations; observing
// is slow, as training in line is.
type orderPolicy struct {
	mu     sync.Mutex
	events []string
}

func (p *orderPolicy) Name() string { return "order" }

func (p *orderPolicy) Plan(f FrameInfo) pipeline.Plan {
	p.mu.Lock()
	p.events = append(p.events, fmt.Sprintf("plan %d", f.Seq))
	p.mu.Unlock()
	return pipeline.Plan{Camera: f.Camera, Seq: f.Seq, Policy: "order", Exact: []string{"m"}}
}

func (p *orderPolicy) ObserveResult(r *pipeline.Result) {
	time.Sleep(20 * time.Millisecond)
	p.mu.Lock()
	p.events = append(p.events, fmt.Sprintf("observe %d", r.Seq))
	p.mu.Unlock()
}

func (p *orderPolicy) ObserveHeartbeat(*pipeline.Heartbeat) {}

func (p *orderPolicy) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// In line, a result that reached the scheduler before a frame is observed
// before the frame is planned, however long observing takes.
func TestObserveInLinePlansAfterEarlierResults(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	policy := &orderPolicy{}
	s := New(natstest.Connect(t, srv), policy, zerolog.Nop())
	s.ObserveInLine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()

	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3}
	var want []string
	for seq := uint64(1); seq <= 5; seq++ {
		// The result of the frame before, then the frame, from one
		// connection (the live pipeline's are two: the merger's result
		// reaches the scheduler before whoever waited for it publishes).
		data, err := pipeline.Marshal(&pipeline.Result{Camera: "cam", Seq: seq - 1, Outputs: map[string]*pipeline.Output{}})
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(pipeline.DefaultSubjects.Results("cam"), data); err != nil {
			t.Fatal(err)
		}
		f := &pipeline.Frame{Camera: "cam", Seq: seq, CapturedAt: time.Now(), Width: 4, Height: 4, JPEG: jpeg}
		if err := nc.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("cam"), f)); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("observe %d", seq-1), fmt.Sprintf("plan %d", seq))
	}
	natstest.WaitFor(t, 5*time.Second, "5 plans", func() bool { return len(policy.get()) == len(want) })
	if got := policy.get(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
