// Package replay replays a recorded trace (every model's exact output on
// every frame) through the scheduler's own policies, frame by frame, as the
// live pipeline would run them: the policy plans each frame, executed
// models answer with their recorded outputs, link predictors predict with
// the policy's current links, reused models take their last exact output,
// and the result goes back to the policy (which profiles, trains,
// re-profiles and re-selects on it). Every output is scored against the
// model's recorded exact output. mlink bench is built on it.
package replay

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/assemble"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/scheduler/report"
)

// Options configure one replay.
type Options struct {
	// Policy names a registered policy (scheduler.Policies), ablations
	// included (e.g. "mlink-hybrid/no-links"), as the bench's rows do.
	Policy string
	Budget scheduler.Budget
	// FPS places frames on the media clock: frame seq s of a camera is
	// captured (s−1)/FPS after the camera's first frame. 0: the records'
	// own times.
	FPS float64
	// Stride replays every Stride-th frame of each camera only (10 on a
	// 10 fps trace: the stream sampled at 1 fps). Default 1.
	Stride int
	// TrainShare is the share of the replayed frames (the first, by time)
	// profiled at a cold start to train the first links: the paper's 10 %.
	TrainShare float64
	// Period and ProfileShare: every Period, every model runs on the first
	// ProfileShare of it; links are measured, fine-tuned and the models
	// re-selected.
	Period       time.Duration
	ProfileShare float64
	// HoldOut is the share of the cold-start frames kept to measure links.
	HoldOut float64
	// ActiveShare and ActiveBatch configure active sampling (see
	// scheduler.ControllerConfig); 0: periodic windows only.
	ActiveShare float64
	ActiveBatch int
	// TuneFrames: profiled frames pooled before a fine-tuning (default 30).
	TuneFrames int
	// TurnBatch: rotation-turn frames pooled before a fine-tuning (0: off).
	TurnBatch int
	// TurnEvidence: mlink-hybrid re-selects on what its rotation turns
	// measure (scheduler.ControllerConfig.TurnEvidence).
	TurnEvidence bool
	// Learner trains links (mlink policies); share one between replays of
	// the same trace (see CachedLearner) to train once.
	Learner scheduler.Learner
	// Send, if set, filters frames before the policy's plan is carried out
	// (Reducto): a filtered frame reuses every model's last output, unless
	// the policy profiles it.
	Send func(camera string, seq uint64) bool
	// FilterProfiles, if set, tells the frames the filter profiled (sent
	// whole to learn from): they are scored as profiled frames.
	FilterProfiles func(camera string, seq uint64) bool
	// Features, if set, gives each frame's own features (its downsampled
	// pixels, decoded from the trace's videos) to the policies that
	// predict from them (scheduler.PolicySpec.FrameFeatures: mtl).
	Features scheduler.FrameFeatures
	// Name overrides the policy's name in the row (e.g. "reducto+mlink").
	Name string
	// Importance weighs outputs (policy dcta).
	Importance scheduler.Importance
	Sampling   string
	Log        zerolog.Logger
	// OnResult, if set, sees every frame's result after the policy did
	// (tests compare the replay with the live pipeline frame by frame).
	OnResult func(*pipeline.Result)
	// CoE holds policy coe's cascades (a trace's scheduler.coe).
	CoE pipeline.CoEConfig
	// JellyBean is policy jellybean's SLOs and variants; Pools the worker
	// pools it places them on.
	JellyBean pipeline.JellyBeanConfig
	Pools     []pipeline.WorkerPool
	// Seed seeds the policy's random choices (drls/random).
	Seed int64
}

// Trace is a loaded trace.
type Trace struct {
	Header  links.TraceHeader
	Records []*links.TraceRecord
}

// Load reads a whole trace.
func Load(path string) (*Trace, error) {
	h, recs, err := links.ReadTrace(path)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("trace %s has no frames", path)
	}
	return &Trace{Header: h, Records: recs}, nil
}

// Models returns the trace's model names in header order.
func (t *Trace) Models() []string {
	out := make([]string, len(t.Header.Models))
	for i, m := range t.Header.Models {
		out[i] = m.Name
	}
	return out
}

// Costs are the models' costs recorded in the trace header (each model
// measured alone when the trace was made).
func (t *Trace) Costs() map[string]scheduler.Cost {
	out := map[string]scheduler.Cost{}
	for _, m := range t.Header.Models {
		out[m.Name] = scheduler.Cost{Memory: m.MemoryBytes, MS: m.InferMS}
	}
	return out
}

// frame is one replayed record at its media time.
type frame struct {
	rec *links.TraceRecord
	at  time.Time
}

// frames orders the records to replay by capture time on the media clock.
func (t *Trace) frames(fps float64, stride int) []frame {
	first := map[string]*links.TraceRecord{}
	for _, r := range t.Records {
		if f := first[r.Camera]; f == nil || r.Seq < f.Seq {
			first[r.Camera] = r
		}
	}
	var out []frame
	for _, r := range t.Records {
		f := first[r.Camera]
		if stride > 1 && (r.Seq-f.Seq)%uint64(stride) != 0 {
			continue
		}
		at := r.Time
		if fps > 0 {
			at = f.Time.Add(time.Duration(float64(r.Seq-f.Seq) / fps * float64(time.Second)))
		}
		out = append(out, frame{rec: r, at: at})
	}
	slices.SortStableFunc(out, func(a, b frame) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.rec.Camera, b.rec.Camera)
	})
	return out
}

// Run replays the trace through one policy at one budget.
func Run(t *Trace, opts Options) (report.Row, error) {
	if opts.Stride <= 0 {
		opts.Stride = 1
	}
	if opts.TrainShare <= 0 {
		opts.TrainShare = 0.1
	}
	if opts.Sampling == "" {
		opts.Sampling = "native"
	}
	models := t.Models()
	frames := t.frames(opts.FPS, opts.Stride)
	if len(frames) == 0 {
		return report.Row{}, errors.New("replay: no frames")
	}
	costs := t.Costs()
	ctrl, predictor, err := newPolicy(opts, models, costs, len(frames))
	if err != nil {
		return report.Row{}, err
	}
	types := map[string]pipeline.OutputType{}
	for _, m := range t.Header.Models {
		types[m.Name] = m.Type
	}
	sc := newScorer(models, costs)
	lastExact := map[string]*assemble.Last{}
	for _, fr := range frames {
		rec := fr.rec
		plan := ctrl.Plan(scheduler.FrameInfo{Camera: rec.Camera, Seq: rec.Seq, CapturedAt: fr.at})
		if opts.Send != nil && !plan.Profiling && !opts.Send(rec.Camera, rec.Seq) {
			// Filtered: nothing runs, every model reuses (as the live
			// scheduler's frame filter does).
			assemble.ReuseAll(&plan)
			sc.filtered++
		}
		plan.CapturedAt = fr.at
		last := lastExact[rec.Camera]
		if last == nil {
			last = assemble.NewLast()
			lastExact[rec.Camera] = last
		}
		// Executed models answer with their recorded outputs, as a model
		// worker would send them.
		exact := map[string]*pipeline.Output{}
		frameMS := 0.0
		for _, m := range plan.Exact {
			exact[m] = recordedOutput(rec, m, types[m], costs[m].MS)
			frameMS += costs[m].MS // a model that failed spent its time too
		}
		// A cascade whose tier disagrees runs its next tier on the same
		// frame, as the live merger escalates it (assemble decides both).
		for esc := assemble.Escalations(&plan, exact); len(esc) > 0; esc = assemble.Escalations(&plan, exact) {
			assemble.Escalate(&plan, esc)
			for _, m := range esc {
				exact[m] = recordedOutput(rec, m, types[m], costs[m].MS)
				frameMS += costs[m].MS
			}
		}
		sc.executions += len(plan.Exact)
		// The rest of the frame is what the live merger and link predictors
		// make of it (package assemble is their one copy of that logic).
		res := &pipeline.Result{Camera: rec.Camera, Seq: rec.Seq, CapturedAt: fr.at, Plan: plan}
		res.Outputs = assemble.Assemble(predictor(), &plan, exact, last)
		assemble.UpdateLast(last, &plan, res.Outputs)
		profiled := plan.Profiling || (opts.FilterProfiles != nil && opts.FilterProfiles(rec.Camera, rec.Seq))
		sc.score(rec, produced(res), types, frameMS, profiled, loaded(models, plan, ctrl))
		if !profiled {
			sc.route(&plan, exact)
		}
		ctrl.ObserveResult(res)
		if opts.OnResult != nil {
			opts.OnResult(res)
		}
	}
	row := sc.row(opts, t, costs)
	if sel := ctrl.Selection(); sel != nil {
		row.Selected = selected(models, sel)
	}
	return row, nil
}

// loaded lists the models a policy keeps loaded while it plans a frame:
// those its current selection runs on every frame or on every k-th (a
// rotating model holds its memory between turns), and those the frame
// executes.
func loaded(models []string, plan pipeline.Plan, ctrl *scheduler.Controller) []string {
	out := slices.Clone(plan.Exact)
	if sel := ctrl.Selection(); sel != nil {
		for _, m := range models {
			if (slices.Contains(sel.Exact, m) || sel.Every[m] > 0) && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// recordedOutput is model m's output on rec as its worker would have sent
// it: the recorded output addressed to the frame, costing the model's
// recorded time, or an error output where the model failed when recorded.
func recordedOutput(rec *links.TraceRecord, m string, t pipeline.OutputType, ms float64) *pipeline.Output {
	o, ok := rec.Outputs[m]
	if !ok {
		// It ran (the frame spends its time) and answered nothing.
		return &pipeline.Output{Camera: rec.Camera, Seq: rec.Seq, Model: m, Kind: t.Kind(), Type: t,
			Source: pipeline.SourceExact, Error: NotRecorded, InferMS: ms}
	}
	cp := *o
	cp.Source, cp.Seq, cp.Camera, cp.InferMS = pipeline.SourceExact, rec.Seq, rec.Camera, ms
	return &cp
}

// NotRecorded is the error of a model's output on a frame the trace has no
// output of the model for.
const NotRecorded = "no output recorded for this frame"

// produced is res without its error outputs: what a user got. The scorer
// counts a model without an output as absent, and an error output has
// nothing to score.
func produced(res *pipeline.Result) *pipeline.Result {
	out := *res
	out.Outputs = make(map[string]*pipeline.Output, len(res.Outputs))
	for m, o := range res.Outputs {
		if o.Error == "" {
			out.Outputs[m] = o
		}
	}
	return &out
}

// newPolicy builds the policy as mlink run does, with training done in line
// so the replay is deterministic.
func newPolicy(opts Options, models []string, costs map[string]scheduler.Cost, frames int) (*scheduler.Controller, func() scheduler.Predictor, error) {
	name := scheduler.PolicyName(opts.Policy)
	spec, ok := scheduler.LookupPolicy(name)
	if !ok {
		return nil, nil, fmt.Errorf("replay: unknown policy %q (known: %s)", opts.Policy, strings.Join(pipeline.PolicyNames(), ", "))
	}
	if name == scheduler.PolicyCoE {
		for _, c := range opts.CoE.Cascades {
			if err := scheduler.CheckCascade(c, models); err != nil {
				return nil, nil, fmt.Errorf("replay: %w", err)
			}
		}
	}
	var learner scheduler.Learner
	if spec.Links {
		if opts.Learner == nil {
			return nil, nil, fmt.Errorf("replay: policy %s needs a learner", opts.Policy)
		}
		learner = opts.Learner
	}
	period := opts.Period
	if period <= 0 {
		period = time.Hour
	}
	// Every policy measures execution times as it runs (the first frames
	// run every model, and count); memory is measured at load, before any
	// frame.
	measured := map[string]scheduler.Cost{}
	for m, c := range costs {
		measured[m] = scheduler.Cost{Memory: c.Memory}
	}
	share := opts.ProfileShare
	if share <= 0 {
		share = 0.01
	}
	holdOut := opts.HoldOut
	if holdOut <= 0 {
		holdOut = 0.3
	}
	c, err := scheduler.NewController(scheduler.ControllerConfig{
		Policy:          name,
		Models:          models,
		Budget:          opts.Budget,
		Period:          period,
		ProfileShare:    share,
		BootstrapFrames: max(2, int(float64(frames)*opts.TrainShare+0.5)),
		HoldOut:         holdOut,
		HealthTimeout:   time.Duration(1<<62 - 1), // no workers to die in a replay
		Synchronous:     true,
		ActiveShare:     opts.ActiveShare,
		ActiveBatch:     opts.ActiveBatch,
		TuneFrames:      opts.TuneFrames,
		TurnBatch:       opts.TurnBatch,
		TurnEvidence:    opts.TurnEvidence,
		Importance:      opts.Importance,
		CoE:             opts.CoE,
		JellyBean:       opts.JellyBean,
		Pools:           opts.Pools,
		Features:        opts.Features,
		Seed:            opts.Seed,
	}, learner, scheduler.NewCostModel(measured), opts.Log)
	if err != nil {
		return nil, nil, err
	}
	var current scheduler.Predictor
	c.OnPredictor(func(p scheduler.Predictor) { current = p })
	return c, func() scheduler.Predictor { return current }, nil
}

func selected(models []string, sel *scheduler.Selection) []string {
	var out []string
	for _, m := range models {
		switch {
		case slices.Contains(sel.Exact, m):
			out = append(out, m)
		case sel.Every[m] > 1:
			out = append(out, fmt.Sprintf("%s/%d", m, sel.Every[m]))
		}
	}
	return out
}
