package replay

import (
	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/scheduler/report"
)

// scorer accumulates a replay's outcome.
type scorer struct {
	models     []string
	per        map[string]*modelScore
	frames     int
	executions int
	profiled   int
	filtered   int
	ms         float64
}

type modelScore struct {
	strict, graded float64
	scored         int // frames the recording has the model's output for
	report.ModelScore
}

func newScorer(models []string) *scorer {
	s := &scorer{models: models, per: map[string]*modelScore{}}
	for _, m := range models {
		s.per[m] = &modelScore{}
	}
	return s
}

// score compares every model's output in res with the recorded exact one.
// A model the recording has no output for (it failed) is not scored on
// that frame.
func (s *scorer) score(rec *links.TraceRecord, res *pipeline.Result, types map[string]pipeline.OutputType) {
	s.frames++
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
		if o == nil {
			continue
		}
		if o.Source == pipeline.SourceExact {
			ms.strict++
			ms.graded++
			continue
		}
		ms.strict += links.Accuracy(types[m], o, exact)
		ms.graded += GradedAccuracy(types[m], o, exact)
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
	case b.Memory > 0:
		row.Budget, row.BudgetValue, row.BudgetUnit = b.String(), float64(b.Memory), "bytes"
		row.BudgetShare = float64(b.Memory) / float64(total.Memory)
	}
	if s.frames == 0 {
		return row
	}
	var strict, graded float64
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
	}
	n := float64(len(s.models))
	row.Accuracy, row.AccuracyGraded = strict/n, graded/n
	row.ExecutionsSaved = 1 - float64(s.executions)/(float64(s.frames)*n)
	row.MSPerFrame = s.ms / float64(s.frames)
	row.ProfiledShare = float64(s.profiled) / float64(s.frames)
	row.FilteredShare = float64(s.filtered) / float64(s.frames)
	return row
}
