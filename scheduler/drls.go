package scheduler

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand"
	"slices"
	"sync"
	"time"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

func init() {
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicyDRLS, Rank: 70, Needs: pipeline.NeedsTimeBudget, NeedsWhy: drlsNeedsWhy,
			Summary: "DRLS: a learned sequential scheduler; on each frame the models run in the order of their learned value per cost (the expected error of reusing a model's last output, predicted from its age and from how the outputs obtained since have changed), while the budget's books afford the next; the last output reused for the others"},
		New: func(cfg ControllerConfig) Scheme { return newDRLS(cfg, false) },
	})
	register(PolicySpec{
		PolicyInfo: pipeline.PolicyInfo{Name: PolicyDRLSRandom, Rank: 71, Needs: pipeline.NeedsTimeBudget, NeedsWhy: drlsNeedsWhy,
			Summary: "DRLS's ablation: the same scheduler and budget with the learned value replaced by a random order of models on each frame (seeded by scheduler.seed)"},
		New: func(cfg ControllerConfig) Scheme { return newDRLS(cfg, true) },
	})
}

// The DRLS policies' names.
const (
	// PolicyDRLS is the learned sequential scheduler.
	PolicyDRLS PolicyName = "drls"
	// PolicyDRLSRandom is its ablation: a random order at the same cost
	// rule, what "DRLS is trained" is measured against.
	PolicyDRLSRandom PolicyName = "drls/random"
)

const drlsNeedsWhy = ": it spends a time budget frame by frame"

// drlsMaxAge bounds the staleness the learner is trained on and predicts
// at (in frames of the camera): a model older than this is as stale as
// one this old, and is then run on value alone.
const drlsMaxAge = 32

// drlsRidge is the ridge penalty of the value regression, per sample: it
// keeps the fit defined when a feature never varies on the bootstrap (a
// model whose output never changed there).
const drlsRidge = 1e-3

// drlsScheme is DRLS, the learned sequential scheduler baseline (the
// "RL scheduler" of the paper's Table 4) under a time budget. Its state is
// the outputs obtained so far on the camera: each model's last exact
// output, its age in frames, and how every other model's output has
// changed since that model last ran. Its action on a frame is the models
// to run, taken one at a time in the order of their value per cost; the
// value of running a model is the error of the output that would be
// served otherwise (its last exact output, reused), which a per-model
// linear regression learns on the bootstrap's profiled frames — where
// every model ran, so that the error of every staleness is known. A
// one-step greedy choice by value per cost is the fitted-Q policy of a
// knapsack-shaped reward. Under a mean budget the frame takes models in
// value order while the books afford the next one, and stops at the first
// they do not (saving for it, so that an expensive model is not starved
// by cheap ones); under a cap each frame takes what fits. Models run one
// round per frame: the state is what earlier frames obtained.
type drlsScheme struct {
	models []string
	random bool

	mu sync.Mutex
	// rng orders the models of the random ablation.
	rng *rand.Rand
	// bootstrap holds each camera's profiled frames until the value is
	// learned.
	bootstrap map[string][]drlsFrame
	// value is nil until learned (the bootstrap's profiled frames are in).
	value *drlsValue
	// cams is each camera's state.
	cams map[string]*drlsState
}

// drlsFrame is a profiled frame: the camera's index-th, and every model's
// exact output on it.
type drlsFrame struct {
	index int64
	out   map[string]*pipeline.Output
}

// drlsState is what a camera's frames obtained so far.
type drlsState struct {
	// ranAt is the index of the frame each model last ran on (planned).
	ranAt map[string]int64
	// latest is each model's last exact output received.
	latest map[string]*pipeline.Output
	// seen is, per model, the other models' latest outputs when its own
	// last output arrived: what they have changed since is evidence that
	// its own output has changed too.
	seen map[string]map[string]*pipeline.Output
	// profiled maps the bootstrap's profiled frames planned (by seq) to
	// their index, until their results arrive.
	profiled map[uint64]int64
	// changes memoises drlsChange by the outputs compared: a model's
	// latest output and another's snapshot stay the same over many frames,
	// and matching lines or boxes is what planning a frame costs.
	changes map[[2]*pipeline.Output]float64
}

// drlsMaxMemo bounds drlsState.changes (it is cleared when full).
const drlsMaxMemo = 4096

func newDRLSState() *drlsState {
	return &drlsState{ranAt: map[string]int64{}, latest: map[string]*pipeline.Output{},
		seen: map[string]map[string]*pipeline.Output{}, profiled: map[uint64]int64{},
		changes: map[[2]*pipeline.Output]float64{}}
}

func newDRLS(cfg ControllerConfig, random bool) *drlsScheme {
	return &drlsScheme{
		models:    slices.Clone(cfg.Models),
		random:    random,
		rng:       rand.New(rand.NewSource(cfg.Seed)),
		bootstrap: map[string][]drlsFrame{},
		cams:      map[string]*drlsState{},
	}
}

// Select keeps every model loaded and reused between its runs: which run
// is decided frame by frame.
func (s *drlsScheme) Select(c *Controller, _ SetEvidence, _ map[string]Cost, _ Budget) *Selection {
	sel := &Selection{Reused: slices.Clone(c.cfg.Models)}
	if !s.learned() {
		sel.Reason = " (learning the value on the bootstrap)"
	}
	return sel
}

func (s *drlsScheme) learned() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.random || s.value != nil
}

func (s *drlsScheme) Plan(c *Controller, f FrameInfo, index int64, now time.Time, plan pipeline.Plan) pipeline.Plan {
	_, probe := c.periodicSelection(now, true, false)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.cams[f.Camera]
	if st == nil {
		st = newDRLSState()
		s.cams[f.Camera] = st
	}
	costs := c.costs.Costs()
	if probe || index == 0 {
		// The cost probe; or a camera's first frame: every model, so that
		// each has an output to reuse.
		plan = c.costProbe(plan)
		st.planned(plan.Exact, index)
		st.profiled[f.Seq] = index
		return plan
	}
	if s.value == nil && !s.random {
		// The bootstrap: every model on the frames the books afford (paid
		// at the budget's pace), their outputs reused on the others.
		if !c.pacesEvidence() || c.books.affords(sum(costs, c.cfg.Models).MS, c.cfg.Budget.MS) {
			plan.Exact, plan.Profiling = c.cfg.Models, true
			st.planned(plan.Exact, index)
			st.profiled[f.Seq] = index
			return plan
		}
		plan.Reused = c.cfg.Models
		return plan
	}
	order := s.order(st, index, costs)
	paced := c.pacesEvidence()
	frameMS := 0.0
	for _, m := range order {
		if !c.Healthy(m) {
			continue
		}
		ms := costs[m].MS
		if paced && !c.books.affords(frameMS+ms, c.cfg.Budget.MS) {
			break // saving for it: the next frames afford it
		}
		if c.cfg.Budget.Capped() && frameMS+ms > c.cfg.Budget.MS+1e-9 {
			continue // no frame over the cap: a cheaper one may fit
		}
		frameMS += ms
		plan.Exact = append(plan.Exact, m)
	}
	plan.Reused = minus(c.cfg.Models, plan.Exact)
	st.planned(plan.Exact, index)
	return plan
}

// order ranks the models worth running on the camera's index-th frame,
// best first: by learned value per unit cost (a model with no expected
// error is left out), or at random for the ablation.
func (s *drlsScheme) order(st *drlsState, index int64, costs map[string]Cost) []string {
	type scored struct {
		model string
		score float64
	}
	var ranked []scored
	for _, m := range s.models {
		if s.random {
			ranked = append(ranked, scored{m, s.rng.Float64()})
			continue
		}
		v := s.value.predict(m, st.features(m, index, s.models))
		if v <= 0 {
			continue
		}
		ranked = append(ranked, scored{m, v / math.Max(costs[m].MS, 1e-3)})
	}
	slices.SortStableFunc(ranked, func(a, b scored) int { return cmp.Compare(b.score, a.score) })
	out := make([]string, len(ranked))
	for i, r := range ranked {
		out[i] = r.model
	}
	return out
}

// planned books the models a frame runs.
func (st *drlsState) planned(models []string, index int64) {
	for _, m := range models {
		st.ranAt[m] = index
	}
}

// features is model m's state on the index-th frame (see drlsFeatures).
func (st *drlsState) features(m string, index int64, models []string) []float64 {
	age := drlsMaxAge
	if at, ok := st.ranAt[m]; ok {
		age = int(min(index-at, drlsMaxAge))
	}
	was := st.seen[m]
	return drlsFeatureVector(m, age, models, func(o string) float64 { return st.change(was[o], st.latest[o]) })
}

// change is drlsChange(a, b), memoised.
func (st *drlsState) change(a, b *pipeline.Output) float64 {
	k := [2]*pipeline.Output{a, b}
	if v, ok := st.changes[k]; ok {
		return v
	}
	if len(st.changes) >= drlsMaxMemo {
		clear(st.changes)
	}
	v := drlsChange(a, b)
	st.changes[k] = v
	return v
}

// drlsFeatures is the regression's input for model m: a bias, the log of
// its output's age in frames, and for every other model how far its
// output has moved (1 − accuracy) from then (was) to its latest (now); 0
// where either is missing.
func drlsFeatures(m string, age int, models []string, was, now map[string]*pipeline.Output) []float64 {
	return drlsFeatureVector(m, age, models, func(o string) float64 { return drlsChange(was[o], now[o]) })
}

// drlsFeatureVector lays out drlsFeatures from each other model's change.
func drlsFeatureVector(m string, age int, models []string, change func(o string) float64) []float64 {
	x := make([]float64, 0, len(models)+1)
	x = append(x, 1, math.Log1p(float64(age)))
	for _, o := range models {
		if o != m {
			x = append(x, change(o))
		}
	}
	return x
}

// drlsChange is how far b is from a under the scoring's strict metric.
func drlsChange(a, b *pipeline.Output) float64 {
	if !drlsUsable(a) || !drlsUsable(b) {
		return 0
	}
	return 1 - links.Accuracy(b.Type, a, b)
}

func drlsUsable(o *pipeline.Output) bool { return o != nil && o.Error == "" }

func (s *drlsScheme) Observe(c *Controller, r *pipeline.Result) {
	if r.Partial {
		return
	}
	exact := map[string]*pipeline.Output{}
	for m, o := range r.Outputs {
		if o.Source == pipeline.SourceExact && drlsUsable(o) {
			exact[m] = o
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.cams[r.Camera]
	if st == nil {
		st = newDRLSState()
		s.cams[r.Camera] = st
	}
	for m, o := range exact {
		st.latest[m] = o
	}
	for m := range exact {
		st.seen[m] = maps.Clone(st.latest)
	}
	index, profiled := st.profiled[r.Seq]
	delete(st.profiled, r.Seq)
	if s.value != nil || s.random || !profiled || !r.Plan.Profiling || len(exact) < len(s.models) {
		return
	}
	s.bootstrap[r.Camera] = append(s.bootstrap[r.Camera], drlsFrame{index: index, out: exact})
	n := 0
	for _, fs := range s.bootstrap {
		n += len(fs)
	}
	if n < c.bootstrapFrames() {
		return
	}
	var seqs [][]drlsFrame
	for _, cam := range slices.Sorted(maps.Keys(s.bootstrap)) {
		seqs = append(seqs, s.bootstrap[cam])
	}
	s.value = fitDRLS(s.models, seqs)
	s.bootstrap = nil
	c.log.Info().Int("frames", n).Str("weights", fmt.Sprint(s.value.weights)).Msg("drls: value learned on the bootstrap frames")
}

// drlsValue predicts, per model, the error of reusing its last output.
type drlsValue struct {
	weights map[string][]float64
}

func (v *drlsValue) predict(m string, x []float64) float64 {
	w := v.weights[m]
	y := 0.0
	for i := range min(len(w), len(x)) {
		y += w[i] * x[i]
	}
	return y
}

// fitDRLS learns the value of each model on sequences of profiled frames
// (a camera's, in order): every pair of frames j < i within drlsMaxAge
// frames, with every frame l from j to before i as the latest outputs of
// the others, is a sample whose features are those of model m having last
// run on j with the others last seen on l, and whose target is the error
// of serving m's output on j for its exact one on i.
func fitDRLS(models []string, seqs [][]drlsFrame) *drlsValue {
	v := &drlsValue{weights: map[string][]float64{}}
	// Every feature is a change of one model's output between two frames
	// of a sequence, whichever model the sample is for: measured once per
	// (sequence, model, pair of frames) — on lines and boxes the metric's
	// matching is what the fit costs.
	changes := make([]drlsChanges, len(seqs))
	for k, seq := range seqs {
		changes[k] = measureChanges(models, seq)
	}
	for _, m := range models {
		var xs [][]float64
		var ys []float64
		for k, seq := range seqs {
			for i := range seq {
				for j := i - 1; j >= 0 && seq[i].index-seq[j].index <= drlsMaxAge; j-- {
					y, ok := changes[k].of(m, j, i)
					if !ok {
						continue
					}
					age := int(seq[i].index - seq[j].index)
					for l := j; l < i; l++ {
						xs = append(xs, changes[k].features(m, age, models, j, l))
						ys = append(ys, y)
					}
				}
			}
		}
		v.weights[m] = ridge(xs, ys, drlsRidge)
	}
	return v
}

// drlsChanges holds, for one sequence of profiled frames, every model's
// change (drlsChange) between frames j ≤ l at most drlsMaxAge apart.
type drlsChanges struct {
	seq    []drlsFrame
	change map[string]map[[2]int]float64
}

func measureChanges(models []string, seq []drlsFrame) drlsChanges {
	c := drlsChanges{seq: seq, change: map[string]map[[2]int]float64{}}
	for _, o := range models {
		ch := map[[2]int]float64{}
		for l := range seq {
			for j := l; j >= 0 && seq[l].index-seq[j].index <= drlsMaxAge; j-- {
				ch[[2]int{j, l}] = drlsChange(seq[j].out[o], seq[l].out[o])
			}
		}
		c.change[o] = ch
	}
	return c
}

// of is the error of serving m's output on frame j for its exact one on
// frame i; ok is false when either is unusable.
func (c drlsChanges) of(m string, j, i int) (float64, bool) {
	ok := drlsUsable(c.seq[j].out[m]) && drlsUsable(c.seq[i].out[m])
	return c.change[m][[2]int{j, i}], ok
}

// features is drlsFeatures of m last run on frame j, the others last seen
// on frame l (j ≤ l), from the measured changes.
func (c drlsChanges) features(m string, age int, models []string, j, l int) []float64 {
	return drlsFeatureVector(m, age, models, func(o string) float64 { return c.change[o][[2]int{j, l}] })
}

// ridge solves min ‖Xw − y‖² + λ·n·‖w‖² (the bias penalised too, lightly);
// nil without samples (the model is then never worth running but on a
// profiled frame).
func ridge(xs [][]float64, ys []float64, lambda float64) []float64 {
	if len(xs) == 0 {
		return nil
	}
	d := len(xs[0])
	a := make([][]float64, d)
	for i := range a {
		a[i] = make([]float64, d+1)
	}
	for k, x := range xs {
		for i := range d {
			for j := range d {
				a[i][j] += x[i] * x[j]
			}
			a[i][d] += x[i] * ys[k]
		}
	}
	for i := range d {
		a[i][i] += lambda * float64(len(xs))
	}
	// Gaussian elimination with partial pivoting; the penalty keeps the
	// system positive definite.
	for col := range d {
		p := col
		for r := col + 1; r < d; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[p][col]) {
				p = r
			}
		}
		a[col], a[p] = a[p], a[col]
		for r := range d {
			if r == col || a[col][col] == 0 {
				continue
			}
			f := a[r][col] / a[col][col]
			for k := col; k <= d; k++ {
				a[r][k] -= f * a[col][k]
			}
		}
	}
	w := make([]float64, d)
	for i := range d {
		if a[i][i] != 0 {
			w[i] = a[i][d] / a[i][i]
		}
	}
	return w
}
