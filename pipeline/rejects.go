package pipeline

import (
	"crypto/rand"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// RejectReason says why a stage refused a message from the bus. The bus is
// not trusted (any client of an unauthenticated server can publish on any
// subject), so every refusal has a reason, a count and a sampled log line.
type RejectReason string

const (
	// RejectMalformed: the message does not decode (bad JSON, bad headers).
	RejectMalformed RejectReason = "malformed"
	// RejectCameraMismatch: the body names another camera than the subject.
	RejectCameraMismatch RejectReason = "camera_mismatch"
	// RejectModelMismatch: an output's body names another model than its subject.
	RejectModelMismatch RejectReason = "model_mismatch"
	// RejectUnknownCamera: the camera is not in the configuration.
	RejectUnknownCamera RejectReason = "unknown_camera"
	// RejectSeqOutOfWindow: a seq too far ahead of the camera's next one.
	RejectSeqOutOfWindow RejectReason = "seq_out_of_window"
	// RejectLate: the frame's result was already emitted (late or replayed).
	RejectLate RejectReason = "late"
	// RejectDuplicatePlan: a second plan for a frame already being joined.
	RejectDuplicatePlan RejectReason = "duplicate_plan"
	// RejectNoToken: a plan without a frame token.
	RejectNoToken RejectReason = "no_token"
	// RejectNoPlan: an output for a frame with no outstanding plan.
	RejectNoPlan RejectReason = "no_plan"
	// RejectBadToken: an output whose token is not its frame's plan's.
	RejectBadToken RejectReason = "bad_token"
	// RejectModelNotPlanned: an output of a model the frame's plan does not
	// execute or predict.
	RejectModelNotPlanned RejectReason = "model_not_planned"
	// RejectDuplicateOutput: a second output of one model for one frame.
	RejectDuplicateOutput RejectReason = "duplicate_output"
	// RejectFrameTooLarge: a JPEG declaring more pixels than allowed.
	RejectFrameTooLarge RejectReason = "frame_too_large"
	// RejectSizeMismatch: a JPEG whose size is not the frame's headers'.
	RejectSizeMismatch RejectReason = "size_mismatch"
	// RejectUnroutable: a well-formed message the stage could not pass on
	// (the bus refused a publish, the plan did not encode).
	RejectUnroutable RejectReason = "unroutable"
	// RejectNotEscalable: an escalation for a frame the scheduler does not
	// keep (any more), or for models that are not the frame's later
	// cascade tiers, or already sent.
	RejectNotEscalable RejectReason = "not_escalable"
)

// DefaultRejectLogPeriod is how often, at most, one reason is logged again
// after its first line.
const DefaultRejectLogPeriod = 10 * time.Second

// Rejects counts a stage's refused messages by reason and logs them
// sampled: the first of each reason at once, then at most one line per
// reason per period, carrying how many were not logged since. A flood of
// forged messages thus costs a few log lines, and the counts stay exact.
// Safe for concurrent use; the zero value is not usable, see NewRejects.
type Rejects struct {
	log    zerolog.Logger
	period time.Duration
	now    func() time.Time

	mu      sync.Mutex
	counts  map[RejectReason]uint64
	logged  map[RejectReason]time.Time // last line per reason
	skipped map[RejectReason]uint64    // not logged since that line
}

// NewRejects returns counters that log on log, each reason at most once
// per period (DefaultRejectLogPeriod when 0).
func NewRejects(log zerolog.Logger, period time.Duration) *Rejects {
	if period <= 0 {
		period = DefaultRejectLogPeriod
	}
	return &Rejects{
		log: log, period: period, now: time.Now,
		counts:  map[RejectReason]uint64{},
		logged:  map[RejectReason]time.Time{},
		skipped: map[RejectReason]uint64{},
	}
}

// Reject counts one refused message and logs it if its reason's sample is
// due. subject is where it came from; err says what was wrong.
func (r *Rejects) Reject(reason RejectReason, subject string, err error) {
	r.mu.Lock()
	r.counts[reason]++
	now := r.now()
	last, seen := r.logged[reason]
	due := !seen || now.Sub(last) >= r.period
	var suppressed uint64
	if due {
		suppressed = r.skipped[reason]
		r.skipped[reason] = 0
		r.logged[reason] = now
	} else {
		r.skipped[reason]++
	}
	r.mu.Unlock()
	if !due {
		return
	}
	ev := r.log.Warn().Str("reason", string(reason)).Str("subject", subject).Err(err)
	if suppressed > 0 {
		ev = ev.Uint64("suppressed", suppressed).Dur("in", r.period)
	}
	ev.Msg("rejecting message from the bus")
}

// Snapshot returns the count of every reason seen so far.
func (r *Rejects) Snapshot() map[RejectReason]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[RejectReason]uint64, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// Total is the number of messages refused, all reasons together.
func (r *Rejects) Total() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n uint64
	for _, v := range r.counts {
		n += v
	}
	return n
}

// Reasons returns the reasons seen so far, sorted (for stable printing).
func (r *Rejects) Reasons() []RejectReason {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RejectReason, 0, len(r.counts))
	for k := range r.counts {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// NewToken returns a frame token: 128 random bits (26 base32 characters).
// The scheduler gives one to every plan; workers and predictors echo it in
// their outputs, and the merger accepts an output only with the token of
// its frame's outstanding plan, so a client that can publish on the bus but
// did not see the plan cannot inject outputs.
func NewToken() string { return rand.Text() }
