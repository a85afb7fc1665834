package stages_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/scheduler/replay"
)

// coeReplayFrames: the zoo's faces tier 1 first disagrees near frame 150.
const coeReplayFrames = 300

// coe's two rounds decide the same live and in the replay: the zoo's
// first frames under the zoo's cascades at a third of the cost, through
// the live scheduler and merger (escalations over the bus, the kept frame
// re-sent to the stand-in workers), give frame by frame the plans —
// escalated tiers included — and outputs the replay gives.
func TestLivePipelineMatchesTheReplayUnderCoE(t *testing.T) {
	full, err := replay.Load("../testdata/traces/vtest-zoo.trace.gz")
	if err != nil {
		t.Fatal(err)
	}
	cascades, pools, err := pipeline.ReadCoEConfig("../testdata/traces/vtest-zoo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tr := &replay.Trace{Header: full.Header, Records: full.Records[:coeReplayFrames]}
	opts := replay.Options{Policy: string(scheduler.PolicyCoE), Budget: replay.BudgetAtShare(tr.Costs(), "ms", 1.0/3),
		FPS: tr.Header.FPS, TrainShare: 0.1, Period: 10 * time.Second, ProfileShare: 0.05, HoldOut: 0.3, TuneFrames: 10, CoE: cascades, Pools: pools, Log: zerolog.Nop()}
	var want []*pipeline.Result
	opts.OnResult = func(r *pipeline.Result) { want = append(want, r) }
	if _, err := replay.Run(tr, opts); err != nil {
		t.Fatal(err)
	}
	got, _ := runLive(t, tr, opts)
	if len(got) != len(want) {
		t.Fatalf("live: %d results, replay %d", len(got), len(want))
	}
	escalated, answered := 0, 0
	for i, w := range want {
		w = roundTrip(t, w)
		g := got[i]
		where := fmt.Sprintf("frame #%d", w.Seq)
		if g.Seq != w.Seq || g.Partial {
			t.Fatalf("%s: live #%d partial %v", where, g.Seq, g.Partial)
		}
		comparePlans(t, where, &g.Plan, &w.Plan)
		if len(g.Outputs) != len(w.Outputs) {
			t.Fatalf("%s: live outputs %v, replay %v", where, keys(g.Outputs), keys(w.Outputs))
		}
		for m, wo := range w.Outputs {
			if go1, wo1 := comparable(g.Outputs[m]), comparable(wo); !reflect.DeepEqual(go1, wo1) {
				t.Fatalf("%s %s:\nlive   %+v\nreplay %+v", where, m, go1, wo1)
			}
		}
		for _, c := range w.Plan.Cascades {
			if len(c.Tiers) < 2 {
				continue
			}
			if slices.Contains(w.Plan.Exact, c.Tiers[1].Models[0]) {
				escalated++
			} else {
				answered++
			}
		}
	}
	t.Logf("%d frames identical; cascade visits escalated %d, answered by tier 1 %d", len(want), escalated, answered)
	if escalated == 0 || answered == 0 {
		t.Errorf("escalated %d, answered %d: the slice must exercise both", escalated, answered)
	}
}
