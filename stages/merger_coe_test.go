package stages

import (
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// The merger's half of a two-round frame (policy coe): tier 1 disagreeing
// escalates the frame (with its token) and the frame waits for the next
// tier, whose output it then takes; tier 1 agreeing answers the final
// model's output with the majority, and escalates nothing. An output of a
// later tier before its escalation is not planned.
func TestMergerEscalatesADisagreeingTierAndAnswersAnAgreeingOne(t *testing.T) {
	srv := startBus(t)
	sink := collectResults(t, connect(t, srv))
	m := NewMerger(connect(t, srv), pipeline.MergerConfig{Deadline: time.Minute, MaxPending: 10}, zerolog.Nop())
	var mu sync.Mutex
	var escalations []*pipeline.Escalation
	spy := connect(t, srv)
	spy.Subscribe(pipeline.DefaultSubjects.AllEscalations(), func(msg *nats.Msg) {

		e, err := pipeline.Unmarshal[pipeline.Escalation](msg.Data)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		escalations = append(escalations, e)
		mu.Unlock()
	})
	spy.Flush()
	cascade := pipeline.Cascade{Task: "people", Output: "big", Tiers: []pipeline.CascadeTier{{Models: []string{"a", "b"}, Theta: 1}, {Models: []string{"big"}, Theta: 1}}}
	for seq := uint64(1); seq <= 2; seq++ {
		p := plan("cam", seq, "a", "b")
		p.Reused, p.Cascades = []string{"big"}, []pipeline.Cascade{cascade}
		m.AddPlan(p)
	}
	// Frame 1: 2 against 3: escalated.
	early := output("cam", 1, "big", 3)
	m.AddOutput(early)
	m.AddOutput(output("cam", 1, "a", 2))
	m.AddOutput(output("cam", 1, "b", 3))
	// Frame 2: both 4: answered by tier 1.
	m.AddOutput(output("cam", 2, "a", 4))
	m.AddOutput(output("cam", 2, "b", 4))
	waitFor(t, 5*time.Second, "frame 1's escalation", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(escalations) == 1
	})
	if len(sink.get()) != 0 {
		t.Fatal("a result left before the escalated tier answered")
	}
	m.AddOutput(output("cam", 1, "big", 3))
	waitFor(t, 5*time.Second, "both results", func() bool { return len(sink.get()) == 2 })
	mu.Lock()
	e := escalations[0]
	mu.Unlock()
	if e.Camera != "cam" || e.Seq != 1 || len(e.Models) != 1 || e.Models[0] != "big" || e.Token != testToken("cam", 1) {
		t.Errorf("escalation %+v, want frame 1 to big with its token", e)
	}
	rs := sink.get()
	if o := rs[0].Outputs["big"]; rs[0].Partial || o == nil || o.Source != pipeline.SourceExact || o.Value[0] != 3 {
		t.Errorf("frame 1: big %+v (partial %v), want its own exact 3", o, rs[0].Partial)
	}
	if o := rs[1].Outputs["big"]; rs[1].Partial || o == nil || o.Source != pipeline.SourcePredicted || o.Value[0] != 4 {
		t.Errorf("frame 2: big %+v (partial %v), want tier 1's answer 4", o, rs[1].Partial)
	}
	if m.Stats().Escalations.Load() != 1 || m.Rejects().Snapshot()[pipeline.RejectModelNotPlanned] != 1 {
		t.Errorf("escalations %d, not-planned rejects %d: want 1 and 1 (big before its tier)", m.Stats().Escalations.Load(), m.Rejects().Snapshot()[pipeline.RejectModelNotPlanned])
	}
}
