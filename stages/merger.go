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
type Merger struct {
	nc         *nats.Conn
	deadline   time.Duration
	maxPending int
	log        zerolog.Logger
	now        func() time.Time

	in    chan *nats.Msg
	ready chan struct{}

	mu      sync.Mutex
	pending map[frameKey]*joining
	// order holds, per camera, the seqs whose plan has arrived, ascending:
	// results leave in this order.
	order map[string][]uint64
	// emitted is the highest seq emitted per camera; later outputs for it
	// are late and dropped.
	emitted map[string]uint64
	// lastExact is each camera's latest exact output per model: what a
	// frame whose plan reuses the model gets (frames leave in seq order, so
	// it is the newest one before the frame).
	lastExact map[string]*assemble.Last

	stats MergerStats
}

// MergerStats counts what the merger did.
type MergerStats struct {
	Results     atomic.Int64
	Partial     atomic.Int64
	LateOutputs atomic.Int64
	BadMessages atomic.Int64
	Evicted     atomic.Int64
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
	return &Merger{
		nc:         nc,
		deadline:   cfg.Deadline,
		maxPending: cfg.MaxPending,
		log:        pipeline.Component(log, "merger"),
		now:        time.Now,
		in:         make(chan *nats.Msg, 4096),
		ready:      make(chan struct{}),
		pending:    map[frameKey]*joining{},
		order:      map[string][]uint64{},
		emitted:    map[string]uint64{},
		lastExact:  map[string]*assemble.Last{},
	}
}

// Ready is closed once the merger receives plans and outputs.
func (m *Merger) Ready() <-chan struct{} { return m.ready }

// Stats returns the merger's counters.
func (m *Merger) Stats() *MergerStats { return &m.stats }

// Run joins until ctx is done. On return every frame still pending has been
// emitted as partial, so nothing planned is silently lost.
func (m *Merger) Run(ctx context.Context) error {
	plans, err := m.nc.ChanSubscribe(pipeline.AllPlans, m.in)
	if err != nil {
		return fmt.Errorf("merger: subscribe plans: %w", err)
	}
	defer plans.Unsubscribe()
	outs, err := m.nc.ChanSubscribe(pipeline.AllOutputs, m.in)
	if err != nil {
		return fmt.Errorf("merger: subscribe outputs: %w", err)
	}
	defer outs.Unsubscribe()
	// The in channel, shared by both subscriptions, is the merger's bounded
	// input queue.
	if err := m.nc.Flush(); err != nil {
		return fmt.Errorf("merger: flush subscriptions: %w", err)
	}
	close(m.ready)
	tick := time.NewTicker(m.deadline / 10)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.flushAll()
			return nil
		case msg := <-m.in:
			m.handle(msg)
		case <-tick.C:
			m.expire()
		}
	}
}

func (m *Merger) handle(msg *nats.Msg) {
	switch {
	case strings.HasPrefix(msg.Subject, "mlink.plan."):
		plan, err := pipeline.Unmarshal[pipeline.Plan](msg.Data)
		if err != nil {
			m.stats.BadMessages.Add(1)
			m.log.Warn().Err(err).Str("subject", msg.Subject).Msg("dropping bad plan")
			return
		}
		m.AddPlan(plan)
	default:
		out, err := pipeline.Unmarshal[pipeline.Output](msg.Data)
		if err != nil {
			m.stats.BadMessages.Add(1)
			m.log.Warn().Err(err).Str("subject", msg.Subject).Msg("dropping bad output")
			return
		}
		m.AddOutput(out)
	}
}

// AddPlan registers a frame's plan.
func (m *Merger) AddPlan(plan *pipeline.Plan) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if plan.Seq <= m.emitted[plan.Camera] {
		m.stats.LateOutputs.Add(1)
		return
	}
	k := frameKey{plan.Camera, plan.Seq}
	j := m.entry(k)
	j.plan = plan
	q := m.order[plan.Camera]
	// Plans of one camera arrive in order from the scheduler; insert sorted
	// anyway so a reordering never stalls emission.
	i := sort.Search(len(q), func(i int) bool { return q[i] >= plan.Seq })
	if i == len(q) || q[i] != plan.Seq {
		q = append(q, 0)
		copy(q[i+1:], q[i:])
		q[i] = plan.Seq
	}
	m.order[plan.Camera] = q
	m.requestPredictions(k, j)
	m.emitReady(plan.Camera)
	m.evictOverflow()
}

// AddOutput registers one model's output for a frame.
func (m *Merger) AddOutput(out *pipeline.Output) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if out.Seq <= m.emitted[out.Camera] {
		m.stats.LateOutputs.Add(1)
		return
	}
	k := frameKey{out.Camera, out.Seq}
	j := m.entry(k)
	j.outputs[out.Model] = out
	if j.plan != nil {
		m.requestPredictions(k, j)
		m.emitReady(out.Camera)
	}
	m.evictOverflow()
}

func (m *Merger) entry(k frameKey) *joining {
	j := m.pending[k]
	if j == nil {
		j = &joining{outputs: map[string]*pipeline.Output{}, first: m.now()}
		m.pending[k] = j
	}
	return j
}

// requestPredictions asks the link predictors for a frame's predicted
// models once every executed model has answered.
func (m *Merger) requestPredictions(k frameKey, j *joining) {
	if j.requested || len(j.plan.Predicted) == 0 || !assemble.Executed(j.plan, j.outputs) {
		return
	}
	j.requested = true
	req := assemble.Request(j.plan, j.outputs, m.lastExact[k.camera])
	data, err := pipeline.Marshal(req)
	if err == nil {
		err = m.nc.Publish(pipeline.PredictSubject, data)
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
func (m *Merger) emitReady(camera string) {
	q := m.order[camera]
	for len(q) > 0 {
		k := frameKey{camera, q[0]}
		j := m.pending[k]
		if !j.complete() {
			break
		}
		m.emit(k, j, false)
		q = q[1:]
	}
	m.order[camera] = q
}

// expire emits frames whose deadline passed (and, to keep order, the frames
// of the same camera before them), and forgets outputs that never got a plan.
func (m *Merger) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for camera, q := range m.order {
		last := -1
		for i, seq := range q {
			if now.Sub(m.pending[frameKey{camera, seq}].first) >= m.deadline {
				last = i
			}
		}
		for _, seq := range q[:last+1] {
			k := frameKey{camera, seq}
			j := m.pending[k]
			m.emit(k, j, !j.complete())
		}
		m.order[camera] = q[last+1:]
		m.emitReady(camera)
	}
	for k, j := range m.pending {
		if j.plan == nil && now.Sub(j.first) >= 2*m.deadline {
			delete(m.pending, k)
			m.stats.LateOutputs.Add(int64(len(j.outputs)))
			m.log.Debug().Str("camera", k.camera).Uint64("seq", k.seq).Msg("outputs without a plan expired")
		}
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
		if oldestJ.plan == nil {
			delete(m.pending, oldest)
			continue
		}
		// Emit the camera's frames up to the evicted one, in order.
		q := m.order[oldest.camera]
		n := 0
		for n < len(q) && q[n] <= oldest.seq {
			k := frameKey{oldest.camera, q[n]}
			j := m.pending[k]
			m.emit(k, j, !j.complete())
			n++
		}
		m.order[oldest.camera] = q[n:]
	}
}

func (m *Merger) flushAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for camera, q := range m.order {
		for _, seq := range q {
			k := frameKey{camera, seq}
			j := m.pending[k]
			m.emit(k, j, !j.complete())
		}
		delete(m.order, camera)
	}
}

func (m *Merger) emit(k frameKey, j *joining, partial bool) {
	delete(m.pending, k)
	if k.seq > m.emitted[k.camera] {
		m.emitted[k.camera] = k.seq
	}
	res := &pipeline.Result{
		Camera:     k.camera,
		Seq:        k.seq,
		CapturedAt: j.plan.CapturedAt,
		Outputs:    make(map[string]*pipeline.Output, len(j.outputs)),
		Plan:       *j.plan,
		Partial:    partial,
	}
	last := m.lastExact[k.camera]
	if last == nil {
		last = assemble.NewLast()
		m.lastExact[k.camera] = last
	}
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
	assemble.UpdateLast(last, j.plan, res.Outputs)
	res.LatencyMS = float64(m.now().Sub(j.plan.CapturedAt).Microseconds()) / 1000
	data, err := pipeline.Marshal(res)
	if err != nil {
		m.stats.BadMessages.Add(1)
		m.log.Error().Err(err).Str("camera", k.camera).Uint64("seq", k.seq).Msg("cannot encode result")
		return
	}
	msg := nats.NewMsg(pipeline.ResultsSubject(k.camera))
	msg.Header.Set(pipeline.HeaderSeq, strconv.FormatUint(k.seq, 10))
	msg.Data = data
	if err := m.nc.PublishMsg(msg); err != nil {
		m.log.Error().Err(err).Str("camera", k.camera).Uint64("seq", k.seq).Msg("publish result")
		return
	}
	m.stats.Results.Add(1)
	if partial {
		m.stats.Partial.Add(1)
		m.log.Debug().Str("camera", k.camera).Uint64("seq", k.seq).Strs("missing", res.Missing).Msg("partial result")
	}
}
