package replay

import (
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
)

// The committed trace: vtest.avi (795 frames at 10 fps) through the 8 demo
// models.
const vtestTrace = "../../links/testdata/vtest.trace.gz"

var (
	traceOnce sync.Once
	trace     *Trace
	traceErr  error
)

func loadTrace(t *testing.T) *Trace {
	t.Helper()
	traceOnce.Do(func() { trace, traceErr = Load(vtestTrace) })
	if traceErr != nil {
		t.Fatal(traceErr)
	}
	return trace
}

// quickLearner trains fewer epochs than the paper's 100 to keep the tests
// short; the comparisons asserted hold either way.
func quickLearner(tr *Trace) scheduler.Learner {
	return NewCachedLearner(scheduler.NewLinkLearner(tr.Header, links.TrainOptions{Seed: 1, Epochs: 30, NoTemporal: true}))
}

// quickTemporalLearner also trains temporal links (mlink-hybrid).
func quickTemporalLearner(tr *Trace) scheduler.Learner {
	return NewCachedLearner(scheduler.NewLinkLearner(tr.Header, links.TrainOptions{Seed: 1, Epochs: 30}))
}

func baseOptions(tr *Trace) Options {
	return Options{FPS: tr.Header.FPS, Period: 20 * time.Second, ProfileShare: 0.05, Learner: quickLearner(tr)}
}

func TestAllRunsEverything(t *testing.T) {
	tr := loadTrace(t)
	row, err := Run(tr, Options{Policy: "all", FPS: 10})
	if err != nil {
		t.Fatal(err)
	}
	if row.Accuracy != 1 || row.AccuracyGraded != 1 || row.ExecutionsSaved > 0.002 {
		t.Fatalf("all: accuracy %v graded %v saved %v, want 1, 1, ~0", row.Accuracy, row.AccuracyGraded, row.ExecutionsSaved)
	}
	if row.Frames != len(tr.Records) || row.Budget != "none" {
		t.Fatalf("all: %d frames, budget %q", row.Frames, row.Budget)
	}
	total := 0.0
	for _, c := range tr.Costs() {
		total += c.MS
	}
	// One frame's recording lacks one model's output: it ran nothing there.
	if math.Abs(row.MSPerFrame-total) > total*0.01 {
		t.Fatalf("all: %.1f ms/frame, want the sum of the models' costs %.1f", row.MSPerFrame, total)
	}
}

// Standalone scores exactly the share of models it runs on the frames it
// does not profile, at every budget point (where 1, 2, … of the cheapest
// models fit), pays for its cost probe (the first frame runs every model)
// within the budget, and ends on the cheapest models that fit.
func TestStandaloneScoresShareRun(t *testing.T) {
	tr := loadTrace(t)
	n := float64(len(tr.Models()))
	points := BudgetPoints(tr.Costs(), "ms")
	if len(points) < len(tr.Models())-1 {
		t.Fatalf("%d budget points for %d models", len(points), len(tr.Models()))
	}
	var ms []float64
	for _, c := range tr.Costs() {
		ms = append(ms, c.MS)
	}
	slices.Sort(ms)
	fits := map[float64]int{} // budget → how many of the cheapest fit exactly
	sum := 0.0
	for k, v := range ms {
		sum += v
		fits[math.Ceil(sum)] = k + 1
	}
	for _, b := range points {
		row, err := Run(tr, Options{Policy: "standalone", Budget: b, FPS: 10, Period: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := fits[b.MS]; ok && len(row.Selected) != k {
			t.Errorf("budget point %s ends running %v, want the %d cheapest", b, row.Selected, k)
		}
		exact := 0
		for _, s := range row.PerModel {
			exact += s.Exact
		}
		profiled := int(math.Round(row.ProfiledShare * float64(row.Frames)))
		if profiled != 1 {
			t.Errorf("standalone at %s profiled %d frames, want the one cost probe", b, profiled)
		}
		share := float64(exact-profiled*int(n)) / (float64(row.Frames-profiled) * n)
		if math.Abs(row.AccuracyUnprofiled-share) > 0.002 {
			t.Errorf("standalone at %s: accuracy on unprofiled frames %.4f, want the share of outputs run there %.4f", b, row.AccuracyUnprofiled, share)
		}
		if !row.Fits || row.MSPerFrame > b.MS {
			t.Errorf("standalone at %s spends %.1f ms/frame (fits %v)", b, row.MSPerFrame, row.Fits)
		}
	}
}

// mlink and mlink-hybrid predict what standalone leaves absent: never
// worse, at every budget from one model to two thirds of the total cost.
func TestMLinkAtLeastStandalone(t *testing.T) {
	tr := loadTrace(t)
	opts := baseOptions(tr)
	plain, temporal := opts.Learner, quickTemporalLearner(tr)
	total := 0.0
	for _, c := range tr.Costs() {
		total += c.MS
	}
	for _, b := range BudgetPoints(tr.Costs(), "ms") {
		opts.Budget = b
		rows := map[string]float64{}
		for _, policy := range []string{"standalone", "mlink", "mlink-hybrid"} {
			opts.Policy, opts.Learner = policy, plain
			if policy == "mlink-hybrid" {
				opts.Learner = temporal
			}
			row, err := Run(tr, opts)
			if err != nil {
				t.Fatal(err)
			}
			rows[policy] = row.Accuracy
			if !row.Fits {
				t.Errorf("%s at %s: %.1f ms/frame over the run, profiling included: does not fit", policy, b, row.MSPerFrame)
			}
			if policy != "standalone" {
				// The first 10% and 5% of each period, scaled by the
				// budget's share of the total cost (evidence costs the
				// same share of any budget), paid at the budget's pace.
				scale := min(1, b.MS/total)
				if row.ProfiledShare > 0.2 || (b.MS >= 0.2*total && row.ProfiledShare < 0.08*scale) {
					t.Errorf("%s at %s: %.3f of frames profiled, want about (10%% + 5%%) × %.2f", policy, b, row.ProfiledShare, scale)
				}
				// Profiled frames run everything and count as cost.
				if row.ExecutionsSaved > 1-row.ProfiledShare {
					t.Errorf("%s at %s saves %.3f with %.3f profiled", policy, b, row.ExecutionsSaved, row.ProfiledShare)
				}
			}
		}
		t.Logf("%s: standalone %.3f mlink %.3f hybrid %.3f", b, rows["standalone"], rows["mlink"], rows["mlink-hybrid"])
		if rows["mlink"] < rows["standalone"] || rows["mlink-hybrid"] < rows["standalone"] {
			t.Errorf("at %s: standalone %.3f, mlink %.3f, mlink-hybrid %.3f", b, rows["standalone"], rows["mlink"], rows["mlink-hybrid"])
		}
	}
}

// A replay is deterministic: training runs in line, selections are dated
// by the media clock; a fresh learner gives the same row.
func TestReplayDeterministic(t *testing.T) {
	tr := loadTrace(t)
	short := &Trace{Header: tr.Header, Records: tr.Records[:300]}
	var got []float64
	for range 2 {
		opts := baseOptions(short)
		opts.Policy, opts.Budget = "mlink", scheduler.Budget{MS: 300}
		row, err := Run(short, opts)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, row.Accuracy, row.ExecutionsSaved)
	}
	if got[0] != got[2] || got[1] != got[3] {
		t.Fatalf("two replays differ: accuracy %v vs %v, saved %v vs %v", got[0], got[2], got[1], got[3])
	}
}

// The frame filter (Reducto) turns filtered frames into reuse of every
// model, except on profiling frames.
func TestSendFilter(t *testing.T) {
	tr := loadTrace(t)
	odd := func(_ string, seq uint64) bool { return seq%2 == 1 }
	row, err := Run(tr, Options{Policy: "all", FPS: 10, Send: odd, Name: "half"})
	if err != nil {
		t.Fatal(err)
	}
	if row.Policy != "half" || math.Abs(row.FilteredShare-0.5) > 0.01 || math.Abs(row.ExecutionsSaved-0.5) > 0.01 {
		t.Fatalf("half the frames filtered: policy %q filtered %.3f saved %.3f", row.Policy, row.FilteredShare, row.ExecutionsSaved)
	}
	if row.Accuracy >= 1 || row.Accuracy < 0.5 {
		t.Fatalf("reusing every other frame: accuracy %.3f", row.Accuracy)
	}
	for m, s := range row.PerModel {
		if s.Reused == 0 || s.Exact == 0 || s.Predicted != 0 {
			t.Errorf("%s: %+v", m, s)
		}
	}
}

func TestSamplingStride(t *testing.T) {
	tr := loadTrace(t)
	row, err := Run(tr, Options{Policy: "all", FPS: 10, Stride: 10, Sampling: "1fps"})
	if err != nil {
		t.Fatal(err)
	}
	if row.Frames != 80 || row.Sampling != "1fps" {
		t.Fatalf("1 fps of 795 frames: %d frames (%s), want 80", row.Frames, row.Sampling)
	}
}

func TestMediaClock(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := &Trace{Records: []*links.TraceRecord{
		{Camera: "a", Seq: 1, Time: t0},
		{Camera: "a", Seq: 3, Time: t0.Add(time.Hour)}, // processed slowly
		{Camera: "b", Seq: 5, Time: t0.Add(time.Second)},
		{Camera: "b", Seq: 6, Time: t0.Add(2 * time.Hour)},
	}}
	fr := tr.frames(10, 1)
	if len(fr) != 4 {
		t.Fatalf("%d frames", len(fr))
	}
	want := map[uint64]time.Duration{1: 0, 3: 200 * time.Millisecond, 5: time.Second, 6: time.Second + 100*time.Millisecond}
	for _, f := range fr {
		if got := f.at.Sub(t0); got != want[f.rec.Seq] {
			t.Errorf("seq %d at %s, want %s", f.rec.Seq, got, want[f.rec.Seq])
		}
	}
}

func TestBudgetPoints(t *testing.T) {
	costs := map[string]scheduler.Cost{"a": {MS: 10, Memory: 1 << 30}, "b": {MS: 20, Memory: 2 << 30}, "c": {MS: 60, Memory: 3 << 30}}
	got := BudgetPoints(costs, "ms")
	want := []float64{10, 23, 30, 45, 60} // 1 model, ¼ of 90 (rounded up), 2 models (and ⅓), ½, ⅔
	if len(got) != len(want) {
		t.Fatalf("points %v, want %v ms", got, want)
	}
	for i := range want {
		if got[i].MS != want[i] || got[i].Memory != 0 {
			t.Errorf("point %d: %v, want %vms", i, got[i], want[i])
		}
	}
	mem := BudgetPoints(costs, "memory")
	// 1 GB, 3 GB (one and two models, and ½ of 6 GB), 1.5 GB, 2 GB and
	// 4 GB (¼, ⅓ and ⅔).
	if len(mem) != 5 || mem[0].Memory != 1<<30 || mem[1].Memory != 1536<<20 || mem[2].Memory != 2<<30 || mem[3].Memory != 3<<30 || mem[4].Memory != 4<<30 {
		t.Errorf("memory points %v", mem)
	}
}

func TestCachedLearnerTrainsOnce(t *testing.T) {
	tr := loadTrace(t)
	counting := &countingLearner{inner: scheduler.NewLinkLearner(tr.Header, links.TrainOptions{Seed: 1, Epochs: 2, NoTemporal: true})}
	c := NewCachedLearner(counting)
	a, err := c.Train(tr.Records[:20])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Train(tr.Records[:20])
	d, _ := c.Train(tr.Records[:21])
	if a != b || a == d || counting.trains != 2 {
		t.Fatalf("same samples: same links (%v); other samples: new links (%v); %d trainings, want 2", a == b, a != d, counting.trains)
	}
}

type countingLearner struct {
	inner  scheduler.Learner
	trains int
}

func (c *countingLearner) Train(s []*links.TraceRecord) (scheduler.Learned, error) {
	c.trains++
	return c.inner.Train(s)
}

func TestGradedAccuracy(t *testing.T) {
	out := func(n float64) *pipeline.Output {
		return &pipeline.Output{Type: pipeline.TypeCount, Value: []float64{n}}
	}
	if got := GradedAccuracy(pipeline.TypeCount, out(3), out(4)); math.Abs(got-0.75) > 1e-9 {
		t.Errorf("3 for 4: %v, want 0.75", got)
	}
	if got := GradedAccuracy(pipeline.TypeCount, out(4), out(4)); got != 1 {
		t.Errorf("equal: %v", got)
	}
}
