package scheduler

import (
	"sync"

	"github.com/mlink-project/mlink/pipeline"
)

// LossPredictor is a Predictor whose links also predict their own loss on a
// frame (links.Set's loss-prediction heads). Active sampling asks it only
// for predicted outputs that came without their losses
// (pipeline.Output.LinkLosses, see assemble.LossPredictor): it runs the
// links a second time.
type LossPredictor interface {
	PredictedLosses(exact map[string]*pipeline.Output, targets []string) (map[string]float64, error)
}

// activeWindow is how many recent frames active sampling ranks a frame
// against (per link, and for the frame scores).
const activeWindow = 256

// ActiveSampler is MLink's adaptive update, online: it scores each frame
// served with links by the loss its links predict for it (each link's
// value as a percentile of that link's recent values, averaged over the
// frame's links) and asks for the next frame of the camera to be profiled
// when the score is in the top Share of recent frames. The frames
// themselves are gone once processed, so the frame after a high-loss one
// stands for it (consecutive frames are alike). At most Share of frames
// are asked for.
type ActiveSampler struct {
	share float64

	mu      sync.Mutex
	perLink map[string]*ring
	scores  ring
	frames  int64
	asked   int64
}

// NewActiveSampler samples share (0–1; the paper: 1–5 %) of frames.
func NewActiveSampler(share float64) *ActiveSampler {
	return &ActiveSampler{share: share, perLink: map[string]*ring{}}
}

// Observe scores one frame from its links' predicted losses and reports
// whether the camera's next frame should be profiled.
func (a *ActiveSampler) Observe(losses map[string]float64) bool {
	if a == nil || a.share <= 0 || len(losses) == 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.frames++
	score, n := 0.0, 0
	for link, v := range losses {
		r := a.perLink[link]
		if r == nil {
			r = &ring{}
			a.perLink[link] = r
		}
		if r.len() >= activeWindow/4 {
			score += r.percentile(v)
			n++
		}
		r.add(v)
	}
	if n == 0 {
		return false // still learning what these links' losses look like
	}
	score /= float64(n)
	warm := a.scores.len() >= activeWindow/4
	high := warm && a.scores.percentile(score) >= 1-a.share
	a.scores.add(score)
	if !high || float64(a.asked+1) > a.share*float64(a.frames)+1 {
		return false
	}
	a.asked++
	return true
}

// Asked is how many frames the sampler asked to profile.
func (a *ActiveSampler) Asked() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asked
}

// ring holds the last activeWindow values.
type ring struct {
	vals []float64
	next int
}

func (r *ring) len() int { return len(r.vals) }

func (r *ring) add(v float64) {
	if len(r.vals) < activeWindow {
		r.vals = append(r.vals, v)
		return
	}
	r.vals[r.next] = v
	r.next = (r.next + 1) % activeWindow
}

// percentile is the share of held values strictly below v, ties counting
// half.
func (r *ring) percentile(v float64) float64 {
	below, equal := 0, 0
	for _, x := range r.vals {
		switch {
		case x < v:
			below++
		case x == v:
			equal++
		}
	}
	return (float64(below) + float64(equal)/2) / float64(len(r.vals))
}
