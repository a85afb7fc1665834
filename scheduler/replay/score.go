package replay

import (
	"math"
	"slices"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/assemble"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/scheduler/report"
)

// scorer accumulates a replay's outcome.
type scorer struct {
	models     []string
	memory     map[string]int64
	per        map[string]*modelScore
	frames     int
	executions int
	profiled   int
	filtered   int
	ms         float64
	// frameMS is each frame's executed cost; profiled marks the frames
	// that ran every model as evidence (or a cost probe).
	frameMS    []float64
	profiledAt []bool
	// memoryLoaded is the most memory the policy's selection kept loaded
	// on an unprofiled frame: what a memory budget caps.
	memoryLoaded int64
	// camera holds each (camera, model)'s strict accuracy over unprofiled
	// frames: sum and count.
	camera map[[2]string]*[2]float64
	// cascades are the cascades' routing on unprofiled frames, by task.
	cascades []report.CascadeScore
}

// route books where each cascade of a frame's plan answered.
func (s *scorer) route(plan *pipeline.Plan, exact map[string]*pipeline.Output) {
	for i := range plan.Cascades {
		c := &plan.Cascades[i]
		j := slices.IndexFunc(s.cascades, func(cs report.CascadeScore) bool { return cs.Task == c.Task })
		if j < 0 {
			cs := report.CascadeScore{Task: c.Task}
			for _, t := range c.Tiers {
				cs.Thetas = append(cs.Thetas, t.Theta)
				cs.Tiers = append(cs.Tiers, t.Models)
			}
			s.cascades = append(s.cascades, cs)
			j = len(s.cascades) - 1
		}
		cs := &s.cascades[j]
		d := assemble.Decide(c, exact)
		cs.Visits++
		for len(cs.Reached) < len(c.Tiers) {
			cs.Reached = append(cs.Reached, 0)
		}
		for t := 0; t <= d.Tier && t < len(cs.Reached); t++ {
			cs.Reached[t]++
		}
	}
}

type modelScore struct {
	strict, graded float64
	scored         int // frames the recording has the model's output for
	// The same over the frames the policy did not profile.
	strictU, gradedU float64
	scoredU          int
	report.ModelScore
}

func newScorer(models []string, costs map[string]scheduler.Cost) *scorer {
	s := &scorer{models: models, per: map[string]*modelScore{}, memory: map[string]int64{}, camera: map[[2]string]*[2]float64{}}
	for _, m := range models {
		s.per[m] = &modelScore{}
		s.memory[m] = costs[m].Memory
	}
	return s
}

// score compares every model's output in res with the recorded exact one,
// and books the frame's cost (its executed models, costMS, and the models
// its policy keeps loaded, loadedModels). profiled: the frame ran every
// model as the policy's evidence. A model the recording has no output for
// (it failed) is not scored on that frame.
func (s *scorer) score(rec *links.TraceRecord, res *pipeline.Result, types map[string]pipeline.OutputType, costMS float64, profiled bool, loadedModels []string) {
	s.frames++
	s.ms += costMS
	s.frameMS = append(s.frameMS, costMS)
	s.profiledAt = append(s.profiledAt, profiled)
	if profiled {
		s.profiled++
	} else {
		var loaded int64
		for _, m := range loadedModels {
			loaded += s.memory[m]
		}
		s.memoryLoaded = max(s.memoryLoaded, loaded)
	}
	for _, m := range s.models {
		ms := s.per[m]
		exact, ok := rec.Outputs[m]
		o := res.Outputs[m]
		switch {
		case o == nil:
			ms.Absent++
		case o.Source == pipeline.SourceExact:
			ms.Exact++
		case o.Source == pipeline.SourcePredicted:
			ms.Predicted++
		default:
			ms.Reused++
		}
		if !ok || exact.Error != "" {
			continue
		}
		ms.scored++
		if !profiled {
			ms.scoredU++
		}
		if o == nil {
			continue
		}
		strict, graded := 1.0, 1.0
		if o.Source != pipeline.SourceExact {
			strict, graded = links.Accuracy(types[m], o, exact), GradedAccuracy(types[m], o, exact)
		}
		ms.strict += strict
		ms.graded += graded
		if !profiled {
			ms.strictU += strict
			ms.gradedU += graded
			k := [2]string{rec.Camera, m}
			if s.camera[k] == nil {
				s.camera[k] = &[2]float64{}
			}
			s.camera[k][0] += strict
			s.camera[k][1]++
		}
	}
}

// perCamera fills row's per-camera and importance-weighted accuracies
// (on a trace of several cameras, or with importances given).
func (s *scorer) perCamera(row *report.Row, imp scheduler.Importance) {
	cams := map[string][2]float64{}
	var wsum, wacc float64
	for k, v := range s.camera {
		acc := v[0] / v[1]
		c := cams[k[0]]
		cams[k[0]] = [2]float64{c[0] + acc, c[1] + 1}
		w := imp.Of(k[0], k[1])
		wsum += w
		wacc += w * acc
	}
	if len(cams) > 1 {
		row.PerCamera = map[string]float64{}
		for cam, c := range cams {
			row.PerCamera[cam] = c[0] / c[1]
		}
	}
	if len(imp) > 0 && wsum > 0 {
		row.AccuracyWeighted = wacc / wsum
	}
}

// GradedAccuracy is the graded count metric (Reducto's, 1 − |diff|/max) for
// every output with a count (counts and detectors' number of detections),
// the strict metric for the others (class labels, scalars).
func GradedAccuracy(t pipeline.OutputType, predicted, exact *pipeline.Output) float64 {
	switch t {
	case pipeline.TypeCount, pipeline.TypeBoxes, pipeline.TypeLines:
		pc, _ := predicted.Count()
		ec, _ := exact.Count()
		return links.GradedCountAccuracy(pc, ec)
	}
	return links.Accuracy(t, predicted, exact)
}

func (s *scorer) row(opts Options, t *Trace, costs map[string]scheduler.Cost) report.Row {
	name := opts.Name
	if name == "" {
		name = opts.Policy
	}
	row := report.Row{
		Policy:   name,
		Sampling: opts.Sampling,
		Frames:   s.frames,
		PerModel: map[string]report.ModelScore{},
	}
	row.Budget, row.BudgetValue, row.BudgetUnit = "none", 0, ""
	total := scheduler.Cost{}
	for _, c := range costs {
		total.MS += c.MS
		total.Memory += c.Memory
	}
	switch b := opts.Budget; {
	case b.MS > 0:
		row.Budget, row.BudgetValue, row.BudgetUnit = b.String(), b.MS, "ms"
		row.BudgetShare = b.MS / total.MS
		row.BudgetMode = string(scheduler.TimeMean)
		if b.Capped() {
			row.BudgetMode = string(scheduler.TimeCap)
		}
	case b.Memory > 0:
		row.Budget, row.BudgetValue, row.BudgetUnit = b.String(), float64(b.Memory), "bytes"
		row.BudgetShare = float64(b.Memory) / float64(total.Memory)
		row.BudgetMode = string(scheduler.TimeCap) // memory is always a cap
	}
	if s.frames == 0 {
		return row
	}
	var strict, graded, strictU, gradedU float64
	for _, m := range s.models {
		ms := s.per[m]
		score := ms.ModelScore
		if ms.scored > 0 {
			score.Accuracy = ms.strict / float64(ms.scored)
			score.AccuracyGraded = ms.graded / float64(ms.scored)
		}
		row.PerModel[m] = score
		strict += score.Accuracy
		graded += score.AccuracyGraded
		if ms.scoredU > 0 {
			strictU += ms.strictU / float64(ms.scoredU)
			gradedU += ms.gradedU / float64(ms.scoredU)
		}
	}
	n := float64(len(s.models))
	row.Accuracy, row.AccuracyGraded = strict/n, graded/n
	row.AccuracyUnprofiled, row.AccuracyGradedUnprofiled = strictU/n, gradedU/n
	if s.profiled == s.frames {
		// Every frame profiled (policy all): nothing else to score.
		row.AccuracyUnprofiled, row.AccuracyGradedUnprofiled = row.Accuracy, row.AccuracyGraded
	}
	row.ExecutionsSaved = 1 - float64(s.executions)/(float64(s.frames)*n)
	row.MSPerFrame = s.ms / float64(s.frames)
	row.ProfiledShare = float64(s.profiled) / float64(s.frames)
	row.FilteredShare = float64(s.filtered) / float64(s.frames)
	row.MemoryLoaded = s.memoryLoaded
	sorted := slices.Sorted(slices.Values(s.frameMS))
	row.MSPerFrameP50, row.MSPerFrameP95 = quantile(sorted, 0.5), quantile(sorted, 0.95)
	row.MSPerFrameMax = sorted[len(sorted)-1]
	over := 0
	for i, c := range s.frameMS {
		if !s.profiledAt[i] {
			row.MSPerFrameMaxUnprofiled = max(row.MSPerFrameMaxUnprofiled, c)
		}
		if b := opts.Budget; b.MS > 0 && c > b.MS+1e-6 {
			over++
		}
	}
	row.OverBudgetShare = float64(over) / float64(s.frames)
	s.perCamera(&row, opts.Importance)
	row.Cascades = s.cascades
	row.Fits = fits(opts.Budget, row)
	return row
}

// fits: the row meets its budget under its semantics (see report.Row.Fits).
func fits(b scheduler.Budget, row report.Row) bool {
	const eps = 1e-6
	if b.Memory > 0 && row.MemoryLoaded > b.Memory {
		return false
	}
	if b.MS > 0 {
		if b.Capped() {
			return row.MSPerFrameMaxUnprofiled <= b.MS+eps
		}
		return row.MSPerFrame <= b.MS+eps
	}
	return true
}

// quantile of sorted values (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
