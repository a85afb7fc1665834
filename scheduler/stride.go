package scheduler

import (
	"github.com/mlink-project/mlink/pipeline"

	"math"
	"slices"
	"sync"
)

// The selection plans the frames of a camera's stream: a model rotated
// every k frames is reused (or predicted temporally) at ages of 1 … k−1
// frames of that stream. The evidence measures ages in seqs: links are
// evaluated (and production predicts) by the seq difference between a
// reused output and the frame. When the stream is sampled — the bench
// replays a 10 fps trace at 1 fps, a live camera drops stale frames — one
// frame of it is several seqs, and asking the evidence for age 1 would
// read the value of one seq.

// StrideEvidence is evidence measured in seqs asked in frames of a stream
// whose consecutive frames are Step seqs apart: its reuse and temporal
// accuracies at age a are the underlying evidence's at a·Step seqs. Pair
// and set accuracies do not depend on age and pass through. Build it with
// AtStride.
type StrideEvidence struct {
	SetEvidence
	Step float64
}

// AtStride asks ev at ages in frames of a stream sampled every step seqs
// (step ≤ 1: the camera's own rate, ages unchanged).
func AtStride(ev SetEvidence, step float64) StrideEvidence {
	return StrideEvidence{SetEvidence: ev, Step: step}
}

// seqAge converts an age in frames of the stream to seqs. neverAge (a
// model only run on profiling frames) stays beyond any measured age.
func (e StrideEvidence) seqAge(age int) int {
	if e.Step <= 1 || math.IsNaN(e.Step) || age >= neverAge {
		return age
	}
	return int(math.Round(float64(age) * e.Step))
}

// ReuseAccuracy implements ReuseEvidence (0 when the underlying evidence
// has no reuse measurements).
func (e StrideEvidence) ReuseAccuracy(target string, age int) float64 {
	if r, ok := e.SetEvidence.(ReuseEvidence); ok {
		return r.ReuseAccuracy(target, e.seqAge(age))
	}
	return 0
}

// TemporalAccuracy implements TemporalEvidence (ok false when the
// underlying evidence has no temporal measurements).
func (e StrideEvidence) TemporalAccuracy(target string, executed []string, age int) (float64, bool) {
	if t, ok := e.SetEvidence.(TemporalEvidence); ok {
		return t.TemporalAccuracy(target, executed, e.seqAge(age))
	}
	return 0, false
}

// TrackAccuracy implements MotionEvidence (ok false when the underlying
// evidence has no motion measurements).
func (e StrideEvidence) TrackAccuracy(target string, age int) (float64, bool) {
	if m, ok := e.SetEvidence.(MotionEvidence); ok {
		return m.TrackAccuracy(target, e.seqAge(age))
	}
	return 0, false
}

// FollowLinks implements MotionEvidence.
func (e StrideEvidence) FollowLinks(target, source string) []pipeline.FollowLink {
	if m, ok := e.SetEvidence.(MotionEvidence); ok {
		return m.FollowLinks(target, source)
	}
	return nil
}

// FollowAccuracy implements MotionEvidence.
func (e StrideEvidence) FollowAccuracy(target string, l pipeline.FollowLink, age int) (float64, bool) {
	if m, ok := e.SetEvidence.(MotionEvidence); ok {
		return m.FollowAccuracy(target, l, e.seqAge(age))
	}
	return 0, false
}

// stepWindow is how many recent seq differences per camera measure its
// stream's step.
const stepWindow = 32

// streamSteps measures the step of the streams a controller plans: per
// camera, the seq differences between its last stepWindow consecutive
// planned frames. Plan feeds it on the routing goroutine; selections read
// it from the training goroutine.
type streamSteps struct {
	mu   sync.Mutex
	cams map[string]*camSteps
}

type camSteps struct {
	last  uint64
	diffs [stepWindow]uint64
	n     int // differences recorded (the ring holds the last stepWindow)
}

// observe records a planned frame. A seq that does not advance (a camera
// restarted, a duplicate) starts the camera's differences afresh from it.
func (s *streamSteps) observe(camera string, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cams == nil {
		s.cams = map[string]*camSteps{}
	}
	c := s.cams[camera]
	if c == nil {
		s.cams[camera] = &camSteps{last: seq}
		return
	}
	if seq > c.last {
		c.diffs[c.n%stepWindow] = seq - c.last
		c.n++
	}
	c.last = seq
}

// step is the typical seq difference between consecutive planned frames:
// the median of every camera's recent differences pooled (one selection
// serves every camera), 1 before any camera has two frames. The median
// ignores the odd gap (a frame lost, a camera reconnecting).
func (s *streamSteps) step() float64 {
	s.mu.Lock()
	var all []uint64
	for _, c := range s.cams {
		all = append(all, c.diffs[:min(c.n, stepWindow)]...)
	}
	s.mu.Unlock()
	if len(all) == 0 {
		return 1
	}
	slices.Sort(all)
	n := len(all)
	return float64(all[(n-1)/2]+all[n/2]) / 2
}
