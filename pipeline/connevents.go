package pipeline

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// ConnEvent names a NATS connection event that mlink counts.
type ConnEvent string

const (
	// EventDisconnect: the connection to the server was lost.
	EventDisconnect ConnEvent = "disconnect"
	// EventReconnect: the connection is back (subscriptions resent).
	EventReconnect ConnEvent = "reconnect"
	// EventSlowConsumer: the server or the client dropped messages for a
	// subscription that did not keep up.
	EventSlowConsumer ConnEvent = "slow_consumer"
	// EventAsyncError: any other asynchronous error the server reported
	// (a permission violation, for one).
	EventAsyncError ConnEvent = "async_error"
	// EventClosed: the connection is closed for good.
	EventClosed ConnEvent = "closed"
)

var connEvents = []ConnEvent{EventDisconnect, EventReconnect, EventSlowConsumer, EventAsyncError, EventClosed}

// ConnEvents counts the events of NATS connections (all the connections
// of a process may share one). Safe for concurrent use; the zero value is
// ready.
type ConnEvents struct {
	counts [5]atomic.Uint64 // in connEvents order
	// lastDisconnect is when a connection was last lost (Unix ns), for the
	// reconnect line's "down" figure.
	lastDisconnect atomic.Int64
}

func (e *ConnEvents) add(ev ConnEvent) {
	for i, x := range connEvents {
		if x == ev {
			e.counts[i].Add(1)
		}
	}
}

// Count returns how many times ev happened.
func (e *ConnEvents) Count(ev ConnEvent) uint64 {
	for i, x := range connEvents {
		if x == ev {
			return e.counts[i].Load()
		}
	}
	return 0
}

// Snapshot returns every event's count.
func (e *ConnEvents) Snapshot() map[ConnEvent]uint64 {
	out := make(map[ConnEvent]uint64, len(connEvents))
	for i, ev := range connEvents {
		out[ev] = e.counts[i].Load()
	}
	return out
}

// Bus counts the events of every connection opened by Connect without
// its own ConnEvents: the process's figures.
var Bus = &ConnEvents{}

// ConnOption tunes Connect.
type ConnOption func(*connOptions)

type connOptions struct {
	log    zerolog.Logger
	events *ConnEvents
	nats   []nats.Option
}

// WithNATSOptions passes options to nats.Connect: credentials, TLS
// (NATSConfig.ClientOptions).
func WithNATSOptions(opts ...nats.Option) ConnOption {
	return func(o *connOptions) { o.nats = append(o.nats, opts...) }
}

// WithLogger makes Connect log the connection's disconnects, reconnects
// and asynchronous errors on log (default: not logged, only counted).
func WithLogger(log zerolog.Logger) ConnOption {
	return func(o *connOptions) { o.log = log }
}

// WithEvents counts the connection's events in e instead of Bus.
func WithEvents(e *ConnEvents) ConnOption {
	return func(o *connOptions) { o.events = e }
}

// connectionHandlers are the handlers every mlink connection runs with: an
// outage of the bus is logged once when it starts and once when it ends,
// and counted; slow-consumer drops, which lose messages, are counted and
// logged (sampled: they come in bursts).
func connectionHandlers(name string, o connOptions) []nats.Option {
	log := o.log.With().Str("connection", name).Logger()
	sampled := log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	ev := o.events
	return []nats.Option{
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // closed by its owner, not lost
			}
			ev.add(EventDisconnect)
			ev.lastDisconnect.Store(time.Now().UnixNano())
			log.Warn().Err(err).Msg("NATS connection lost; reconnecting (frames in flight may be lost: they get gap records)")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			ev.add(EventReconnect)
			e := log.Info().Str("server", nc.ConnectedUrlRedacted())
			if at := ev.lastDisconnect.Load(); at > 0 {
				e = e.Dur("down", time.Since(time.Unix(0, at)))
			}
			e.Msg("NATS connection back")
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			ev.add(EventClosed)
			log.Debug().Msg("NATS connection closed")
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			if errors.Is(err, nats.ErrSlowConsumer) {
				ev.add(EventSlowConsumer)
				sampled.Warn().Err(err).Str("subject", subject).Msg("messages dropped: a subscriber does not keep up")
				return
			}
			ev.add(EventAsyncError)
			sampled.Warn().Err(err).Str("subject", subject).Msg("NATS error")
		}),
	}
}
