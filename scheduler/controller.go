package scheduler

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/assemble"
)

// Predictor predicts a model's output from the exact outputs of the models
// that ran on a frame. It is assemble's: the controller installs what the
// predictors and the replay call, so the two cannot drift apart.
type Predictor = assemble.Predictor

// Learner trains model links on profiled frames. Its training may take
// seconds: the controller calls it off the routing path.
type Learner interface {
	// Train fits links on profiled frames.
	Train(samples []*links.TraceRecord) (Learned, error)
}

// Learned is links a Learner trained: they measure and adapt themselves.
// Measuring and fine-tuning need the learner's own type (a links.Set's
// evaluation and training), and only the value the learner made knows it:
// the trainer hands it back to itself instead of handing a Predictor to the
// learner, which would have to downcast it. The predictor is a separate
// accessor, not an embedded interface, so a wrapper (replay's cache) hides
// nothing the installed links can do (temporal links, loss heads,
// marshalling).
type Learned interface {
	// Predictor is what the predictors install.
	Predictor() Predictor
	// Measure measures how well the links predict each model on held-out
	// frames, and keeps the measure with them (it travels with the
	// predictor where it can: LinkSet).
	Measure(samples []*links.TraceRecord) (SetEvidence, error)
	// FineTune adapts the links to newly profiled frames (periodic
	// adaptation); the result keeps the last measure until measured again.
	FineTune(samples []*links.TraceRecord) (Learned, error)
}

// ControllerConfig configures a policy (the settings it does not use are
// ignored).
type ControllerConfig struct {
	Policy          PolicyName
	Models          []string
	Budget          Budget
	Period          time.Duration
	ProfileShare    float64
	BootstrapFrames int
	HoldOut         float64
	// HealthTimeout is how long a model's workers may be silent (or stuck
	// with work queued) before the model is predicted instead of run.
	HealthTimeout time.Duration
	// Synchronous trains and measures links on the goroutine that delivers
	// the result completing a profiling window: replays of a trace (mlink
	// bench) decide exactly as the live scheduler would, deterministically.
	// Live, training runs off the routing path.
	Synchronous bool
	// RemoteTraining: links are trained by a trainer role elsewhere and
	// arrive through InstallLinks; the controller only plans and selects.
	RemoteTraining bool
	// ActiveShare is the share of frames active sampling may profile on top
	// of the periodic windows: the frame after one whose links predict a
	// high loss (0: off; the paper: 1–5 %).
	ActiveShare float64
	// ActiveBatch is how many sampled frames make one fine-tuning.
	ActiveBatch int
	// TuneFrames: profiled frames pooled before a fine-tuning (see
	// TrainerConfig.MinTuneFrames).
	TuneFrames int
	// TurnBatch: rotation-turn frames pooled before a fine-tuning (see
	// TrainerConfig.TurnBatch); 0 is off.
	TurnBatch int
	// TurnEvidence (mlink-hybrid): every rotation turn measures how each
	// way of serving the rotating model would have done (turnEvidence), and
	// the selection is made again on the evidence they correct. Off by
	// default: on the committed traces it moved rows by under a point
	// either way.
	TurnEvidence bool
	// Importance weighs each camera's and model's outputs (dcta; see
	// Importance.Of). nil: all weigh 1.
	Importance Importance
	// CoE holds policy coe's cascades (scheduler.coe).
	CoE pipeline.CoEConfig
	// JellyBean is policy jellybean's SLOs and variants.
	JellyBean pipeline.JellyBeanConfig
	// Pools are the worker pools (the config's pools section) jellybean
	// places models on and coe's tiers name.
	Pools []pipeline.WorkerPool
	// Features are the frames' own features, for the policies that predict
	// from them (PolicySpec.FrameFeatures: mtl); a replay decodes them.
	Features FrameFeatures
	// Seed seeds a policy's random choices (drls/random's order), so that a
	// replay is deterministic.
	Seed int64
}

// Selection is the controller's current decision.
type Selection struct {
	Exact     []string
	Predicted []string
	// Absent models are served by nobody (Standalone).
	Absent []string
	// Expected is the system accuracy the measured evidence promises.
	Expected float64
	// Reused models (mlink-hybrid) take their own last exact output where
	// they do not run; Temporal ones (also Predicted) are predicted with
	// their own last exact output among the sources.
	Reused   []string
	Temporal []string
	// Tracked and Follow (mlink-hybrid): reused detectors carried along
	// their own motion, or an always-run detector's (Plan.Tracked, Follow).
	Tracked []string
	Follow  map[string]pipeline.FollowLink
	// Every: models (mlink-hybrid) run on every Every[m]-th frame only; on
	// the others they are predicted or reused.
	Every map[string]int
	// Accuracy is each predicted model's measured accuracy.
	Accuracy map[string]float64
	At       time.Time
	Reason   string
	// Budget is what the selection was made within: the configured budget,
	// less (under a mean time budget) the profiling reserved and the
	// overspending being repaid.
	Budget Budget
	// PerCamera (dcta) is what runs on each camera's frames; Exact is then
	// every model run on some camera.
	PerCamera map[string][]string
	// Placement maps models to the worker pools that run them (jellybean's
	// placement, coe's tier pools): Controller.route sends each model's
	// frames there, in the shares' proportions. nil: the unpooled workers.
	Placement map[string][]Share

	phases map[string]int
	// solvedMS are the costs the selection was solved with (dcta re-solves
	// when they drift).
	solvedMS map[string]float64
}

// Controller runs a policy: its Scheme decides; the controller keeps what
// every policy shares — the profiling clock and per-camera frame counts, the
// measured costs and the budget's books, worker health, and for the link
// policies the links, their training and active sampling. It re-selects
// when the scheme's evidence changes and re-plans at once when a model's
// workers die.
type Controller struct {
	cfg    ControllerConfig
	spec   PolicySpec
	scheme Scheme
	costs  *CostModel
	log    zerolog.Logger
	// trainer learns links from profiled results in this process (nil with
	// RemoteTraining and for the policies without links).
	trainer *Trainer

	// Routing-goroutine state (Plan).
	periodStart time.Time
	frameIndex  map[string]int64 // per camera, for rotations
	// profiledCam: cameras that have had a profiling frame. A camera that
	// has not (it joined after the last window, or the links came from the
	// link store) has no exact output to reuse yet.
	profiledCam map[string]bool
	// steps measures each camera's seq step between planned frames: the
	// hybrid's ages are frames of that stream, the evidence's are seqs.
	steps streamSteps

	sampler *ActiveSampler
	// books charge every planned frame's executions against the budget.
	books budgetBooks

	mu         sync.Mutex
	predictor  Predictor
	sampleNext map[string]bool // cameras whose next frame active sampling wants
	selection  atomic.Pointer[Selection]
	// pools is the health of each model's workers per pool ("": the
	// unpooled ones): a model is healthy while some pool of it answers.
	// pooledHeard: some worker of a pool has been heard.
	pools       map[string]map[string]*modelHealth
	pooledHeard atomic.Bool
	router      poolRouter
	// unservedLogged: the models whose unserved placement was logged.
	unservedLogged map[string]bool
	stats          ControllerStats
	onPredictor    func(Predictor)
	// evidence is the latest measured (by the trainer), which turn
	// re-selections correct; turns measures the rotation turns (schemes
	// that rotate models: turnMeasurer), nil for the others.
	evidence SetEvidence
	turns    *turnEvidence
}

// ControllerStats counts the controller's work.
type ControllerStats struct {
	Profiled   atomic.Int64
	Selections atomic.Int64
	// Sampled counts frames active sampling asked to profile.
	Sampled atomic.Int64
	// Agreement of predicted outputs with exact ones, measured on profiling
	// frames (sum and count of per-model accuracies).
	agreeSum atomic.Uint64 // micro-units
	agreeN   atomic.Int64
	// PoolFallbacks counts models sent elsewhere than their placement
	// pool because its workers stopped answering (route).
	PoolFallbacks atomic.Int64
	// PoolUnserved counts models sent elsewhere than their placement pool
	// because no worker of them ever joined it (route).
	PoolUnserved atomic.Int64
}

// MeasuredAccuracy is the mean accuracy of predictions measured on the
// latest held-out profiling frames.
func (s *ControllerStats) MeasuredAccuracy() (float64, bool) {
	n := s.agreeN.Load()
	if n == 0 {
		return 0, false
	}
	return float64(s.agreeSum.Load()) / 1e6 / float64(n), true
}

type modelHealth struct {
	lastBeat     time.Time
	queued       int
	lastProgress time.Time
}

const maxHistory = 2000

// NewController creates the registered policy cfg.Policy. learner trains
// links in this process: the link policies need one, unless RemoteTraining;
// the others take nil. costs may be nil (costs are then measured from an
// empty model).
func NewController(cfg ControllerConfig, learner Learner, costs *CostModel, log zerolog.Logger) (*Controller, error) {
	spec, ok := LookupPolicy(cfg.Policy)
	if !ok {
		return nil, fmt.Errorf("controller: %w", unknownPolicy(cfg.Policy))
	}
	if spec.Links && learner == nil && !cfg.RemoteTraining {
		return nil, fmt.Errorf("policy %s needs a link learner", cfg.Policy)
	}
	if spec.FrameFeatures && cfg.Features == nil {
		return nil, fmt.Errorf("policy %s predicts from the frames themselves and needs their features, which only a replay of a trace has (use mlink bench)", cfg.Policy)
	}
	if cfg.HealthTimeout == 0 {
		cfg.HealthTimeout = 3 * time.Second
	}
	if cfg.Period <= 0 {
		cfg.Period = time.Hour // the paper's; a zero period would never end
	}
	if costs == nil {
		costs = NewCostModel(nil)
	}
	c := &Controller{cfg: cfg, spec: spec, scheme: spec.New(cfg), costs: costs, log: pipeline.Component(log, "controller"),
		pools: map[string]map[string]*modelHealth{}, frameIndex: map[string]int64{}, sampleNext: map[string]bool{},
		profiledCam: map[string]bool{}}
	if spec.Links && cfg.ActiveShare > 0 {
		c.sampler = NewActiveSampler(cfg.ActiveShare)
	}
	if spec.Links && !cfg.RemoteTraining {
		c.trainer = NewTrainer(TrainerConfig{BootstrapFrames: cfg.BootstrapFrames, HoldOut: cfg.HoldOut, Synchronous: cfg.Synchronous, ActiveBatch: cfg.ActiveBatch,
			MinTuneFrames: cfg.TuneFrames, TurnBatch: cfg.TurnBatch},
			learner, c.InstallLinks, log)
	}
	if _, ok := c.scheme.(turnMeasurer); ok && spec.Links && cfg.TurnEvidence {
		c.turns = newTurnEvidence()
	}
	if _, ok := c.scheme.(selectsAtStart); ok {
		c.reselect(time.Time{}, "needs no evidence")
	}
	return c, nil
}

// selectsAtStart is a scheme whose selection needs nothing measured (all).
type selectsAtStart interface{ selectsAtStart() }

// Name implements Policy.
func (c *Controller) Name() string { return string(c.cfg.Policy) }

// Policy is the registered policy the controller runs.
func (c *Controller) Policy() PolicySpec { return c.spec }

// Stats returns the controller's counters.
func (c *Controller) Stats() *ControllerStats { return &c.stats }

// Selection returns the current selection (nil before the first one).
func (c *Controller) Selection() *Selection { return c.selection.Load() }

// OnPredictor registers a function called with every newly trained
// predictor (the link predictor workers hot-swap to it).
func (c *Controller) OnPredictor(f func(Predictor)) {
	c.mu.Lock()
	c.onPredictor = f
	c.mu.Unlock()
}

// Plan implements Policy.
func (c *Controller) Plan(f FrameInfo) pipeline.Plan {
	now := f.CapturedAt
	if now.IsZero() {
		now = time.Now()
	}
	return c.plan(f, now)
}

func (c *Controller) plan(f FrameInfo, now time.Time) pipeline.Plan {
	index := c.frameIndex[f.Camera]
	c.frameIndex[f.Camera] = index + 1
	c.steps.observe(f.Camera, f.Seq)
	plan := pipeline.Plan{Camera: f.Camera, Seq: f.Seq, Policy: string(c.cfg.Policy)}
	plan = c.scheme.Plan(c, f, index, now, plan)
	c.route(&plan)
	// Only active sampling reads the links' predicted losses: without it
	// the predicted outputs do not carry them.
	plan.Losses = c.sampler != nil && len(plan.Predicted) > 0
	return plan
}

// planWithLinks is the link policies' plan: profiling frames (the cold
// start, the periodic windows, a camera's first frame, active samples) run
// every model; the others run the selection and predict or reuse the rest,
// rotating models on their turns.
func (c *Controller) planWithLinks(f FrameInfo, index int64, now time.Time, plan pipeline.Plan) pipeline.Plan {
	sel := c.selection.Load()
	// Periods count from the first frame, cold start included.
	inWindow := c.profiling(now)
	if sel == nil && c.bootstrapTraining() {
		// The cold-start frames are in and links are training: keep to the
		// budget meanwhile with the cheapest models, reusing the others'
		// last exact outputs.
		plan.Exact = SelectStandalone(c.cfg.Models, c.costs.Costs(), c.cfg.Budget)
		if len(plan.Exact) == 0 {
			plan.Exact = SelectStandalone(c.cfg.Models, c.costs.Costs(), Budget{})[:1]
		}
		plan.Reused = minus(c.cfg.Models, plan.Exact)
		return plan
	}
	// Under a mean time budget the evidence is paid at the budget's pace:
	// a frame is profiled only when the books afford it; the frames
	// between run nothing and reuse the fresh exact outputs (the cold start
	// then looks like frame skipping, and no debt is left to starve later
	// frames). A camera's first frame is always profiled: it has nothing
	// to reuse.
	costs := c.costs.Costs()
	paced := c.pacesEvidence()
	affordable := !paced || c.books.affords(sum(costs, c.cfg.Models).MS, c.cfg.Budget.MS) || !c.profiledCam[f.Camera]
	if sel == nil || inWindow {
		if !affordable {
			plan.Reused = c.cfg.Models
			return plan
		}
		plan.Exact, plan.Profiling = c.cfg.Models, true
		c.profiledCam[f.Camera] = true
		return plan
	}
	if !c.profiledCam[f.Camera] {
		// The camera's first frame under links: profiled so that every
		// model has an exact output to reuse, and kept apart from the
		// periodic windows' evidence like an actively sampled frame.
		plan.Exact, plan.Profiling, plan.Sampled = c.cfg.Models, true, true
		c.profiledCam[f.Camera] = true
		return plan
	}
	if affordable && c.takeSample(f.Camera) {
		plan.Exact, plan.Profiling, plan.Sampled = c.cfg.Models, true, true
		return plan
	}
	plan.Exact, plan.Predicted = c.healthyPlan(sel)
	plan.Reused, plan.Temporal = sel.Reused, sel.Temporal
	plan.Tracked, plan.Follow = sel.Tracked, sel.Follow
	if len(sel.Every) > 0 {
		plan.Sources = plan.Exact // links predict from what the selection measured: the always-run models
		c.takeTurns(&plan, index, sel, costs)
	}
	return plan
}

// takeTurns adds the rotating models (sel.Every) whose turn the camera's
// index-th frame is to the executed ones, and out of the predicted, reused
// and temporal ones. A model whose workers are gone skips its turns; so
// does one the books cannot afford now under a mean budget, so that the
// run's mean never ends over the budget. plan's slices are copied first:
// they may be the selection's.
func (c *Controller) takeTurns(plan *pipeline.Plan, index int64, sel *Selection, costs map[string]Cost) {
	plan.Exact = slices.Clone(plan.Exact)
	plan.Predicted = slices.Clone(plan.Predicted)
	plan.Reused = slices.Clone(plan.Reused)
	plan.Temporal = slices.Clone(plan.Temporal)
	paced := c.pacesEvidence()
	frameMS := sum(costs, plan.Exact).MS
	for _, m := range c.cfg.Models {
		k := sel.Every[m]
		if k <= 1 || !runsOn(index, k, sel.phases[m]) || !c.Healthy(m) {
			continue
		}
		if paced && !c.books.affords(frameMS+costs[m].MS, c.cfg.Budget.MS) {
			continue
		}
		frameMS += costs[m].MS
		plan.Exact = append(plan.Exact, m)
		plan.Predicted = slices.DeleteFunc(plan.Predicted, func(s string) bool { return s == m })
		plan.Reused = slices.DeleteFunc(plan.Reused, func(s string) bool { return s == m })
		plan.Temporal = slices.DeleteFunc(plan.Temporal, func(s string) bool { return s == m })
	}
}

// periodicSelection is the selection of a policy that chooses on measured
// costs alone: made again every period. Until the costs that matter (ms,
// memory) are measured there is none, and probe says so: the frame is to
// be the cost probe.
func (c *Controller) periodicSelection(now time.Time, ms, memory bool) (sel *Selection, probe bool) {
	sel = c.selection.Load()
	if sel == nil || now.Sub(sel.At) >= c.cfg.Period {
		if !c.costsKnown(ms, memory) {
			return nil, true
		}
		c.reselect(now, "costs measured")
		sel = c.selection.Load()
	}
	return sel, false
}

// costProbe is the frame that measures the costs: every model runs once.
// It is paid from the budget like any execution, and is the one exception
// to a capped budget, like a profiling frame.
func (c *Controller) costProbe(plan pipeline.Plan) pipeline.Plan {
	plan.Exact, plan.Profiling = c.cfg.Models, true
	return plan
}

// pacesEvidence: under a mean time budget, profiling frames are paid for
// as they come (see plan).
func (c *Controller) pacesEvidence() bool {
	return c.cfg.Budget.MS > 0 && !c.cfg.Budget.Capped()
}

// profiling decides whether a frame at now falls in the profiling window at
// the start of the current period; it advances the period. (The window's
// end is seen by the trainer in the results: the first one not profiled.)
func (c *Controller) profiling(now time.Time) bool {
	if c.periodStart.IsZero() {
		c.periodStart = now
	}
	for now.Sub(c.periodStart) >= c.cfg.Period {
		c.periodStart = c.periodStart.Add(c.cfg.Period)
	}
	window := time.Duration(float64(c.cfg.Period) * c.cfg.ProfileShare * c.evidenceScale())
	return now.Sub(c.periodStart) < window
}

// healthyPlan moves selected models whose workers are gone to the predicted
// set (when links can predict them) so frames do not wait for them.
func (c *Controller) healthyPlan(sel *Selection) (exact, predicted []string) {
	if sel == nil {
		return c.cfg.Models, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range sel.Exact {
		if c.healthyLocked(m) || c.predictor == nil {
			exact = append(exact, m)
		} else {
			predicted = append(predicted, m)
		}
	}
	if len(exact) == 0 {
		// Links need at least one executed model: keep the plan as it was.
		return sel.Exact, sel.Predicted
	}
	return exact, append(predicted, sel.Predicted...)
}

// healthyLocked: a model with no heartbeat yet counts as healthy (its
// workers may be starting); one whose workers in every pool are silent or
// stuck for HealthTimeout does not.
func (c *Controller) healthyLocked(model string) bool {
	byPool := c.pools[model]
	if len(byPool) == 0 {
		return true
	}
	// Heartbeats are wall-clock events, unlike frames' capture times.
	now := time.Now()
	for _, h := range byPool {
		if h.alive(now, c.cfg.HealthTimeout) {
			return true
		}
	}
	return false
}

// costsKnown reports whether every model's cost has been measured in time
// (ms) and/or memory.
func (c *Controller) costsKnown(ms, memory bool) bool {
	costs := c.costs.Costs()
	for _, m := range c.cfg.Models {
		cost := costs[m]
		if (ms && cost.MS <= 0) || (memory && cost.Memory <= 0) {
			return false
		}
	}
	return true
}

// bootstrapTraining: the cold-start frames are in and the first links are
// being trained (here, or by the trainer role: then the controller only
// knows that enough frames were profiled).
func (c *Controller) bootstrapTraining() bool {
	c.mu.Lock()
	none := c.predictor == nil
	c.mu.Unlock()
	if !none {
		return false
	}
	if c.trainer != nil {
		return c.trainer.Busy()
	}
	return c.stats.Profiled.Load() >= int64(c.bootstrapFrames())
}

// Healthy reports whether a model's workers are answering.
func (c *Controller) Healthy(model string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthyLocked(model)
}

// ObserveHeartbeat records a worker's heartbeat.
func (c *Controller) ObserveHeartbeat(hb *pipeline.Heartbeat) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byPool := c.pools[hb.Model]
	if byPool == nil {
		byPool = map[string]*modelHealth{}
		c.pools[hb.Model] = byPool
	}
	h := byPool[hb.Pool]
	if h == nil {
		h = &modelHealth{}
		byPool[hb.Pool] = h
	}
	if hb.Pool != "" {
		c.pooledHeard.Store(true)
	}
	h.lastBeat, h.queued, h.lastProgress = time.Now(), hb.Queued, hb.LastProgress
	if hb.LastProgress.IsZero() || hb.LastProgress.Unix() <= 0 {
		h.lastProgress = time.Now()
	}
	if hb.MemoryBytes > 0 && c.costs != nil {
		c.costs.SetMemory(hb.Model, hb.MemoryBytes)
	}
}

// ObserveResult learns from a frame's result: execution times of exact
// outputs, and (through the trainer) every model's exact output on
// profiling frames.
func (c *Controller) ObserveResult(r *pipeline.Result) {
	spent := 0.0
	for name, o := range r.Outputs {
		switch {
		case o.Source == pipeline.SourceExact && o.Error == "" && c.costs != nil:
			c.costs.ObserveMS(name, o.InferMS)
			spent += o.InferMS
		case o.Error != "" && slices.Contains(r.Plan.Exact, name):
			// It ran and failed: its time is spent (what it took, when the
			// worker says), but it measures no cost.
			spent += max(o.InferMS, 0)
		}
	}
	c.books.charge(r.CapturedAt, spent, c.cfg.Budget.MS)
	if c.trainer != nil {
		c.trainer.SetBootstrapFrames(c.bootstrapFrames())
	}
	c.scheme.Observe(c, r)
}

// minBootstrapFrames is the fewest profiled frames the first links are
// trained on however small the budget: fewer leave too few held-out frames
// to measure them on.
const minBootstrapFrames = 16

// evidenceScale is the share of the full cost of every model that a mean
// time budget allows: a policy's own evidence (the bootstrap's profiled
// frames and the periodic windows) is scaled by it, so that evidence costs
// the same share of the budget at every budget, never the same number of
// full-cost frames. A frame profiled under a third of the total cost pays
// for three frames; 100 bootstrap frames at a third would spend a third of
// a 900-frame run's budget on evidence. 1 without a mean time budget
// (profiling frames are the cap's declared exception) or before every
// model's cost is measured (the cost probe).
func (c *Controller) evidenceScale() float64 {
	if c.costs == nil || c.cfg.Budget.MS <= 0 || c.cfg.Budget.Capped() {
		return 1
	}
	costs := c.costs.Costs()
	total := 0.0
	for _, m := range c.cfg.Models {
		cost, ok := costs[m]
		if !ok || cost.MS <= 0 {
			return 1
		}
		total += cost.MS
	}
	return min(1, c.cfg.Budget.MS/total)
}

// bootstrapFrames is the configured bootstrap scaled by evidenceScale.
// With remote training it is as configured: the trainer role counts the
// profiled frames against its own config and knows no costs.
func (c *Controller) bootstrapFrames() int {
	n := max(1, c.cfg.BootstrapFrames)
	if c.cfg.RemoteTraining {
		return n
	}
	return min(n, max(minBootstrapFrames, int(math.Round(float64(n)*c.evidenceScale()))))
}

// turnMeasurer is a scheme whose selections rotate models and are
// corrected by what their turns measure (turnEvidence).
type turnMeasurer interface {
	// worthSwitching reports whether next, selected on turn-corrected
	// evidence ev, beats staying with cur on that same evidence by enough
	// to be worth the switch (cur must also still fit budget).
	worthSwitching(c *Controller, cur, next *Selection, ev SetEvidence, costs map[string]Cost, budget Budget) bool
}

// observeTurns measures a result's rotation turns and, every turnReselect
// measured turns, selects again on the latest evidence as they correct it.
// The new selection replaces the current one only when the scheme finds it
// worth the switch: two near-equal choices would otherwise take turns as
// the noise in their corrections moves, and every switch restarts the
// rotations.
func (c *Controller) observeTurns(r *pipeline.Result) {
	tm, ok := c.scheme.(turnMeasurer)
	if c.turns == nil || !ok {
		return
	}
	c.mu.Lock()
	ev := c.evidence
	c.mu.Unlock()
	motion, _ := ev.(MotionEvidence)
	if !c.turns.observe(r, c.selection.Load(), motion) || ev == nil || !c.turns.due() {
		return
	}
	now := r.CapturedAt
	if now.IsZero() || !c.cfg.Synchronous {
		now = time.Now()
	}
	costs := c.costs.Costs()
	budget := c.selectionBudget(now)
	corrected := c.turns.correct(ev) // once, for the selection and the comparison
	next := c.scheme.Select(c, corrected, costs, budget)
	if cur := c.selection.Load(); next == nil || (cur != nil && !tm.worthSwitching(c, cur, next, corrected, costs, budget)) {
		return
	}
	c.install(next, now, "turns", budget)
}

// observeLinks is the link policies' observation: profiled frames train
// the links (through the trainer), and frames served with links are scored
// for active sampling.
func (c *Controller) observeLinks(r *pipeline.Result) {
	if r.Plan.Profiling {
		c.stats.Profiled.Add(1)
	} else if c.sampler != nil && len(r.Plan.Predicted) > 0 {
		c.considerSampling(r)
	}
	if c.trainer != nil {
		c.trainer.Observe(r)
	}
}

// considerSampling scores a frame served with links by the losses the
// links predict for it; a high one asks for the camera's next frame to be
// profiled. The losses come with the predicted outputs
// (assemble.LossPredictor); only for outputs without them (temporal links,
// a failed prediction, links without PredictWithLosses) are the links run
// again here.
func (c *Controller) considerSampling(r *pipeline.Result) {
	losses := map[string]float64{}
	var rerun []string
	for _, target := range r.Plan.Predicted {
		if o := r.Outputs[target]; o != nil && o.Error == "" && len(o.LinkLosses) > 0 {
			maps.Copy(losses, o.LinkLosses)
		} else {
			rerun = append(rerun, target)
		}
	}
	if len(rerun) > 0 {
		c.mu.Lock()
		lp, ok := c.predictor.(LossPredictor)
		c.mu.Unlock()
		if ok {
			exact := map[string]*pipeline.Output{}
			for name, o := range r.Outputs {
				if o.Source == pipeline.SourceExact && o.Error == "" {
					exact[name] = o
				}
			}
			more, err := lp.PredictedLosses(exact, rerun)
			if err != nil {
				c.log.Debug().Err(err).Msg("active sampling: no losses for this frame")
				return
			}
			maps.Copy(losses, more)
		}
	}
	if c.sampler.Observe(losses) {
		c.mu.Lock()
		c.sampleNext[r.Camera] = true
		c.mu.Unlock()
		c.stats.Sampled.Add(1)
	}
}

// takeSample reports (once) whether active sampling asked for the camera's
// next frame.
func (c *Controller) takeSample(camera string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.sampleNext[camera] {
		return false
	}
	delete(c.sampleNext, camera)
	return true
}

// TrainerStats returns the in-process trainer's counters (nil when links
// are trained elsewhere).
func (c *Controller) TrainerStats() *TrainerStats {
	if c.trainer == nil {
		return nil
	}
	return c.trainer.Stats()
}

// InstallLinks takes new links and their measured evidence: the predictors
// switch to them and the models are re-selected. The in-process trainer
// calls it; with RemoteTraining the application does, for each link set
// the trainer role publishes.
func (c *Controller) InstallLinks(l Links) {
	c.installPredictor(l.Predictor)
	if l.Reason == "active" || l.Reason == "turns" {
		return // the same evidence: nothing to re-select
	}
	at := l.At
	if at.IsZero() || !c.cfg.Synchronous {
		at = time.Now()
	}
	// Agreement is measured out of sample: at bootstrap on the held-out
	// frames for the selection about to be used; at re-profiling on the
	// window's fresh frames for the selection that was in use.
	if l.Reason == "bootstrap" {
		c.reselectWith(l.Evidence, at, l.Reason)
		c.recordAgreement(l.Evidence)
		return
	}
	c.recordAgreement(l.Evidence)
	c.reselectWith(l.Evidence, at, l.Reason)
}

// installPredictor switches the predictors to p.
func (c *Controller) installPredictor(p Predictor) {
	c.mu.Lock()
	c.predictor = p
	hook := c.onPredictor
	c.mu.Unlock()
	if hook != nil {
		hook(p)
	}
}

// agreementMeasurer is a scheme that measures the accuracy of the models
// its selection does not run on every frame itself; by default each one's
// link ensemble over the executed models is what serves it.
type agreementMeasurer interface {
	measuredAccuracy(c *Controller, sel *Selection, ev SetEvidence) map[string]float64
}

func (c *Controller) recordAgreement(ev SetEvidence) {
	sel := c.selection.Load()
	if sel == nil {
		return
	}
	var measured map[string]float64
	if m, ok := c.scheme.(agreementMeasurer); ok {
		measured = m.measuredAccuracy(c, sel, ev)
	}
	for _, m := range c.cfg.Models {
		if slices.Contains(sel.Exact, m) {
			continue
		}
		acc, ok := measured[m]
		if !ok {
			acc = PredictedAccuracy(m, sel.Exact, ev)
		}
		c.stats.agreeSum.Add(uint64(acc * 1e6))
		c.stats.agreeN.Add(1)
	}
}

// streamEvidence asks ev at ages in frames of the streams the controller
// plans (the hybrid's rotation ages), converted to the seqs the evidence
// was measured in at the streams' measured step.
func (c *Controller) streamEvidence(ev SetEvidence) StrideEvidence {
	return AtStride(ev, c.steps.step())
}

func (c *Controller) reselect(now time.Time, reason string) {
	c.reselectWith(nil, now, reason)
}

// selectionBudget is the budget the selection plans the unprofiled frames
// with: under a mean time budget, what is left once past overspending (a
// profiling frame's, the cost probe's) is repaid over the next period.
// Profiling needs no reserve: it is paid at the budget's pace (see plan).
func (c *Controller) selectionBudget(now time.Time) Budget {
	debt, horizon := c.books.debtAndHorizon(c.cfg.Period, now)
	return meanSelectionBudget(c.cfg.Budget, debt, horizon)
}

func (c *Controller) reselectWith(ev SetEvidence, now time.Time, reason string) {
	if ev != nil {
		c.mu.Lock()
		c.evidence = ev
		c.mu.Unlock()
	}
	costs := c.costs.Costs()
	budget := c.selectionBudget(now)
	sel := c.scheme.Select(c, ev, costs, budget)
	if sel == nil {
		return
	}
	c.install(sel, now, reason, budget)
}

// install makes sel the current selection.
func (c *Controller) install(sel *Selection, now time.Time, reason string, budget Budget) {
	sel.At, sel.Reason, sel.Budget = now, reason+sel.Reason, budget
	if sel.Accuracy == nil {
		sel.Accuracy = map[string]float64{}
	}
	c.selection.Store(sel)
	c.stats.Selections.Add(1)
	c.log.Info().Strs("exact", sel.Exact).Strs("predicted", sel.Predicted).Strs("reused", sel.Reused).
		Str("rotating", sel.rotating()).Strs("absent", sel.Absent).
		Float64("expected_accuracy", sel.Expected).Str("budget", c.cfg.Budget.String()).Str("selection_budget", budget.String()).Str("reason", reason).
		Msg("models selected")
}

// rotating renders the rotating models as "model/k" (k: run every k-th
// frame).
func (s *Selection) rotating() string {
	var parts []string
	for m, k := range s.Every {
		parts = append(parts, fmt.Sprintf("%s/%d", m, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func minus(all, sub []string) []string {
	in := map[string]bool{}
	for _, s := range sub {
		in[s] = true
	}
	var out []string
	for _, a := range all {
		if !in[a] {
			out = append(out, a)
		}
	}
	return out
}

// splitSamples keeps the last holdOut share (by time) for measuring.
func splitSamples(samples []*links.TraceRecord, holdOut float64) (train, eval []*links.TraceRecord) {
	sort.SliceStable(samples, func(i, j int) bool { return samples[i].Time.Before(samples[j].Time) })
	n := int(float64(len(samples)) * (1 - holdOut))
	n = max(1, min(n, len(samples)-1))
	return samples[:n], samples[n:]
}

// String renders a selection for logs and status lines.
func (s *Selection) String() string {
	if s == nil {
		return "profiling (no links yet)"
	}
	out := fmt.Sprintf("exact [%s] predicted [%s]", strings.Join(s.Exact, " "), strings.Join(s.Predicted, " "))
	if len(s.Reused) > 0 {
		out += fmt.Sprintf(" reused [%s]", strings.Join(s.Reused, " "))
	}
	if len(s.Temporal) > 0 {
		out += fmt.Sprintf(" temporal [%s]", strings.Join(s.Temporal, " "))
	}
	if len(s.Every) > 0 {
		out += fmt.Sprintf(" rotating [%s]", s.rotating())
	}
	if len(s.Absent) > 0 {
		out += fmt.Sprintf(" absent [%s]", strings.Join(s.Absent, " "))
	}
	if len(s.PerCamera) > 0 {
		var cams []string
		for cam, ms := range s.PerCamera {
			cams = append(cams, fmt.Sprintf("%s: [%s]", cam, strings.Join(ms, " ")))
		}
		sort.Strings(cams)
		out += " per camera {" + strings.Join(cams, ", ") + "}"
	}
	return out + fmt.Sprintf(" expected accuracy %.2f", s.Expected)
}
