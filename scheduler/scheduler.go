package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/assemble"
)

// Scheduler subscribes every camera's frames, asks the policy for each
// frame's plan, publishes the plan to the merger and the frame to the
// workers of each executed model. An optional frame filter (SetFilter)
// may keep a frame from the models altogether.
type Scheduler struct {
	nc         *nats.Conn
	subjects   pipeline.Subjects
	policy     Policy
	filter     FrameFilter
	filterErrs map[string]*filterErrors // per camera; routing goroutine only
	log        zerolog.Logger
	inLine     bool // results observed on the routing goroutine
	in         chan *nats.Msg
	ready      chan struct{}
	stats      Stats
	rejects    *pipeline.Rejects
	// known holds the configured cameras (nil: any camera); a reload
	// swaps it while Run routes.
	known atomic.Pointer[map[string]bool]
	// kept are each camera's recent frames with cascades (policy coe),
	// which an escalation re-sends to a later tier; routing goroutine only.
	kept map[string][]*keptFrame
}

// Stats counts the scheduler's work.
type Stats struct {
	Frames   atomic.Int64
	Rejected atomic.Int64
	// Executions counts model executions requested; Planned counts model
	// outputs planned. Their ratio is the share of executions saved.
	Executions atomic.Int64
	Planned    atomic.Int64
	// Filtered counts frames the frame filter kept from the models (every
	// model reused); FilterErrors the frames it failed on (sent anyway).
	Filtered     atomic.Int64
	FilterErrors atomic.Int64
	// Escalations counts the frames re-sent to a cascade's later tier
	// (policy coe), EscalatedBytes the JPEG bytes that crossed tiers so
	// (once per model: each model's workers get the frame), which is the
	// communication a tier on other workers costs.
	Escalations    atomic.Int64
	EscalatedBytes atomic.Int64

	poolMu sync.Mutex
	pools  map[string]*PoolTraffic
}

// PoolTraffic is what the scheduler sent to one worker pool's workers
// ("": the unpooled ones): frames (one per model execution) and their
// JPEG bytes.
type PoolTraffic struct {
	Frames, Bytes int64
}

func (st *Stats) sentToPool(pool string, bytes int) {
	st.poolMu.Lock()
	defer st.poolMu.Unlock()
	if st.pools == nil {
		st.pools = map[string]*PoolTraffic{}
	}
	t := st.pools[pool]
	if t == nil {
		t = &PoolTraffic{}
		st.pools[pool] = t
	}
	t.Frames++
	t.Bytes += int64(bytes)
}

// Pools is the traffic sent to each pool so far.
func (st *Stats) Pools() map[string]PoolTraffic {
	st.poolMu.Lock()
	defer st.poolMu.Unlock()
	out := make(map[string]PoolTraffic, len(st.pools))
	for p, t := range st.pools {
		out[p] = *t
	}
	return out
}

// New creates a scheduler; Run starts it.
func New(nc *nats.Conn, policy Policy, log zerolog.Logger) *Scheduler {
	return &Scheduler{
		nc:         nc,
		subjects:   pipeline.DefaultSubjects,
		policy:     policy,
		filterErrs: map[string]*filterErrors{},
		kept:       map[string][]*keptFrame{},
		log:        pipeline.Component(log, "scheduler").With().Str("policy", policy.Name()).Logger(),
		in:         make(chan *nats.Msg, 1024),
		ready:      make(chan struct{}),
		rejects:    pipeline.NewRejects(pipeline.Component(log, "scheduler"), 0),
	}
}

// UseSubjects puts the scheduler on a deployment's subjects
// (nats.subject_prefix; the default ones without). Call before Run.
func (s *Scheduler) UseSubjects(subjects pipeline.Subjects) { s.subjects = subjects }

// OnlyCameras restricts the scheduler to the configured cameras: frames
// and results of any other camera are rejected and counted, so that a
// client publishing made-up camera names grows no per-camera state in the
// policy and plans nothing. An empty list restricts nothing (tests that
// publish frames themselves may configure none). A reload calls it again
// while the scheduler runs.
func (s *Scheduler) OnlyCameras(cams []pipeline.CameraConfig) {
	if len(cams) == 0 {
		return
	}
	known := make(map[string]bool, len(cams))
	for _, c := range cams {
		known[c.ID] = true
	}
	s.known.Store(&known)
}

// UseRejects makes the scheduler count its refusals in r: a process that
// restarts its scheduler (a reload changing the policy) keeps one count.
// Call before Run.
func (s *Scheduler) UseRejects(r *pipeline.Rejects) { s.rejects = r }

// Rejects returns the scheduler's counts of refused messages by reason.
func (s *Scheduler) Rejects() *pipeline.Rejects { return s.rejects }

// configured tells whether the scheduler takes messages of camera.
func (s *Scheduler) configured(camera string) bool {
	known := s.known.Load()
	return known == nil || (*known)[camera]
}

// rejection is a refused message's reason and what was wrong.
type rejection struct {
	reason pipeline.RejectReason
	err    error
}

func (r *rejection) Error() string { return r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

func reject(reason pipeline.RejectReason, err error) error { return &rejection{reason, err} }

// QueueDepth is the number of frames (and, observing in line, results)
// received and not yet routed.
func (s *Scheduler) QueueDepth() int { return len(s.in) }

// Ready is closed once the scheduler receives frames.
func (s *Scheduler) Ready() <-chan struct{} { return s.ready }

// Stats returns the scheduler's counters.
func (s *Scheduler) Stats() *Stats { return &s.stats }

// ObserveInLine makes the policy observe results on the routing goroutine,
// in the order the bus delivered them among the frames: a frame is planned
// only once every result that reached the scheduler before it has been
// observed. With a policy that also trains in line (the controller's
// Synchronous) each frame is then planned as mlink bench's replay plans it,
// so a paced run is reproducible and matches its replay. The price: routing
// pauses while links train, and frames wait meanwhile (a live camera drops
// stale ones). Call before Run.
func (s *Scheduler) ObserveInLine() { s.inLine = true }

// Observer is a policy that learns from results and worker heartbeats.
type Observer interface {
	ObserveResult(*pipeline.Result)
	ObserveHeartbeat(*pipeline.Heartbeat)
}

// Run routes frames until ctx is done.
func (s *Scheduler) Run(ctx context.Context) error {
	sub, err := s.nc.ChanSubscribe(s.subjects.AllFrames(), s.in)
	if err != nil {
		return fmt.Errorf("scheduler: subscribe frames: %w", err)
	}
	defer sub.Unsubscribe()
	obs, observes := s.policy.(Observer)
	if observes {
		var results *nats.Subscription
		if s.inLine {
			// One channel for frames and results keeps the order in which
			// the connection received them.
			results, err = s.nc.ChanSubscribe(s.subjects.AllResults(), s.in)
		} else {
			results, err = s.nc.Subscribe(s.subjects.AllResults(), func(m *nats.Msg) { s.observeResult(obs, m) })
		}
		if err != nil {
			return fmt.Errorf("scheduler: subscribe results: %w", err)
		}
		defer results.Unsubscribe()
		health, err := s.nc.Subscribe(s.subjects.AllHealth(), func(m *nats.Msg) {
			if hb, err := pipeline.Unmarshal[pipeline.Heartbeat](m.Data); err == nil {
				obs.ObserveHeartbeat(hb)
			}
		})
		if err != nil {
			return fmt.Errorf("scheduler: subscribe heartbeats: %w", err)
		}
		defer health.Unsubscribe()
		subs := []*nats.Subscription{health}
		if !s.inLine {
			subs = append(subs, results) // a channel subscription has the channel's bound
		}
		for _, sb := range subs {
			if err := sb.SetPendingLimits(-1, -1); err != nil {
				return fmt.Errorf("scheduler: pending limits: %w", err)
			}
		}
	}
	if s.filter != nil {
		// A subscription of its own, so that a filter profiling a segment
		// does not hold up the policy's observations.
		results, err := s.nc.Subscribe(s.subjects.AllResults(), func(m *nats.Msg) {
			if r := s.trustedResult(m); r != nil {
				s.filter.ObserveResult(r)
			}
		})
		if err != nil {
			return fmt.Errorf("scheduler: subscribe results for the frame filter: %w", err)
		}
		defer results.Unsubscribe()
		if err := results.SetPendingLimits(-1, -1); err != nil {
			return fmt.Errorf("scheduler: pending limits: %w", err)
		}
	}
	// A cascade's later tier runs on a frame the merger escalates (policy
	// coe): through the routing queue, so the kept frames need no lock.
	esc, err := s.nc.ChanSubscribe(s.subjects.AllEscalations(), s.in)
	if err != nil {
		return fmt.Errorf("scheduler: subscribe escalations: %w", err)
	}
	defer esc.Unsubscribe()
	if err := s.nc.Flush(); err != nil {
		return fmt.Errorf("scheduler: flush subscription: %w", err)
	}
	close(s.ready)
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg := <-s.in:
			if observes && s.inLine && strings.HasPrefix(msg.Subject, s.subjects.ResultsPrefix()) {
				s.observeResult(obs, msg)
				continue
			}
			if strings.HasPrefix(msg.Subject, s.subjects.EscalatePrefix()) {
				if err := s.escalate(msg); err != nil {
					s.refuse(msg, err)
				}
				continue
			}
			if err := s.route(msg); err != nil {
				s.refuse(msg, err)
			}
		}
	}
}

// refuse counts a frame or escalation the scheduler did not route, by its
// reason, and logs it sampled.
func (s *Scheduler) refuse(msg *nats.Msg, err error) {
	s.stats.Rejected.Add(1)
	var r *rejection
	if errors.As(err, &r) {
		s.rejects.Reject(r.reason, msg.Subject, r.err)
		return
	}
	// Not the message's fault (the bus refused a publish): also sampled,
	// a flood of frames would flood the log.
	s.rejects.Reject(pipeline.RejectUnroutable, msg.Subject, err)
}

var jpegStart = []byte{0xFF, 0xD8, 0xFF}

func (s *Scheduler) observeResult(obs Observer, m *nats.Msg) {
	// A gap record (a frame lost on the way) is no evidence for a policy.
	if r := s.trustedResult(m); r != nil && r.Reason != pipeline.PartialLost {
		obs.ObserveResult(r)
	}
}

// trustedResult decodes a result the policy may learn from: well formed,
// of the camera its subject names, a configured one. Anything else is
// rejected and counted (nil): a forged result for a made-up camera would
// otherwise give the policy state for it. Called from the results
// subscription's goroutine or the routing one; Rejects is safe for both.
func (s *Scheduler) trustedResult(m *nats.Msg) *pipeline.Result {
	r, err := pipeline.Unmarshal[pipeline.Result](m.Data)
	if err != nil {
		s.rejects.Reject(pipeline.RejectMalformed, m.Subject, err)
		return nil
	}
	if s.subjects.Results(r.Camera) != m.Subject {
		s.rejects.Reject(pipeline.RejectCameraMismatch, m.Subject, fmt.Errorf("result of camera %q", r.Camera))
		return nil
	}
	if !s.configured(r.Camera) {
		s.rejects.Reject(pipeline.RejectUnknownCamera, m.Subject, fmt.Errorf("result of camera %q, which is not configured", r.Camera))
		return nil
	}
	return r
}

func (s *Scheduler) route(msg *nats.Msg) error {
	f, err := pipeline.DecodeFrame(msg)
	if err != nil {
		return reject(pipeline.RejectMalformed, err)
	}
	if s.subjects.Frames(f.Camera) != msg.Subject {
		return reject(pipeline.RejectCameraMismatch, fmt.Errorf("frame of camera %q published on %s", f.Camera, msg.Subject))
	}
	if !s.configured(f.Camera) {
		return reject(pipeline.RejectUnknownCamera, fmt.Errorf("frame of camera %q, which is not configured", f.Camera))
	}
	// A cheap check that the body is a JPEG at all; workers report frames
	// that are damaged inside.
	if !bytes.HasPrefix(f.JPEG, jpegStart) {
		return reject(pipeline.RejectMalformed, fmt.Errorf("frame %s/%d: body is not a JPEG image", f.Camera, f.Seq))
	}
	send := s.filter == nil || s.sendPast(f)
	// The policy plans every frame, filtered or not, so that its state
	// (periods, profiling windows) follows the stream.
	plan := s.policy.Plan(FrameInfo{Camera: f.Camera, Seq: f.Seq, CapturedAt: f.CapturedAt})
	plan.CapturedAt = f.CapturedAt
	// The frame's token: workers echo it, the merger takes only outputs
	// that carry it (a client that did not see the plan cannot guess it).
	plan.Token = pipeline.NewToken()
	f.Token = plan.Token
	// The policy's profiling frames always run: links learn from them.
	filtered := !send && !plan.Profiling
	if filtered {
		assemble.ReuseAll(&plan)
	}
	data, err := pipeline.Marshal(&plan)
	if err != nil {
		return err
	}
	// The plan goes first so the merger knows the frame before its outputs.
	if err := s.nc.Publish(s.subjects.Plan(f.Camera), data); err != nil {
		return fmt.Errorf("publish plan: %w", err)
	}
	f.Profiling = plan.Profiling
	for _, model := range plan.Exact {
		pool := plan.Pools[model]
		if err := s.nc.PublishMsg(pipeline.FrameMsg(s.subjects.InferFor(pool, model), f)); err != nil {
			return fmt.Errorf("publish frame to %s: %w", model, err)
		}
		s.stats.sentToPool(pool, len(f.JPEG))
	}
	if len(plan.Cascades) > 0 {
		s.keep(f, &plan)
	}
	s.stats.Frames.Add(1)
	if filtered {
		s.stats.Filtered.Add(1)
	}
	s.stats.Executions.Add(int64(len(plan.Exact)))
	s.stats.Planned.Add(int64(len(plan.Models())))
	return nil
}
