package reducto

// Accuracy of reusing a frame's outputs for a later frame: pure Go, like
// selector.go.

import (
	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

// OutputsAccuracy is the accuracy in [0,1] of reusing one frame's outputs
// (reused) for a frame whose exact outputs are exact, over all its models.
type OutputsAccuracy func(reused, exact map[string]*pipeline.Output) float64

// GradedAccuracy is Reducto's per-frame accuracy, averaged over the models
// of exact: a class output scores 1 when its label is the same, any other
// output compares its count (Value[0], which every output type has) by
// links.GradedCountAccuracy, 1 if equal else (max − |diff|)/max. Models
// whose exact output failed are left out; a model missing from reused
// scores 0. No model at all scores 1.
func GradedAccuracy(reused, exact map[string]*pipeline.Output) float64 {
	return meanOverModels(reused, exact, func(r, e *pipeline.Output) float64 {
		if e.Type == pipeline.TypeClass {
			return sameLabel(r, e)
		}
		rc, _ := r.Count()
		ec, _ := e.Count()
		return links.GradedCountAccuracy(rc, ec)
	})
}

// StrictAccuracy averages MLink's metrics (links.Accuracy: counts within
// 0.5, matched IoU for boxes, …) over the models of exact, with the same
// rules as GradedAccuracy for failed and missing outputs.
func StrictAccuracy(reused, exact map[string]*pipeline.Output) float64 {
	return meanOverModels(reused, exact, func(r, e *pipeline.Output) float64 {
		return links.Accuracy(e.Type, r, e)
	})
}

func meanOverModels(reused, exact map[string]*pipeline.Output, acc func(r, e *pipeline.Output) float64) float64 {
	sum, n := 0.0, 0
	for name, e := range exact {
		if e == nil || e.Error != "" {
			continue
		}
		n++
		if r := reused[name]; r != nil && r.Error == "" {
			sum += acc(r, e)
		}
	}
	if n == 0 {
		return 1
	}
	return sum / float64(n)
}

func sameLabel(r, e *pipeline.Output) float64 {
	if r.Label != "" && e.Label != "" {
		if r.Label == e.Label {
			return 1
		}
		return 0
	}
	if links.ArgMax(r.Value) == links.ArgMax(e.Value) {
		return 1
	}
	return 0
}

// FrameAccuracy adapts per-frame outputs to Segment.Accuracy:
// acc(outputs[from], outputs[frame]).
func FrameAccuracy(outputs []map[string]*pipeline.Output, acc OutputsAccuracy) func(frame, from int) float64 {
	return func(frame, from int) float64 { return acc(outputs[from], outputs[frame]) }
}

// CountAccuracy is Segment.Accuracy for a counting query with one count per
// frame (Reducto's graded count metric).
func CountAccuracy(counts []float64) func(frame, from int) float64 {
	return func(frame, from int) float64 { return links.GradedCountAccuracy(counts[from], counts[frame]) }
}

// LabelAccuracy is Segment.Accuracy for a classification query with one
// label per frame: 1 when the reused label is the frame's.
func LabelAccuracy(labels []string) func(frame, from int) float64 {
	return func(frame, from int) float64 {
		if labels[from] == labels[frame] {
			return 1
		}
		return 0
	}
}
