// Package scheduler decides, per frame, which models execute, which are
// predicted by links and which reuse an earlier result, and routes frames
// accordingly. It is pure logic over the bus: no cgo, no GPU needed.
package scheduler

import (
	"fmt"
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
type Policy interface {
	Name() string
	Plan(f FrameInfo) pipeline.Plan
}

// NewPolicy builds the named policy over the configured models.
func NewPolicy(name string, models []string) (Policy, error) {
	switch name {
	case "all":
		return &AllPolicy{models: append([]string(nil), models...)}, nil
	}
	return nil, fmt.Errorf("unknown scheduler policy %q", name)
}

// AllPolicy runs every model on every frame: the reference every other
// policy is measured against, and what profiling frames do.
type AllPolicy struct {
	models []string
}

// Name implements Policy.
func (p *AllPolicy) Name() string { return "all" }

// Plan implements Policy.
func (p *AllPolicy) Plan(f FrameInfo) pipeline.Plan {
	return pipeline.Plan{Camera: f.Camera, Seq: f.Seq, Policy: "all", Exact: p.models}
}
