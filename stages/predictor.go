package stages

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/assemble"
)

// Predictor predicts a model's output from the exact outputs of the models
// that ran (links.Set implements it; with temporal links too, see
// assemble.TemporalPredictor).
type Predictor = assemble.Predictor

// LinkPredictor is a link predictor worker: it takes predict requests from
// the merger (one queue group: more predictors share the load) and publishes
// each target model's predicted output. Its links are hot-swapped with
// SetPredictor while it runs.
type LinkPredictor struct {
	nc       *nats.Conn
	subjects pipeline.Subjects
	log      zerolog.Logger
	links    atomic.Pointer[predictorBox]
	ready    chan struct{}
	stats    PredictorStats
	rejects  *pipeline.Rejects
	sub      atomic.Pointer[nats.Subscription] // while Run serves
}

// QueueDepth is the number of predict requests received and not yet
// served (the subscription's pending messages).
func (lp *LinkPredictor) QueueDepth() int {
	sub := lp.sub.Load()
	if sub == nil {
		return 0
	}
	n, _, _ := sub.Pending()
	return max(n, 0)
}

type predictorBox struct{ p Predictor }

// PredictorStats counts a predictor's work.
type PredictorStats struct {
	Requests    atomic.Int64
	Predictions atomic.Int64
	Errors      atomic.Int64
	nanos       atomic.Int64
}

// MeanPredictMicros is the mean time of one prediction in microseconds.
func (s *PredictorStats) MeanPredictMicros() float64 {
	n := s.Predictions.Load()
	if n == 0 {
		return 0
	}
	return float64(s.nanos.Load()) / 1e3 / float64(n)
}

// NewLinkPredictor creates a predictor worker; Run starts it.
func NewLinkPredictor(nc *nats.Conn, log zerolog.Logger) *LinkPredictor {
	l := pipeline.Component(log, "predictor")
	return &LinkPredictor{nc: nc, subjects: pipeline.DefaultSubjects, log: l, ready: make(chan struct{}), rejects: pipeline.NewRejects(l, 0)}
}

// UseSubjects puts the predictor on a deployment's subjects
// (nats.subject_prefix; the default ones without). Call before Run.
func (lp *LinkPredictor) UseSubjects(s pipeline.Subjects) { lp.subjects = s }

// SetPredictor installs new links; requests already being served finish
// with the links they started with.
func (lp *LinkPredictor) SetPredictor(p Predictor) { lp.links.Store(&predictorBox{p}) }

// Ready is closed once the predictor receives requests.
func (lp *LinkPredictor) Ready() <-chan struct{} { return lp.ready }

// Rejects returns the predictor's counts of refused requests by reason.
func (lp *LinkPredictor) Rejects() *pipeline.Rejects { return lp.rejects }

// Stats returns the predictor's counters.
func (lp *LinkPredictor) Stats() *PredictorStats { return &lp.stats }

// Run serves predict requests until ctx is done.
func (lp *LinkPredictor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	sub, err := lp.nc.QueueSubscribe(lp.subjects.Predict(), lp.subjects.PredictQueue(), func(m *nats.Msg) {
		wg.Add(1)
		defer wg.Done()
		lp.serve(m)
	})
	if err != nil {
		return fmt.Errorf("predictor: subscribe: %w", err)
	}
	lp.sub.Store(sub)
	defer lp.sub.Store(nil)
	if err := lp.nc.Flush(); err != nil {
		return fmt.Errorf("predictor: flush subscription: %w", err)
	}
	close(lp.ready)
	<-ctx.Done()
	if err := sub.Drain(); err != nil {
		lp.log.Warn().Err(err).Msg("drain subscription")
	}
	for sub.IsValid() {
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	return nil
}

func (lp *LinkPredictor) serve(m *nats.Msg) {
	req, err := pipeline.Unmarshal[pipeline.PredictRequest](m.Data)
	if err == nil {
		// The camera and targets become subject tokens of the answers.
		err = pipeline.ValidName(req.Camera)
		for _, t := range req.Targets {
			if err == nil {
				err = pipeline.ValidName(t)
			}
		}
	}
	if err != nil {
		lp.stats.Errors.Add(1)
		lp.rejects.Reject(pipeline.RejectMalformed, m.Subject, err)
		return
	}
	lp.stats.Requests.Add(1)
	var p Predictor
	if box := lp.links.Load(); box != nil {
		p = box.p
	}
	for _, target := range req.Targets {
		start := time.Now()
		out := assemble.Predict(p, req, target)
		out.Token = req.Token // the merger takes it only with the frame's token
		if out.Error != "" {
			lp.stats.Errors.Add(1)
		} else {
			lp.stats.nanos.Add(int64(time.Since(start)))
			lp.stats.Predictions.Add(1)
		}
		data, err := pipeline.Marshal(out)
		if err != nil {
			lp.stats.Errors.Add(1)
			lp.log.Error().Err(err).Str("model", target).Msg("encode prediction")
			continue
		}
		if err := lp.nc.Publish(lp.subjects.Outputs(req.Camera, target), data); err != nil {
			lp.log.Error().Err(err).Msg("publish prediction")
		}
	}
}
