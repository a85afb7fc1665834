package pipeline

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultSubjectPrefix is the first token of every subject, and (upper-cased)
// of the JetStream names, when nats.subject_prefix is not set.
const DefaultSubjectPrefix = "mlink"

// Subjects names one deployment's subjects, queue groups and JetStream
// names. Every name starts with the prefix, so that two deployments with
// different prefixes can share a NATS account without seeing each other's
// frames or results. The zero value is the default deployment ("mlink").
// Camera IDs and model names are single subject tokens, which ValidName
// enforces at config time.
type Subjects struct {
	Prefix string
}

// DefaultSubjects are the subjects of a deployment with the default prefix.
var DefaultSubjects = Subjects{Prefix: DefaultSubjectPrefix}

// SubjectsFor returns the subjects of the deployment c configures.
func SubjectsFor(c *NATSConfig) Subjects { return Subjects{Prefix: c.SubjectPrefix} }

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultSubjectPrefix
	}
	return s.Prefix
}

// Frames carries a camera's frames from ingest to the scheduler.
func (s Subjects) Frames(camera string) string { return s.prefix() + ".frames." + camera }

// Infer carries frames to the workers of one model (queue group).
func (s Subjects) Infer(model string) string { return s.prefix() + ".infer." + model }

// InferQueue is the queue group of a model's workers: more workers in the
// group share the model's frames.
func (s Subjects) InferQueue(model string) string { return s.prefix() + "-workers-" + model }

// InferOn carries frames to the workers of one model in one worker pool
// (mlink run --pool): the scheduler sends a model's frames there when its
// policy placed the model on the pool (Plan.Pools).
func (s Subjects) InferOn(pool, model string) string {
	return s.prefix() + ".infer." + pool + "." + model
}

// InferQueueOn is the queue group of a model's workers in one pool.
func (s Subjects) InferQueueOn(pool, model string) string {
	return s.prefix() + "-workers-" + pool + "-" + model
}

// InferFor is where a frame for model goes: its pool's subject, or the
// unpooled workers' when pool is empty.
func (s Subjects) InferFor(pool, model string) string {
	if pool == "" {
		return s.Infer(model)
	}
	return s.InferOn(pool, model)
}

// Outputs carries one model's outputs for one camera.
func (s Subjects) Outputs(camera, model string) string {
	return s.prefix() + ".outputs." + camera + "." + model
}

// Plan carries the scheduler's per-frame plans to the merger.
func (s Subjects) Plan(camera string) string { return s.prefix() + ".plan." + camera }

// Results carries complete per-frame results to subscribers.
func (s Subjects) Results(camera string) string { return s.prefix() + ".results." + camera }

// Predict carries predict requests from the merger to the link predictor
// workers, in one queue group (PredictQueue): any predictor serves any frame.
func (s Subjects) Predict() string { return s.prefix() + ".predict" }

// PredictQueue is the link predictors' queue group.
func (s Subjects) PredictQueue() string { return s.prefix() + "-predictors" }

// Escalate carries the merger's escalations of a camera's frames to the
// scheduler (policy coe: a cascade's tier disagreed, its next tier must run
// on the frame).
func (s Subjects) Escalate(camera string) string { return s.prefix() + ".escalate." + camera }

// Health carries a model worker's heartbeats.
func (s Subjects) Health(model string) string { return s.prefix() + ".health." + model }

// Wildcards for subscribers of every camera (or model).

func (s Subjects) AllFrames() string  { return s.Frames("*") }
func (s Subjects) AllOutputs() string { return s.Outputs("*", "*") }
func (s Subjects) AllPlans() string   { return s.Plan("*") }
func (s Subjects) AllResults() string { return s.Results("*") }
func (s Subjects) AllHealth() string  { return s.Health("*") }

// AllEscalations: the scheduler takes every camera's escalations.
func (s Subjects) AllEscalations() string { return s.Escalate("*") }

// All matches every subject of the deployment.
func (s Subjects) All() string { return s.prefix() + ".>" }

// PlanPrefix and OutputsPrefix are the subjects' fixed parts, before the
// camera (and model) tokens a subscriber parses back out.
func (s Subjects) PlanPrefix() string    { return s.prefix() + ".plan." }
func (s Subjects) OutputsPrefix() string { return s.prefix() + ".outputs." }
func (s Subjects) ResultsPrefix() string { return s.prefix() + ".results." }

// EscalatePrefix is Escalate's fixed part, before the camera token.
func (s Subjects) EscalatePrefix() string { return s.prefix() + ".escalate." }

// ResultsStream is the JetStream stream that keeps results so that a
// subscriber that was away can catch up (MLINK_RESULTS by default).
func (s Subjects) ResultsStream() string { return s.jetStreamName() + "_RESULTS" }

// LinksBucket is the JetStream object store that holds the current links
// (MLINK_LINKS by default).
func (s Subjects) LinksBucket() string { return s.jetStreamName() + "_LINKS" }

// Consumer names a durable consumer of the results stream (e.g. the
// trainer's), so that two deployments' consumers do not share state.
func (s Subjects) Consumer(role string) string { return s.prefix() + "-" + role }

// jetStreamName is the prefix as JetStream names are spelt. The prefix is
// lower case (ValidSubjectPrefix), so two prefixes never share one.
func (s Subjects) jetStreamName() string { return strings.ToUpper(s.prefix()) }

var subjectPrefixRE = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// ValidSubjectPrefix checks nats.subject_prefix: one subject token, lower
// case so that its upper-cased JetStream names (PREFIX_RESULTS) are the
// deployment's alone.
func ValidSubjectPrefix(p string) error {
	if !subjectPrefixRE.MatchString(p) {
		return fmt.Errorf("%q must be 1-32 lower-case letters, digits, '_' or '-' (it is the first token of every subject and, upper-cased, of the JetStream stream and bucket names)", p)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName checks that s can be used as a camera ID or model name: one NATS
// subject token of letters, digits, '_' or '-'.
func ValidName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q must be 1-64 letters, digits, '_' or '-' (it is a NATS subject token)", s)
	}
	return nil
}
