package main

import (
	"context"
	"encoding"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
)

// trainerRole names the trainer role's durable consumer of the results
// stream (Subjects.Consumer: "mlink-trainer" by default): a restarted
// trainer goes on where it stopped.
const trainerRole = "trainer"

// startTrainer runs the trainer role: it learns links from the profiled
// results in the results stream (bootstrap, then every profiling window:
// measure, fine-tune) and publishes each new set, with its measured
// evaluation, to the link store, which the scheduler and the predictors
// follow.
func (a *app) startTrainer(ctx context.Context, nc *nats.Conn) error {
	cfg := a.cfg
	learner, err := newLearner(cfg, cfg.ModelNames())
	if err != nil {
		return err
	}
	tr := scheduler.NewTrainer(scheduler.TrainerConfig{BootstrapFrames: cfg.Scheduler.BootstrapFrames, HoldOut: cfg.Scheduler.HoldOut,
		ActiveBatch: cfg.Scheduler.ActiveBatch, MinTuneFrames: cfg.Scheduler.TuneFrames, TurnBatch: cfg.Scheduler.TurnBatch},
		learner, a.publishLinks, a.log)
	a.trainer = tr
	if set, err := a.linkStore.Latest(ctx); err != nil {
		a.log.Warn().Err(err).Msg("trainer: starting without the stored links")
	} else if set != nil && set.Covers(cfg.ModelNames()) {
		tr.Resume(learner.Adopt(set))
		a.log.Info().Msg("trainer: resuming from the stored links")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, a.subjects.ResultsStream(), jetstream.ConsumerConfig{
		Durable:       a.subjects.Consumer(trainerRole),
		Description:   "mlink trainer: profiled results to link training",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		FilterSubject: a.subjects.AllResults(),
		MaxAckPending: 4096,
	})
	if err != nil {
		return fmt.Errorf("trainer: results consumer: %w", err)
	}
	var stopping atomic.Bool
	cc, err := cons.Consume(func(m jetstream.Msg) {
		r, err := pipeline.Unmarshal[pipeline.Result](m.Data())
		if err != nil {
			a.log.Warn().Err(err).Msg("trainer: skipping a result that does not decode")
		} else {
			tr.Observe(r)
		}
		if err := m.Ack(); err != nil && !stopping.Load() {
			a.log.Debug().Err(err).Msg("trainer: ack")
		}
	})
	if err != nil {
		return fmt.Errorf("trainer: consume results: %w", err)
	}
	_, err = a.goStage(tierTrainer, "trainer", nil, false, func(ctx context.Context) error {
		<-ctx.Done()
		stopping.Store(true)
		cc.Stop()
		return nil
	})
	return err
}

// publishLinks hands a trainer's links to everyone through the link store.
func (a *app) publishLinks(l scheduler.Links) {
	// The scheduler selects on the evaluation that travels with the set:
	// the learner's links attach each measure and carry it through
	// fine-tuning (scheduler.Learned), so it is l.Evidence's.
	set, ok := l.Predictor.(encoding.BinaryMarshaler)
	if !ok {
		a.log.Error().Str("type", fmt.Sprintf("%T", l.Predictor)).Msg("trainer: links that do not marshal not published")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.linkStore.Publish(ctx, set); err != nil {
		a.log.Error().Err(err).Msg("trainer: links not published")
		return
	}
	a.log.Info().Str("reason", l.Reason).Msg("trainer: links published")
}

// installStoredLinks gives the controller links the trainer role
// published: it selects on their evaluation.
func (a *app) installStoredLinks(set scheduler.LinkSet, models []string) {
	ev := set.Evaluation()
	switch {
	case !set.Covers(models):
		a.log.Warn().Msg("stored links do not cover the configured models: waiting for the trainer's")
		return
	case ev == nil:
		a.log.Warn().Msg("stored links carry no evaluation: waiting for the trainer's next")
		return
	}
	reason := "re-profile"
	if a.control.Selection() == nil {
		reason = "bootstrap"
	}
	a.control.InstallLinks(scheduler.Links{Predictor: set, Evidence: scheduler.NewLinkEvidence(ev), Reason: reason})
}
