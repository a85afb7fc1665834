package pipeline

import (
	"fmt"
	"regexp"
)

// Subject names. Camera IDs and model names are single NATS subject tokens,
// which ValidName enforces at config time.
const (
	SubjectPrefix = "mlink"
	// ResultsStream is the JetStream stream that keeps results so that a
	// subscriber that was away can catch up.
	ResultsStream = "MLINK_RESULTS"
)

// FramesSubject carries a camera's frames from ingest to the scheduler.
func FramesSubject(camera string) string { return "mlink.frames." + camera }

// InferSubject carries frames to the workers of one model (queue group).
func InferSubject(model string) string { return "mlink.infer." + model }

// InferQueue is the queue group of a model's workers: more workers in the
// group share the model's frames.
func InferQueue(model string) string { return "mlink-workers-" + model }

// OutputsSubject carries one model's outputs for one camera.
func OutputsSubject(camera, model string) string {
	return "mlink.outputs." + camera + "." + model
}

// PlanSubject carries the scheduler's per-frame plans to the merger.
func PlanSubject(camera string) string { return "mlink.plan." + camera }

// ResultsSubject carries complete per-frame results to subscribers.
func ResultsSubject(camera string) string { return "mlink.results." + camera }

// PredictSubject carries predict requests from the merger to the link
// predictor workers, in one queue group: any predictor serves any frame.
const (
	PredictSubject = "mlink.predict"
	PredictQueue   = "mlink-predictors"
)

// EscalateSubject carries the merger's escalations of a camera's frames to
// the scheduler (policy coe: a cascade's tier disagreed, its next tier
// must run on the frame).
func EscalateSubject(camera string) string { return "mlink.escalate." + camera }

// HealthSubject carries a model worker's heartbeats.
func HealthSubject(model string) string { return "mlink.health." + model }

// Wildcards for subscribers of every camera.
const (
	AllFrames  = "mlink.frames.*"
	AllOutputs = "mlink.outputs.*.*"
	AllPlans   = "mlink.plan.*"
	AllResults = "mlink.results.*"
	AllHealth  = "mlink.health.*"
	// AllEscalations: the scheduler takes every camera's escalations.
	AllEscalations = "mlink.escalate.*"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName checks that s can be used as a camera ID or model name: one NATS
// subject token of letters, digits, '_' or '-'.
func ValidName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q must be 1-64 letters, digits, '_' or '-' (it is a NATS subject token)", s)
	}
	return nil
}
