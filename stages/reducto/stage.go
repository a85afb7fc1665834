package reducto

import (
	"fmt"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// FrameFilter is the live Filter as the scheduler's frame filter
// (scheduler.FrameFilter): it decodes each frame's JPEG for Decide and feeds
// the results' exact outputs back to Observe, which profiled segments need.
//
// Filter is called from the scheduler's routing goroutine, in each camera's
// frame order (what Decide requires); ObserveResult from the results
// subscription's goroutine. Filter's lock makes the two safe together.
type FrameFilter struct {
	filter *Filter
}

// NewFrameFilter returns a frame filter over a new Filter with opts.
func NewFrameFilter(opts FilterOptions) (*FrameFilter, error) {
	f, err := NewFilter(opts)
	if err != nil {
		return nil, err
	}
	return &FrameFilter{filter: f}, nil
}

// ConfigOptions maps the config's reducto section to the filter's options.
func ConfigOptions(c pipeline.ReductoConfig) FilterOptions {
	return FilterOptions{
		Feature:  c.Feature,
		Segment:  c.Segment,
		Features: FeatureOptions{Width: c.Width},
		Selector: SelectorOptions{
			Target:        c.TargetAccuracy,
			SafetyMargin:  c.SafetyMargin,
			Candidates:    c.Candidates,
			Bins:          c.Bins,
			K:             c.K,
			Bootstrap:     c.BootstrapSegments,
			DistanceBound: c.DistanceBound,
			// The config does not bound the profiles kept; a bootstrap
			// longer than the default bound raises it.
			MaxProfiles: max(DefaultMaxProfiles, c.BootstrapSegments),
		},
	}
}

// Filter says whether frame f goes to the models. A frame that does not
// decode is an error (the scheduler sends it: the workers report it).
func (s *FrameFilter) Filter(f *pipeline.Frame) (bool, error) {
	// The header first: a few bytes claiming a huge image are refused
	// before the decoder allocates it.
	if _, _, err := pipeline.CheckJPEG(f.JPEG, pipeline.DefaultMaxFramePixels); err != nil {
		return true, fmt.Errorf("reducto: frame %s/%d: %w", f.Camera, f.Seq, err)
	}
	img, err := gocv.IMDecode(f.JPEG, gocv.IMReadColor)
	if err != nil {
		return true, fmt.Errorf("reducto: decode frame %s/%d: %w", f.Camera, f.Seq, err)
	}
	defer img.Close()
	if img.Empty() {
		return true, fmt.Errorf("reducto: frame %s/%d is not a decodable JPEG image", f.Camera, f.Seq)
	}
	d, err := s.filter.Decide(f.Camera, f.Seq, img, f.CapturedAt)
	if err != nil {
		return true, err
	}
	return d.Send, nil
}

// ObserveResult hands r's exact, error-free outputs to the filter: they are
// what a profiled segment's thresholds are measured against. Every result
// is passed on, even one with no exact output left, so that a profiled
// segment completes rather than waiting for outputs that will never come.
func (s *FrameFilter) ObserveResult(r *pipeline.Result) {
	exact := make(map[string]*pipeline.Output, len(r.Outputs))
	for name, o := range r.Outputs {
		if o != nil && o.Source == pipeline.SourceExact && o.Error == "" {
			exact[name] = o
		}
	}
	s.filter.Observe(r.Camera, r.Seq, exact)
}

// Stats returns camera's counters.
func (s *FrameFilter) Stats(camera string) (Stats, bool) { return s.filter.Stats(camera) }

// Close releases the filter's frames; Filter fails afterwards.
func (s *FrameFilter) Close() error { return s.filter.Close() }
