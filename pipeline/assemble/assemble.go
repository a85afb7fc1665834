// Package assemble turns a frame's plan and the outputs of its executed
// models into the frame's complete result: which exact outputs link
// predictions take as sources, how each predicted model is predicted
// (temporal or ensemble links), how reused models take their last exact
// output, and how a camera's last exact outputs advance after the frame.
//
// It is the one copy of that logic. The live pipeline runs it split across
// stages — the merger builds the predict request (Request) and fills reused
// models (FillReused, UpdateLast), the link predictors answer the request
// (Predict) — and scheduler/replay runs all of it in process (Assemble), so
// the bench scores what the live pipeline would publish. It needs nothing
// but pipeline's types: no cgo, no links (the predictor is an interface).
package assemble

import (
	"errors"
	"fmt"
	"slices"

	"github.com/mlink-project/mlink/pipeline"
)

// Predictor predicts a model's output from exact outputs of other models
// (links.Set implements it).
type Predictor interface {
	Predict(target string, exact map[string]*pipeline.Output) (pipeline.Output, error)
}

// TemporalPredictor also predicts with temporal links: the target's own
// last exact output, age frames old, joins the sources (links.Set).
type TemporalPredictor interface {
	PredictTemporal(target string, exact map[string]*pipeline.Output, last *pipeline.Output, age float64) (pipeline.Output, error)
}

// LossPredictor also reports, with each output it predicts from other
// models' outputs, the loss each of its links expects for it
// (Output.LinkLosses; links.Set's loss-prediction heads). Predict uses it
// in place of Predictor.Predict when the plan asks (Plan.Losses: active
// sampling is on), so the losses ride with the prediction to
// the scheduler, which samples the frames its links predict worst, and the
// links do not run a second time for that.
type LossPredictor interface {
	PredictWithLosses(target string, exact map[string]*pipeline.Output) (pipeline.Output, error)
}

// FramePredictor predicts from the frame itself, named by its camera and
// seq, not from other models' outputs (a replay's MTL network over the
// decoded frame): it needs no executed model on the frame.
type FramePredictor interface {
	PredictFrame(target, camera string, seq uint64, exact map[string]*pipeline.Output) (pipeline.Output, error)
}

// Last is one camera's latest exact output per model, as of the frames
// assembled so far (frames of a camera are assembled in seq order), and
// the exact output before it (the motion the tracker carries boxes along).
// A nil *Last has no outputs. Make one with NewLast.
type Last struct {
	latest map[string]*pipeline.Output
	prior  map[string]*pipeline.Output
	// frame holds, per model, the exact outputs of every model on the
	// frame of its latest exact output: where a delta link's sources were
	// then.
	frame map[string]map[string]*pipeline.Output
}

// NewLast returns an empty table.
func NewLast() *Last {
	return &Last{latest: map[string]*pipeline.Output{}, prior: map[string]*pipeline.Output{},
		frame: map[string]map[string]*pipeline.Output{}}
}

// Get returns model's latest exact output (nil: none yet).
func (l *Last) Get(model string) *pipeline.Output {
	if l == nil {
		return nil
	}
	return l.latest[model]
}

// Prior returns the exact output of model before its latest one (nil:
// fewer than two so far).
func (l *Last) Prior(model string) *pipeline.Output {
	if l == nil {
		return nil
	}
	return l.prior[model]
}

// Then returns the exact output of model src on the frame of target's
// latest exact output (nil: src did not run on it, or no such frame).
func (l *Last) Then(target, src string) *pipeline.Output {
	if l == nil {
		return nil
	}
	return l.frame[target][src]
}

// Set records o as model's latest exact output; the one it replaces
// becomes the prior.
func (l *Last) Set(model string, o *pipeline.Output) {
	l.set(model, o, nil)
}

func (l *Last) set(model string, o *pipeline.Output, frame map[string]*pipeline.Output) {
	if prev := l.latest[model]; prev != nil && prev != o {
		l.prior[model] = prev
	}
	l.latest[model] = o
	l.frame[model] = frame
}

// Assemble returns the frame's complete outputs, every model of the plan
// by name: the executed models' outputs as given (a failed one stays an
// error output; one not given is left out, the caller decides whether
// that makes the frame partial), the predicted models predicted by p from
// the plan's sources (an error output when that fails), and the reused
// models' last exact outputs; each decided cascade's answer (Answers)
// serves its output. last is read, not changed: call UpdateLast after the
// frame. A plan with cascades must have been escalated first
// (Escalations, Escalate) until no cascade waits for a tier.
func Assemble(p Predictor, plan *pipeline.Plan, exact map[string]*pipeline.Output, last *Last) map[string]*pipeline.Output {
	out := make(map[string]*pipeline.Output, len(plan.Exact)+len(plan.Predicted)+len(plan.Reused))
	for _, m := range plan.Exact {
		if o := exact[m]; o != nil {
			out[m] = o
		}
	}
	if req := Request(plan, exact, last); req != nil {
		for _, target := range req.Targets {
			out[target] = Predict(p, req, target)
		}
	}
	for m, o := range FillReused(plan, exact, last) {
		out[m] = o
	}
	for m, o := range Answers(plan, exact) {
		out[m] = o
	}
	return out
}

// Executed reports whether every executed model of the plan has an output
// in outputs (a failure counts): the frame's predictions can be asked for.
func Executed(plan *pipeline.Plan, outputs map[string]*pipeline.Output) bool {
	for _, m := range plan.Exact {
		if outputs[m] == nil {
			return false
		}
	}
	return true
}

// Sources returns the exact outputs link predictions may take: those of
// the plan's Sources (every executed model when the plan names none) that
// ran and did not fail. The selection measured each predicted model's
// ensemble over a set of sources; predicting from another set (e.g. with a
// rotating model's output on its turn) is predicting with links whose
// accuracy nobody measured.
func Sources(plan *pipeline.Plan, exact map[string]*pipeline.Output) map[string]*pipeline.Output {
	out := make(map[string]*pipeline.Output, len(plan.Exact))
	for _, m := range plan.Exact {
		if len(plan.Sources) > 0 && !slices.Contains(plan.Sources, m) {
			continue
		}
		if o := exact[m]; o != nil && o.Error == "" {
			out[m] = o
		}
	}
	return out
}

// Request is what a link predictor needs to predict the plan's predicted
// models: the sources' exact outputs and, for temporal targets, their own
// last exact output (its Seq gives its age). nil when the plan predicts
// nothing. The live merger sends it on pipeline.DefaultSubjects.Predict().
func Request(plan *pipeline.Plan, exact map[string]*pipeline.Output, last *Last) *pipeline.PredictRequest {
	if len(plan.Predicted) == 0 {
		return nil
	}
	req := &pipeline.PredictRequest{Camera: plan.Camera, Seq: plan.Seq, CapturedAt: plan.CapturedAt,
		Targets: plan.Predicted, Exact: Sources(plan, exact), Losses: plan.Losses}
	for _, m := range plan.Temporal {
		if prev := last.Get(m); prev != nil {
			if req.Last == nil {
				req.Last = map[string]*pipeline.Output{}
			}
			req.Last[m] = prev
		}
	}
	return req
}

// Predict predicts one target of req with p: from the frame itself when p
// is a FramePredictor; with the temporal links when req carries the
// target's last exact output from an earlier frame (and p has temporal
// links), else with its ensemble over req.Exact. The result
// is never nil: a prediction that cannot be made or fails is an error
// output, so the frame still completes.
func Predict(p Predictor, req *pipeline.PredictRequest, target string) *pipeline.Output {
	out, err := predict(p, req, target)
	if err != nil {
		out = pipeline.Output{Error: err.Error()}
	}
	out.Camera, out.Seq, out.Model, out.Source = req.Camera, req.Seq, target, pipeline.SourcePredicted
	return &out
}

func predict(p Predictor, req *pipeline.PredictRequest, target string) (pipeline.Output, error) {
	if p == nil {
		return pipeline.Output{}, errors.New("no links trained yet")
	}
	var out pipeline.Output
	var err error
	last := req.Last[target]
	tp, temporal := p.(TemporalPredictor)
	fp, frame := p.(FramePredictor)
	lp, lossy := p.(LossPredictor)
	switch {
	case frame:
		out, err = fp.PredictFrame(target, req.Camera, req.Seq, req.Exact)
	case temporal && last != nil && last.Seq < req.Seq:
		// Temporal links may predict from last alone when no source ran.
		out, err = tp.PredictTemporal(target, req.Exact, last, float64(req.Seq-last.Seq))
	case len(req.Exact) == 0:
		return pipeline.Output{}, errors.New("no exact output to predict from")
	case lossy && req.Losses:
		out, err = lp.PredictWithLosses(target, req.Exact)
	default:
		out, err = p.Predict(target, req.Exact)
	}
	if err == nil {
		err = out.CheckFinite()
	}
	if err != nil {
		return pipeline.Output{}, fmt.Errorf("predict %s: %w", target, err)
	}
	return out, nil
}

// FillReused returns the reused models' outputs: each model's last exact
// output, re-addressed to this frame (Source reused, FromSeq the frame it
// was computed on, no execution time: nothing ran), or an error output
// when the camera has none yet. A model the plan tracks (Plan.Tracked, a
// detector) has its boxes carried along their recent motion instead
// (Track; Source tracked); one the plan has follow a source (Plan.Follow,
// a delta link) has them moved along the source's motion since (Follow;
// Source predicted, from that source). exact is the frame's executed
// models' outputs.
func FillReused(plan *pipeline.Plan, exact map[string]*pipeline.Output, last *Last) map[string]*pipeline.Output {
	out := make(map[string]*pipeline.Output, len(plan.Reused))
	for _, m := range plan.Reused {
		prev := last.Get(m)
		if prev == nil {
			out[m] = &pipeline.Output{Camera: plan.Camera, Seq: plan.Seq, Model: m, Source: pipeline.SourceReused,
				Error: "no earlier exact output to reuse"}
			continue
		}
		o := *prev
		o.Camera, o.Seq, o.Source, o.FromSeq, o.InferMS = plan.Camera, plan.Seq, pipeline.SourceReused, prev.Seq, 0
		if !Trackable(prev.Type) || plan.Seq <= prev.Seq {
			out[m] = &o
			continue
		}
		if f, ok := plan.Follow[m]; ok && usableExact(exact[f.Source]) && last.Then(m, f.Source) != nil {
			o.Boxes = Follow(prev, last.Then(m, f.Source), exact[f.Source], f)
			o.Value = []float64{float64(len(o.Boxes))}
			o.Source, o.Sources = pipeline.SourcePredicted, []string{f.Source}
		} else if slices.Contains(plan.Tracked, m) {
			o.Boxes = Track(prev, last.Prior(m), float64(plan.Seq-prev.Seq))
			o.Value = []float64{float64(len(o.Boxes))}
			o.Source = pipeline.SourceTracked
		}
		out[m] = &o
	}
	return out
}

// UpdateLast records the frame's successful exact outputs in the camera's
// last table, after the frame was assembled: later frames reuse them and
// predict temporal targets from them. Failed outputs leave the previous
// one in place.
func UpdateLast(last *Last, plan *pipeline.Plan, outputs map[string]*pipeline.Output) {
	frame := make(map[string]*pipeline.Output, len(plan.Exact))
	for _, m := range plan.Exact {
		if o := outputs[m]; usableExact(o) {
			frame[m] = o
		}
	}
	for m, o := range frame {
		last.set(m, o, frame)
	}
	// A cascade's answer is its output's latest value: the frames between
	// the cascade's turns reuse it, not the final model's last own run.
	for i := range plan.Cascades {
		m := plan.Cascades[i].Output
		if o := outputs[m]; answered(plan, m, o) {
			last.set(m, o, nil)
		}
	}
}

// ReuseAll turns plan into a filtered frame's plan (a frame filter kept it
// from the models): every model the policy planned, executed or predicted,
// reuses its last exact output. The policy's slices are not touched (a
// policy may hand out its own).
func ReuseAll(plan *pipeline.Plan) {
	reused := make([]string, 0, len(plan.Exact)+len(plan.Predicted)+len(plan.Reused))
	reused = append(reused, plan.Exact...)
	reused = append(reused, plan.Predicted...)
	reused = append(reused, plan.Reused...)
	plan.Exact, plan.Predicted, plan.Reused = nil, nil, reused
}

// usableExact reports whether o is a successful exact output.
func usableExact(o *pipeline.Output) bool {
	return o != nil && o.Source == pipeline.SourceExact && o.Error == ""
}
