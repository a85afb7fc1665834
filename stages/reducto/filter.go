package reducto

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// FilterOptions configure a Filter. Zero values take the defaults; see the
// package documentation.
type FilterOptions struct {
	// Feature is the difference feature: pixel, area, edge or corner.
	// Default area (Reducto's choice for counting queries).
	Feature  string
	Features FeatureOptions
	Selector SelectorOptions
	// Segment is the segment length. Default 5 s.
	Segment time.Duration
	// Accuracy scores reusing a frame's outputs for a later frame when a
	// segment is profiled. Default GradedAccuracy.
	Accuracy OutputsAccuracy
	// MaxSegmentFrames bounds the frames a profiled segment keeps (their
	// prepared representations wait for the models' outputs); later frames
	// of the segment are sent but not profiled. Default 300.
	MaxSegmentFrames int
	// MaxPending is how many segments a profiled segment waits for its
	// outputs before it is dropped unprofiled. Default 2.
	MaxPending int
	// OnProfile, if set, is called (outside the filter's lock) with each
	// profiled segment's outcome.
	OnProfile func(camera string, segment int64, p Profile)
}

// Defaults of FilterOptions.
const (
	DefaultFeature          = FeatureArea
	DefaultSegment          = 5 * time.Second
	DefaultMaxSegmentFrames = 300
	DefaultMaxPending       = 2
)

// EnsureDefaults fills zero fields with their defaults.
func (o *FilterOptions) EnsureDefaults() {
	if o.Feature == "" {
		o.Feature = DefaultFeature
	}
	if o.Segment == 0 {
		o.Segment = DefaultSegment
	}
	if o.Accuracy == nil {
		o.Accuracy = GradedAccuracy
	}
	setDefault(&o.MaxSegmentFrames, DefaultMaxSegmentFrames)
	setDefault(&o.MaxPending, DefaultMaxPending)
	o.Features.EnsureDefaults()
	o.Selector.EnsureDefaults()
}

// Validate reports every invalid field at once.
func (o *FilterOptions) Validate() error {
	var errs []error
	if !slices.Contains(FeatureNames, o.Feature) {
		errs = append(errs, fmt.Errorf("unknown feature %q (want one of %s)", o.Feature, strings.Join(FeatureNames, ", ")))
	}
	if o.Segment < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("segment %v is shorter than 100ms", o.Segment))
	}
	if o.MaxSegmentFrames < 2 {
		errs = append(errs, fmt.Errorf("max segment frames %d is below 2", o.MaxSegmentFrames))
	}
	if o.MaxPending < 1 {
		errs = append(errs, fmt.Errorf("max pending %d is below 1", o.MaxPending))
	}
	errs = append(errs, o.Features.Validate(), o.Selector.Validate())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reducto filter: %w", err)
	}
	return nil
}

// Decision is the filter's verdict on one frame.
type Decision struct {
	// Send: run the models on the frame. Otherwise every model reuses the
	// last sent frame's result (pipeline.SourceReused).
	Send bool
	// Diff is the frame's difference to the last sent frame (0 for a
	// camera's first frame).
	Diff float64
	// Profiling: the frame's segment is sent whole, and its exact outputs
	// are wanted through Observe.
	Profiling bool
	// Threshold is the segment's threshold (filtered segments).
	Threshold float64
	// Distance is the segment signature's distance to the nearest profiled
	// one (−1 while fewer than Bootstrap segments are profiled).
	Distance float64
	// Segment is the segment's index since the camera's first frame.
	Segment int64
}

// Stats counts a camera's frames and segments.
type Stats struct {
	Frames, Sent int64
	// ProfilingFrames are the frames sent because their segment was profiled.
	ProfilingFrames int64
	Segments        int64
	// ProfiledSegments were profiled and added to the k-NN; DroppedProfiles
	// waited too long for their outputs.
	ProfiledSegments, DroppedProfiles int64
	// Threshold is the current segment's threshold (0 while profiling).
	Threshold float64
	Profiling bool
}

// Filter is Reducto as a live stage: per camera, it sends a frame when its
// difference to the last sent frame exceeds the segment's threshold, and
// keeps the per-segment state machine (bootstrap, k-NN, re-profile).
//
// Segments are cut by capture time from the camera's first frame. A
// segment is decided at its first frame: while fewer than Bootstrap
// segments are profiled, or when the previous segment's signature is
// farther than DistanceBound from every profiled one, it is sent whole and
// profiled; otherwise the k-NN maps the previous segment's signature to its
// threshold. Reducto's camera buffers a whole segment and uses the
// segment's own signature; a live filter decides frame by frame, so it uses
// the previous segment's (one segment of lag, no added latency). The first
// frame of every segment is sent, as in Reducto and in profiling.
//
// A profiled segment keeps its frames' prepared representations until
// Observe has delivered every frame's exact outputs, then replays the
// candidate thresholds on them with the exact difference to the last sent
// frame, and adds the segment to the k-NN. Segments whose profile is not
// complete yet do not count towards Bootstrap, so segments keep being
// profiled until enough profiles are in.
//
// Decide calls for one camera must come in capture order, one at a time;
// different cameras, and Observe, may run concurrently.
type Filter struct {
	opts    FilterOptions
	feature Feature

	mu     sync.Mutex
	cams   map[string]*camState
	closed bool

	// signature, if set, gives a segment's own consecutive diffs ahead of
	// time (offline lookahead, as Reducto's camera); see SimulateVideo.
	signature func(camera string, segment int64) ([]float64, bool)
}

type camState struct {
	t0             time.Time
	prev, lastSent *Prepared
	seg            *segState
	lastDiffs      []float64 // the previous segment's consecutive diffs
	pending        []*segState
	selector       *Selector
	stats          Stats
}

// segState is one segment of one camera.
type segState struct {
	index     int64
	profiling bool
	threshold float64
	distance  float64
	frames    int // frames seen
	diffs     []float64
	// Profiled segments only: the kept frames, their outputs (nil until
	// observed) and where each seq is.
	prepared []*Prepared
	outputs  []map[string]*pipeline.Output
	bySeq    map[uint64]int
	missing  int
}

// NewFilter returns a filter (zero option fields take their defaults).
func NewFilter(opts FilterOptions) (*Filter, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	feat, err := NewFeature(opts.Feature, opts.Features)
	if err != nil {
		return nil, err
	}
	return &Filter{opts: opts, feature: feat, cams: map[string]*camState{}}, nil
}

// Options returns the filter's options, defaults filled in.
func (f *Filter) Options() FilterOptions { return f.opts }

// Decide says whether camera's frame seq, captured at t, goes to the
// models. img is a BGR image owned by the caller. The filter keeps only
// the frame's prepared representation (at the features' working width).
// At a segment boundary Decide may first profile the previous segment (a
// few hundred diffs at most), when its outputs are all in.
func (f *Filter) Decide(camera string, seq uint64, img gocv.Mat, t time.Time) (Decision, error) {
	cur, err := f.feature.Prepare(img)
	if err != nil {
		return Decision{}, fmt.Errorf("reducto filter %s/%d: %w", camera, seq, err)
	}
	defer cur.Close() // our reference; every holder retains its own

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Decision{}, errors.New("reducto filter is closed")
	}
	cam := f.cams[camera]
	if cam == nil {
		sel, err := NewSelector(f.opts.Selector)
		if err != nil {
			return Decision{}, err
		}
		cam = &camState{t0: t, selector: sel}
		f.cams[camera] = cam
	}
	idx := int64(0)
	if t.After(cam.t0) {
		idx = int64(t.Sub(cam.t0) / f.opts.Segment)
	}
	if cam.seg == nil || idx > cam.seg.index {
		if job := f.closeSegment(cam); job != nil {
			f.mu.Unlock()
			f.profile(camera, cam, job)
			f.mu.Lock()
			if f.closed || f.cams[camera] != cam { // closed or forgotten meanwhile
				return Decision{}, fmt.Errorf("reducto filter: camera %s was closed while profiling", camera)
			}
		}
		if cam.seg == nil || idx > cam.seg.index {
			f.openSegment(camera, cam, idx)
		}
	}
	s := cam.seg

	d := Decision{Segment: s.index, Profiling: s.profiling, Threshold: s.threshold, Distance: s.distance}
	consecutive := -1.0
	if s.frames > 0 && cam.prev != nil {
		// The signature is made of differences within the segment only.
		consecutive = f.diff(cam.prev, cur)
		s.diffs = append(s.diffs, consecutive)
	}
	if cam.lastSent != nil {
		if cam.lastSent == cam.prev && consecutive >= 0 {
			d.Diff = consecutive
		} else {
			d.Diff = f.diff(cam.lastSent, cur)
		}
	}
	d.Send = s.profiling || s.frames == 0 || cam.lastSent == nil || d.Diff > s.threshold

	if s.profiling && len(s.prepared) < f.opts.MaxSegmentFrames {
		s.bySeq[seq] = len(s.prepared)
		s.prepared = append(s.prepared, cur.retain())
		s.outputs = append(s.outputs, nil)
		s.missing++
	}
	cam.prev.Close()
	cam.prev = cur.retain()
	if d.Send {
		cam.lastSent.Close()
		cam.lastSent = cur.retain()
		cam.stats.Sent++
		if s.profiling {
			cam.stats.ProfilingFrames++
		}
	}
	s.frames++
	cam.stats.Frames++
	return d, nil
}

// Observe delivers the exact outputs of camera's frame seq. Only frames of
// profiled segments need them; others are ignored. The filter keeps the
// map (the caller must not change it). The Observe that completes a
// segment whose frames have all been seen profiles it, outside the lock.
func (f *Filter) Observe(camera string, seq uint64, outputs map[string]*pipeline.Output) {
	f.mu.Lock()
	cam := f.cams[camera]
	if cam == nil || f.closed {
		f.mu.Unlock()
		return
	}
	if s := cam.seg; s != nil && s.profiling {
		s.observe(seq, outputs) // still open: profiled when it closes
	}
	var ready *segState
	for i, s := range cam.pending {
		if s.observe(seq, outputs) && s.missing == 0 {
			ready = s
			cam.pending = slices.Delete(cam.pending, i, i+1)
			break
		}
	}
	f.mu.Unlock()
	if ready != nil {
		f.profile(camera, cam, ready)
	}
}

// Stats returns camera's counters.
func (f *Filter) Stats(camera string) (Stats, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cam := f.cams[camera]
	if cam == nil {
		return Stats{}, false
	}
	st := cam.stats
	if cam.seg != nil {
		st.Threshold, st.Profiling = cam.seg.threshold, cam.seg.profiling
	}
	return st, true
}

// Forget drops camera's state (its stream ended); a later frame starts it
// afresh, bootstrap included.
func (f *Filter) Forget(camera string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cam := f.cams[camera]; cam != nil {
		cam.release()
		delete(f.cams, camera)
	}
}

// Close releases every camera's frames. Decide fails afterwards.
func (f *Filter) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, cam := range f.cams {
		cam.release()
		delete(f.cams, name)
	}
	f.closed = true
	return nil
}

// diff compares two prepared frames. The only failure is a frame of
// another size (the camera changed resolution): that counts as a complete
// change, so the frame is sent.
func (f *Filter) diff(a, b *Prepared) float64 {
	d, err := f.feature.Diff(a, b)
	if err != nil {
		return 1
	}
	return d
}

// closeSegment ends cam's current segment. A profiled segment whose
// outputs are all in is returned to be profiled; one still waiting is
// queued in pending.
func (f *Filter) closeSegment(cam *camState) *segState {
	s := cam.seg
	if s == nil {
		return nil
	}
	cam.seg = nil
	cam.lastDiffs = s.diffs
	switch {
	case !s.profiling || len(s.prepared) < 2:
		s.release()
		return nil
	case s.missing == 0:
		return s
	}
	cam.pending = append(cam.pending, s)
	return nil
}

// openSegment starts segment idx: profiled or filtered with the k-NN's
// threshold.
func (f *Filter) openSegment(camera string, cam *camState, idx int64) {
	cam.pending = slices.DeleteFunc(cam.pending, func(s *segState) bool {
		if s.index >= idx-int64(f.opts.MaxPending) {
			return false
		}
		s.release()
		cam.stats.DroppedProfiles++
		return true
	})
	diffs := cam.lastDiffs
	if f.signature != nil {
		if own, ok := f.signature(camera, idx); ok {
			diffs = own
		}
	}
	s := &segState{index: idx}
	thr, dist, ok := cam.selector.Threshold(diffs)
	s.distance = dist
	if math.IsInf(dist, 1) {
		s.distance = -1 // nothing to compare with; keeps Decision JSON-safe
	}
	if ok {
		s.threshold = thr
	} else {
		s.profiling = true
		s.bySeq = map[uint64]int{}
	}
	cam.seg = s
	cam.stats.Segments++
}

// profile replays the candidates on a complete profiled segment (without
// the lock: it is the slow part) and adds it to the camera's k-NN.
func (f *Filter) profile(camera string, cam *camState, s *segState) {
	defer s.release() // s is no longer reachable from cam: no lock needed
	n := len(s.prepared)
	seg := Segment{
		Frames:   n,
		Diffs:    s.diffs[:n-1],
		Between:  func(last, cur int) float64 { return f.diff(s.prepared[last], s.prepared[cur]) },
		Accuracy: FrameAccuracy(s.outputs, f.opts.Accuracy),
	}
	p, err := ProfileSegment(seg, f.opts.Selector)
	if err != nil {
		return // cannot happen: the segment has ≥ 2 frames, all observed
	}
	f.mu.Lock()
	cam.selector.Add(seg.Diffs, p.Threshold)
	cam.stats.ProfiledSegments++
	f.mu.Unlock()
	if f.opts.OnProfile != nil {
		f.opts.OnProfile(camera, s.index, p)
	}
}

// observe stores seq's outputs if the segment kept that frame.
func (s *segState) observe(seq uint64, outputs map[string]*pipeline.Output) bool {
	i, ok := s.bySeq[seq]
	if !ok {
		return false
	}
	if s.outputs[i] == nil {
		s.missing--
	}
	if outputs == nil {
		outputs = map[string]*pipeline.Output{}
	}
	s.outputs[i] = outputs
	return true
}

func (s *segState) release() {
	for _, p := range s.prepared {
		p.Close()
	}
	s.prepared, s.outputs, s.bySeq = nil, nil, nil
}

func (c *camState) release() {
	c.prev.Close()
	c.lastSent.Close()
	c.prev, c.lastSent = nil, nil
	if c.seg != nil {
		c.seg.release()
	}
	for _, s := range c.pending {
		s.release()
	}
	c.pending = nil
}
