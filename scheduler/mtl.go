package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

// PolicyMTL is the MTL baseline of the MLink evaluation: one small shared
// network over the downsampled frame with a head per model, trained on the
// cold start's exact outputs, predicts the models the budget does not run.
const PolicyMTL PolicyName = "mtl"

func init() {
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicyMTL, Rank: 15, Needs: pipeline.NeedsBudget, BenchOnly: true,
			Summary: "MTL baseline (bench only): the cheapest models that fit run; one small network over the downsampled frame, trained on the cold start's exact outputs, predicts the others"},
		FrameFeatures: true,
		New:           func(ControllerConfig) Scheme { return &mtlScheme{} },
	})
}

// FrameFeatures returns a frame's features (its downsampled pixels), for a
// policy that predicts from the frames themselves. A replay has them (it
// decodes the trace's videos); the live pipeline does not hand frames to
// the scheduler.
type FrameFeatures func(camera string, seq uint64) ([]float64, error)

// mtlScheme profiles the cold start (every model on the first
// BootstrapFrames frames, paced under a mean budget like the link
// policies' cold start, so that it costs the same share of the budget),
// trains the network on those frames' exact outputs once, then runs the
// standalone selection and has the network predict the rest. It is not
// retrained: the baseline is trained on the first 10 % only.
type mtlScheme struct {
	samples []links.MTLSample
	types   map[string]pipeline.OutputType
	// trained: the cold start is over (the network is installed, or its
	// training failed and the others are absent).
	trained bool
	failed  bool
}

func (s *mtlScheme) Select(c *Controller, _ SetEvidence, costs map[string]Cost, budget Budget) *Selection {
	if !s.trained {
		return nil
	}
	sel := &Selection{Exact: SelectStandalone(c.cfg.Models, costs, budget)}
	if s.failed {
		sel.Absent = minus(c.cfg.Models, sel.Exact)
		sel.Reason = " (the MTL network could not be trained: the others are absent)"
	} else {
		sel.Predicted = minus(c.cfg.Models, sel.Exact)
	}
	sel.Expected = float64(len(sel.Exact)) / float64(len(c.cfg.Models)) // the network's accuracy is not measured
	return sel
}

func (s *mtlScheme) Plan(c *Controller, f FrameInfo, _ int64, _ time.Time, plan pipeline.Plan) pipeline.Plan {
	sel := c.selection.Load()
	if sel != nil && c.profiledCam[f.Camera] {
		plan.Exact, plan.Predicted = sel.Exact, sel.Predicted
		return plan
	}
	// The cold start (or a camera's first frame, which has nothing to
	// reuse): every model, paid at the budget's pace under a mean budget;
	// the frames between reuse the fresh exact outputs.
	costs := c.costs.Costs()
	if c.pacesEvidence() && !c.books.affords(sum(costs, c.cfg.Models).MS, c.cfg.Budget.MS) && c.profiledCam[f.Camera] {
		plan.Reused = c.cfg.Models
		return plan
	}
	plan.Exact, plan.Profiling = c.cfg.Models, true
	c.profiledCam[f.Camera] = true
	return plan
}

func (s *mtlScheme) Observe(c *Controller, r *pipeline.Result) {
	if s.trained || !r.Plan.Profiling {
		return
	}
	c.stats.Profiled.Add(1)
	x, err := c.cfg.Features(r.Camera, r.Seq)
	if err != nil {
		c.log.Warn().Err(err).Str("camera", r.Camera).Uint64("seq", r.Seq).Msg("mtl: a profiled frame without features does not train the network")
		return
	}
	exact := map[string]*pipeline.Output{}
	if s.types == nil {
		s.types = map[string]pipeline.OutputType{}
	}
	for m, o := range r.Outputs {
		if o.Source == pipeline.SourceExact && o.Error == "" {
			exact[m] = o
			s.types[m] = o.Type
		}
	}
	s.samples = append(s.samples, links.MTLSample{Features: x, Outputs: exact})
	if len(s.samples) < c.bootstrapFrames() {
		return
	}
	s.trained = true
	net, err := s.train(c)
	s.samples = nil
	if err != nil {
		s.failed = true
		c.log.Error().Err(err).Msg("mtl: training failed")
	} else {
		c.installPredictor(mtlPredictor{net: net, features: c.cfg.Features})
	}
	c.reselect(r.CapturedAt, "mtl trained")
}

// train fits the network on the cold start's frames, every model that had
// an exact output on one of them a head.
func (s *mtlScheme) train(c *Controller) (*links.MTL, error) {
	var models []links.TraceModel
	for _, m := range c.cfg.Models {
		t, ok := s.types[m]
		if !ok {
			return nil, fmt.Errorf("mtl: model %s has no exact output in the %d cold-start frames", m, len(s.samples))
		}
		models = append(models, links.TraceModel{Name: m, Type: t, Classes: boxClass(m, s.samples)})
	}
	net, err := links.TrainMTL(models, s.samples, links.DefaultMTLOptions())
	if err != nil {
		return nil, fmt.Errorf("mtl: %w", err)
	}
	return net, nil
}

// boxClass is a detector's one class, when all its training boxes have the
// same (its predicted boxes carry it).
func boxClass(model string, samples []links.MTLSample) []string {
	class := ""
	for _, s := range samples {
		o := s.Outputs[model]
		if o == nil || o.Type.Kind() != pipeline.KindSequence {
			return nil
		}
		for _, b := range o.Boxes {
			if class != "" && b.Class != class {
				return nil
			}
			class = b.Class
		}
	}
	if class == "" {
		return nil
	}
	return []string{class}
}

// mtlPredictor predicts from the frame's features: it is an
// assemble.FramePredictor, and asked without the frame it fails.
type mtlPredictor struct {
	net      *links.MTL
	features FrameFeatures
}

func (mtlPredictor) Predict(target string, _ map[string]*pipeline.Output) (pipeline.Output, error) {
	return pipeline.Output{}, errors.New("mtl predicts from the frame itself: it needs the frame's camera and seq (PredictFrame)")
}

// PredictFrame predicts target on the frame camera/seq.
func (p mtlPredictor) PredictFrame(target, camera string, seq uint64, _ map[string]*pipeline.Output) (pipeline.Output, error) {
	x, err := p.features(camera, seq)
	if err != nil {
		return pipeline.Output{}, fmt.Errorf("mtl: frame %s/%d: %w", camera, seq, err)
	}
	return p.net.Predict(target, x)
}
