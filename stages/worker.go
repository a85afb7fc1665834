// Package stages holds mlink's running stages: model workers, the merger
// and (later) link predictors and frame filters. Each is a NATS client that
// runs until its context ends.
package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages/vision"
)

// ModelWorker serves one model: it takes frames from mlink.infer.<model> in
// the model's queue group (more workers anywhere share the load), runs them
// through Workers backend instances and publishes each output with source
// exact. Work is bounded: at most Queue frames wait; beyond that a frame is
// answered at once with an error output, so the merger need not wait for it.
type ModelWorker struct {
	nc        *nats.Conn
	subjects  pipeline.Subjects
	spec      *pipeline.ModelSpec
	instances []vision.Backend
	log       zerolog.Logger
	id        string

	queue chan *nats.Msg
	ready chan struct{}
	stats WorkerStats
	// frames, when set, shares decoded frames with the process's other
	// workers.
	frames *FrameCache
	// maxPixels bounds the frames decoded (LimitFramePixels).
	maxPixels int
	rejects   *pipeline.Rejects
	// pool is the worker pool the worker serves ("": the unpooled
	// workers, on the model's plain infer subject).
	pool string
}

// WorkerStats counts a model worker's work.
type WorkerStats struct {
	Frames   atomic.Int64
	Errors   atomic.Int64
	Rejected atomic.Int64 // queue full
	// inferNanos holds an exponentially weighted mean of inference time.
	inferNanos atomic.Int64
	Last       atomic.Pointer[pipeline.Output]
	// lastProgress is when a frame was last finished (Unix ns).
	lastProgress atomic.Int64
	// MemoryBytes is the model's measured memory cost, set at load.
	MemoryBytes atomic.Int64
}

// MeanInferMS is the recent mean inference time in milliseconds.
func (s *WorkerStats) MeanInferMS() float64 { return float64(s.inferNanos.Load()) / 1e6 }

// HeartbeatInterval is how often a worker says it is alive.
const HeartbeatInterval = time.Second

// Opener loads one backend instance of a model.
type Opener func(spec *pipeline.ModelSpec) (vision.Backend, error)

// NewModelWorker loads spec.Workers instances of the model. On error every
// instance opened so far is closed.
func NewModelWorker(nc *nats.Conn, spec *pipeline.ModelSpec, open Opener, log zerolog.Logger) (*ModelWorker, error) {
	host, _ := os.Hostname()
	wlog := pipeline.Component(log, "worker").With().Str("model", spec.Name).Logger()
	w := &ModelWorker{
		nc:        nc,
		subjects:  pipeline.DefaultSubjects,
		spec:      spec,
		log:       wlog,
		id:        fmt.Sprintf("%s/%d", host, os.Getpid()),
		queue:     make(chan *nats.Msg, spec.Queue),
		ready:     make(chan struct{}),
		maxPixels: pipeline.DefaultMaxFramePixels,
		rejects:   pipeline.NewRejects(wlog, 0),
	}
	for i := 0; i < spec.Workers; i++ {
		b, err := open(spec)
		if err != nil {
			w.closeInstances()
			return nil, fmt.Errorf("load model %q: %w", spec.Name, err)
		}
		w.instances = append(w.instances, b)
	}
	return w, nil
}

// UseSubjects puts the worker on a deployment's subjects (nats.subject_prefix;
// the default ones without). Call before Run.
func (w *ModelWorker) UseSubjects(s pipeline.Subjects) { w.subjects = s }

// UsePool puts the worker in a worker pool (mlink run --pool): it takes
// the model's frames the scheduler sends to that pool, in the pool's queue
// group, and says so in its heartbeats and outputs. Call before Run.
func (w *ModelWorker) UsePool(pool string) {
	w.pool = pool
	w.log = w.log.With().Str("pool", pool).Logger()
}

// ShareFrames makes the worker take decoded frames from c, shared with the
// other workers of the process (call before Run).
func (w *ModelWorker) ShareFrames(c *FrameCache) { w.frames = c }

// LimitFramePixels makes the worker refuse frames whose JPEG declares more
// than n pixels (ingest.max_frame_pixels; at most, and by default,
// pipeline.DefaultMaxFramePixels), before decoding them. Call before Run.
func (w *ModelWorker) LimitFramePixels(n int) {
	if n > 0 {
		w.maxPixels = min(n, pipeline.DefaultMaxFramePixels)
	}
}

// Rejects returns the worker's counts of refused frames by reason.
func (w *ModelWorker) Rejects() *pipeline.Rejects { return w.rejects }

// QueueDepth is the number of frames received and waiting for the model
// (bounded by the model's queue; past it the oldest are dropped).
func (w *ModelWorker) QueueDepth() int { return len(w.queue) }

// Ready is closed once the worker receives frames.
func (w *ModelWorker) Ready() <-chan struct{} { return w.ready }

// Stats returns the worker's counters.
func (w *ModelWorker) Stats() *WorkerStats { return &w.stats }

// Spec returns the model's spec.
func (w *ModelWorker) Spec() *pipeline.ModelSpec { return w.spec }

// Run serves frames until ctx is done, then drains: frames already queued
// are answered so that their results complete. It closes the model's
// instances before returning.
func (w *ModelWorker) Run(ctx context.Context) error {
	defer w.closeInstances()
	subject, queue := w.subjects.Infer(w.spec.Name), w.subjects.InferQueue(w.spec.Name)
	if w.pool != "" {
		subject, queue = w.subjects.InferOn(w.pool, w.spec.Name), w.subjects.InferQueueOn(w.pool, w.spec.Name)
	}
	sub, err := w.nc.QueueSubscribe(subject, queue, w.enqueue)
	if err != nil {
		return fmt.Errorf("worker %s: subscribe: %w", w.spec.Name, err)
	}
	if err := w.nc.Flush(); err != nil {
		return fmt.Errorf("worker %s: flush subscription: %w", w.spec.Name, err)
	}
	close(w.ready)
	var wg sync.WaitGroup
	beatCtx, stopBeats := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.heartbeats(beatCtx)
	}()
	for _, b := range w.instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range w.queue {
				w.serve(b, msg)
			}
		}()
	}
	<-ctx.Done()
	// Stop taking frames, let the callback goroutine finish, then close the
	// queue so instances drain what is queued and exit.
	if err := sub.Drain(); err != nil {
		w.log.Warn().Err(err).Msg("drain subscription")
	}
	for sub.IsValid() {
		time.Sleep(5 * time.Millisecond)
	}
	close(w.queue)
	stopBeats()
	wg.Wait()
	return nil
}

// Heartbeat is the worker's state now, as its heartbeats say it.
func (w *ModelWorker) Heartbeat() *pipeline.Heartbeat {
	return &pipeline.Heartbeat{
		Model: w.spec.Name, Worker: w.id, Pool: w.pool, At: time.Now(),
		Frames: w.stats.Frames.Load(), Queued: len(w.queue),
		LastProgress: time.Unix(0, w.stats.lastProgress.Load()),
		InferMS:      w.stats.MeanInferMS(), MemoryBytes: w.stats.MemoryBytes.Load(),
	}
}

// heartbeats publishes the worker's state every HeartbeatInterval until ctx
// ends, so the scheduler can tell a dead or stuck model from a slow one.
func (w *ModelWorker) heartbeats(ctx context.Context) {
	tick := time.NewTicker(HeartbeatInterval)
	defer tick.Stop()
	for {
		hb := w.Heartbeat()
		if data, err := pipeline.Marshal(hb); err == nil {
			if err := w.nc.Publish(w.subjects.Health(w.spec.Name), data); err != nil {
				w.log.Debug().Err(err).Msg("publish heartbeat")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// enqueue runs on the subscription's goroutine: it must never block.
func (w *ModelWorker) enqueue(msg *nats.Msg) {
	select {
	case w.queue <- msg:
	default:
		w.stats.Rejected.Add(1)
		f, err := pipeline.DecodeFrame(msg)
		if err != nil {
			w.stats.Errors.Add(1)
			w.rejects.Reject(pipeline.RejectMalformed, msg.Subject, err)
			return
		}
		w.publish(&pipeline.Output{Camera: f.Camera, Seq: f.Seq, Token: f.Token, Error: "worker overloaded: queue full"})
	}
}

func (w *ModelWorker) serve(b vision.Backend, msg *nats.Msg) {
	f, err := pipeline.DecodeFrame(msg)
	if err != nil {
		// Without camera and seq there is no frame to answer for.
		w.stats.Errors.Add(1)
		w.rejects.Reject(pipeline.RejectMalformed, msg.Subject, err)
		return
	}
	out := w.infer(b, f)
	out.Token = f.Token
	w.stats.lastProgress.Store(time.Now().UnixNano())
	w.publish(out)
}

func (w *ModelWorker) infer(b vision.Backend, f *pipeline.Frame) *pipeline.Output {
	fail := func(format string, args ...any) *pipeline.Output {
		w.stats.Errors.Add(1)
		msg := fmt.Sprintf(format, args...)
		w.log.Warn().Str("camera", f.Camera).Uint64("seq", f.Seq).Msg(msg)
		return &pipeline.Output{Camera: f.Camera, Seq: f.Seq, Error: msg}
	}
	// The JPEG's own header, checked against the limit and the frame's
	// declared size before anything is decoded: a few hundred bytes may
	// claim an image of gigabytes. The frame is answered (with an error)
	// so that its result does not wait for the deadline.
	if reason, err := checkFrameSize(f, w.maxPixels); err != nil {
		w.rejects.Reject(reason, w.subjects.InferFor(w.pool, w.spec.Name), fmt.Errorf("frame %s/%d: %w", f.Camera, f.Seq, err))
		w.stats.Errors.Add(1)
		return &pipeline.Output{Camera: f.Camera, Seq: f.Seq, Error: "rejected frame: " + err.Error()}
	}
	img, release, err := w.decode(f)
	if err != nil {
		return fail("corrupt frame: %v", err)
	}
	defer release()
	start := time.Now()
	out, err := safeInfer(b, f.Camera, img)
	elapsed := time.Since(start)
	// A model that ran and failed spent its time: the budget's books
	// charge it (InferMS), though there is no output to use.
	spent := func(o *pipeline.Output) *pipeline.Output {
		o.InferMS = float64(elapsed.Microseconds()) / 1000
		return o
	}
	if err != nil {
		return spent(fail("model %s failed: %v", w.spec.Name, err))
	}
	if err := out.CheckFinite(); err != nil {
		return spent(fail("model %s: %v", w.spec.Name, err))
	}
	out.Camera, out.Seq, out.Model = f.Camera, f.Seq, w.spec.Name
	out.Source = pipeline.SourceExact
	out.InferMS = float64(elapsed.Microseconds()) / 1000
	out.Worker = w.id
	w.stats.Frames.Add(1)
	w.observe(elapsed)
	w.stats.Last.Store(&out)
	return &out
}

// checkFrameSize checks a frame's JPEG header against maxPixels and the
// frame's Mlink-Width/Height (which the bus always carries; EXIF
// orientation may swap them). A body that is no JPEG at all is left to
// the decoder, which answers it as a corrupt frame.
func checkFrameSize(f *pipeline.Frame, maxPixels int) (pipeline.RejectReason, error) {
	w, h, err := pipeline.CheckJPEG(f.JPEG, maxPixels)
	switch {
	case errors.Is(err, pipeline.ErrFrameTooLarge):
		return pipeline.RejectFrameTooLarge, err
	case err != nil:
		return "", nil // not a JPEG: the decoder reports it as a corrupt frame
	case f.Width > 0 && f.Height > 0 && (w != f.Width || h != f.Height) && (h != f.Width || w != f.Height):
		return pipeline.RejectSizeMismatch, fmt.Errorf("the JPEG is %d×%d, the frame's headers say %d×%d", w, h, f.Width, f.Height)
	}
	return "", nil
}

// decode returns the frame's image (shared through the frame cache when
// there is one) and the function that releases it.
func (w *ModelWorker) decode(f *pipeline.Frame) (gocv.Mat, func(), error) {
	if w.frames != nil {
		return w.frames.Acquire(f)
	}
	img, err := decodeFrame(f)
	if err != nil {
		return img, func() {}, err
	}
	return img, func() { img.Close() }, nil
}

// safeInfer turns a backend panic into an error: one bad frame or model bug
// must not take down the worker and every other model in the process.
func safeInfer(b vision.Backend, camera string, img gocv.Mat) (out pipeline.Output, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return b.Infer(camera, img)
}

func (w *ModelWorker) observe(d time.Duration) {
	old := w.stats.inferNanos.Load()
	if old == 0 {
		w.stats.inferNanos.Store(int64(d))
		return
	}
	w.stats.inferNanos.Store(old + (int64(d)-old)/8)
}

func (w *ModelWorker) publish(out *pipeline.Output) {
	out.Model, out.Pool = w.spec.Name, w.pool
	if out.Error != "" {
		out.Kind, out.Type, out.Source = w.spec.Output.Kind(), w.spec.Output, pipeline.SourceExact
	}
	data, err := pipeline.Marshal(out)
	if err != nil {
		w.log.Error().Err(err).Msg("encode output")
		return
	}
	if err := w.nc.Publish(w.subjects.Outputs(out.Camera, w.spec.Name), data); err != nil {
		w.log.Error().Err(err).Msg("publish output")
	}
}

// Close releases the model instances of a worker that will not run (a
// reload that loaded it was refused); Run closes them itself when it ends.
// Not to be called with Run.
func (w *ModelWorker) Close() { w.closeInstances() }

func (w *ModelWorker) closeInstances() {
	for _, b := range w.instances {
		if err := b.Close(); err != nil {
			w.log.Warn().Err(err).Msg("close model instance")
		}
	}
	w.instances = nil
}
