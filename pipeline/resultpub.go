package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// ResultPublisher publishes results as JetStream publishes that the results
// stream acknowledges, and publishes again what it did not acknowledge: a
// result published while a cluster elects the stream's new leader (6–8 s
// when a node dies) or while the server is away is stored once it is back,
// rather than reaching only the live subscribers of that moment.
//
// Each result carries a message id (camera, seq and capture time), so a
// publish repeated after a lost acknowledgement is a duplicate the stream
// drops, never a second copy. Live subscribers do get a repeat: consumers
// of mlink.results.* that must not count a result twice key it by camera
// and seq (ingest's in-flight credits already do).
//
// Publish never blocks for the acknowledgement; Run republishes. Safe for
// concurrent use.
type ResultPublisher struct {
	js     jetstream.JetStream
	log    zerolog.Logger
	giveUp time.Duration
	stats  ResultPublisherStats
	retry  chan retryEntry
	drops  *Rejects // sampled log of results given up

	mu    sync.Mutex
	first map[string]time.Time // message id → its first publish, until acknowledged
}

// ResultPublisherStats counts a publisher's work.
type ResultPublisherStats struct {
	// Published counts results handed to Publish; Acked those the stream
	// acknowledged; Retried publishes repeated; Lost results given up
	// (unacknowledged past the give-up age, or no room to retry).
	Published, Acked, Retried, Lost atomic.Int64
}

// Result publishing's bounds.
const (
	// ResultAckWait is how long one publish waits for its acknowledgement
	// before it is repeated.
	ResultAckWait = 3 * time.Second
	// ResultGiveUp is how long a result is retried before it is counted
	// lost: past it the frame is history a live subscriber has moved on from.
	ResultGiveUp = 60 * time.Second
	// resultsInFlight bounds the publishes awaiting acknowledgement; past
	// it a publish waits resultStallWait, then goes to the retry queue.
	resultsInFlight = 4096
	resultStallWait = 20 * time.Millisecond
	resultRetryGap  = 250 * time.Millisecond
)

// NewResultPublisher returns a publisher on nc; Run must run for
// unacknowledged results to be published again.
func NewResultPublisher(nc *nats.Conn, log zerolog.Logger) (*ResultPublisher, error) {
	p := &ResultPublisher{
		log:    log,
		giveUp: ResultGiveUp,
		retry:  make(chan retryEntry, 2*resultsInFlight),
		first:  map[string]time.Time{},
		drops:  NewRejects(log, 0),
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(resultsInFlight),
		jetstream.WithPublishAsyncTimeout(ResultAckWait),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { p.failed(m, err) }),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) { p.acked(m) }),
	)
	if err != nil {
		return nil, fmt.Errorf("result publisher: %w", err)
	}
	p.js = js
	return p, nil
}

// Stats returns the publisher's counters.
func (p *ResultPublisher) Stats() *ResultPublisherStats { return &p.stats }

// ResultMsgID is the JetStream message id of a result: the capture time
// tells apart the frames of a camera whose seqs started again.
func ResultMsgID(r *Result) string {
	return fmt.Sprintf("%s/%d/%d", r.Camera, r.Seq, r.CapturedAt.UnixNano())
}

// Publish publishes msg (a result, its subject and headers set) with the
// message id id. An error means the result was not even handed to the
// connection and will not be retried (the connection is closed).
func (p *ResultPublisher) Publish(msg *nats.Msg, id string) error {
	msg.Header.Set(jetstream.MsgIDHeader, id)
	p.mu.Lock()
	p.first[id] = time.Now()
	p.mu.Unlock()
	p.stats.Published.Add(1)
	if err := p.send(msg); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			p.forget(id)
			p.stats.Lost.Add(1)
			return fmt.Errorf("publish result: %w", err)
		}
		p.failed(msg, err)
	}
	return nil
}

func (p *ResultPublisher) send(msg *nats.Msg) error {
	// A fresh message each time: the client keeps the reply subject of
	// the publish it waits on in the message.
	out := &nats.Msg{Subject: msg.Subject, Header: msg.Header, Data: msg.Data}
	_, err := p.js.PublishMsgAsync(out, jetstream.WithStallWait(resultStallWait))
	return err
}

func (p *ResultPublisher) acked(m *nats.Msg) {
	id := m.Header.Get(jetstream.MsgIDHeader)
	p.mu.Lock()
	_, pending := p.first[id]
	delete(p.first, id)
	p.mu.Unlock()
	if pending { // not the second acknowledgement of a repeated publish
		p.stats.Acked.Add(1)
	}
}

// Pending is the number of results published and neither acknowledged
// nor given up yet.
func (p *ResultPublisher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.first)
}

func (p *ResultPublisher) forget(id string) {
	p.mu.Lock()
	delete(p.first, id)
	p.mu.Unlock()
}

// failed queues an unacknowledged result for Run to publish again. It runs
// on the client's ack goroutine: it must not block.
func (p *ResultPublisher) failed(m *nats.Msg, err error) {
	select {
	case p.retry <- retryEntry{m, time.Now().Add(resultRetryGap)}:
	default:
		p.lose(m, fmt.Errorf("no room to retry (%d results waiting): %w", cap(p.retry), err))
	}
}

func (p *ResultPublisher) lose(m *nats.Msg, err error) {
	p.forget(m.Header.Get(jetstream.MsgIDHeader))
	p.stats.Lost.Add(1)
	p.drops.Reject(RejectUnroutable, m.Subject, fmt.Errorf("result %s not stored in the results stream: %w", m.Header.Get(jetstream.MsgIDHeader), err))
}

// Run publishes unacknowledged results again until ctx is done, each not
// sooner than resultRetryGap after it failed, and gives up on a result
// after the give-up age. When ctx is done it goes on for up to drain,
// until every result is acknowledged or given up: a stopping merger's last
// results, and those of an election still in progress, get stored.
func (p *ResultPublisher) Run(ctx context.Context, drain time.Duration) {
	p.serve(ctx)
	if drain <= 0 {
		return
	}
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	go func() { // end the drain early once nothing is left
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for dctx.Err() == nil {
			if p.Pending() == 0 {
				cancel()
				return
			}
			<-tick.C
		}
	}()
	p.serve(dctx)
	if n := p.Pending(); n > 0 {
		p.log.Warn().Int("unacknowledged", n).Dur("waited", drain).Msg("stopping with results the stream has not acknowledged")
	}
}

func (p *ResultPublisher) serve(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-p.retry:
			p.republish(ctx, e)
		}
	}
}

// retryEntry is a result to publish again, not before at.
type retryEntry struct {
	msg *nats.Msg
	at  time.Time
}

func (p *ResultPublisher) republish(ctx context.Context, e retryEntry) {
	m := e.msg
	id := m.Header.Get(jetstream.MsgIDHeader)
	p.mu.Lock()
	first, pending := p.first[id]
	p.mu.Unlock()
	if !pending {
		return // acknowledged meanwhile (a late acknowledgement)
	}
	if time.Since(first) > p.giveUp {
		p.lose(m, fmt.Errorf("unacknowledged for %s", p.giveUp))
		return
	}
	// A publish may fail at once (no stream leader, the client's window
	// full): pace the repeats rather than spin. Entries queue in the order
	// they failed, so waiting for the head's time is waiting for the next.
	if wait := time.Until(e.at); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			p.requeue(e)
			return
		case <-t.C:
		}
	}
	p.stats.Retried.Add(1)
	if err := p.send(m); err != nil {
		p.failed(m, err)
	}
}

// requeue puts back an entry taken when Run was stopped, for the drain.
func (p *ResultPublisher) requeue(e retryEntry) {
	select {
	case p.retry <- e:
	default:
		p.lose(e.msg, errors.New("no room to retry at stop"))
	}
}
