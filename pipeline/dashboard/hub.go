// Package dashboard is the live dashboard of an mlink process, served on
// its HTTP side: per camera the newest result drawn over its frame, each
// model's value and source, the plan, and frames/s, latency and drops,
// updated with server-sent events.
//
// A Hub keeps, per configured camera, the newest result and the frame it
// was computed on, and fans events out to the open streams. Feeding it
// never blocks: a stream that reads too slowly misses events (counted),
// and every result event is complete in itself, so the next one repairs
// the page. Subscribe feeds a Hub from the bus; Mount serves it.
package dashboard

import (
	"encoding/json"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// Options configure a Hub. Zero durations and sizes take the defaults.
type Options struct {
	// Cameras are the configured cameras: frames and results of any other
	// are ignored, so memory is bounded by the config.
	Cameras []string
	// Models are the configured models, in the order the page lists them.
	Models []ModelInfo
	// Live, when set, reports what the process knows beyond the results
	// (budget, link agreement, ingest drops). It is called once per stats
	// event and must be quick.
	Live func() Live
	// Window is the span of the fps and latency figures (10 s).
	Window time.Duration
	// StatsEvery is the period of stats events (1 s); Heartbeat that of the
	// comment lines that keep proxies from closing an idle stream (15 s).
	StatsEvery, Heartbeat time.Duration
	// ClientBuffer is how many events a stream may fall behind before it
	// misses some (32).
	ClientBuffer int
	// WaitingFrames bounds the frames kept per camera while their results
	// are out (4): ingest.max_in_flight of them are, at most, so the frame
	// a result was computed on is still there when the result comes.
	WaitingFrames int
	// WriteTimeout bounds one write to a stream (10 s): a client that
	// stopped reading is disconnected rather than holding its handler.
	WriteTimeout time.Duration
}

func (o *Options) ensureDefaults() {
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
	if o.StatsEvery <= 0 {
		o.StatsEvery = time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.ClientBuffer <= 0 {
		o.ClientBuffer = 32
	}
	if o.WaitingFrames <= 0 {
		o.WaitingFrames = 4
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
}

// Hub is the dashboard's state and its event fan-out. Its methods are safe
// for concurrent use.
type Hub struct {
	opts Options
	done chan struct{} // closed by Close: every stream ends
	once sync.Once

	mu      sync.Mutex
	cameras map[string]*camera
	clients map[*client]struct{}

	// watchMu orders the watch hook's calls with the streams joining and
	// leaving, so that on/off alternate.
	watchMu sync.Mutex
	watch   func(watching bool)

	events, dropped atomic.Uint64
}

// camera is what the hub keeps of one camera.
type camera struct {
	result *ResultEvent // newest, nil before any
	shown  *frame       // the newest result's frame (before one matched: the first frame kept)
	// waiting holds the frames newer than the newest result, oldest
	// first, at most Options.WaitingFrames.
	waiting []*frame
	window  window

	results, partial, lost uint64
}

type frame struct {
	FrameInfo
	jpeg []byte
}

// client is one open event stream.
type client struct {
	events  chan sseEvent
	dropped atomic.Uint64
}

// sseEvent is one server-sent event: its name and its JSON, encoded once
// for every stream.
type sseEvent struct {
	name string
	data []byte
}

// NewHub makes a hub for the configured cameras and models.
func NewHub(opts Options) *Hub {
	opts.ensureDefaults()
	h := &Hub{opts: opts, done: make(chan struct{}), cameras: map[string]*camera{}, clients: map[*client]struct{}{}}
	h.SetCameras(opts.Cameras)
	return h
}

// SetCameras replaces the configured cameras (a reload added or removed
// some): a removed camera's result and frames are dropped.
func (h *Hub) SetCameras(ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	keep := map[string]*camera{}
	for _, id := range ids {
		if c := h.cameras[id]; c != nil {
			keep[id] = c
		} else {
			keep[id] = &camera{window: newWindow(windowSamples)}
		}
	}
	h.cameras = keep
	h.opts.Cameras = slices.Clone(ids)
}

// SetModels replaces the configured models (a reload added, changed or
// removed some): results list them from the next one on, and a page that
// connects gets them in its first state.
func (h *Hub) SetModels(models []ModelInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opts.Models = slices.Clone(models)
}

// models are the configured models (SetModels may change them).
func (h *Hub) models() []ModelInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.opts.Models
}

// ObserveResult takes a result: it becomes its camera's newest and goes to
// every stream. Results of unknown cameras, and a repeat of the newest,
// are ignored; an older seq is a camera that restarted (its seqs start
// again from 1). It does not block.
func (h *Hub) ObserveResult(r *pipeline.Result) {
	if r.Reason == pipeline.PartialLost {
		// A gap record has nothing to show; it counts as a frame lost.
		h.mu.Lock()
		if c := h.cameras[r.Camera]; c != nil {
			c.lost++
		}
		h.mu.Unlock()
		return
	}
	// Built and encoded outside the lock, once for every stream.
	ev := newResultEvent(r, h.models())
	if !h.keep(r, ev) {
		return
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return // what decoded from JSON encodes again
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broadcastLocked(sseEvent{EventResult, data})
}

// keep makes ev its camera's newest result, paired with the frame it was
// computed on; false if the result is not to be shown.
func (h *Hub) keep(r *pipeline.Result, ev *ResultEvent) bool {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.cameras[r.Camera]
	if c == nil || (c.result != nil && r.Seq == c.result.Seq) {
		return false
	}
	if c.result != nil && r.Seq < c.result.Seq {
		// Restarted: the waiting frames are of the old run.
		c.waiting = slices.Delete(c.waiting, 0, len(c.waiting))
	}
	c.results++
	if r.Partial {
		c.partial++
	}
	c.window.add(now, r.LatencyMS)
	// The result's frame becomes the one shown; older waiting frames will
	// never have a result of their own to be drawn with.
	i := 0
	for ; i < len(c.waiting) && c.waiting[i].Seq <= r.Seq; i++ {
		if c.waiting[i].Seq == r.Seq {
			c.shown = c.waiting[i]
		}
	}
	c.waiting = slices.Delete(c.waiting, 0, i)
	if c.shown != nil {
		fi := c.shown.FrameInfo
		ev.Frame = &fi
	}
	c.result = ev // read-only from here on: streams and State share it
	return true
}

// ObserveFrame keeps a frame until its result comes. The hub keeps f.JPEG
// as it is, without a copy: the caller must not modify it afterwards (a
// NATS message's data is the subscriber's own). It does not block.
func (h *Hub) ObserveFrame(f *pipeline.Frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.cameras[f.Camera]
	if c == nil || len(f.JPEG) == 0 {
		return
	}
	fr := &frame{FrameInfo{Seq: f.Seq, Width: f.Width, Height: f.Height}, f.JPEG}
	// Frames and results come on two subscriptions: a frame may be
	// handled just after its own result. Older frames have no result to
	// come (or are of a restarted camera, whose frames are kept again
	// after its first result).
	if c.result != nil && f.Seq <= c.result.Seq {
		if f.Seq == c.result.Seq && (c.shown == nil || c.shown.Seq != f.Seq) {
			c.shown = fr
		}
		return
	}
	if c.shown == nil {
		c.shown = fr // something to show before the first result
	}
	if len(c.waiting) == h.opts.WaitingFrames {
		c.waiting = slices.Delete(c.waiting, 0, 1)
	}
	c.waiting = append(c.waiting, fr)
}

// broadcastLocked offers an event to every stream, dropping it for those
// whose buffer is full.
func (h *Hub) broadcastLocked(ev sseEvent) {
	h.events.Add(1)
	for c := range h.clients {
		select {
		case c.events <- ev:
		default:
			c.dropped.Add(1)
			h.dropped.Add(1)
		}
	}
}

// join registers a stream and returns the cameras' state at that instant:
// every later result is in the stream's buffer, every earlier one in the
// state. Nil once the hub is closed.
func (h *Hub) join() (*client, []CameraState) {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	select {
	case <-h.done:
		return nil, nil
	default:
	}
	c := &client{events: make(chan sseEvent, h.opts.ClientBuffer)}
	h.mu.Lock()
	h.clients[c] = struct{}{}
	first := len(h.clients) == 1
	watch := h.watch
	cams := h.camerasLocked()
	h.mu.Unlock()
	if first && watch != nil {
		watch(true)
	}
	return c, cams
}

func (h *Hub) leave(c *client) {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	h.mu.Lock()
	delete(h.clients, c)
	last := len(h.clients) == 0
	watch := h.watch
	h.mu.Unlock()
	if last && watch != nil {
		watch(false)
	}
}

// onWatch sets the hook told when the first stream opens and the last
// closes (the feed subscribes to frames only while someone watches).
func (h *Hub) onWatch(f func(watching bool)) {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	h.mu.Lock()
	h.watch = f
	watching := len(h.clients) > 0
	h.mu.Unlock()
	if watching && f != nil {
		f(true)
	}
}

// Close ends every stream and refuses new ones: the HTTP server calls it
// as it stops, so that its shutdown does not wait for streams that never
// end on their own. It does not wait for the handlers to return.
func (h *Hub) Close() { h.once.Do(func() { close(h.done) }) }

// HubStats are the hub's own counters.
type HubStats struct {
	// Clients is the open streams; Events the events sent to them;
	// Dropped the events streams missed, reading too slowly.
	Clients         int
	Events, Dropped uint64
	// FrameBytes is the JPEG bytes kept, over every camera.
	FrameBytes int
}

// Stats reports the hub's counters.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := HubStats{Clients: len(h.clients), Events: h.events.Load(), Dropped: h.dropped.Load()}
	for _, c := range h.cameras {
		seen := map[*frame]bool{}
		for _, f := range append([]*frame{c.shown}, c.waiting...) {
			if f != nil && !seen[f] {
				seen[f] = true
				st.FrameBytes += len(f.jpeg)
			}
		}
	}
	return st
}

// State is a snapshot of the dashboard.
func (h *Hub) State() State {
	h.mu.Lock()
	cams, models := h.camerasLocked(), h.opts.Models
	h.mu.Unlock()
	return State{Models: models, Cameras: cams, Stats: h.stats(nil)}
}

func (h *Hub) camerasLocked() []CameraState {
	out := make([]CameraState, 0, len(h.opts.Cameras))
	for _, id := range h.opts.Cameras {
		c := h.cameras[id]
		cs := CameraState{Camera: id, Result: c.result}
		if c.shown != nil {
			fi := c.shown.FrameInfo
			cs.Frame = &fi
		}
		out = append(out, cs)
	}
	return out
}

// frameOf returns a camera's shown frame; known false for a camera not
// configured.
func (h *Hub) frameOf(id string) (f *frame, known bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.cameras[id]
	if c == nil {
		return nil, false
	}
	return c.shown, true
}

// stats computes the figures over the window; cl, when given, is the
// stream they go to (its own drops).
func (h *Hub) stats(cl *client) StatsEvent {
	var live Live
	if h.opts.Live != nil {
		live = h.opts.Live()
	}
	now := time.Now()
	ev := StatsEvent{At: now, Live: live, DroppedAll: h.dropped.Load()}
	if cl != nil {
		ev.Dropped = cl.dropped.Load()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ev.Clients = len(h.clients)
	for _, id := range h.opts.Cameras {
		c := h.cameras[id]
		cs := CameraStats{Camera: id, Results: c.results, Partial: c.partial, Lost: c.lost}
		cs.FPS, cs.LatencyP50MS, cs.LatencyP95MS = c.window.figures(now, h.opts.Window)
		if n, ok := live.IngestDropped[id]; ok {
			cs.IngestDropped = &n
		}
		ev.Cameras = append(ev.Cameras, cs)
	}
	return ev
}

// windowSamples bounds the samples a camera keeps for its figures: above
// windowSamples/Window results per second the figures span the newest
// samples instead of the whole window.
const windowSamples = 256

// window is a ring of the newest results' arrival times and latencies.
type window struct {
	at      []time.Time
	latency []float64
	next, n int
}

func newWindow(size int) window {
	return window{at: make([]time.Time, size), latency: make([]float64, size)}
}

func (w *window) add(at time.Time, latencyMS float64) {
	w.at[w.next], w.latency[w.next] = at, latencyMS
	w.next = (w.next + 1) % len(w.at)
	w.n = min(w.n+1, len(w.at))
}

// figures are the results per second and the latency's median and 95th
// percentile over the samples within span of now.
func (w *window) figures(now time.Time, span time.Duration) (fps, p50, p95 float64) {
	var lat []float64
	oldest := now
	for i := range w.n {
		j := (w.next - 1 - i + len(w.at)) % len(w.at)
		if now.Sub(w.at[j]) > span {
			break
		}
		lat = append(lat, w.latency[j])
		oldest = w.at[j]
	}
	if len(lat) == 0 {
		return 0, 0, 0
	}
	// Intervals since the oldest sample, up to now: the rate decays when
	// results stop, and a ring shorter than the window still measures it.
	if elapsed := now.Sub(oldest); len(lat) > 1 && elapsed > 0 {
		fps = float64(len(lat)-1) / elapsed.Seconds()
	}
	sort.Float64s(lat)
	return fps, lat[(len(lat)-1)/2], lat[(len(lat)-1)*95/100]
}
