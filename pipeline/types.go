// Package pipeline holds mlink's contracts and its engine parts that need no
// video or ML library: the messages that travel on NATS (frames, plans, model
// outputs, results), their codecs, subject names, configuration, the bus and
// bounded queues. Everything else plugs into these types.
package pipeline

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Kind is the published MLink output kind: it decides which link family maps
// one model's output to another's.
type Kind string

const (
	// KindVector is a fixed-length output: a count, class probabilities, a scalar.
	KindVector Kind = "vector"
	// KindSequence is a variable-length output: a list of boxes or line segments.
	KindSequence Kind = "sequence"
)

// OutputType says what a model's output means; it fixes the Kind and the
// accuracy metric used to compare a predicted output with the exact one.
type OutputType string

const (
	// TypeCount: Value is [n].
	TypeCount OutputType = "count"
	// TypeClass: Value holds class probabilities (in ModelSpec.Classes order), Label the argmax.
	TypeClass OutputType = "class"
	// TypeScalar: Value is a fixed-length vector of real numbers.
	TypeScalar OutputType = "scalar"
	// TypeBoxes: Boxes holds detections; Value is [number of boxes].
	TypeBoxes OutputType = "boxes"
	// TypeLines: Boxes holds line segments (X1,Y1)-(X2,Y2); Value is [number of segments].
	TypeLines OutputType = "lines"
)

// Kind returns the MLink output kind of the type.
func (t OutputType) Kind() Kind {
	if t == TypeBoxes || t == TypeLines {
		return KindSequence
	}
	return KindVector
}

// Valid reports whether t is a known output type.
func (t OutputType) Valid() bool {
	switch t {
	case TypeCount, TypeClass, TypeScalar, TypeBoxes, TypeLines:
		return true
	}
	return false
}

// Source says where an output in a result came from.
type Source string

const (
	// SourceExact: the model ran on this frame.
	SourceExact Source = "exact"
	// SourcePredicted: predicted by model links from other models' exact outputs.
	SourcePredicted Source = "predicted"
	// SourceReused: the frame was filtered; the model's last result is reused.
	SourceReused Source = "reused"
	// SourceTracked: a detector's last exact boxes carried along their
	// recent motion to this frame (the tracker; Plan.Tracked).
	SourceTracked Source = "tracked"
)

// Box is one detection or one line segment. Coordinates are normalised to
// [0,1] of the frame's width and height so outputs do not depend on the
// resolution a model ran at. For line outputs (X1,Y1)-(X2,Y2) are the
// segment's end points.
type Box struct {
	X1    float32 `json:"x1"`
	Y1    float32 `json:"y1"`
	X2    float32 `json:"x2"`
	Y2    float32 `json:"y2"`
	Score float32 `json:"score"`
	Class string  `json:"class,omitempty"`
}

// Output is one model's output for one frame.
type Output struct {
	// Camera and Seq identify the frame on the bus; inside a Result they are
	// implied and may be left out.
	Camera string     `json:"camera,omitempty"`
	Seq    uint64     `json:"seq,omitempty"`
	Model  string     `json:"model"`
	Kind   Kind       `json:"kind"`
	Type   OutputType `json:"type"`
	// Value is the vector view of the output (see OutputType). Every output
	// has one, so count links and count metrics apply to detectors as well.
	Value []float64 `json:"value"`
	// Label is the argmax class for class outputs.
	Label string `json:"label,omitempty"`
	// Boxes holds the elements of sequence outputs.
	Boxes []Box `json:"boxes,omitempty"`
	// Extra holds named auxiliary measures (e.g. MOG2's foreground share).
	Extra map[string]float64 `json:"extra,omitempty"`

	Source Source `json:"source"`
	// Sources lists the executed models a predicted output was derived from.
	Sources []string `json:"sources,omitempty"`
	// Confidence is the measured accuracy of the predictor (predicted outputs).
	Confidence float64 `json:"confidence,omitempty"`
	// LinkLosses is the loss each link that predicted the output expects
	// for it (its loss-prediction head), keyed "source>target". It rides
	// with the prediction so active sampling scores the frame without
	// running the links again; values of different links are on different
	// scales (compare each link's only with its own).
	LinkLosses map[string]float64 `json:"link_losses,omitempty"`
	// FromSeq is the frame a reused output was computed on.
	FromSeq uint64 `json:"from_seq,omitempty"`

	// InferMS is the model's execution time on this frame (exact outputs).
	InferMS float64 `json:"infer_ms,omitempty"`
	// Worker identifies the process that produced the output; Pool the
	// worker pool it serves ("": unpooled).
	Worker string `json:"worker,omitempty"`
	Pool   string `json:"pool,omitempty"`
	// Error is set when the model could not produce an output for this frame
	// (corrupt frame, model failure, worker overloaded). Value is then empty.
	Error string `json:"error,omitempty"`
	// Token echoes the frame's plan token (see NewToken): the merger takes
	// an output only with the token of the frame's outstanding plan. It is
	// cleared once checked, so results do not carry it.
	Token string `json:"token,omitempty"`
}

// Count returns the output's count (Value[0]) and whether it has one.
func (o *Output) Count() (float64, bool) {
	if len(o.Value) == 0 {
		return 0, false
	}
	return o.Value[0], true
}

// CheckFinite reports a non-finite value or extra: JSON cannot carry one,
// and no consumer of an output expects one.
func (o *Output) CheckFinite() error {
	for _, v := range o.Value {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("output has a non-finite value")
		}
	}
	for k, v := range o.Extra {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("output extra %q is not finite", k)
		}
	}
	for k, v := range o.LinkLosses {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("output link loss %q is not finite", k)
		}
	}
	return nil
}

// Frame is one captured image of one camera.
type Frame struct {
	Camera     string
	Seq        uint64
	CapturedAt time.Time
	Width      int
	Height     int
	// JPEG is the encoded image. The bus carries JPEG, never raw pixels: a raw
	// 720p frame is larger than NATS's default 1 MiB payload limit.
	JPEG []byte
	// Profiling marks a frame on which every model runs (set by the scheduler
	// on infer messages).
	Profiling bool
	// Token is the frame's plan token (set by the scheduler on infer
	// messages), echoed by workers in their outputs.
	Token string
}

// Plan is the scheduler's decision for one frame: which models execute,
// which are predicted by links and which reuse an earlier result. The merger
// completes a frame when every model of its plan has an output.
type Plan struct {
	Camera     string    `json:"camera"`
	Seq        uint64    `json:"seq"`
	CapturedAt time.Time `json:"captured_at"`
	Policy     string    `json:"policy"`
	Exact      []string  `json:"exact"`
	Predicted  []string  `json:"predicted,omitempty"`
	Reused     []string  `json:"reused,omitempty"`
	Profiling  bool      `json:"profiling,omitempty"`
	// Sampled: a profiling frame chosen by active sampling (the frame after
	// one the links predicted badly), not by the periodic window.
	Sampled bool `json:"sampled,omitempty"`
	// Temporal lists the predicted models whose prediction also takes their
	// own last exact output (temporal links; mlink-hybrid).
	Temporal []string `json:"temporal,omitempty"`
	// Sources lists the executed models whose outputs link predictions may
	// use; empty: every executed model. mlink-hybrid measures its links'
	// ensembles over the always-run models, so on a frame where a rotating
	// model also runs its output is not among them.
	Sources []string `json:"sources,omitempty"`
	// Token is the frame's unguessable token (NewToken): the merger accepts
	// only outputs that echo it. Results carry their plan without it.
	Token string `json:"token,omitempty"`
	// Tracked lists the reused detectors whose last exact boxes are carried
	// along their recent motion (assemble.Track) rather than reused as
	// they are: the policy measured tracking to beat plain reuse for them.
	Tracked []string `json:"tracked,omitempty"`
	// Follow maps reused detectors to the delta link that moves their last
	// exact boxes along a cheaper detector's motion since that frame
	// (assemble.Follow): the policy measured it to beat reuse and tracking.
	Follow map[string]FollowLink `json:"follow,omitempty"`
	// Cascades (policy coe) are the frame's cascades of ensembles: Exact
	// holds each one's first tier; its later tiers' models are Reused
	// until the merger, seeing a tier disagree, escalates the frame to the
	// next tier (assemble.Escalations, Escalate; they move to Exact). Each
	// cascade's Output is answered by the tier that agreed (assemble.Answers).
	Cascades []Cascade `json:"cascades,omitempty"`
	// Pools maps the models a frame may execute to the worker pool it is
	// sent to (Subjects.InferOn); a model not in it goes to the unpooled
	// workers (Subjects.Infer).
	Pools map[string]string `json:"pools,omitempty"`
	// Losses asks the link predictors for each link's predicted loss with
	// the outputs they predict (Output.LinkLosses): active sampling, on,
	// reads them.
	Losses bool `json:"losses,omitempty"`
}

// FollowLink is a delta link of Plan.Follow: the executed detector whose
// boxes' motion a reused detector's boxes follow, and the gain on it.
// With Deaths, a box whose source box is gone on this frame goes too (the
// person left or is hidden); with Births, each source box that is new on
// this frame adds a target box, placed and sized from it by the fitted
// map (the target's boxes are another detector's idea of a person).
type FollowLink struct {
	Source string  `json:"source"`
	Gain   float64 `json:"gain"`
	Deaths bool    `json:"deaths,omitempty"`
	Births *BoxMap `json:"births,omitempty"`
}

// BoxMap places a target detector's box from a source detector's box of
// the same object: centre shifted by (DX·w, DY·h) and size scaled by (SW,
// SH), w and h the source box's size; Class names the target's class.
// Source boxes shorter than MinH or scored below MinScore place nothing:
// the target rarely detects what small or faint (links.FitBoxMap fits
// them, with the rest, from frames where both ran).
type BoxMap struct {
	DX       float32 `json:"dx"`
	DY       float32 `json:"dy"`
	SW       float32 `json:"sw"`
	SH       float32 `json:"sh"`
	MinH     float32 `json:"min_h,omitempty"`
	MinScore float32 `json:"min_score,omitempty"`
	Class    string  `json:"class,omitempty"`
}

// Places reports whether a source box is one the target would detect.
func (m *BoxMap) Places(b Box) bool { return b.Y2-b.Y1 >= m.MinH && b.Score >= m.MinScore }

// Apply maps a source box to the target's box of the same object.
func (m *BoxMap) Apply(b Box) Box {
	w, h := b.X2-b.X1, b.Y2-b.Y1
	cx, cy := (b.X1+b.X2)/2+m.DX*w, (b.Y1+b.Y2)/2+m.DY*h
	tw, th := m.SW*w/2, m.SH*h/2
	return Box{X1: cx - tw, Y1: cy - th, X2: cx + tw, Y2: cy + th, Score: b.Score, Class: m.Class}
}

// Models returns every model named by the plan.
func (p *Plan) Models() []string {
	out := make([]string, 0, len(p.Exact)+len(p.Predicted)+len(p.Reused))
	out = append(out, p.Exact...)
	out = append(out, p.Predicted...)
	return append(out, p.Reused...)
}

// Result is the complete multi-model result of one frame, published on
// mlink.results.<camera>.
type Result struct {
	Camera     string             `json:"camera"`
	Seq        uint64             `json:"seq"`
	CapturedAt time.Time          `json:"captured_at"`
	Outputs    map[string]*Output `json:"outputs"`
	Plan       Plan               `json:"plan"`
	// Partial is true when the merger's deadline passed before every planned
	// output arrived; Missing lists them. Reason says why.
	Partial bool          `json:"partial"`
	Missing []string      `json:"missing,omitempty"`
	Reason  PartialReason `json:"reason,omitempty"`
	// LatencyMS is the time from capture to the result's emission.
	LatencyMS float64 `json:"latency_ms"`
}

// PartialReason says why a result is partial.
type PartialReason string

const (
	// PartialDeadline: planned outputs were still missing at the merger's
	// deadline (a slow or failed worker, or outputs lost in a bus outage).
	PartialDeadline PartialReason = "deadline"
	// PartialEvicted: the merger's bound on frames being joined was reached.
	PartialEvicted PartialReason = "evicted"
	// PartialStopped: the merger stopped before the outputs came.
	PartialStopped PartialReason = "stopped"
	// PartialLost is a gap record: the camera's frame never reached the
	// merger (lost in a bus outage, or refused by the scheduler), so the
	// result has no outputs and its plan only camera and seq; CapturedAt
	// is the next frame's (the lost frame's own is unknown).
	PartialLost PartialReason = "lost"
)

// Heartbeat is a model worker's periodic sign of life, on
// mlink.health.<model>. The scheduler predicts a model whose workers are
// all silent or stuck, and runs it again when one is back.
type Heartbeat struct {
	Model  string `json:"model"`
	Worker string `json:"worker"`
	// Pool is the worker pool the worker serves ("": unpooled).
	Pool string    `json:"pool,omitempty"`
	At   time.Time `json:"at"`
	// Frames is the number of frames the worker has finished; Queued the
	// frames waiting. A worker with frames queued and no progress is stuck.
	Frames int64 `json:"frames"`
	Queued int   `json:"queued"`
	// LastProgress is when the worker last finished a frame.
	LastProgress time.Time `json:"last_progress"`
	// InferMS is the worker's recent mean execution time.
	InferMS float64 `json:"infer_ms"`
	// MemoryBytes is the model's measured memory cost.
	MemoryBytes int64 `json:"memory_bytes"`
}

// PredictRequest asks a link predictor for the outputs of a frame's
// predicted models, given the exact outputs of the models that ran. The
// merger sends it once the frame's exact outputs are in.
type PredictRequest struct {
	Camera     string             `json:"camera"`
	Seq        uint64             `json:"seq"`
	CapturedAt time.Time          `json:"captured_at"`
	Targets    []string           `json:"targets"`
	Exact      map[string]*Output `json:"exact"`
	// Last holds, for targets predicted with temporal links, the target's
	// last exact output (its Seq gives the age).
	Last map[string]*Output `json:"last,omitempty"`
	// Token is the frame's plan token, echoed in the predicted outputs.
	Token string `json:"token,omitempty"`
	// Losses: the predicted outputs carry their links' predicted losses
	// (Plan.Losses).
	Losses bool `json:"losses,omitempty"`
}
