package reducto

import (
	"errors"
	"fmt"
	"math"
	"time"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// Offline helpers for the bench: the same features and the same Filter, fed
// from a video file.

// forEachFrame decodes video and calls fn with each frame's index and
// image (owned by forEachFrame, valid during the call) until the video
// ends or fn returns false.
func forEachFrame(video string, fn func(i int, img gocv.Mat) (bool, error)) error {
	vc, err := gocv.VideoCaptureFile(video)
	if err != nil {
		return fmt.Errorf("open video %q: %w", video, err)
	}
	defer vc.Close()
	if !vc.IsOpened() {
		return fmt.Errorf("open video %q: not a readable video", video)
	}
	img := gocv.NewMat()
	defer img.Close()
	for i := 0; vc.Read(&img) && !img.Empty(); i++ {
		more, err := fn(i, img)
		if err != nil {
			return fmt.Errorf("video %q frame %d: %w", video, i, err)
		}
		if !more {
			break
		}
	}
	return nil
}

// videoFPS is the video's nominal frame rate, or 0 if unknown.
func videoFPS(video string) float64 {
	vc, err := gocv.VideoCaptureFile(video)
	if err != nil {
		return 0
	}
	defer vc.Close()
	fps := vc.Get(gocv.VideoCaptureFPS)
	if math.IsNaN(fps) || fps <= 0 || fps > 1000 {
		return 0
	}
	return fps
}

// ReplayDiffs returns each frame's difference to its predecessor in video
// (diffs[0] = 0), with the named feature at the given working width (0:
// the default, 320). These are the consecutive differences that make
// segment signatures.
func ReplayDiffs(video, feature string, width int) ([]float64, error) {
	return replayDiffs(video, feature, width, 1)
}

func replayDiffs(video, feature string, width, stride int) ([]float64, error) {
	feat, err := NewFeature(feature, FeatureOptions{Width: width})
	if err != nil {
		return nil, err
	}
	var diffs []float64
	var prev *Prepared
	defer func() { prev.Close() }()
	err = forEachFrame(video, func(i int, img gocv.Mat) (bool, error) {
		if i%stride != 0 {
			return true, nil
		}
		cur, err := feat.Prepare(img)
		if err != nil {
			return false, err
		}
		d := 0.0
		if prev != nil {
			if d, err = feat.Diff(prev, cur); err != nil {
				cur.Close()
				return false, err
			}
		}
		diffs = append(diffs, d)
		prev.Close()
		prev = cur
		return true, nil
	})
	return diffs, err
}

// SweepVideo replays fixed thresholds over a whole video (no segments, no
// selection): for each threshold, from[i] is the frame whose outputs frame
// i uses (from[i] == i: sent), sending a frame iff its difference to the
// last frame sent at that threshold exceeds the threshold. The first frame
// is sent. It is exact, not Reducto's cumulative approximation, and
// decodes the video once: the thresholds share their last-sent frames,
// so each frame is compared once per distinct last-sent frame (at most
// len(thresholds) comparisons, usually a few), and only those frames are
// kept.
func SweepVideo(video, feature string, width int, thresholds []float64) ([][]int, error) {
	feat, err := NewFeature(feature, FeatureOptions{Width: width})
	if err != nil {
		return nil, err
	}
	from := make([][]int, len(thresholds))
	last := make([]int, len(thresholds))
	kept := map[int]*Prepared{}
	defer func() {
		for _, p := range kept {
			p.Close()
		}
	}()
	err = forEachFrame(video, func(i int, img gocv.Mat) (bool, error) {
		cur, err := feat.Prepare(img)
		if err != nil {
			return false, err
		}
		defer cur.Close()
		if i == 0 {
			for t := range thresholds {
				from[t] = append(from[t], 0)
			}
			kept[0] = cur.retain()
			return true, nil
		}
		diffTo := map[int]float64{}
		sent := false
		for t, thr := range thresholds {
			l := last[t]
			d, ok := diffTo[l]
			if !ok {
				if d, err = feat.Diff(kept[l], cur); err != nil {
					return false, err
				}
				diffTo[l] = d
			}
			if d > thr {
				last[t], l, sent = i, i, true
			}
			from[t] = append(from[t], l)
		}
		if sent {
			kept[i] = cur.retain()
		}
		// Drop frames no threshold compares with any more.
		for k, p := range kept {
			if _, ok := diffTo[k]; ok && !usedBy(last, k) {
				p.Close()
				delete(kept, k)
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return from, nil
}

func usedBy(last []int, k int) bool {
	for _, l := range last {
		if l == k {
			return true
		}
	}
	return false
}

// SimulateOptions configure SimulateVideo.
type SimulateOptions struct {
	Filter FilterOptions
	// FPS is the video's frame rate, which places frames in segments. 0:
	// the video's own (10 if the file does not say).
	FPS float64
	// Stride processes every Stride-th frame only (e.g. 10 on a 10 fps
	// video: the stream sampled at 1 fps). Default 1.
	Stride int
	// Lookahead uses each segment's own signature to choose its threshold,
	// as Reducto's camera (which buffers a segment) does; it costs a second
	// decoding pass. Off, the live Filter's behaviour: the previous
	// segment's signature.
	Lookahead bool
}

// SimFrame is one processed frame of a simulation.
type SimFrame struct {
	// Frame is the video frame's index; From the index of the frame whose
	// outputs it uses (From == Frame: sent to the models).
	Frame, From int
	Decision
}

// SimProfile is one profiled segment of a simulation.
type SimProfile struct {
	Segment int64 `json:"segment"`
	Profile
}

// Simulation is SimulateVideo's outcome.
type Simulation struct {
	Frames   []SimFrame
	Profiles []SimProfile
	Stats    Stats
}

// SimulateVideo runs the live Filter over a video as if each sent frame's
// models answered at once: outputs[i] are video frame i's exact outputs
// (from a trace: record seq i+1 of a one-camera trace made from the same
// video). The simulation stops at the end of the video or of outputs. The
// filter compares frames exactly (no cumulative approximation), profiles
// segments exactly as online, and the bench can score each frame by
// comparing outputs[From] with outputs[Frame].
func SimulateVideo(video string, outputs []map[string]*pipeline.Output, opts SimulateOptions) (*Simulation, error) {
	if opts.Stride <= 0 {
		opts.Stride = 1
	}
	if opts.FPS <= 0 {
		if opts.FPS = videoFPS(video); opts.FPS == 0 {
			opts.FPS = 10
		}
	}
	if len(outputs) == 0 {
		return nil, errors.New("simulate: no outputs")
	}
	sim := &Simulation{}
	user := opts.Filter.OnProfile
	opts.Filter.OnProfile = func(camera string, segment int64, p Profile) {
		sim.Profiles = append(sim.Profiles, SimProfile{Segment: segment, Profile: p})
		if user != nil {
			user(camera, segment, p)
		}
	}
	f, err := NewFilter(opts.Filter)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	segLen := f.opts.Segment
	at := func(frame int) time.Duration {
		return time.Duration(float64(frame) / opts.FPS * float64(time.Second))
	}
	if opts.Lookahead {
		diffs, err := replayDiffs(video, f.opts.Feature, f.opts.Features.Width, opts.Stride)
		if err != nil {
			return nil, err
		}
		own := map[int64][]float64{}
		for k := 1; k < len(diffs); k++ {
			a, b := int64(at((k-1)*opts.Stride)/segLen), int64(at(k*opts.Stride)/segLen)
			if a == b {
				own[b] = append(own[b], diffs[k])
			}
		}
		f.signature = func(_ string, segment int64) ([]float64, bool) {
			d, ok := own[segment]
			return d, ok
		}
	}
	const camera = "sim"
	t0 := time.Unix(0, 0).UTC()
	lastSent := 0
	err = forEachFrame(video, func(i int, img gocv.Mat) (bool, error) {
		if i >= len(outputs) {
			return false, nil
		}
		if i%opts.Stride != 0 {
			return true, nil
		}
		d, err := f.Decide(camera, uint64(i)+1, img, t0.Add(at(i)))
		if err != nil {
			return false, err
		}
		if d.Send {
			lastSent = i
		}
		if d.Profiling {
			f.Observe(camera, uint64(i)+1, outputs[i])
		}
		sim.Frames = append(sim.Frames, SimFrame{Frame: i, From: lastSent, Decision: d})
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	sim.Stats, _ = f.Stats(camera)
	return sim, nil
}
