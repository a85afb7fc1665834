package scheduler

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

// TrainerConfig configures a Trainer.
type TrainerConfig struct {
	// BootstrapFrames profiled frames train the first links; HoldOut is the
	// share of them (the latest) kept out of training to measure the links.
	BootstrapFrames int
	HoldOut         float64
	// Synchronous trains on the goroutine that delivers the result (trace
	// replays); live, training runs in the background.
	Synchronous bool
	// ActiveBatch: frames profiled by active sampling (Plan.Sampled) are
	// collected until there are this many, then the links are fine-tuned on
	// them. Default 16.
	ActiveBatch int
	// MinTuneFrames: profiling windows' frames are pooled until there are
	// this many before the links are fine-tuned on them (fine-tuning for
	// the full epochs on a handful of frames overfits them; the paper tunes
	// on 50). Default 30.
	MinTuneFrames int
	// MinMeasureFrames: windows smaller than this are pooled with the next
	// ones before the links are measured and the models re-selected (a
	// selection on one frame's evidence would follow noise). Default 10.
	MinMeasureFrames int
	// TurnBatch: frames on which a model the selection does not run on
	// every frame ran on its turn, next to other exact outputs, are pooled
	// until there are this many; then the links are fine-tuned on them.
	// Every such frame is a fresh (sources, target) pair the budget paid
	// for anyway. 0 is off.
	TurnBatch int
}

// TrainerStats counts a trainer's work.
type TrainerStats struct {
	Profiled    atomic.Int64
	Trainings   atomic.Int64
	TrainErrors atomic.Int64
	// Sampled counts frames profiled by active sampling; ActiveTunings the
	// fine-tunings on them.
	Sampled       atomic.Int64
	ActiveTunings atomic.Int64
	// Turns counts rotation-turn frames collected; TurnTunings the
	// fine-tunings on them.
	Turns       atomic.Int64
	TurnTunings atomic.Int64
}

// Links is what a trainer hands over: links, the evidence measured on
// frames they were not trained on, and why they were made.
type Links struct {
	Predictor Predictor
	Evidence  SetEvidence
	// Reason is "bootstrap" (first links, measured on held-out cold-start
	// frames), "re-profile" (measured on a profiling window's fresh frames,
	// then fine-tuned on them) or "active" (fine-tuned on frames active
	// sampling chose; the evidence is the last measured).
	Reason string
	At     time.Time
}

// Trainer learns links from the results of profiling frames (every model
// exact): once BootstrapFrames are in it trains the first links; at the end
// of every later profiling window (the first result that is not profiled)
// it measures the links on the window's frames, fine-tunes them on those
// frames and hands both over. It runs inside the scheduler's process, or as
// the separate trainer role fed by the results stream.
type Trainer struct {
	cfg     TrainerConfig
	learner Learner
	log     zerolog.Logger
	install func(Links)

	mu         sync.Mutex
	samples    []*links.TraceRecord // profiled frames of the current window
	history    []*links.TraceRecord // bounded, for the first training
	sampled    []*links.TraceRecord // frames chosen by active sampling
	pooled     []*links.TraceRecord // window frames waiting for a fine-tune
	unmeasured []*links.TraceRecord // window frames waiting to be measured
	turns      []*links.TraceRecord // rotation-turn frames waiting for a fine-tune
	// served holds the models some plan served without running them
	// (predicted, reused, tracked): on a frame where one runs, it is a
	// training target.
	served   map[string]bool
	inWindow bool
	training bool
	// retryAt is the history length at which a failed first training is
	// tried again (not on every later frame).
	retryAt   int
	predictor Learned
	evidence  SetEvidence // the latest measured
	stats     TrainerStats
}

// NewTrainer creates a trainer that calls install with every new set of
// links (from the training goroutine).
func NewTrainer(cfg TrainerConfig, learner Learner, install func(Links), log zerolog.Logger) *Trainer {
	if cfg.BootstrapFrames <= 0 {
		cfg.BootstrapFrames = 100
	}
	if cfg.HoldOut <= 0 || cfg.HoldOut >= 1 {
		cfg.HoldOut = 0.3
	}
	if cfg.ActiveBatch <= 0 {
		cfg.ActiveBatch = 16
	}
	if cfg.MinTuneFrames <= 0 {
		cfg.MinTuneFrames = 30
	}
	if cfg.MinMeasureFrames <= 0 {
		cfg.MinMeasureFrames = min(10, cfg.MinTuneFrames)
	}
	return &Trainer{cfg: cfg, learner: learner, install: install, log: pipeline.Component(log, "trainer"), served: map[string]bool{}}
}

// SetBootstrapFrames changes how many profiled frames the first links wait
// for (the controller scales it with the budget once the costs are known).
// Once the first links are trained it changes nothing.
func (t *Trainer) SetBootstrapFrames(n int) {
	if n <= 0 {
		return
	}
	t.mu.Lock()
	t.cfg.BootstrapFrames = n
	t.mu.Unlock()
}

// Stats returns the trainer's counters.
func (t *Trainer) Stats() *TrainerStats { return &t.stats }

// Busy reports whether links are being trained.
func (t *Trainer) Busy() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.training
}

// Resume starts from links trained earlier (a restarted trainer role takes
// the published links): later windows measure and fine-tune them instead
// of waiting for a cold start.
func (t *Trainer) Resume(p Learned) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.predictor == nil {
		t.predictor = p
	}
}

// Observe learns from one frame's result.
func (t *Trainer) Observe(r *pipeline.Result) {
	if !r.Plan.Profiling {
		t.mu.Lock()
		ended := t.inWindow && t.predictor != nil
		t.inWindow = false
		t.mu.Unlock()
		if ended {
			t.background(t.endOfWindow)
		}
		if t.cfg.TurnBatch > 0 {
			t.observeTurn(r)
		}
		return
	}
	rec := &links.TraceRecord{Camera: r.Camera, Seq: r.Seq, Time: r.CapturedAt, Outputs: map[string]*pipeline.Output{}}
	for name, o := range r.Outputs {
		if o.Source == pipeline.SourceExact && o.Error == "" {
			rec.Outputs[name] = o
		}
	}
	if r.Plan.Sampled {
		t.observeSampled(rec)
		return
	}
	t.stats.Profiled.Add(1)
	t.mu.Lock()
	t.inWindow = true
	t.samples = appendBounded(t.samples, rec, maxHistory)
	t.history = appendBounded(t.history, rec, maxHistory)
	bootstrap := t.predictor == nil && !t.training && len(t.history) >= max(t.cfg.BootstrapFrames, t.retryAt)
	if bootstrap {
		t.training = true
	}
	t.mu.Unlock()
	if bootstrap {
		t.background(t.bootstrap)
	}
}

func (t *Trainer) background(f func()) {
	if t.cfg.Synchronous {
		f()
		return
	}
	go f()
}

// observeSampled collects a frame active sampling chose; a full batch
// fine-tunes the links.
func (t *Trainer) observeSampled(rec *links.TraceRecord) {
	t.stats.Sampled.Add(1)
	t.mu.Lock()
	// Without links to tune (a trainer waiting for its first training)
	// only the latest batches are worth keeping.
	t.sampled = appendBounded(t.sampled, rec, 4*t.cfg.ActiveBatch)
	ready := len(t.sampled) >= t.cfg.ActiveBatch && t.predictor != nil && !t.training
	if ready {
		t.training = true
	}
	t.mu.Unlock()
	if ready {
		t.background(t.fineTuneSampled)
	}
}

// observeTurn collects a frame on which a model that is not run on every
// frame ran (its turn), with at least one other model exact; a full batch
// fine-tunes the links.
func (t *Trainer) observeTurn(r *pipeline.Result) {
	t.mu.Lock()
	for _, list := range [][]string{r.Plan.Predicted, r.Plan.Reused, r.Plan.Tracked} {
		for _, name := range list {
			t.served[name] = true
		}
	}
	target := false
	rec := &links.TraceRecord{Camera: r.Camera, Seq: r.Seq, Time: r.CapturedAt, Outputs: map[string]*pipeline.Output{}}
	for name, o := range r.Outputs {
		if o.Source == pipeline.SourceExact && o.Error == "" {
			rec.Outputs[name] = o
			target = target || t.served[name]
		}
	}
	if !target || len(rec.Outputs) < 2 || t.predictor == nil {
		t.mu.Unlock()
		return
	}
	t.turns = appendBounded(t.turns, rec, 4*t.cfg.TurnBatch)
	ready := len(t.turns) >= t.cfg.TurnBatch && !t.training
	if ready {
		t.training = true
	}
	t.mu.Unlock()
	t.stats.Turns.Add(1)
	if ready {
		t.background(t.fineTuneTurns)
	}
}

// fineTuneTurns trains the links further on the pooled rotation turns.
// The evidence stays the last measured (on profiling frames: turn frames
// lack most targets, so they cannot measure the whole set).
func (t *Trainer) fineTuneTurns() {
	t.mu.Lock()
	turns, p, ev := t.turns, t.predictor, t.evidence
	t.turns = nil
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.training = false
		t.mu.Unlock()
	}()
	tuned, err := p.FineTune(turns)
	if err != nil {
		t.stats.TrainErrors.Add(1)
		t.log.Warn().Err(err).Msg("fine-tuning links on rotation turns failed; keeping the previous links")
		return
	}
	t.stats.TurnTunings.Add(1)
	t.mu.Lock()
	t.predictor = tuned
	t.mu.Unlock()
	t.install(Links{Predictor: tuned.Predictor(), Evidence: ev, Reason: "turns", At: turns[len(turns)-1].Time})
}

// fineTuneSampled adapts the links to the frames they predicted worst.
func (t *Trainer) fineTuneSampled() {
	t.mu.Lock()
	samples, p, ev := t.sampled, t.predictor, t.evidence
	t.sampled = nil
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.training = false
		t.mu.Unlock()
	}()
	tuned, err := p.FineTune(samples)
	if err != nil {
		t.stats.TrainErrors.Add(1)
		t.log.Warn().Err(err).Msg("fine-tuning links on sampled frames failed; keeping the previous links")
		return
	}
	t.stats.ActiveTunings.Add(1)
	t.mu.Lock()
	t.predictor = tuned
	t.mu.Unlock()
	t.log.Debug().Int("frames", len(samples)).Msg("links fine-tuned on actively sampled frames")
	t.install(Links{Predictor: tuned.Predictor(), Evidence: ev, Reason: "active", At: samples[len(samples)-1].Time})
}

// appendBoundedAll appends recs and keeps the last n records.
func appendBoundedAll(dst, recs []*links.TraceRecord, n int) []*links.TraceRecord {
	for _, r := range recs {
		dst = appendBounded(dst, r, n)
	}
	return dst
}

// appendBounded appends rec and keeps the last n records.
func appendBounded(recs []*links.TraceRecord, rec *links.TraceRecord, n int) []*links.TraceRecord {
	recs = append(recs, rec)
	if len(recs) > n {
		recs = append(recs[:0:0], recs[len(recs)-n:]...)
	}
	return recs
}

// bootstrap trains the first links on the cold-start frames and measures
// them on a held-out share.
func (t *Trainer) bootstrap() {
	t.mu.Lock()
	samples := append([]*links.TraceRecord(nil), t.history...)
	t.samples = nil
	t.mu.Unlock()
	train, eval := splitSamples(samples, t.cfg.HoldOut)
	start := time.Now()
	t.stats.Trainings.Add(1)
	p, err := t.learner.Train(train)
	var ev SetEvidence
	if err == nil {
		ev, err = p.Measure(eval)
	}
	t.mu.Lock()
	t.training = false
	if err == nil {
		t.predictor, t.evidence = p, ev
	}
	t.mu.Unlock()
	if err != nil {
		t.stats.TrainErrors.Add(1)
		t.mu.Lock()
		// Try again once as many new frames are in (the history is
		// bounded: then on every BootstrapFrames-th frame).
		t.retryAt = min(len(t.history)+t.cfg.BootstrapFrames, maxHistory)
		if keep := maxHistory - t.cfg.BootstrapFrames; len(t.history) > keep {
			t.history = append(t.history[:0:0], t.history[len(t.history)-keep:]...)
		}
		t.mu.Unlock()
		t.log.Error().Err(err).Msg("training links failed; every model keeps running")
		return
	}
	t.log.Info().Int("frames", len(samples)).Dur("took", time.Since(start)).Msg("links trained")
	t.install(Links{Predictor: p.Predictor(), Evidence: ev, Reason: "bootstrap", At: samples[len(samples)-1].Time})
}

// endOfWindow measures the links on the window's frames (fresh evidence),
// fine-tunes them on those frames and hands both over.
func (t *Trainer) endOfWindow() {
	t.mu.Lock()
	p := t.predictor
	busy := t.training || p == nil || len(t.samples) == 0
	if busy {
		t.mu.Unlock()
		return
	}
	t.unmeasured = appendBoundedAll(t.unmeasured, t.samples, maxHistory)
	t.samples = nil
	samples := t.unmeasured
	if len(samples) < t.cfg.MinMeasureFrames {
		t.mu.Unlock()
		return // pooled with the next window
	}
	t.unmeasured = nil
	t.training = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.training = false
		t.mu.Unlock()
	}()
	ev, err := p.Measure(samples)
	if err != nil {
		t.stats.TrainErrors.Add(1)
		t.log.Error().Err(err).Msg("measuring links failed")
		return
	}
	t.mu.Lock()
	t.pooled = appendBoundedAll(t.pooled, samples, maxHistory)
	pool := t.pooled
	if len(pool) >= t.cfg.MinTuneFrames {
		t.pooled = nil
	}
	t.mu.Unlock()
	tuned := p
	if len(pool) >= t.cfg.MinTuneFrames {
		t.stats.Trainings.Add(1)
		if tuned, err = p.FineTune(pool); err != nil {
			t.stats.TrainErrors.Add(1)
			t.log.Warn().Err(err).Msg("fine-tuning links failed; keeping the previous links")
			tuned = p
		}
	}
	t.mu.Lock()
	t.predictor, t.evidence = tuned, ev
	t.mu.Unlock()
	t.log.Info().Int("frames", len(samples)).Int("tuned_on", len(pool)).Msg("links re-measured")
	t.install(Links{Predictor: tuned.Predictor(), Evidence: ev, Reason: "re-profile", At: samples[len(samples)-1].Time})
}
