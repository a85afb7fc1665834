package scheduler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// cascadePolicy plans every frame with one cascade: a and b, then big.
type cascadePolicy struct{}

func (cascadePolicy) Name() string { return "test-cascade" }

func (cascadePolicy) Plan(f FrameInfo) pipeline.Plan {
	return pipeline.Plan{Camera: f.Camera, Seq: f.Seq, Policy: "test-cascade", Exact: []string{"a", "b"}, Reused: []string{"big"},
		Cascades: []pipeline.Cascade{{Task: "people", Output: "big", Tiers: []pipeline.CascadeTier{{Models: []string{"a", "b"}, Theta: 1}, {Models: []string{"big"}, Theta: 1}}}}}
}

// The scheduler re-sends a frame it kept to a cascade's later tier when
// the merger escalates it, with the frame's token; a forged escalation
// (another token, a model not of a later tier, a second time, another
// camera's subject) re-sends nothing.
func TestEscalationResendsTheKeptFrameOnlyWhenGenuine(t *testing.T) {
	srv := startBus(t)
	nc := connect(t, srv)
	s := New(connect(t, srv), cascadePolicy{}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)

	var mu sync.Mutex
	var plan *pipeline.Plan
	got := map[string][]*pipeline.Frame{}
	nc.Subscribe(pipeline.DefaultSubjects.AllPlans(), func(m *nats.Msg) {
		p, _ := pipeline.Unmarshal[pipeline.Plan](m.Data)
		mu.Lock()
		plan = p
		mu.Unlock()
	})
	nc.Subscribe("mlink.infer.*", func(m *nats.Msg) {
		f, _ := pipeline.DecodeFrame(m)
		mu.Lock()
		got[m.Subject] = append(got[m.Subject], f)
		mu.Unlock()
	})
	nc.Flush()
	<-s.Ready()
	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3}
	nc.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("cam"), &pipeline.Frame{Camera: "cam", Seq: 1, CapturedAt: time.Now(), Width: 4, Height: 4, JPEG: jpeg}))
	waitFor(t, 5*time.Second, "the plan and tier 1's frames", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return plan != nil && len(got[pipeline.DefaultSubjects.Infer("b")]) == 1
	})
	mu.Lock()
	token := plan.Token
	mu.Unlock()
	escalate := func(subjectCamera string, e pipeline.Escalation) {
		data, err := pipeline.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		nc.Publish(pipeline.DefaultSubjects.Escalate(subjectCamera), data)
	}
	escalate("cam", pipeline.Escalation{Camera: "cam", Seq: 1, Models: []string{"big"}, Token: "forged"})
	escalate("cam", pipeline.Escalation{Camera: "cam", Seq: 1, Models: []string{"a"}, Token: token})
	escalate("other", pipeline.Escalation{Camera: "cam", Seq: 1, Models: []string{"big"}, Token: token})
	escalate("cam", pipeline.Escalation{Camera: "cam", Seq: 2, Models: []string{"big"}, Token: token})
	escalate("cam", pipeline.Escalation{Camera: "cam", Seq: 1, Models: []string{"big"}, Token: token})
	escalate("cam", pipeline.Escalation{Camera: "cam", Seq: 1, Models: []string{"big"}, Token: token}) // again
	waitFor(t, 5*time.Second, "the five forged escalations refused, the genuine one sent", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return s.Stats().Rejected.Load() == 5 && len(got[pipeline.DefaultSubjects.Infer("big")]) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	big := got[pipeline.DefaultSubjects.Infer("big")]
	if len(big) != 1 || big[0].Seq != 1 || big[0].Token != token || len(got[pipeline.DefaultSubjects.Infer("a")]) != 1 {
		t.Fatalf("big got %d frames (%+v), a %d: want the one escalated frame with its token", len(big), big, len(got[pipeline.DefaultSubjects.Infer("a")]))
	}
	if s.Stats().Escalations.Load() != 1 || s.Stats().EscalatedBytes.Load() != int64(len(jpeg)) {
		t.Errorf("escalations %d, %d bytes: want 1 and %d", s.Stats().Escalations.Load(), s.Stats().EscalatedBytes.Load(), len(jpeg))
	}
}
