package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// CameraStats is a snapshot of a camera's counters.
type CameraStats struct {
	Camera string
	// Published frames, all runs together.
	Published uint64
	// Dropped counts stale frames of a live source that were overwritten
	// in the latest-frame slot before the pipeline had room for them.
	// Non-realtime files never drop.
	Dropped uint64
	// Skipped counts frames discarded by the fps cap: deliberate
	// subsampling, not loss, so they are not counted as Dropped.
	Skipped uint64
	// Reconnects counts recoveries: the source streamed, failed, and
	// streams again (frames flowing, not merely opened).
	Reconnects uint64
	// Errors counts failures: failed opens, read errors, bad frames, encode
	// and publish errors.
	Errors uint64
	// InFlightTimeouts counts frames whose result never came back within
	// IngestConfig.InFlightTimeout.
	InFlightTimeouts uint64
	// InFlightReleased counts in-flight frames whose slots were released
	// when the NATS connection came back from an outage.
	InFlightReleased uint64
	// InFlight is the number of published frames awaiting their result.
	InFlight int
	// LastSeq is the seq of the last published frame.
	LastSeq uint64
	// FPS is the publish rate over the last few seconds.
	FPS float64
	// Connected reports whether the source is open.
	Connected bool
	// Stalled reports a live source that is open but has delivered no
	// frame for StallAfter (a hung camera); Stalls counts such stalls.
	Stalled     bool
	Stalls      uint64
	LastError   string
	LastErrorAt time.Time
}

// Camera reads one source and publishes its frames on
// mlink.frames.<camera>, with flow control, reconnection, fps cap, resize
// and JPEG encoding.
type Camera struct {
	cfg      pipeline.CameraConfig
	icfg     pipeline.IngestConfig
	nc       *nats.Conn
	src      Source
	live     bool
	subjects pipeline.Subjects
	log      zerolog.Logger
	// frameLog is sampled: per-frame problems (bad frames, publish errors)
	// must not flood the log.
	frameLog zerolog.Logger
	credits  *creditWindow

	running atomic.Bool
	seq     uint64 // last published seq; owned by the publish loop
	// lastFrame is when the source last delivered a frame (Unix ns; 0:
	// not streaming), for the stall watchdog.
	lastFrame atomic.Int64

	mu    sync.Mutex
	stats CameraStats
	rate  rateMeter
}

// NewCamera builds a camera from its config. Zero values of icfg and of
// cfg's tuning fields take pipeline's defaults, so a hand-built config
// works as well as a loaded one. It does not connect: Run does.
func NewCamera(cfg pipeline.CameraConfig, icfg pipeline.IngestConfig, nc *nats.Conn, log zerolog.Logger) (*Camera, error) {
	if err := pipeline.ValidName(cfg.ID); err != nil {
		return nil, fmt.Errorf("camera id: %w", err)
	}
	src, err := newSource(cfg, icfg)
	if err != nil {
		return nil, err
	}
	return NewCameraWithSource(cfg, icfg, src, nc, log)
}

// NewCameraWithSource builds a camera around any Source (a custom input);
// cfg.Source then only decides whether the camera is live: everything but
// a non-realtime "file" is.
func NewCameraWithSource(cfg pipeline.CameraConfig, icfg pipeline.IngestConfig, src Source, nc *nats.Conn, log zerolog.Logger) (*Camera, error) {
	if err := pipeline.ValidName(cfg.ID); err != nil {
		return nil, fmt.Errorf("camera id: %w", err)
	}
	if nc == nil {
		return nil, fmt.Errorf("camera %s: no NATS connection", cfg.ID)
	}
	// The same defaults as pipeline.Config.EnsureDefaults.
	if icfg.MaxInFlight <= 0 {
		icfg.MaxInFlight = 2
	}
	if icfg.InFlightTimeout <= 0 {
		icfg.InFlightTimeout = 30 * time.Second
	}
	if cfg.JPEGQuality <= 0 || cfg.JPEGQuality > 100 {
		cfg.JPEGQuality = 90
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = 500 * time.Millisecond
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = 30 * time.Second
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		return nil, fmt.Errorf("camera %s: reconnect_min %s exceeds reconnect_max %s", cfg.ID, cfg.ReconnectMin, cfg.ReconnectMax)
	}
	if cfg.FPS < 0 || cfg.Width < 0 || cfg.Height < 0 {
		return nil, fmt.Errorf("camera %s: fps, width and height must not be negative", cfg.ID)
	}
	clog := log.With().Str("camera", cfg.ID).Str("source", cfg.Source).Logger()
	return &Camera{
		cfg:      cfg,
		icfg:     icfg,
		nc:       nc,
		src:      src,
		live:     isLive(cfg),
		subjects: pipeline.DefaultSubjects,
		log:      clog,
		frameLog: clog.Sample(&zerolog.BurstSampler{Burst: 3, Period: time.Minute}),
		credits:  newCreditWindow(icfg.MaxInFlight, icfg.InFlightTimeout),
		stats:    CameraStats{Camera: cfg.ID},
	}, nil
}

// ID is the camera's id.
func (c *Camera) ID() string { return c.cfg.ID }

// UseSubjects puts the camera on a deployment's subjects
// (nats.subject_prefix; the default ones without). Call before Run.
func (c *Camera) UseSubjects(s pipeline.Subjects) { c.subjects = s }

// Stats returns a snapshot of the camera's counters; safe to call at any
// time from any goroutine.
func (c *Camera) Stats() CameraStats {
	c.mu.Lock()
	s := c.stats
	s.FPS = c.rate.rate(time.Now())
	c.mu.Unlock()
	s.InFlight = c.credits.len()
	return s
}

// Run captures and publishes until ctx ends, a non-looping file ends, or
// maxFrames frames were published in this run (0: no limit); these all
// return nil. It returns an error only when it cannot work at all (the NATS
// connection is closed). A source that fails is retried for ever with
// back-off, so a dead camera never stops Run.
//
// On cancellation Run waits for the capture goroutine, which may be inside
// a blocking OpenCV read: for RTSP that is bounded by FFmpeg's socket
// timeout (2 s with FFmpegCaptureOptions).
func (c *Camera) Run(ctx context.Context, maxFrames int) error {
	if !c.running.CompareAndSwap(false, true) {
		return fmt.Errorf("camera %s: already running", c.cfg.ID)
	}
	defer c.running.Store(false)

	c.credits.reset()
	sub, err := c.nc.Subscribe(c.subjects.Results(c.cfg.ID), func(m *nats.Msg) {
		if seq, err := strconv.ParseUint(m.Header.Get(pipeline.HeaderSeq), 10, 64); err == nil {
			c.credits.release(seq)
		}
	})
	if err != nil {
		return fmt.Errorf("camera %s: subscribe to results: %w", c.cfg.ID, err)
	}
	defer sub.Unsubscribe()
	// Make sure the server knows the subscription before the first frame
	// goes out, or a fast pipeline's first results would be missed and
	// their credits come back only by timeout.
	if err := c.nc.FlushTimeout(10 * time.Second); err != nil {
		if c.nc.IsClosed() {
			return fmt.Errorf("camera %s: subscribe to results: %w", c.cfg.ID, err)
		}
		// Reconnecting: the client resends the subscription when the
		// connection is back; until then credits return by timeout.
		c.log.Warn().Err(err).Msg("NATS not reachable yet; starting anyway")
	}

	c.mu.Lock()
	c.rate = rateMeter{start: time.Now()}
	c.mu.Unlock()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	slot := newLatestSlot(c.live)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer slot.close()
		c.capture(runCtx, slot)
	}()
	if c.live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.watchStalls(runCtx)
		}()
	}

	err = c.publishLoop(runCtx, slot, maxFrames)
	cancel()
	wg.Wait()
	slot.drain()
	return err
}

// capture opens the source, reads it into the slot and reconnects with
// back-off until ctx ends or a file ends.
func (c *Camera) capture(ctx context.Context, slot *latestSlot) {
	bo := backoff{min: c.cfg.ReconnectMin, max: c.cfg.ReconnectMax}
	var (
		failures    int       // failed attempts in the current streak
		downSince   time.Time // start of the current failure streak
		hadFrames   bool      // the source delivered a frame at some point
		index       uint64    // frames read, for the media clock of files
		epoch       = time.Now()
		openStarted time.Time
	)
	// fail records a failure; it logs at warn only when a streak starts,
	// so a camera that stays down logs once, not once per attempt.
	fail := func(err error, what string) {
		c.recordError(err)
		if failures == 0 {
			downSince = time.Now()
			c.log.Warn().Err(err).Msgf("%s; retrying with back-off", what)
		} else {
			c.log.Debug().Err(err).Int("attempt", failures+1).Msg(what)
		}
		failures++
	}

	for ctx.Err() == nil {
		if failures > 0 && !sleepCtx(ctx, bo.next()) {
			return
		}
		openStarted = time.Now()
		if err := c.src.Open(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			what := "cannot connect"
			if hadFrames {
				what = "cannot reconnect"
			}
			fail(err, what)
			continue
		}
		c.setConnected(true)
		c.log.Debug().Dur("open_time", time.Since(openStarted)).Float64("native_fps", c.src.NativeFPS()).Msg("source opened")

		// Files read on demand are capped on their media clock.
		mediaFPS := 0.0
		if !c.live {
			mediaFPS = c.src.NativeFPS()
		}
		badStreak := 0
		for {
			m, at, err := c.src.Read(ctx)
			if err != nil {
				if ctx.Err() != nil {
					c.closeSource()
					return
				}
				if errors.Is(err, ErrEndOfStream) {
					c.log.Info().Uint64("frames", index).Msg("end of file")
					c.closeSource()
					return
				}
				if errors.Is(err, ErrBadFrame) {
					c.recordError(err)
					if badStreak == 0 {
						c.frameLog.Warn().Err(err).Msg("skipping undecodable frame")
					}
					badStreak++
					continue
				}
				c.closeSource()
				fail(err, "source lost")
				break
			}
			badStreak = 0
			c.frameArrived(at)
			// The first frame, not a successful Open, ends a failure streak:
			// a source that opens and then fails at once keeps backing off.
			if failures > 0 || !hadFrames {
				ev := c.log.Info().Dur("first_frame_after", time.Since(openStarted)).Float64("native_fps", c.src.NativeFPS())
				if failures > 0 {
					ev = ev.Int("failed_attempts", failures).Dur("down", time.Since(downSince))
					if hadFrames {
						c.mu.Lock()
						c.stats.Reconnects++
						c.mu.Unlock()
					}
				}
				ev.Msg("streaming")
				failures = 0
				bo.reset()
				hadFrames = true
			}
			clock := at.Sub(epoch)
			if mediaFPS > 0 {
				clock = time.Duration(float64(index) / mediaFPS * float64(time.Second))
			}
			index++
			dropped, err := slot.put(ctx, rawFrame{mat: m, at: at, clock: clock})
			if err != nil {
				c.closeSource()
				return
			}
			if dropped {
				c.mu.Lock()
				c.stats.Dropped++
				c.mu.Unlock()
			}
			// A live put never waits, so this is where a live source notices
			// that the camera is stopping.
			if ctx.Err() != nil {
				c.closeSource()
				return
			}
		}
	}
}

func (c *Camera) closeSource() {
	if err := c.src.Close(); err != nil {
		c.log.Debug().Err(err).Msg("close source")
	}
	c.lastFrame.Store(0)
	c.mu.Lock()
	c.stats.Connected, c.stats.Stalled = false, false // closed, no longer stalled
	c.mu.Unlock()
}

// StallAfter is how long a live source may deliver no frame before it is
// reported stalled (at least three frame intervals of its native rate).
// A blocking read cannot be interrupted safely (OpenCV's capture is not
// safe to close while it reads), so the stall is reported here and the
// source reopened once its read gives up: for RTSP, FFmpeg's socket
// timeout (2 s, see FFmpegCaptureOptions) three times over, ~6.4 s after
// the last frame.
const StallAfter = 2 * time.Second

// stallPoll is how often the watchdog looks.
const stallPoll = 100 * time.Millisecond

func (c *Camera) stallAfter() time.Duration {
	if fps := c.src.NativeFPS(); fps > 0 {
		return max(StallAfter, time.Duration(3*float64(time.Second)/fps))
	}
	return StallAfter
}

// frameArrived records a frame from the source; a stall ends with a
// frame that comes within StallAfter of the one before. A single late
// frame does not end it: FFmpeg hands over a frame it still held each
// time its read times out during a stall (measured: two, 2 s apart).
func (c *Camera) frameArrived(at time.Time) {
	prev := c.lastFrame.Swap(at.UnixNano())
	if prev == 0 || at.Sub(time.Unix(0, prev)) >= c.stallAfter() {
		return
	}
	c.mu.Lock()
	was := c.stats.Stalled
	c.stats.Stalled = false
	c.mu.Unlock()
	if was {
		c.log.Info().Msg("source delivers frames again")
	}
}

// watchStalls reports a live source that is open but silent, until ctx ends.
func (c *Camera) watchStalls(ctx context.Context) {
	tick := time.NewTicker(stallPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		last := c.lastFrame.Load()
		if last == 0 {
			continue
		}
		silent := time.Since(time.Unix(0, last))
		if silent < c.stallAfter() {
			continue
		}
		c.mu.Lock()
		report := !c.stats.Stalled && c.stats.Connected && c.lastFrame.Load() == last
		if report {
			c.stats.Stalled = true
			c.stats.Stalls++
			c.stats.LastError = fmt.Sprintf("source stalled: no frame for %s", silent.Round(time.Millisecond))
			c.stats.LastErrorAt = time.Now()
		}
		c.mu.Unlock()
		if report {
			c.log.Warn().Dur("silent", silent).Msg("source stalled: open but no frames; it is reopened when its read times out")
		}
	}
}

// publishLoop takes a credit, then the newest frame, and publishes it.
func (c *Camera) publishLoop(ctx context.Context, slot *latestSlot, maxFrames int) error {
	limit := newFPSCap(c.cfg.FPS)
	published := 0
	for {
		expired, released, err := c.credits.acquire(ctx, c.reconnects)
		if released > 0 {
			c.mu.Lock()
			c.stats.InFlightReleased += uint64(released)
			c.mu.Unlock()
			c.log.Info().Int("frames", released).Msg("NATS reconnected: releasing the in-flight slots of frames sent before the outage")
		}
		if expired > 0 {
			c.mu.Lock()
			c.stats.InFlightTimeouts += uint64(expired)
			c.mu.Unlock()
			c.frameLog.Warn().Int("frames", expired).Dur("timeout", c.icfg.InFlightTimeout).
				Msg("no result for published frames; releasing their in-flight slots")
		}
		if err != nil {
			return nil // ctx ended
		}
		f, ok := slot.take(ctx)
		if !ok {
			return nil // end of stream or ctx ended
		}
		if !limit.allow(f.clock) {
			f.mat.Close()
			c.mu.Lock()
			c.stats.Skipped++
			c.mu.Unlock()
			continue
		}
		err = c.publishRetrying(ctx, f)
		f.mat.Close()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, nats.ErrConnectionClosed) {
				return fmt.Errorf("camera %s: %w", c.cfg.ID, err)
			}
			c.recordError(err)
			c.frameLog.Warn().Err(err).Msg("frame not published")
			continue
		}
		published++
		if maxFrames > 0 && published >= maxFrames {
			return nil
		}
	}
}

// reconnects is the camera's connection's reconnect count.
func (c *Camera) reconnects() uint64 { return c.nc.Stats().Reconnects }

// publishRetrying publishes f. While the NATS client is reconnecting and its
// buffer is full, a file's frame is retried rather than lost; a live
// camera's frame is given up, a newer one will come.
func (c *Camera) publishRetrying(ctx context.Context, f rawFrame) error {
	for {
		err := c.publish(f)
		if err == nil || c.live || !(errors.Is(err, nats.ErrReconnectBufExceeded) || c.nc.IsReconnecting()) {
			return err
		}
		c.recordError(err)
		c.frameLog.Warn().Err(err).Msg("NATS unavailable; retrying the frame")
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// publish resizes, encodes and publishes one frame under the next seq.
func (c *Camera) publish(f rawFrame) error {
	img := f.mat
	w, h := targetSize(img.Cols(), img.Rows(), c.cfg.Width, c.cfg.Height)
	if w != img.Cols() || h != img.Rows() {
		resized := gocv.NewMat()
		defer resized.Close()
		interp := gocv.InterpolationArea // best for shrinking
		if w > img.Cols() {
			interp = gocv.InterpolationLinear
		}
		gocv.Resize(img, &resized, image.Pt(w, h), 0, 0, interp)
		img = resized
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, img, []int{gocv.IMWriteJpegQuality, c.cfg.JPEGQuality})
	if err != nil {
		return fmt.Errorf("encode JPEG: %w", err)
	}
	// The buffer is C memory: copy it out before freeing it.
	jpeg := bytes.Clone(buf.GetBytes())
	buf.Close()
	if len(jpeg) == 0 {
		return fmt.Errorf("encode JPEG: OpenCV produced no data for a %dx%d image", w, h)
	}

	seq := c.seq + 1
	msg := pipeline.FrameMsg(c.subjects.Frames(c.cfg.ID), &pipeline.Frame{
		Camera:     c.cfg.ID,
		Seq:        seq,
		CapturedAt: f.at,
		Width:      w,
		Height:     h,
		JPEG:       jpeg,
	})
	c.credits.add(seq)
	if err := c.nc.PublishMsg(msg); err != nil {
		c.credits.release(seq)
		return fmt.Errorf("publish frame %d (%d bytes): %w", seq, len(jpeg), err)
	}
	// The seq is consumed only once the frame is out, so seqs on the bus
	// stay consecutive.
	c.seq = seq
	now := time.Now()
	c.mu.Lock()
	c.stats.Published++
	c.stats.LastSeq = seq
	c.rate.add(now)
	c.mu.Unlock()
	return nil
}

// targetSize applies the configured size; a zero side keeps the aspect
// ratio, both zero keep the frame as it is.
func targetSize(w, h, cw, ch int) (int, int) {
	switch {
	case cw > 0 && ch > 0:
		return cw, ch
	case cw > 0 && w > 0:
		return cw, max(1, int(math.Round(float64(h)*float64(cw)/float64(w))))
	case ch > 0 && h > 0:
		return max(1, int(math.Round(float64(w)*float64(ch)/float64(h)))), ch
	}
	return w, h
}

func (c *Camera) recordError(err error) {
	c.mu.Lock()
	c.stats.Errors++
	c.stats.LastError = err.Error()
	c.stats.LastErrorAt = time.Now()
	c.mu.Unlock()
}

func (c *Camera) setConnected(v bool) {
	c.mu.Lock()
	c.stats.Connected = v
	c.mu.Unlock()
}

// sleepCtx sleeps for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
