// Package scheduler decides, per frame, which models execute, which are
// predicted by links and which reuse an earlier result, and routes frames
// accordingly. It is pure logic over the bus: no cgo, no GPU needed.
package scheduler

import (
	"fmt"
	"strings"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// FrameInfo is what a policy knows of a frame when it plans it.
type FrameInfo struct {
	Camera     string
	Seq        uint64
	CapturedAt time.Time
}

// Policy decides the plan of each frame. Plan is called from the
// scheduler's one routing goroutine, so a policy may keep state unguarded.
// Every registered policy runs as a Controller over its Scheme.
type Policy interface {
	Name() string
	Plan(f FrameInfo) pipeline.Plan
}

// PolicyName names a policy; the configuration's type, so that a name read
// from a config file or a flag is the name registered here.
type PolicyName = pipeline.PolicyName

// The registered policies' names.
const (
	PolicyAll        PolicyName = "all"
	PolicyStandalone PolicyName = "standalone"
	PolicyMLink      PolicyName = "mlink"
	PolicyHybrid     PolicyName = "mlink-hybrid"
	// PolicySkip runs every model on every k-th frame, k the smallest that
	// fits, and reuses the last exact output in between: DeepStream's
	// nvinfer interval for all models, Frigate's detect fps.
	PolicySkip PolicyName = "skip"
	// PolicySkipPerModel runs model i every kᵢ = max(1, ⌈λ·√cᵢ⌉) frames, λ
	// the smallest that fits (the square root minimises total staleness for
	// the cost): DeepStream's per-model interval set by a rule a user could
	// apply by hand, with no learning.
	PolicySkipPerModel PolicyName = "skip-per-model"
	// PolicySkipPerModelTrack is skip-per-model with a tracker between a
	// detector's runs (DeepStream's nvtracker between interval frames).
	PolicySkipPerModelTrack PolicyName = "skip-per-model/track"
)

// Scheme is what makes one policy what it is. The Controller it runs in
// keeps what every policy shares — the profiling clock, the per-camera frame
// counts, the cost model and budget books, worker health, links and their
// training — and asks the scheme for the decisions. The scheme gets the
// controller to use those (they are one package's parts; a scheme keeps no
// state of its own that the controller also keeps).
type Scheme interface {
	// Select chooses what runs from the measured costs within budget and,
	// for a link policy, the profiled evidence (nil before links exist).
	// nil keeps the current selection. The controller stamps the time,
	// reason and budget; a scheme's Reason is added as a note.
	Select(c *Controller, ev SetEvidence, costs map[string]Cost, budget Budget) *Selection
	// Plan plans frame f, the camera's index-th frame (from 0). plan comes
	// with the camera, seq and policy filled in.
	Plan(c *Controller, f FrameInfo, index int64, now time.Time, plan pipeline.Plan) pipeline.Plan
	// Observe sees every result after the controller booked its costs.
	Observe(c *Controller, r *pipeline.Result)
}

// PolicySpec registers a policy: what the configuration knows of it and how
// its scheme is made.
type PolicySpec struct {
	pipeline.PolicyInfo
	// FrameFeatures: the scheme predicts from the frames themselves, so
	// its controller needs ControllerConfig.Features (a replay's decoded
	// frames).
	FrameFeatures bool
	// New makes the scheme for one controller.
	New func(cfg ControllerConfig) Scheme
}

var registry = map[PolicyName]PolicySpec{}

// register makes a policy known to the scheduler and to the configuration
// (validation, --policy, the usage text, the bench). Each policy's file
// calls it from init.
func register(spec PolicySpec) {
	if spec.New == nil {
		panic(fmt.Sprintf("register policy %q: no scheme", spec.Name))
	}
	pipeline.RegisterPolicy(spec.PolicyInfo) // panics on a duplicate
	registry[spec.Name] = spec
}

// LookupPolicy returns a registered policy's spec.
func LookupPolicy(name PolicyName) (PolicySpec, bool) {
	spec, ok := registry[name]
	return spec, ok
}

// Policies lists the registered policies' names in the configuration's
// order (the reference first, then the baselines, then the link policies).
func Policies() []PolicyName {
	var out []PolicyName
	for _, p := range pipeline.Policies() {
		out = append(out, p.Name)
	}
	return out
}

func unknownPolicy(name PolicyName) error {
	return fmt.Errorf("unknown scheduler policy %q (known: %s)", name, strings.Join(pipeline.PolicyNames(), ", "))
}
