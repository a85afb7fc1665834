package dashboard

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/mlink-project/mlink/pipeline"
)

// Frames a feed may have received and not yet handed to the hub: past
// them the client drops frames (a slow consumer) instead of growing. The
// hub takes a frame in microseconds, so only a stalled process gets there.
const (
	framesPendingMsgs  = 16
	framesPendingBytes = 64 << 20
)

// Feed feeds a Hub from the bus: results always (the figures and the
// newest result stay current), frames only while a stream is open, so a
// process nobody watches does not receive every camera's frames.
type Feed struct {
	nc       *nats.Conn
	subjects pipeline.Subjects
	hub      *Hub
	results  *nats.Subscription

	mu     sync.Mutex
	frames *nats.Subscription
	closed bool

	bad atomic.Uint64
}

// Subscribe feeds hub from nc with the results and frames of the deployment
// named by subjects; nc's user must be allowed to subscribe to them
// (pipeline.RoleControl is). The caller closes the feed.
func Subscribe(nc *nats.Conn, subjects pipeline.Subjects, hub *Hub) (*Feed, error) {
	f := &Feed{nc: nc, subjects: subjects, hub: hub}
	sub, err := nc.Subscribe(subjects.AllResults(), func(m *nats.Msg) {
		r, err := pipeline.Unmarshal[pipeline.Result](m.Data)
		if err != nil {
			f.bad.Add(1)
			return
		}
		hub.ObserveResult(r)
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: subscribe to %s: %w (check the NATS connection, or set http.dashboard: false)", subjects.AllResults(), err)
	}
	f.results = sub
	hub.onWatch(f.watch)
	return f, nil
}

// watch subscribes to frames when the first stream opens and
// unsubscribes when the last closes.
func (f *Feed) watch(watching bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	if watching && f.frames == nil {
		sub, err := f.nc.Subscribe(f.subjects.AllFrames(), f.onFrame)
		if err == nil {
			err = sub.SetPendingLimits(framesPendingMsgs, framesPendingBytes)
		}
		if err != nil {
			// Only a closed or draining connection refuses: the process
			// is stopping, and the page shows results without frames.
			if sub != nil {
				_ = sub.Unsubscribe()
			}
			return
		}
		f.frames = sub
	}
	if !watching && f.frames != nil {
		_ = f.frames.Unsubscribe()
		f.frames = nil
	}
}

func (f *Feed) onFrame(m *nats.Msg) {
	fr, err := pipeline.DecodeFrame(m)
	if err != nil {
		f.bad.Add(1)
		return
	}
	// m.Data is this subscriber's own copy of the payload: the hub keeps
	// it as it is.
	f.hub.ObserveFrame(fr)
}

// BadMessages counts results and frames that did not decode.
func (f *Feed) BadMessages() uint64 { return f.bad.Load() }

// Close unsubscribes; the hub keeps what it has.
func (f *Feed) Close() error {
	f.hub.onWatch(nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	err := f.results.Unsubscribe()
	if f.frames != nil {
		if ferr := f.frames.Unsubscribe(); err == nil {
			err = ferr
		}
		f.frames = nil
	}
	if err != nil && f.nc.IsClosed() {
		return nil // closed with the connection
	}
	return err
}
