package reducto

// Threshold selection: pure Go, no gocv, so it can move to a cgo-free
// package (the bench, the scheduler) unchanged.

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// SelectorOptions are the threshold selection's parameters. Zero values take
// the defaults; see the package documentation.
type SelectorOptions struct {
	// Target is the accuracy the filter must keep on a segment. Default 0.9.
	Target float64
	// SafetyMargin is added to Target when a profiled segment's threshold is
	// chosen. Default 0 (Reducto's HashBuilder default; its experiments tune
	// it per query between −0.5 and +0.1).
	SafetyMargin float64
	// Candidates is the number of thresholds tried on a profiled segment.
	// Default 50.
	Candidates int
	// Bins is the number of histogram bins of a segment's signature. Default 30.
	Bins int
	// K is the number of neighbours of the k-NN. Default 5.
	K int
	// Bootstrap is the number of profiled segments needed before any
	// segment is filtered. Default 5.
	Bootstrap int
	// DistanceBound: a segment whose signature is farther than this
	// (Euclidean distance between histograms, which sum to 1) from every
	// profiled signature is sent whole and profiled. Default 0.5.
	DistanceBound float64
	// MaxProfiles bounds the profiled segments kept (the oldest go first).
	// Default 500.
	MaxProfiles int
}

// Defaults of SelectorOptions.
const (
	DefaultTarget        = 0.9
	DefaultCandidates    = 50
	DefaultBins          = 30
	DefaultK             = 5
	DefaultBootstrap     = 5
	DefaultDistanceBound = 0.5
	DefaultMaxProfiles   = 500
)

// EnsureDefaults fills zero fields with their defaults.
func (o *SelectorOptions) EnsureDefaults() {
	setDefault(&o.Target, DefaultTarget)
	setDefault(&o.Candidates, DefaultCandidates)
	setDefault(&o.Bins, DefaultBins)
	setDefault(&o.K, DefaultK)
	setDefault(&o.Bootstrap, DefaultBootstrap)
	setDefault(&o.DistanceBound, DefaultDistanceBound)
	setDefault(&o.MaxProfiles, DefaultMaxProfiles)
}

// Validate reports every invalid field at once.
func (o *SelectorOptions) Validate() error {
	var errs []string
	if o.Target <= 0 || o.Target > 1 {
		errs = append(errs, fmt.Sprintf("target %g is outside (0, 1]", o.Target))
	}
	if math.Abs(o.SafetyMargin) >= 1 {
		errs = append(errs, fmt.Sprintf("safety margin %g is outside (-1, 1)", o.SafetyMargin))
	}
	if o.Candidates < 1 || o.Candidates > 10000 {
		errs = append(errs, fmt.Sprintf("candidates %d is outside 1..10000", o.Candidates))
	}
	if o.Bins < 1 || o.Bins > 10000 {
		errs = append(errs, fmt.Sprintf("bins %d is outside 1..10000", o.Bins))
	}
	if o.K < 1 {
		errs = append(errs, fmt.Sprintf("k %d is below 1", o.K))
	}
	if o.Bootstrap < 1 {
		errs = append(errs, fmt.Sprintf("bootstrap %d is below 1", o.Bootstrap))
	}
	if o.DistanceBound <= 0 {
		errs = append(errs, fmt.Sprintf("distance bound %g is not positive", o.DistanceBound))
	}
	if o.MaxProfiles < o.Bootstrap {
		errs = append(errs, fmt.Sprintf("max profiles %d is below bootstrap %d", o.MaxProfiles, o.Bootstrap))
	}
	if len(errs) > 0 {
		return fmt.Errorf("reducto selector: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Segment is one profiled segment: every frame was sent, so every frame
// has exact outputs, and any send/skip choice can be replayed on it.
type Segment struct {
	// Frames is the number of frames.
	Frames int
	// Diffs are the differences between consecutive frames: Diffs[i] is
	// frame i+1 against frame i (len Frames−1). They make the signature.
	Diffs []float64
	// Between(last, cur) is frame cur's difference to frame last (last <
	// cur): what the filter compares when last was the last frame sent. Nil
	// approximates it by the sum of the consecutive differences in between,
	// as Reducto's offline profiler does (DiffProcessor.batch_diff).
	Between func(last, cur int) float64
	// Accuracy(frame, from) in [0,1] is the accuracy of reusing frame
	// from's exact outputs for frame (from < frame). See CountAccuracy,
	// LabelAccuracy and OutputsAccuracy.
	Accuracy func(frame, from int) float64
}

// Candidate is one threshold replayed on a profiled segment.
type Candidate struct {
	Threshold float64 `json:"threshold"`
	// Accuracy is the mean per-frame accuracy (sent frames count 1).
	Accuracy float64 `json:"accuracy"`
	// Sent is the share of the segment's frames sent.
	Sent float64 `json:"sent"`
}

// Profile is the outcome of profiling one segment.
type Profile struct {
	// Threshold is the largest candidate whose accuracy is at least
	// Target + SafetyMargin; 0 (send every frame that changed at all) when
	// none is.
	Threshold float64 `json:"threshold"`
	// Accuracy and Sent are the replay's at Threshold.
	Accuracy float64 `json:"accuracy"`
	Sent     float64 `json:"sent"`
	// Candidates lists every threshold tried, in increasing order.
	Candidates []Candidate `json:"candidates"`
}

// Replay returns, for each frame of seg, the frame whose outputs it uses
// when a frame is sent iff its difference to the last sent frame exceeds
// thr: from[i] == i for a sent frame. The first frame is always sent, as
// in Reducto, where every segment starts with a sent frame.
func Replay(seg Segment, thr float64) []int {
	between := seg.between()
	from := make([]int, seg.Frames)
	last := 0
	for cur := 1; cur < seg.Frames; cur++ {
		if between(last, cur) > thr {
			last = cur
		}
		from[cur] = last
	}
	return from
}

// Evaluate replays thr on seg and returns its accuracy and share sent.
func Evaluate(seg Segment, thr float64) Candidate {
	c := Candidate{Threshold: thr}
	if seg.Frames == 0 {
		return c
	}
	from := Replay(seg, thr)
	sum, sent := 0.0, 0
	for i, f := range from {
		if f == i {
			sum++
			sent++
			continue
		}
		sum += seg.Accuracy(i, f)
	}
	c.Accuracy = sum / float64(seg.Frames)
	c.Sent = float64(sent) / float64(seg.Frames)
	return c
}

// CandidateThresholds returns n thresholds evenly spaced over (0, M], where
// M is the largest difference of a frame of seg to its first frame: the
// largest a frame can see against the last sent one when only the first is
// sent, so beyond M every threshold sends the first frame alone.
func CandidateThresholds(seg Segment, n int) []float64 {
	between := seg.between()
	m := 0.0
	for cur := 1; cur < seg.Frames; cur++ {
		m = max(m, between(0, cur))
	}
	out := make([]float64, n)
	for k := range out {
		out[k] = m * float64(k+1) / float64(n)
	}
	return out
}

// ChooseThreshold returns the largest candidate whose accuracy is at least
// target, or 0 when none is. A higher target never yields a larger
// threshold: it only removes candidates.
func ChooseThreshold(cands []Candidate, target float64) float64 {
	best := 0.0
	for _, c := range cands {
		if c.Accuracy >= target && c.Threshold > best {
			best = c.Threshold
		}
	}
	return best
}

func (s Segment) between() func(last, cur int) float64 {
	if s.Between != nil {
		return s.Between
	}
	cum := make([]float64, s.Frames)
	for i := 1; i < s.Frames; i++ {
		d := 0.0
		if i-1 < len(s.Diffs) {
			d = s.Diffs[i-1]
		}
		cum[i] = cum[i-1] + d
	}
	return func(last, cur int) float64 { return cum[cur] - cum[last] }
}

func (s Segment) validate() error {
	switch {
	case s.Frames < 1:
		return errors.New("segment has no frames")
	case len(s.Diffs) != s.Frames-1:
		return fmt.Errorf("segment has %d frames but %d consecutive diffs (want %d)", s.Frames, len(s.Diffs), s.Frames-1)
	case s.Accuracy == nil:
		return errors.New("segment has no accuracy function")
	}
	return nil
}

// Selector chooses a threshold per segment (one selector per camera and
// query): profiled segments give (signature, best threshold) pairs, and a
// distance-weighted k-NN maps a new segment's signature to a threshold.
// It is not safe for concurrent use.
type Selector struct {
	opts     SelectorOptions
	profiles []profiled
	lo, hi   float64 // histogram range: every profiled diff
}

type profiled struct {
	diffs     []float64
	threshold float64
}

// NewSelector returns a selector (zero option fields take their defaults).
func NewSelector(opts SelectorOptions) (*Selector, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Selector{opts: opts}, nil
}

// Options returns the selector's options, defaults filled in.
func (s *Selector) Options() SelectorOptions { return s.opts }

// Len is the number of profiled segments known.
func (s *Selector) Len() int { return len(s.profiles) }

// Profile replays the candidate thresholds on a profiled segment, chooses
// its threshold and adds it to the k-NN.
func (s *Selector) Profile(seg Segment) (Profile, error) {
	p, err := ProfileSegment(seg, s.opts)
	if err != nil {
		return Profile{}, err
	}
	s.Add(seg.Diffs, p.Threshold)
	return p, nil
}

// ProfileSegment replays opts.Candidates thresholds on a profiled segment
// and chooses the largest whose accuracy is at least Target +
// SafetyMargin. It changes no selector: the filter runs it outside its
// lock, then calls Add.
func ProfileSegment(seg Segment, opts SelectorOptions) (Profile, error) {
	opts.EnsureDefaults()
	if err := seg.validate(); err != nil {
		return Profile{}, fmt.Errorf("profile segment: %w", err)
	}
	// Memoise: the candidates share most (last, cur) pairs, and each is a
	// Mat comparison when Between is exact.
	between := seg.between()
	memo := map[[2]int]float64{}
	seg.Between = func(last, cur int) float64 {
		k := [2]int{last, cur}
		if v, ok := memo[k]; ok {
			return v
		}
		v := between(last, cur)
		memo[k] = v
		return v
	}
	p := Profile{}
	for _, thr := range CandidateThresholds(seg, opts.Candidates) {
		p.Candidates = append(p.Candidates, Evaluate(seg, thr))
	}
	p.Threshold = ChooseThreshold(p.Candidates, opts.Target+opts.SafetyMargin)
	chosen := Evaluate(seg, p.Threshold)
	p.Accuracy, p.Sent = chosen.Accuracy, chosen.Sent
	return p, nil
}

// Add records a segment profiled elsewhere (or earlier) by its consecutive
// diffs and chosen threshold.
func (s *Selector) Add(diffs []float64, threshold float64) {
	s.add(slices.Clone(diffs), threshold)
}

func (s *Selector) add(diffs []float64, thr float64) {
	s.profiles = append(s.profiles, profiled{diffs: diffs, threshold: thr})
	if len(s.profiles) > s.opts.MaxProfiles {
		s.profiles = slices.Delete(s.profiles, 0, len(s.profiles)-s.opts.MaxProfiles)
	}
	// Reducto's histogram range is the span of every profiled diff.
	s.lo, s.hi = math.Inf(1), math.Inf(-1)
	for _, p := range s.profiles {
		for _, d := range p.diffs {
			s.lo, s.hi = min(s.lo, d), max(s.hi, d)
		}
	}
}

// Signature is a segment's histogram of consecutive diffs: Bins (30) bins
// over the range of every profiled diff, then one bin for diffs below the
// range and one for diffs above it, divided by the number of diffs.
// Reducto drops out-of-range diffs instead, which makes a segment busier
// than any profiled one look as close to quiet segments as an empty
// histogram is; with the overflow bin it is far from all of them, and
// gets profiled. The range changes as segments are profiled, so compare
// signatures made by the same state.
func (s *Selector) Signature(diffs []float64) []float64 {
	h := make([]float64, s.opts.Bins+2)
	if len(diffs) == 0 || len(s.profiles) == 0 {
		return h
	}
	lo, hi := s.lo, s.hi
	if !(hi > lo) { // one value only: numpy widens the range by ±0.5
		lo, hi = lo-0.5, hi+0.5
	}
	w := (hi - lo) / float64(s.opts.Bins)
	for _, d := range diffs {
		switch {
		case math.IsNaN(d):
			continue
		case d < lo:
			h[s.opts.Bins]++
		case d > hi:
			h[s.opts.Bins+1]++
		default:
			h[min(int((d-lo)/w), s.opts.Bins-1)]++ // the last bin is closed
		}
	}
	for i := range h {
		h[i] /= float64(len(diffs))
	}
	return h
}

// Threshold maps a segment's consecutive diffs to a threshold by the
// distance-weighted k-NN over the profiled segments. ok is false — send
// the segment whole and profile it — while fewer than Bootstrap segments
// are profiled, for a segment without diffs, and when the nearest profiled
// signature is farther than DistanceBound; distance is that nearest
// distance.
//
// Weights are 1/distance; profiled signatures at distance 0 decide alone
// (as scikit-learn's). Reducto's k-NN is a classifier over a fixed list of
// candidate thresholds; ours regress the thresholds (weighted mean)
// because each segment's candidates span its own range.
func (s *Selector) Threshold(diffs []float64) (thr, distance float64, ok bool) {
	if len(s.profiles) < s.opts.Bootstrap || len(diffs) == 0 {
		return 0, math.Inf(1), false
	}
	sig := s.Signature(diffs)
	type neighbour struct{ d, thr float64 }
	ns := make([]neighbour, len(s.profiles))
	for i, p := range s.profiles {
		ns[i] = neighbour{euclid(sig, s.Signature(p.diffs)), p.threshold}
	}
	slices.SortStableFunc(ns, func(a, b neighbour) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		}
		return 0
	})
	ns = ns[:min(s.opts.K, len(ns))]
	if ns[0].d > s.opts.DistanceBound {
		return 0, ns[0].d, false
	}
	if ns[0].d == 0 {
		sum, n := 0.0, 0
		for _, x := range ns {
			if x.d == 0 {
				sum += x.thr
				n++
			}
		}
		return sum / float64(n), 0, true
	}
	num, den := 0.0, 0.0
	for _, x := range ns {
		num += x.thr / x.d
		den += 1 / x.d
	}
	return num / den, ns[0].d, true
}

func euclid(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return math.Sqrt(s)
}

// setDefault sets a zero option to its default.
func setDefault[T int | float64](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}
