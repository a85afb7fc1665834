package stages

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/assemble"
)

// Merger joins the outputs of a frame's planned models into one Result per
// frame. A frame is emitted when every model of its plan has an output, or
// at the deadline with the missing ones listed (partial). Results of one
// camera are emitted in seq order. Memory is bounded: at most MaxPending
// frames are joined at once; beyond that the oldest is emitted as partial.
//
// The bus is not trusted (see README, Reliability): the camera and model
// come from the subject, a plan is taken only within SeqWindow of its
// camera's next seq and must carry a token, and an output only with the
// token of its frame's outstanding plan, from a model that plan names.
// Every refusal is counted in Rejects.
type Merger struct {
	nc         *nats.Conn
	subjects   pipeline.Subjects
	deadline   time.Duration
	maxPending int
	log        zerolog.Logger
	now        func() time.Time
	rejects    *pipeline.Rejects
	// acked publishes results with JetStream acknowledgements (AckResults);
	// drain bounds the wait for the last ones at stop.
	acked *pipeline.ResultPublisher
	drain time.Duration

	in    chan *nats.Msg
	ready chan struct{}

	mu      sync.Mutex
	pending map[frameKey]*joining
	cams    map[string]*cameraState
	// known, when set, lists the configured cameras: state is kept only
	// for them.
	known map[string]bool

	stats MergerStats
}

// SeqWindow is how far ahead of a camera's next expected seq a plan may
// be. Genuine plans run at most ingest's in-flight window (plus frames lost
// on the way) ahead; a forged seq far ahead would otherwise make every real
// frame "late".
const SeqWindow = 256

// cameraState is what the merger keeps per configured camera.
type cameraState struct {
	// next is the seq the camera's results continue with: every seq below
	// it has been emitted or given up. 0 until the camera's first plan.
	next uint64
	// order holds the seqs whose plan has arrived, ascending: results
	// leave in this order.
	order []uint64
	// progress is when next last advanced: a gap before a waiting frame is
	// given up only once no frame has filled it for gapWait.
	progress time.Time
	// accepted is when a plan was last accepted; interval the smoothed
	// time between accepted plans (it sizes gapWait).
	accepted time.Time
	interval time.Duration
	// last is the camera's latest exact output per model: what a frame
	// whose plan reuses the model gets (frames leave in seq order, so it
	// is the newest one before the frame).
	last *assemble.Last
}

// gapWait is how long a missing seq may hold up the frames after it: long
// enough for a camera's next frames to arrive (so that a forged frame
// ahead of the stream does not make the real ones late), short enough that
// a frame lost before the scheduler costs little.
func (m *Merger) gapWait(c *cameraState) time.Duration {
	return min(max(4*c.interval, 500*time.Millisecond), m.deadline)
}

// AckResults makes the merger publish results as JetStream publishes the
// results stream acknowledges, publishing again what it does not (an
// election, an outage) for up to pipeline.ResultGiveUp; stopping, it waits
// up to drain for the last acknowledgements. The stream must exist (mlink
// run's control connection makes it). Call before Run.
func (m *Merger) AckResults(drain time.Duration) error {
	p, err := pipeline.NewResultPublisher(m.nc, m.log)
	if err != nil {
		return fmt.Errorf("merger: %w", err)
	}
	m.acked, m.drain = p, drain
	return nil
}

// ResultPublisher returns the publisher of AckResults (nil without).
func (m *Merger) ResultPublisher() *pipeline.ResultPublisher { return m.acked }

// MergerStats counts what the merger did.
type MergerStats struct {
	Results     atomic.Int64
	Partial     atomic.Int64
	LateOutputs atomic.Int64
	BadMessages atomic.Int64
	Evicted     atomic.Int64
	// Gaps counts gap records: seqs given up because no plan arrived for
	// them while later frames waited.
	Gaps atomic.Int64
	// Escalations counts frames sent on to a cascade's next tier (policy
	// coe), once per tier.
	Escalations atomic.Int64
}

type frameKey struct {
	camera string
	seq    uint64
}

type joining struct {
	plan      *pipeline.Plan
	outputs   map[string]*pipeline.Output
	first     time.Time
	requested bool // predictions asked for
}

// NewMerger creates a merger; Run starts it.
func NewMerger(nc *nats.Conn, cfg pipeline.MergerConfig, log zerolog.Logger) *Merger {
	l := pipeline.Component(log, "merger")
	return &Merger{
		nc:         nc,
		subjects:   pipeline.DefaultSubjects,
		deadline:   cfg.Deadline,
		maxPending: cfg.MaxPending,
		log:        l,
		now:        time.Now,
		rejects:    pipeline.NewRejects(l, 0),
		in:         make(chan *nats.Msg, 4096),
		ready:      make(chan struct{}),
		pending:    map[frameKey]*joining{},
		cams:       map[string]*cameraState{},
	}
}

// UseSubjects puts the merger on a deployment's subjects (nats.subject_prefix;
// the default ones without). Call before Run.
func (m *Merger) UseSubjects(s pipeline.Subjects) { m.subjects = s }

// OnlyCameras restricts the merger to the configured cameras: plans and
// outputs of any other camera are rejected, so made-up camera names
// cannot grow its state. An empty list restricts nothing (a valid config
// has cameras; tests that publish frames themselves may have none). A
// reload calls it again while the merger runs.
func (m *Merger) OnlyCameras(cams []pipeline.CameraConfig) {
	if len(cams) == 0 {
		return
	}
	known := make(map[string]bool, len(cams))
	for _, c := range cams {
		known[c.ID] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// A removed camera's state stays: its frames in flight still complete
	// with it, and no new one is taken.
	m.known = known
}

// QueueDepth is the number of plans and outputs received and not yet
// joined (the merger's bounded input queue).
func (m *Merger) QueueDepth() int { return len(m.in) }

// Ready is closed once the merger receives plans and outputs.
func (m *Merger) Ready() <-chan struct{} { return m.ready }

// Stats returns the merger's counters.
func (m *Merger) Stats() *MergerStats { return &m.stats }

// Rejects returns the merger's counts of refused messages by reason.
func (m *Merger) Rejects() *pipeline.Rejects { return m.rejects }

// Run joins until ctx is done. On return every frame still pending has been
// emitted as partial, so nothing planned is silently lost.
func (m *Merger) Run(ctx context.Context) error {
	plans, err := m.nc.ChanSubscribe(m.subjects.AllPlans(), m.in)
	if err != nil {
		return fmt.Errorf("merger: subscribe plans: %w", err)
	}
	defer plans.Unsubscribe()
	outs, err := m.nc.ChanSubscribe(m.subjects.AllOutputs(), m.in)
	if err != nil {
		return fmt.Errorf("merger: subscribe outputs: %w", err)
	}
	defer outs.Unsubscribe()
	// The in channel, shared by both subscriptions, is the merger's bounded
	// input queue.
	if err := m.nc.Flush(); err != nil {
		return fmt.Errorf("merger: flush subscriptions: %w", err)
	}
	var republished chan struct{}
	pubCtx, stopPub := context.WithCancel(context.Background())
	defer stopPub()
	if m.acked != nil {
		republished = make(chan struct{})
		go func() { defer close(republished); m.acked.Run(pubCtx, m.drain) }()
	}
	close(m.ready)
	tick := time.NewTicker(min(m.deadline/10, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.flushAll()
			if republished != nil {
				// After the last partial results: those too are stored.
				stopPub()
				<-republished
			}
			return nil
		case msg := <-m.in:
			m.handle(msg)
		case <-tick.C:
			m.expire()
		}
	}
}

// reject counts and logs (sampled) one refused message.
func (m *Merger) reject(reason pipeline.RejectReason, subject string, err error) {
	switch reason {
	case pipeline.RejectMalformed:
		m.stats.BadMessages.Add(1)
	case pipeline.RejectLate:
		m.stats.LateOutputs.Add(1)
	}
	m.rejects.Reject(reason, subject, err)
}

// handle decodes a message and takes its camera (and model) from the
// subject: the subject is what a NATS permission can restrict, the body is
// whatever the publisher wrote.
func (m *Merger) handle(msg *nats.Msg) {
	if camera, ok := strings.CutPrefix(msg.Subject, m.subjects.PlanPrefix()); ok {
		plan, err := pipeline.Unmarshal[pipeline.Plan](msg.Data)
		if err != nil {
			m.reject(pipeline.RejectMalformed, msg.Subject, err)
			return
		}
		if plan.Camera != camera {
			m.reject(pipeline.RejectCameraMismatch, msg.Subject, fmt.Errorf("plan of camera %q", plan.Camera))
			return
		}
		m.addPlan(plan, msg.Subject)
		return
	}
	rest, _ := strings.CutPrefix(msg.Subject, m.subjects.OutputsPrefix())
	camera, model, _ := strings.Cut(rest, ".")
	out, err := pipeline.Unmarshal[pipeline.Output](msg.Data)
	if err != nil {
		m.reject(pipeline.RejectMalformed, msg.Subject, err)
		return
	}
	if out.Camera != camera {
		m.reject(pipeline.RejectCameraMismatch, msg.Subject, fmt.Errorf("output of camera %q", out.Camera))
		return
	}
	if out.Model != model {
		m.reject(pipeline.RejectModelMismatch, msg.Subject, fmt.Errorf("output of model %q", out.Model))
		return
	}
	m.addOutput(out, msg.Subject)
}

// camera returns the state of a camera the merger keeps state for.
func (m *Merger) camera(id string) (*cameraState, error) {
	if m.known != nil && !m.known[id] {
		return nil, fmt.Errorf("camera %q is not configured", id)
	}
	c := m.cams[id]
	if c == nil {
		c = &cameraState{last: assemble.NewLast()}
		m.cams[id] = c
	}
	return c, nil
}

// AddPlan registers a frame's plan (its camera as the plan says: the
// subscription checks that against the subject).
func (m *Merger) AddPlan(plan *pipeline.Plan) {
	m.addPlan(plan, m.subjects.Plan(plan.Camera))
}

func (m *Merger) addPlan(plan *pipeline.Plan, subject string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if plan.Token == "" {
		m.reject(pipeline.RejectNoToken, subject, fmt.Errorf("plan %s/%d has no token", plan.Camera, plan.Seq))
		return
	}
	c, err := m.camera(plan.Camera)
	if err != nil {
		m.reject(pipeline.RejectUnknownCamera, subject, err)
		return
	}
	now := m.now()
	if c.next == 0 {
		// The camera's first plan since the merger started sets its place
		// in the stream.
		c.next, c.progress = plan.Seq, now
	}
	switch {
	case plan.Seq < c.next || plan.Seq-c.next >= SeqWindow:
		reason, what := pipeline.RejectLate, "already emitted"
		if plan.Seq >= c.next {
			reason, what = pipeline.RejectSeqOutOfWindow, fmt.Sprintf("more than %d ahead of the next seq %d", SeqWindow, c.next)
		}
		// A camera whose plans have all been refused for a deadline has
		// restarted or jumped (a long outage, or a forged seq ahead that
		// made the real ones look late): follow the stream again rather
		// than stop the camera for good.
		if len(c.order) == 0 && now.Sub(c.accepted) >= m.deadline {
			m.log.Warn().Str("camera", plan.Camera).Uint64("from", c.next).Uint64("to", plan.Seq).
				Msg("camera's seqs moved: following them")
			c.next, c.progress = plan.Seq, now
			break
		}
		m.reject(reason, subject, fmt.Errorf("plan %s/%d: %s", plan.Camera, plan.Seq, what))
		return
	}
	k := frameKey{plan.Camera, plan.Seq}
	if m.pending[k] != nil {
		m.reject(pipeline.RejectDuplicatePlan, subject, fmt.Errorf("plan %s/%d is already being joined", plan.Camera, plan.Seq))
		return
	}
	if !c.accepted.IsZero() {
		d := now.Sub(c.accepted)
		if c.interval == 0 {
			c.interval = d
		} else {
			c.interval += (d - c.interval) / 8
		}
	}
	c.accepted = now
	j := &joining{plan: plan, outputs: map[string]*pipeline.Output{}, first: now}
	m.pending[k] = j
	// Plans of one camera arrive in order from the scheduler; insert sorted
	// anyway so a reordering never stalls emission.
	q := c.order
	i := sort.Search(len(q), func(i int) bool { return q[i] >= plan.Seq })
	q = slices.Insert(q, i, plan.Seq)
	c.order = q
	m.requestPredictions(k, j)
	m.emitReady(plan.Camera, c)
	m.evictOverflow()
}

// AddOutput registers one model's output for a frame (its camera and model
// as the output says: the subscription checks them against the subject).
func (m *Merger) AddOutput(out *pipeline.Output) {
	m.addOutput(out, m.subjects.Outputs(out.Camera, out.Model))
}

func (m *Merger) addOutput(out *pipeline.Output, subject string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.camera(out.Camera)
	if err != nil {
		m.reject(pipeline.RejectUnknownCamera, subject, err)
		return
	}
	k := frameKey{out.Camera, out.Seq}
	j := m.pending[k]
	switch {
	case j == nil && out.Seq < c.next:
		m.reject(pipeline.RejectLate, subject, fmt.Errorf("output %s/%d of %s: the frame's result is out", out.Camera, out.Seq, out.Model))
		return
	case j == nil:
		// The scheduler publishes a frame's plan before the frame, so a
		// genuine output never precedes its plan.
		m.reject(pipeline.RejectNoPlan, subject, fmt.Errorf("output %s/%d of %s: no plan for the frame", out.Camera, out.Seq, out.Model))
		return
	case out.Token != j.plan.Token:
		m.reject(pipeline.RejectBadToken, subject, fmt.Errorf("output %s/%d of %s: not the token of the frame's plan", out.Camera, out.Seq, out.Model))
		return
	case !slices.Contains(j.plan.Exact, out.Model) && !slices.Contains(j.plan.Predicted, out.Model):
		m.reject(pipeline.RejectModelNotPlanned, subject, fmt.Errorf("output %s/%d of %s: the plan does not run or predict it", out.Camera, out.Seq, out.Model))
		return
	case j.outputs[out.Model] != nil:
		m.reject(pipeline.RejectDuplicateOutput, subject, fmt.Errorf("output %s/%d of %s: the frame has it already", out.Camera, out.Seq, out.Model))
		return
	}
	out.Token = ""
	j.outputs[out.Model] = out
	m.escalate(k, j)
	m.requestPredictions(k, j)
	m.emitReady(out.Camera, c)
}

// escalate sends a frame on to a cascade's next tier when the tier before
// disagreed (policy coe; assemble decides, as in the replay): the plan now
// runs those models too, so the frame waits for them, and the scheduler,
// which keeps the frame, re-sends it to their workers with its token.
func (m *Merger) escalate(k frameKey, j *joining) {
	if len(j.plan.Cascades) == 0 {
		return
	}
	models := assemble.Escalations(j.plan, j.outputs)
	if len(models) == 0 {
		return
	}
	assemble.Escalate(j.plan, models)
	m.stats.Escalations.Add(1)
	data, err := pipeline.Marshal(&pipeline.Escalation{Camera: k.camera, Seq: k.seq, Models: models, Token: j.plan.Token})
	if err == nil {
		err = m.nc.Publish(m.subjects.Escalate(k.camera), data)
	}
	if err != nil {
		// The frame goes out partial at its deadline, the tier missing.
		m.log.Error().Err(err).Str("camera", k.camera).Uint64("seq", k.seq).Strs("models", models).Msg("escalate to the next cascade tier")
	}
}

// requestPredictions asks the link predictors for a frame's predicted
// models once every executed model has answered.
func (m *Merger) requestPredictions(k frameKey, j *joining) {
	if j.requested || len(j.plan.Predicted) == 0 || !assemble.Executed(j.plan, j.outputs) {
		return
	}
	j.requested = true
	req := assemble.Request(j.plan, j.outputs, m.cams[k.camera].last)
	req.Token = j.plan.Token
	data, err := pipeline.Marshal(req)
	if err == nil {
		err = m.nc.Publish(m.subjects.Predict(), data)
	}
	if err != nil {
		m.log.Error().Err(err).Str("camera", k.camera).Uint64("seq", k.seq).Msg("request predictions")
	}
}

// complete: every executed and predicted model has answered (reused ones
// are filled in by the merger itself).
func (j *joining) complete() bool {
	for _, name := range append(j.plan.Exact[:len(j.plan.Exact):len(j.plan.Exact)], j.plan.Predicted...) {
		if _, ok := j.outputs[name]; !ok {
			return false
		}
	}
	return true
}

// emitReady emits the camera's complete frames from the head of its order.
func (m *Merger) emitReady(camera string, c *cameraState) {
	m.emitHead(camera, c, false)
}

// emitHead emits the camera's frames from the head of its order while they
// may leave: complete, or (expiring) past their deadline; a gap before the
// head is given up only once it has held the frames up for gapWait.
func (m *Merger) emitHead(camera string, c *cameraState, expiring bool) {
	now := m.now()
	for len(c.order) > 0 {
		seq := c.order[0]
		if seq > c.next && now.Sub(c.progress) < m.gapWait(c) {
			break
		}
		k := frameKey{camera, seq}
		j := m.pending[k]
		reason := pipeline.PartialReason("")
		if !j.complete() {
			if !expiring || now.Sub(j.first) < m.deadline {
				break
			}
			reason = pipeline.PartialDeadline
		}
		m.emit(k, j, reason)
		c.order = c.order[1:]
	}
}

// expire emits frames whose deadline passed (and, to keep order, the frames
// of the same camera before them).
func (m *Merger) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for camera, c := range m.cams {
		m.emitHead(camera, c, true)
	}
}

// evictOverflow keeps the number of joined frames bounded.
func (m *Merger) evictOverflow() {
	for len(m.pending) > m.maxPending {
		var oldest frameKey
		var oldestJ *joining
		for k, j := range m.pending {
			if oldestJ == nil || j.first.Before(oldestJ.first) {
				oldest, oldestJ = k, j
			}
		}
		m.stats.Evicted.Add(1)
		// Emit the camera's frames up to the evicted one, in order.
		c := m.cams[oldest.camera]
		n := 0
		for n < len(c.order) && c.order[n] <= oldest.seq {
			k := frameKey{oldest.camera, c.order[n]}
			m.emit(k, m.pending[k], pipeline.PartialEvicted)
			n++
		}
		c.order = c.order[n:]
	}
}

func (m *Merger) flushAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for camera, c := range m.cams {
		for _, seq := range c.order {
			k := frameKey{camera, seq}
			m.emit(k, m.pending[k], pipeline.PartialStopped)
		}
		c.order = nil
	}
}

// emit publishes a frame's result; reason is empty for a complete one, and
// a complete frame the evicted or stopped merger emits stays complete.
func (m *Merger) emit(k frameKey, j *joining, reason pipeline.PartialReason) {
	delete(m.pending, k)
	if j.complete() {
		reason = ""
	}
	partial := reason != ""
	c := m.cams[k.camera]
	if k.seq >= c.next {
		if gap := k.seq - c.next; gap > 0 {
			m.log.Debug().Str("camera", k.camera).Uint64("from", c.next).Uint64("seqs", gap).Msg("no plan for seqs: gap records")
			for seq := c.next; seq < k.seq; seq++ {
				m.emitGap(k.camera, seq, j.plan.CapturedAt)
			}
		}
		c.next, c.progress = k.seq+1, m.now()
	}
	res := &pipeline.Result{
		Camera:     k.camera,
		Seq:        k.seq,
		CapturedAt: j.plan.CapturedAt,
		Outputs:    make(map[string]*pipeline.Output, len(j.outputs)),
		Plan:       *j.plan,
		Partial:    partial,
		Reason:     reason,
	}
	res.Plan.Token = "" // dead once the frame is out
	last := c.last
	// The frame's executed and predicted outputs came over the bus; the
	// reused ones are the camera's last exact outputs before this frame.
	for _, name := range j.plan.Models() {
		if o, ok := j.outputs[name]; ok {
			res.Outputs[name] = o
		} else if !slices.Contains(j.plan.Reused, name) {
			res.Missing = append(res.Missing, name)
		}
	}
	for name, o := range assemble.FillReused(j.plan, j.outputs, last) {
		res.Outputs[name] = o
	}
	for name, o := range assemble.Answers(j.plan, j.outputs) {
		res.Outputs[name] = o
	}
	assemble.UpdateLast(last, j.plan, res.Outputs)
	res.LatencyMS = float64(m.now().Sub(j.plan.CapturedAt).Microseconds()) / 1000
	if m.publish(res) && partial {
		m.stats.Partial.Add(1)
		m.log.Debug().Str("camera", k.camera).Uint64("seq", k.seq).Strs("missing", res.Missing).Str("reason", string(reason)).Msg("partial result")
	}
}

// emitGap publishes the gap record of a seq no plan came for: every frame
// a camera published gets a result, even one lost on the way.
func (m *Merger) emitGap(camera string, seq uint64, next time.Time) {
	res := &pipeline.Result{
		Camera: camera, Seq: seq, CapturedAt: next,
		Outputs: map[string]*pipeline.Output{},
		Plan:    pipeline.Plan{Camera: camera, Seq: seq},
		Partial: true, Reason: pipeline.PartialLost,
	}
	if m.publish(res) {
		m.stats.Gaps.Add(1)
	}
}

func (m *Merger) publish(res *pipeline.Result) bool {
	data, err := pipeline.Marshal(res)
	if err != nil {
		m.stats.BadMessages.Add(1)
		m.log.Error().Err(err).Str("camera", res.Camera).Uint64("seq", res.Seq).Msg("cannot encode result")
		return false
	}
	msg := nats.NewMsg(m.subjects.Results(res.Camera))
	msg.Header.Set(pipeline.HeaderSeq, strconv.FormatUint(res.Seq, 10))
	msg.Data = data
	publish := m.nc.PublishMsg
	if m.acked != nil {
		publish = func(msg *nats.Msg) error { return m.acked.Publish(msg, pipeline.ResultMsgID(res)) }
	}
	if err := publish(msg); err != nil {
		m.log.Error().Err(err).Str("camera", res.Camera).Uint64("seq", res.Seq).Msg("publish result")
		return false
	}
	m.stats.Results.Add(1)
	return true
}
