package dashboard

import (
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// Event names on /dashboard/events.
const (
	// EventState is the first event of every stream: the whole State, so
	// that a client (re)connecting paints at once and misses nothing.
	EventState = "state"
	// EventResult carries one camera's newest result (ResultEvent).
	EventResult = "result"
	// EventStats carries the sliding-window figures (StatsEvent), every
	// Options.StatsEvery.
	EventStats = "stats"
)

// SourceError and SourceMissing complete pipeline.Source for the
// dashboard: an output that could not be produced, and a planned output
// that had not arrived when a partial result was emitted.
const (
	SourceError   = "error"
	SourceMissing = "missing"
)

// ResultEvent is one camera's newest result, as the page draws it.
type ResultEvent struct {
	Camera     string                 `json:"camera"`
	Seq        uint64                 `json:"seq"`
	CapturedAt time.Time              `json:"captured_at"`
	LatencyMS  float64                `json:"latency_ms"`
	Partial    bool                   `json:"partial,omitempty"`
	Reason     pipeline.PartialReason `json:"reason,omitempty"`
	// Frame is the frame /dashboard/frame/{camera} serves now: the
	// result's own once it arrived; nil before any.
	Frame *FrameInfo `json:"frame,omitempty"`
	// Models lists every configured model, in the config's order.
	Models []ModelState `json:"models"`
	Plan   PlanState    `json:"plan"`
}

// FrameInfo identifies a kept frame.
type FrameInfo struct {
	Seq    uint64 `json:"seq"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// ModelState is one model's output in a result.
type ModelState struct {
	Model string              `json:"model"`
	Type  pipeline.OutputType `json:"type"`
	// Source is exact, predicted, reused, tracked, error or missing.
	Source string `json:"source"`
	// Value is the output's vector view; Label the class of class outputs.
	Value []float64 `json:"value,omitempty"`
	Label string    `json:"label,omitempty"`
	// Boxes are the detections (or line segments), normalised to [0,1].
	Boxes []pipeline.Box `json:"boxes,omitempty"`
	// AgeFrames is how many frames old the value is: 0 when computed on
	// this frame, seq - from_seq when reused or tracked.
	AgeFrames  uint64  `json:"age_frames"`
	InferMS    float64 `json:"infer_ms,omitempty"`
	Confidence float64 `json:"confidence,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// PlanState is the scheduler's plan of the frame and the model time it
// spent.
type PlanState struct {
	Policy    string   `json:"policy,omitempty"`
	Exact     []string `json:"exact,omitempty"`
	Predicted []string `json:"predicted,omitempty"`
	Reused    []string `json:"reused,omitempty"`
	Tracked   []string `json:"tracked,omitempty"`
	Profiling bool     `json:"profiling,omitempty"`
	// UsedMS is the exact outputs' model time on this frame.
	UsedMS float64 `json:"used_ms"`
}

// StatsEvent is the sliding-window figures of every camera, and what the
// process knows beyond the results (Options.Live).
type StatsEvent struct {
	At      time.Time     `json:"at"`
	Cameras []CameraStats `json:"cameras"`
	Live
	// Clients is how many event streams are open; Dropped the events this
	// client missed because it read too slowly (DroppedAll: every client's).
	Clients    int    `json:"clients"`
	Dropped    uint64 `json:"dropped"`
	DroppedAll uint64 `json:"dropped_all"`
}

// CameraStats are one camera's figures over the window.
type CameraStats struct {
	Camera string `json:"camera"`
	// FPS is results per second over the window.
	FPS float64 `json:"fps"`
	// LatencyP50MS and LatencyP95MS are capture → result over the window.
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP95MS float64 `json:"latency_p95_ms"`
	// Results, Partial and Lost count since the start: results shown,
	// partial ones among them, and frames that never reached the merger
	// (gap records).
	Results uint64 `json:"results"`
	Partial uint64 `json:"partial"`
	Lost    uint64 `json:"lost"`
	// IngestDropped is the stale frames ingest dropped, where this
	// process runs the camera (nil elsewhere).
	IngestDropped *uint64 `json:"ingest_dropped,omitempty"`
}

// Live is what the process knows that results do not carry. Each field
// is optional: a process without the scheduler role has no agreement.
type Live struct {
	// BudgetMS is the time budget per frame in force (0: none).
	BudgetMS float64 `json:"budget_ms"`
	// Agreement is the links' measured agreement (0..1), when measured.
	Agreement *float64 `json:"agreement,omitempty"`
	// IngestDropped maps the cameras this process ingests to their stale
	// frames dropped.
	IngestDropped map[string]uint64 `json:"-"`
}

// State is the whole dashboard: GET /dashboard/state, and the first event
// of every stream.
type State struct {
	Models  []ModelInfo   `json:"models"`
	Cameras []CameraState `json:"cameras"`
	Stats   StatsEvent    `json:"stats"`
}

// ModelInfo is a configured model.
type ModelInfo struct {
	Name string              `json:"name"`
	Type pipeline.OutputType `json:"type"`
}

// CameraState is one configured camera: its newest result (nil before
// any) and its kept frame.
type CameraState struct {
	Camera string       `json:"camera"`
	Result *ResultEvent `json:"result,omitempty"`
	Frame  *FrameInfo   `json:"frame,omitempty"`
}

// newResultEvent builds the event of a result, listing models in the
// order given. It shares slices with r, which no one modifies after
// decoding.
func newResultEvent(r *pipeline.Result, models []ModelInfo) *ResultEvent {
	ev := &ResultEvent{Camera: r.Camera, Seq: r.Seq, CapturedAt: r.CapturedAt, LatencyMS: r.LatencyMS,
		Partial: r.Partial, Reason: r.Reason, Models: make([]ModelState, 0, len(models))}
	p := &r.Plan
	ev.Plan = PlanState{Policy: p.Policy, Exact: p.Exact, Predicted: p.Predicted, Reused: p.Reused,
		Tracked: p.Tracked, Profiling: p.Profiling}
	for _, m := range models {
		o := r.Outputs[m.Name]
		if o == nil {
			ev.Models = append(ev.Models, ModelState{Model: m.Name, Type: m.Type, Source: SourceMissing})
			continue
		}
		ms := ModelState{Model: m.Name, Type: m.Type, Source: string(o.Source), Value: o.Value, Label: o.Label,
			Boxes: o.Boxes, InferMS: o.InferMS, Confidence: o.Confidence, Error: o.Error}
		if ms.Type == "" {
			ms.Type = o.Type
		}
		if o.Error != "" {
			ms.Source = SourceError
		}
		if o.FromSeq > 0 && o.FromSeq < r.Seq {
			ms.AgeFrames = r.Seq - o.FromSeq
		}
		if o.Source == pipeline.SourceExact && o.Error == "" {
			ev.Plan.UsedMS += o.InferMS
		}
		ev.Models = append(ev.Models, ms)
	}
	return ev
}
