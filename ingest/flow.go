package ingest

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// rawFrame is a decoded frame on its way from capture to publish.
type rawFrame struct {
	mat gocv.Mat
	at  time.Time // wall-clock capture time
	// clock is the frame's position on the timeline the fps cap works on:
	// media time for files read on demand (their wall clock only says how
	// fast the pipeline consumed them), capture time for live sources.
	clock time.Duration
}

// latestSlot hands frames from the capture goroutine to the publish loop.
// Live: it holds only the newest frame and a put replaces (and closes) an
// untaken one. Not live: a put waits until the frame is taken, so the
// reader runs at the consumer's pace and no frame is lost.
//
// There is exactly one producer, which closes the slot when it stops.
type latestSlot struct {
	ch   chan rawFrame
	live bool
}

func newLatestSlot(live bool) *latestSlot {
	return &latestSlot{ch: make(chan rawFrame, 1), live: live}
}

// put hands f over and reports whether an older, untaken frame was
// discarded. It fails only when ctx ends first; f is then closed.
func (s *latestSlot) put(ctx context.Context, f rawFrame) (dropped bool, err error) {
	if s.live {
		select {
		case s.ch <- f:
			return false, nil
		default:
		}
		// Full: discard the stale frame unless the consumer took it in the
		// meantime. Being the only producer, the send below cannot block.
		select {
		case old := <-s.ch:
			old.mat.Close()
			dropped = true
		default:
		}
		s.ch <- f
		return dropped, nil
	}
	select {
	case s.ch <- f:
		return false, nil
	case <-ctx.Done():
		f.mat.Close()
		return false, ctx.Err()
	}
}

// take returns the next frame; ok is false when the producer has stopped
// (end of stream) or ctx ended.
func (s *latestSlot) take(ctx context.Context) (f rawFrame, ok bool) {
	select {
	case f, ok = <-s.ch:
		return f, ok
	case <-ctx.Done():
		return rawFrame{}, false
	}
}

// close is called by the producer when it stops.
func (s *latestSlot) close() { close(s.ch) }

// drain closes the frames left behind; call it after the producer stopped.
func (s *latestSlot) drain() {
	for f := range s.ch {
		f.mat.Close()
	}
}

// creditWindow bounds the frames of one camera in the pipeline. A credit is
// taken per published frame and returned when the frame's result arrives,
// or after timeout when it never does (a lost frame must not stall the
// camera forever).
type creditWindow struct {
	max     int
	timeout time.Duration

	mu       sync.Mutex
	inFlight map[uint64]time.Time // seq -> publish time
	freed    chan struct{}        // signalled when a credit comes back
	// reconnects is the connection's reconnect count last seen by acquire.
	reconnects uint64
	// settled, after a reconnect, is when the other stages have had time
	// to reconnect and subscribe again (zero: no reconnect pending).
	settled time.Time
}

// reconnectSettle is how long after this camera's connection is back the
// frames it publishes are still at risk: the scheduler's connection may
// come back later than the camera's (210 ms later in one outage test), and
// a frame published before the scheduler subscribes again is lost with no
// later frame to reveal the gap. Those frames' credits are released once
// the window has passed, so a lost one cannot hold a slot for
// in_flight_timeout.
const reconnectSettle = 2 * time.Second

func newCreditWindow(max int, timeout time.Duration) *creditWindow {
	return &creditWindow{
		max:      max,
		timeout:  timeout,
		inFlight: make(map[uint64]time.Time, max),
		freed:    make(chan struct{}, 1),
	}
}

// reconnectPoll is how often a waiting acquire checks whether the NATS
// connection came back from an outage.
const reconnectPoll = 100 * time.Millisecond

// acquire waits until a credit is free and returns how many in-flight
// frames it expired meanwhile, and how many it released because the
// connection reconnected (reconnects, when set, counts the connection's
// reconnects). Frames in flight across an outage have most likely lost
// their plan, outputs or result on the way (a subscriber's interest is
// gone while the server is away), and the merger gives them gap records:
// waiting for their timeout would stall the camera for in_flight_timeout
// after every outage. Only one goroutine (the publish loop) acquires, so a
// free credit cannot be taken between acquire and add.
func (w *creditWindow) acquire(ctx context.Context, reconnects func() uint64) (expired, released int, err error) {
	for {
		if reconnects != nil {
			if n := reconnects(); n != w.reconnects {
				w.reconnects = n
				released += w.releaseAll()
				w.settled = time.Now().Add(reconnectSettle)
			}
		}
		w.mu.Lock()
		now := time.Now()
		if !w.settled.IsZero() && !now.Before(w.settled) {
			// Frames published in the settling window: released even if
			// their results are still to come (a late result releases
			// nothing twice).
			for seq, at := range w.inFlight {
				if at.Before(w.settled) {
					delete(w.inFlight, seq)
					released++
				}
			}
			w.settled = time.Time{}
		}
		oldest := now
		for seq, at := range w.inFlight {
			if now.Sub(at) >= w.timeout {
				delete(w.inFlight, seq)
				expired++
			} else if at.Before(oldest) {
				oldest = at
			}
		}
		free := len(w.inFlight) < w.max
		w.mu.Unlock()
		if free {
			return expired, released, nil
		}
		wait := oldest.Add(w.timeout).Sub(now)
		if reconnects != nil {
			wait = min(wait, reconnectPoll)
		}
		if !w.settled.IsZero() {
			wait = min(wait, w.settled.Sub(now))
		}
		timer := time.NewTimer(wait)
		select {
		case <-w.freed:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return expired, released, ctx.Err()
		}
		timer.Stop()
	}
}

// releaseAll returns every credit and reports how many there were.
func (w *creditWindow) releaseAll() int {
	w.mu.Lock()
	n := len(w.inFlight)
	clear(w.inFlight)
	w.mu.Unlock()
	return n
}

// add takes a credit for seq; call it before publishing so that a result
// arriving at once finds it.
func (w *creditWindow) add(seq uint64) {
	w.mu.Lock()
	w.inFlight[seq] = time.Now()
	w.mu.Unlock()
}

// release returns seq's credit; results for unknown or expired seqs are
// ignored.
func (w *creditWindow) release(seq uint64) {
	w.mu.Lock()
	_, ok := w.inFlight[seq]
	delete(w.inFlight, seq)
	w.mu.Unlock()
	if ok {
		select {
		case w.freed <- struct{}{}:
		default:
		}
	}
}

// reset forgets every credit (a new Run starts with a full window).
func (w *creditWindow) reset() {
	w.mu.Lock()
	clear(w.inFlight)
	w.mu.Unlock()
}

func (w *creditWindow) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inFlight)
}

// fpsCap lets through at most one frame per interval of frame clock.
type fpsCap struct {
	interval time.Duration // 0: no cap
	next     time.Duration
	started  bool
}

func newFPSCap(fps float64) fpsCap {
	if fps <= 0 {
		return fpsCap{}
	}
	return fpsCap{interval: time.Duration(float64(time.Second) / fps)}
}

// allow reports whether a frame at clock t is due. The schedule advances by
// whole intervals, so the long-run rate is the cap even when the source's
// rate is not a multiple of it; a small tolerance keeps capture-time jitter
// from skipping a frame that is on time (10 fps capped at 10 fps).
func (c *fpsCap) allow(t time.Duration) bool {
	if c.interval == 0 {
		return true
	}
	tolerance := min(c.interval/8, 10*time.Millisecond)
	if c.started && t < c.next-tolerance {
		return false
	}
	// First frame, or far behind schedule (a reconnect, a stalled
	// pipeline): restart the schedule here rather than let frames burst.
	if !c.started || t-c.next > c.interval {
		c.next = t
	}
	c.next += c.interval
	c.started = true
	return true
}

// backoff yields exponentially growing, jittered delays within [min, max].
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

// next returns the delay before the next attempt: cur doubles per call, and
// the delay is drawn from [cur/2, cur] so that cameras that failed together
// do not retry in lockstep.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	half := b.cur / 2
	if half <= 0 {
		return b.cur
	}
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }

// rateMeter measures the publish rate over a sliding window.
type rateMeter struct {
	times [256]time.Time // ring of the latest event times
	n     int            // events so far
	start time.Time
}

const rateWindow = 5 * time.Second

func (r *rateMeter) add(t time.Time) {
	r.times[r.n%len(r.times)] = t
	r.n++
}

// rate is events per second over the last rateWindow (shorter when the
// meter started more recently or the ring holds less than the window).
func (r *rateMeter) rate(now time.Time) float64 {
	held := min(r.n, len(r.times))
	count := 0
	for i := 1; i <= held; i++ {
		if now.Sub(r.times[(r.n-i)%len(r.times)]) > rateWindow {
			break
		}
		count++
	}
	if count == 0 {
		return 0
	}
	span := rateWindow
	if since := now.Sub(r.start); since < span {
		span = since
	}
	if count == len(r.times) {
		span = now.Sub(r.times[(r.n-count)%len(r.times)])
	}
	if span <= 0 {
		return 0
	}
	return float64(count) / span.Seconds()
}
