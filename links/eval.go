package links

import (
	"maps"
	"math"
	"math/bits"
	"math/rand"
	"slices"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/assemble"
)

// Score is the agreement of predicted outputs with the exact ones over a
// number of frames.
type Score struct {
	// Accuracy is the strict MLink metric p(·) (Accuracy): class match,
	// |count error| < 0.5, matched IoU for boxes, matched segments for lines.
	Accuracy float64 `json:"accuracy"`
	// Count scores the vector view as a count (count outputs and detectors).
	Count  *CountScore `json:"count,omitempty"`
	Frames int         `json:"frames"`
}

// CountScore scores predicted counts.
type CountScore struct {
	// Accuracy: |predicted − exact| < 0.5 (CountAccuracy).
	Accuracy float64 `json:"accuracy"`
	// Graded is Reducto's GradedCountAccuracy; MAE the mean absolute error.
	Graded float64 `json:"graded"`
	MAE    float64 `json:"mae"`
}

// PairAccuracy is the accuracy of the link Source → Target on the frames
// Target has an output for; where Source has none it scores a miss.
type PairAccuracy struct {
	Source string `json:"source"`
	Target string `json:"target"`
	Kind   string `json:"kind"`
	Score
}

// EnsembleAccuracy is the accuracy of Target's ensemble over exactly the
// Sources (for temporal ensembles, plus Target's output Age seqs ago), on
// the frames Target has an output for: where none of the Sources has one
// the ensemble cannot predict, which scores a miss, as in production.
type EnsembleAccuracy struct {
	Target  string   `json:"target"`
	Sources []string `json:"sources"`
	Age     int      `json:"age,omitempty"`
	Score
}

// SizeAccuracy summarises a target's ensembles over every source set of
// one size: mean, lowest and highest strict accuracy (and mean count
// accuracy for counts).
type SizeAccuracy struct {
	Target  string  `json:"target"`
	Size    int     `json:"size"`
	Age     int     `json:"age,omitempty"`
	Subsets int     `json:"subsets"`
	Mean    float64 `json:"mean"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	// CountMean is the mean count accuracy (count outputs and detectors).
	CountMean *float64 `json:"count_mean,omitempty"`
}

// BaselineAccuracy is a prediction without learned links: "constant" (the
// training data's majority class / most frequent count / mean), "reuse"
// (the target's own exact output Age seqs earlier), and for detectors
// "track" (that output's boxes carried along their motion since the exact
// output Age seqs before it: assemble.Track) and "follow" (a delta link:
// its boxes moved along Source's boxes' motion over those Age seqs, by
// Gain: assemble.Follow; with Deaths and Births as FollowLink says).
type BaselineAccuracy struct {
	Target   string  `json:"target"`
	Baseline string  `json:"baseline"`
	Age      int     `json:"age,omitempty"`
	Source   string  `json:"source,omitempty"`
	Gain     float64 `json:"gain,omitempty"`
	// Deaths and Births: the follow variant (pipeline.FollowLink).
	Deaths bool             `json:"deaths,omitempty"`
	Births *pipeline.BoxMap `json:"births,omitempty"`
	Score
}

// The baselines of BaselineAccuracy.
const (
	BaselineConstant = "constant"
	BaselineReuse    = "reuse"
	BaselineTrack    = "track"
	BaselineFollow   = "follow"
)

// FollowGains are the gains a delta link is measured at: half the source's
// motion (a noisy source) and all of it. Gain 0 is reuse, measured anyway.
var FollowGains = []float64{0.5, 1}

// FollowLink is the delta link a follow baseline measured.
func (b BaselineAccuracy) FollowLink() pipeline.FollowLink {
	return pipeline.FollowLink{Source: b.Source, Gain: b.Gain, Deaths: b.Deaths, Births: b.Births}
}

// followVariants are the delta links measured from source to target: the
// source's motion at each of FollowGains, and at gain 1 with the source's
// deaths, its births (where a box map could be fitted from recs), and
// both.
func followVariants(recs []*TraceRecord, source, target string) []pipeline.FollowLink {
	var out []pipeline.FollowLink
	for _, g := range FollowGains {
		out = append(out, pipeline.FollowLink{Source: source, Gain: g})
	}
	out = append(out, pipeline.FollowLink{Source: source, Gain: 1, Deaths: true})
	if m, ok := FitBoxMap(recs, source, target); ok {
		out = append(out, pipeline.FollowLink{Source: source, Gain: 1, Births: m},
			pipeline.FollowLink{Source: source, Gain: 1, Deaths: true, Births: m})
	}
	return out
}

// TemporalAccuracy is the accuracy of a temporal link (Source empty: the
// self-temporal link) given the target's output Age seqs earlier.
type TemporalAccuracy struct {
	Source string `json:"source"`
	Target string `json:"target"`
	Kind   string `json:"kind"`
	Age    int    `json:"age"`
	Score
}

// Evaluation is the measured accuracy of a link set on held-out frames.
type Evaluation struct {
	Frames int `json:"frames"`
	// Ages (seq differences) at which reuse and temporal links were
	// measured: Options.EvalAges and their multiples of the records' seq
	// step (evalAges). An age without a pair of records has no results.
	Ages      []int              `json:"ages"`
	Pairs     []PairAccuracy     `json:"pairs"`
	Ensembles []EnsembleAccuracy `json:"ensembles"`
	Sizes     []SizeAccuracy     `json:"sizes"`
	Baselines []BaselineAccuracy `json:"baselines"`
	// Temporal links and ensembles are reported apart from the paper's
	// pure links.
	Temporal          []TemporalAccuracy `json:"temporal,omitempty"`
	TemporalEnsembles []EnsembleAccuracy `json:"temporal_ensembles,omitempty"`
	TemporalSizes     []SizeAccuracy     `json:"temporal_sizes,omitempty"`
}

// PairAccuracy returns the strict accuracy of the link src → tgt (0 if it
// was not evaluated).
func (e *Evaluation) PairAccuracy(src, tgt string) float64 {
	for _, p := range e.Pairs {
		if p.Source == src && p.Target == tgt {
			return p.Accuracy
		}
	}
	return 0
}

// EnsembleAccuracy returns the strict accuracy of target given the set of
// executed models: 1 if the target itself executed, its ensemble's
// accuracy over the executed sources otherwise (models that are no source
// of target are ignored), 0 when none executed.
func (e *Evaluation) EnsembleAccuracy(target string, executed []string) float64 {
	known := map[string]bool{}
	for _, en := range e.Ensembles {
		if en.Target == target {
			for _, s := range en.Sources {
				known[s] = true
			}
		}
	}
	var srcs []string
	for _, x := range executed {
		if x == target {
			return 1
		}
		if known[x] && !slices.Contains(srcs, x) {
			srcs = append(srcs, x)
		}
	}
	if len(srcs) == 0 {
		return 0
	}
	for _, en := range e.Ensembles {
		if en.Target == target && sameSet(en.Sources, srcs) {
			return en.Accuracy
		}
	}
	return 0
}

// Baseline returns a baseline's strict accuracy (age 0 for "constant").
func (e *Evaluation) Baseline(target, name string, age int) (Score, bool) {
	for _, b := range e.Baselines {
		if b.Target == target && b.Baseline == name && b.Age == age {
			return b.Score, true
		}
	}
	return Score{}, false
}

// Pair returns the full score of the link src → tgt.
func (e *Evaluation) Pair(src, tgt string) (PairAccuracy, bool) {
	for _, p := range e.Pairs {
		if p.Source == src && p.Target == tgt {
			return p, true
		}
	}
	return PairAccuracy{}, false
}

// Ensemble returns the full score of target's ensemble over srcs.
func (e *Evaluation) Ensemble(target string, srcs []string) (EnsembleAccuracy, bool) {
	for _, en := range e.Ensembles {
		if en.Target == target && sameSet(en.Sources, srcs) {
			return en, true
		}
	}
	return EnsembleAccuracy{}, false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// scoreAcc accumulates a Score.
type scoreAcc struct {
	acc, cacc, graded, mae float64
	n                      int
}

func (a *scoreAcc) add(strict float64, pc, ec float64) {
	a.acc += strict
	a.cacc += CountAccuracy(pc, ec)
	a.graded += GradedCountAccuracy(pc, ec)
	a.mae += math.Abs(pc - ec)
	a.n++
}

// miss counts a frame the target has an exact output for but no
// prediction: none of the sources in use has an output there. Production
// then has nothing to predict from and serves no output, which scores 0
// (strict, count accuracy and graded); for the MAE an absent count reads
// as none detected.
func (a *scoreAcc) miss(ec float64) {
	a.mae += math.Abs(ec)
	a.n++
}

func (a *scoreAcc) score(count bool) Score {
	if a.n == 0 {
		return Score{}
	}
	n := float64(a.n)
	s := Score{Accuracy: a.acc / n, Frames: a.n}
	if count {
		s.Count = &CountScore{Accuracy: a.cacc / n, Graded: a.graded / n, MAE: a.mae / n}
	}
	return s
}

// Evaluate measures every link, every ensemble source set, the baselines
// and the temporal links on recs (frames not used in training), and keeps
// the result: Predict then reports it as Confidence, PairAccuracy and
// EnsembleAccuracy serve the scheduler.
func (s *Set) Evaluate(recs []*TraceRecord) *Evaluation {
	ev := s.evaluate(recs)
	s.SetEvaluation(ev)
	return ev
}

// Evaluation returns the set's last evaluation (nil if none).
func (s *Set) Evaluation() *Evaluation {
	if ix := s.eval.Load(); ix != nil {
		return ix.ev
	}
	return nil
}

// SetEvaluation installs an evaluation (e.g. one measured on fresh
// profiling frames) as the set's measured accuracies.
func (s *Set) SetEvaluation(ev *Evaluation) {
	if ev == nil {
		s.eval.Store(nil)
		return
	}
	s.eval.Store(s.newEvalIndex(ev))
}

// PairAccuracy returns the measured strict accuracy of the link src → tgt
// (0 when unknown or not evaluated).
func (s *Set) PairAccuracy(src, tgt string) float64 {
	ix := s.eval.Load()
	si, ok1 := s.index[src]
	ti, ok2 := s.index[tgt]
	if ix == nil || !ok1 || !ok2 {
		return 0
	}
	return ix.pair[si][ti]
}

// EnsembleAccuracy returns the measured strict accuracy of target when the
// models in executed ran: 1 if target ran, 0 if no source of it ran (or
// the set was not evaluated).
func (s *Set) EnsembleAccuracy(target string, executed []string) float64 {
	ti, ok := s.index[target]
	ix := s.eval.Load()
	if !ok || ix == nil {
		return 0
	}
	var mask uint64
	for _, x := range executed {
		if x == target {
			return 1
		}
		if i, ok := s.index[x]; ok {
			mask |= 1 << uint(i)
		}
	}
	return ix.ensemble(ti, mask)
}

type tkey struct {
	mask uint64
	age  int
}

type evalIndex struct {
	ev   *Evaluation
	pair [][]float64
	ens  []map[uint64]float64
	tens []map[tkey]float64
	ages []int
}

func (s *Set) maskOf(names []string) uint64 {
	var m uint64
	for _, n := range names {
		if i, ok := s.index[n]; ok {
			m |= 1 << uint(i)
		}
	}
	return m
}

func (s *Set) newEvalIndex(ev *Evaluation) *evalIndex {
	n := len(s.Models)
	ix := &evalIndex{ev: ev, pair: make([][]float64, n), ens: make([]map[uint64]float64, n), tens: make([]map[tkey]float64, n)}
	for i := range ix.pair {
		ix.pair[i] = make([]float64, n)
		ix.ens[i] = map[uint64]float64{}
		ix.tens[i] = map[tkey]float64{}
	}
	for _, p := range ev.Pairs {
		si, ok1 := s.index[p.Source]
		ti, ok2 := s.index[p.Target]
		if ok1 && ok2 {
			ix.pair[si][ti] = p.Accuracy
		}
	}
	for _, e := range ev.Ensembles {
		if ti, ok := s.index[e.Target]; ok {
			ix.ens[ti][s.maskOf(e.Sources)] = e.Accuracy
		}
	}
	for _, e := range ev.TemporalEnsembles {
		if ti, ok := s.index[e.Target]; ok {
			ix.tens[ti][tkey{s.maskOf(e.Sources), e.Age}] = e.Accuracy
			ix.ages = append(ix.ages, e.Age)
		}
	}
	// The ages something was measured at: an evaluated age without a pair
	// of records (ages below the samples' seq step) has no measurement to
	// report as a Confidence.
	slices.Sort(ix.ages)
	ix.ages = slices.Compact(ix.ages)
	return ix
}

func (ix *evalIndex) ensemble(ti int, mask uint64) float64 { return ix.ens[ti][mask] }

func (ix *evalIndex) temporal(ti int, mask uint64, age float64) float64 {
	if len(ix.ages) == 0 {
		return 0
	}
	a := ix.ages[0]
	for _, x := range ix.ages {
		if float64(x) <= age {
			a = x
		}
	}
	return ix.tens[ti][tkey{mask, a}]
}

type camSeq struct {
	cam string
	seq uint64
}

// targetEval holds one target's results.
type targetEval struct {
	pairs    []PairAccuracy
	ens      []EnsembleAccuracy
	sizes    []SizeAccuracy
	base     []BaselineAccuracy
	temporal []TemporalAccuracy
	tens     []EnsembleAccuracy
	tsizes   []SizeAccuracy
}

func (s *Set) evaluate(recs []*TraceRecord) *Evaluation {
	o := s.Options
	ds := prepareLenient(s.Models, recs, &o)
	bySeq := make(map[camSeq]int, len(recs))
	for i, r := range recs {
		bySeq[camSeq{r.Camera, r.Seq}] = i
	}
	res := make([]targetEval, len(s.Models))
	workers := o.Workers
	if workers <= 0 {
		workers = 1
	}
	ages := evalAges(o.EvalAges, recs)
	_ = parallel(workers, len(s.Models), func(ti int) error {
		res[ti] = s.evalTarget(ds, bySeq, ti, ages)
		return nil
	})
	ev := &Evaluation{Frames: len(recs), Ages: ages}
	for _, r := range res {
		ev.Pairs = append(ev.Pairs, r.pairs...)
		ev.Ensembles = append(ev.Ensembles, r.ens...)
		ev.Sizes = append(ev.Sizes, r.sizes...)
		ev.Baselines = append(ev.Baselines, r.base...)
		ev.Temporal = append(ev.Temporal, r.temporal...)
		ev.TemporalEnsembles = append(ev.TemporalEnsembles, r.tens...)
		ev.TemporalSizes = append(ev.TemporalSizes, r.tsizes...)
	}
	return ev
}

// evalAges are the ages, in seqs, at which reuse and temporal links are
// measured: the configured ages and the same ages in steps of the samples'
// own stream. Ages are seq differences (as temporal links are trained and
// production passes them), and the profiled samples come from the stream
// the scheduler plans: sampled at 1 fps from a 10 fps camera, or from a
// camera dropping stale frames, consecutive samples are 10 seqs apart, so
// ages 1, 2 and 5 find no pairs, while the selection asks about ages of k
// frames of that stream (10k seqs). Multiples of the step measure those
// at the configured frame ages (1, 2, 5, 10, 30 frames) where the data
// has them; natively (step 1) the ages are the configured ones. Ages
// without a pair are left out of the results.
func evalAges(configured []int, recs []*TraceRecord) []int {
	step := seqStep(recs)
	ages := slices.Clone(configured)
	if step > 1 {
		for _, a := range configured {
			ages = append(ages, a*step)
		}
	}
	slices.Sort(ages)
	return slices.Compact(ages)
}

// seqStep is the typical seq difference between consecutive records of a
// camera: the median over every camera's consecutive pairs (1 without
// any). The median ignores the gaps between pooled profiling windows.
func seqStep(recs []*TraceRecord) int {
	byCam := map[string][]uint64{}
	for _, r := range recs {
		byCam[r.Camera] = append(byCam[r.Camera], r.Seq)
	}
	var diffs []uint64
	for _, seqs := range byCam {
		slices.Sort(seqs)
		for i := 1; i < len(seqs); i++ {
			if d := seqs[i] - seqs[i-1]; d > 0 {
				diffs = append(diffs, d)
			}
		}
	}
	if len(diffs) == 0 {
		return 1
	}
	slices.Sort(diffs)
	return int(diffs[(len(diffs)-1)/2])
}

// motionBaselines measures a detector's tracker and its delta links from
// every other detector at each age: the predictions of assemble.Track and
// assemble.Follow, as production makes them, scored against the exact
// output. The tracker's motion is measured over the age itself (the
// exact outputs age and 2·age seqs earlier): a rotating model's exact
// outputs are one period apart, and it is reused at ages below that.
func (s *Set) motionBaselines(ds *dataset, ti int, ages []int, prevOf func(r, age int) int) []BaselineAccuracy {
	tm := s.Models[ti]
	var out []BaselineAccuracy
	exact := func(r int, m string) *pipeline.Output {
		if o := ds.recs[r].Outputs[m]; usable(o) {
			return o
		}
		return nil
	}
	withSeq := func(o *pipeline.Output, seq uint64) *pipeline.Output {
		c := *o
		c.Seq = seq
		return &c
	}
	for _, age := range ages {
		var acc scoreAcc
		for r := range ds.recs {
			p := prevOf(r, age)
			if p < 0 || !ds.f[ti][r].ok {
				continue
			}
			pp := prevOf(p, age)
			if pp < 0 {
				continue
			}
			cur, prior, want := exact(p, tm.Name), exact(pp, tm.Name), exact(r, tm.Name)
			got := &pipeline.Output{Type: tm.Type, Boxes: assemble.Track(withSeq(cur, ds.recs[p].Seq),
				withSeq(prior, ds.recs[pp].Seq), float64(age))}
			got.Value = []float64{float64(len(got.Boxes))}
			acc.add(Accuracy(tm.Type, got, want), got.Value[0], ds.f[ti][r].raw[0])
		}
		if acc.n > 0 {
			out = append(out, BaselineAccuracy{Target: tm.Name, Baseline: BaselineTrack, Age: age, Score: acc.score(true)})
		}
	}
	for _, src := range s.Models {
		if src.Name == tm.Name || !assemble.Trackable(src.Type) {
			continue
		}
		for _, link := range followVariants(ds.recs, src.Name, tm.Name) {
			for _, age := range ages {
				var acc scoreAcc
				for r := range ds.recs {
					p := prevOf(r, age)
					if p < 0 || !ds.f[ti][r].ok {
						continue
					}
					then, srcThen, srcNow := exact(p, tm.Name), exact(p, src.Name), exact(r, src.Name)
					if srcThen == nil || srcNow == nil {
						continue
					}
					got := &pipeline.Output{Type: tm.Type, Boxes: assemble.Follow(then, srcThen, srcNow, link)}
					got.Value = []float64{float64(len(got.Boxes))}
					acc.add(Accuracy(tm.Type, got, exact(r, tm.Name)), got.Value[0], ds.f[ti][r].raw[0])
				}
				if acc.n > 0 {
					out = append(out, BaselineAccuracy{Target: tm.Name, Baseline: BaselineFollow, Age: age,
						Source: src.Name, Gain: link.Gain, Deaths: link.Deaths, Births: link.Births, Score: acc.score(true)})
				}
			}
		}
	}
	return out
}

// boxKey memoises the strict accuracy of decoded boxes.
type boxKey struct{ m, r, n, age int }

func (s *Set) evalTarget(ds *dataset, bySeq map[camSeq]int, ti int, ages []int) targetEval {
	var res targetEval
	tm := s.Models[ti]
	R := len(ds.recs)
	t := newTape(rand.New(rand.NewSource(1)))
	e := s.ens[ti]
	M := len(e.members)
	exact := func(r int) *pipeline.Output { return ds.recs[r].Outputs[tm.Name] }
	count := tm.countLike()
	srcIdx := func(l *Link) int { return s.index[l.Source] }

	// Every pure member's head output on every frame.
	z := make([][][]float64, M)
	for m, l := range e.members {
		z[m] = make([][]float64, R)
		si := srcIdx(l)
		for r := 0; r < R; r++ {
			if ds.f[ti][r].ok && ds.f[si][r].ok {
				z[m][r] = l.zOf(t, ds.input(l, si, ti, r, prevRef{}, nil))
			}
		}
	}
	// Decoded boxes per (member, frame), extended on demand: decoders are
	// prefix-consistent, so n boxes are the first n of any longer decode.
	type cached struct {
		boxes []pipeline.Box
		n     int
	}
	cache := make([][]cached, M)
	for m := range cache {
		cache[m] = make([]cached, R)
	}
	boxesOf := func(m, r, n int) []pipeline.Box {
		if n <= 0 {
			return nil
		}
		c := &cache[m][r]
		if c.boxes == nil || n > c.n {
			l := e.members[m]
			t.reset(false, false)
			f := l.forward(t, ds.input(l, srcIdx(l), ti, r, prevRef{}, nil), 0)
			c.boxes, c.n = s.decodeBoxes(t, l, f, n), n
		}
		return c.boxes[:min(n, len(c.boxes))]
	}
	memo := map[boxKey]float64{}
	strictBoxes := func(k boxKey, boxes func() []pipeline.Box) float64 {
		if v, ok := memo[k]; ok {
			return v
		}
		p := pipeline.Output{Boxes: boxes()}
		v := Accuracy(tm.Type, &p, exact(k.r))
		memo[k] = v
		return v
	}
	maxN := s.Options.MaxSeqLen
	nOf := func(c float64) int { return min(int(math.Round(c)), maxN) }

	// Pure links.
	zbar := make([]float64, tm.Dim)
	for m, l := range e.members {
		var acc scoreAcc
		for r := 0; r < R; r++ {
			if !ds.f[ti][r].ok {
				continue // nothing to score against (the target failed)
			}
			if z[m][r] == nil {
				// The source failed: production does not serve a target
				// from one link, but the selection reads a pair's accuracy
				// as what executing the source gives the target (MLink's
				// activation probabilities, the fallback where no ensemble
				// was measured), and a failed source gives it nothing.
				acc.miss(ds.f[ti][r].raw[0])
				continue
			}
			var out pipeline.Output
			c := s.assemble(tm, z[m][r], &out)
			strict := 0.0
			if tm.Seq() {
				n := nOf(c)
				strict = strictBoxes(boxKey{m, r, n, 0}, func() []pipeline.Box { return boxesOf(m, r, n) })
			} else {
				strict = Accuracy(tm.Type, &out, exact(r))
			}
			acc.add(strict, first(out.Value), ds.f[ti][r].raw[0])
		}
		res.pairs = append(res.pairs, PairAccuracy{Source: l.Source, Target: tm.Name, Kind: l.Family, Score: acc.score(count)})
	}

	// Ensembles over every source set.
	present := make([]bool, M)
	w := make([]float64, M)
	subsetScores := map[int][]Score{}
	for mask := 1; mask < 1<<M; mask++ {
		var acc scoreAcc
		for r := 0; r < R; r++ {
			if !ds.f[ti][r].ok {
				continue
			}
			for m := range present {
				present[m] = mask&(1<<m) != 0 && z[m][r] != nil
			}
			if !e.weights(present, w) {
				// None of the set's sources has an output on this frame:
				// production has nothing to predict from (ErrNoSource) and
				// the target is absent. Skipping the frame would measure
				// the ensemble only where it can answer.
				acc.miss(ds.f[ti][r].raw[0])
				continue
			}
			clear(zbar)
			for m := range present {
				if present[m] {
					for k := range zbar {
						zbar[k] += w[m] * z[m][r][k]
					}
				}
			}
			var out pipeline.Output
			c := s.assemble(tm, zbar, &out)
			strict := 0.0
			if tm.Seq() {
				top, n := topMember(e, present), nOf(c)
				strict = strictBoxes(boxKey{top, r, n, 0}, func() []pipeline.Box { return boxesOf(top, r, n) })
			} else {
				strict = Accuracy(tm.Type, &out, exact(r))
			}
			acc.add(strict, first(out.Value), ds.f[ti][r].raw[0])
		}
		var srcs []string
		for m := 0; m < M; m++ {
			if mask&(1<<m) != 0 {
				srcs = append(srcs, e.Sources[m])
			}
		}
		if acc.n == 0 {
			continue
		}
		sc := acc.score(count)
		res.ens = append(res.ens, EnsembleAccuracy{Target: tm.Name, Sources: srcs, Score: sc})
		subsetScores[bits.OnesCount(uint(mask))] = append(subsetScores[bits.OnesCount(uint(mask))], sc)
	}
	res.sizes = sizeSummary(tm.Name, 0, subsetScores, count)

	// Baselines: constant, and reuse of the target's own earlier output.
	{
		var acc scoreAcc
		cv := make([]float64, tm.Dim)
		_ = tm.vectorView(tm.Constant, cv)
		for r := 0; r < R; r++ {
			if ds.f[ti][r].ok {
				acc.add(Accuracy(tm.Type, tm.Constant, exact(r)), cv[0], ds.f[ti][r].raw[0])
			}
		}
		// Without a frame to score on there is no measurement (an accuracy
		// of 0 would read as a measured worthless guess).
		if acc.n > 0 {
			res.base = append(res.base, BaselineAccuracy{Target: tm.Name, Baseline: BaselineConstant, Score: acc.score(count)})
		}
	}
	prevOf := func(r, age int) int {
		rec := ds.recs[r]
		if uint64(age) > rec.Seq {
			return -1
		}
		p, ok := bySeq[camSeq{rec.Camera, rec.Seq - uint64(age)}]
		if !ok || !ds.f[ti][p].ok {
			return -1
		}
		return p
	}
	for _, age := range ages {
		var acc scoreAcc
		for r := 0; r < R; r++ {
			if !ds.f[ti][r].ok {
				continue
			}
			if p := prevOf(r, age); p >= 0 {
				acc.add(Accuracy(tm.Type, exact(p), exact(r)), ds.f[ti][p].raw[0], ds.f[ti][r].raw[0])
			}
		}
		if acc.n == 0 {
			continue
		}
		res.base = append(res.base, BaselineAccuracy{Target: tm.Name, Baseline: BaselineReuse, Age: age, Score: acc.score(count)})
	}
	if assemble.Trackable(tm.Type) {
		res.base = append(res.base, s.motionBaselines(ds, ti, ages, prevOf)...)
	}

	// Temporal links and ensembles.
	te := s.tens[ti]
	if te == nil {
		return res
	}
	TM := len(te.members)
	self := -1
	srcBit := make([]int, TM) // member → bit in the source mask (-1 for self)
	bit := 0
	for m, l := range te.members {
		if l.src == nil {
			self, srcBit[m] = m, -1
		} else {
			srcBit[m] = bit
			bit++
		}
	}
	// pureOf maps a temporal member to the pure member of the same source.
	pureOf := make([]int, TM)
	for m, l := range te.members {
		pureOf[m] = -1
		if l.src != nil {
			pureOf[m] = slices.Index(e.Sources, l.Source)
		}
	}
	extra := make([]float64, tm.Dim+1)
	tpresent := make([]bool, TM)
	tw := make([]float64, TM)
	ppresent := make([]bool, M)
	for _, age := range ages {
		zt := make([][][]float64, TM)
		for m := range zt {
			zt[m] = make([][]float64, R)
		}
		prev := make([]int, R)
		for r := 0; r < R; r++ {
			prev[r] = -1
			if !ds.f[ti][r].ok {
				continue
			}
			p := prevOf(r, age)
			if p < 0 {
				continue
			}
			prev[r] = p
			for m, l := range te.members {
				si := ti
				if l.src != nil {
					si = srcIdx(l)
					if !ds.f[si][r].ok {
						continue
					}
				}
				zt[m][r] = l.zOf(t, ds.input(l, si, ti, r, prevRef{p, age}, extra))
			}
		}
		// fillFor returns the pure member whose decoder tops up boxes: the
		// most heavily weighted pure member among the present sources.
		fillFor := func(r int, srcPresent func(m int) bool) int {
			any := false
			for m := range ppresent {
				ppresent[m] = srcPresent(m) && z[m][r] != nil
				any = any || ppresent[m]
			}
			if !any {
				return -1
			}
			return topMember(e, ppresent)
		}
		temporalStrict := func(r int, out *pipeline.Output, c float64, fill int) float64 {
			if !tm.Seq() {
				return Accuracy(tm.Type, out, exact(r))
			}
			n := nOf(c)
			return strictBoxes(boxKey{fill, r, n, age}, func() []pipeline.Box {
				var fn func(int) []pipeline.Box
				if fill >= 0 {
					fn = func(n int) []pipeline.Box { return boxesOf(fill, r, n) }
				}
				return temporalBoxes(tm, exact(prev[r]).Boxes, n, fn)
			})
		}
		for m, l := range te.members {
			var acc scoreAcc
			for r := 0; r < R; r++ {
				if prev[r] < 0 {
					continue // no output age seqs earlier: not a sample of this age
				}
				if zt[m][r] == nil {
					// The link's source failed: a miss, as for pure links.
					acc.miss(ds.f[ti][r].raw[0])
					continue
				}
				var out pipeline.Output
				c := s.assemble(tm, zt[m][r], &out)
				fill := -1
				if pm := pureOf[m]; pm >= 0 && z[pm][r] != nil {
					fill = pm
				}
				acc.add(temporalStrict(r, &out, c, fill), first(out.Value), ds.f[ti][r].raw[0])
			}
			if acc.n == 0 {
				continue
			}
			res.temporal = append(res.temporal, TemporalAccuracy{Source: l.Source, Target: tm.Name, Kind: l.Family, Age: age, Score: acc.score(count)})
		}
		scores := map[int][]Score{}
		for mask := 0; mask < 1<<(TM-1); mask++ {
			var acc scoreAcc
			for r := 0; r < R; r++ {
				// The self-temporal member needs only the target's earlier
				// output, so a temporal ensemble always has something to
				// predict from, like production's PredictTemporal: no
				// misses here. Frames without an output age seqs earlier
				// are no sample of this age.
				if prev[r] < 0 {
					continue
				}
				for m := range tpresent {
					tpresent[m] = zt[m][r] != nil && (m == self || mask&(1<<srcBit[m]) != 0)
				}
				te.weights(tpresent, tw)
				clear(zbar)
				for m := range tpresent {
					if tpresent[m] {
						for k := range zbar {
							zbar[k] += tw[m] * zt[m][r][k]
						}
					}
				}
				var out pipeline.Output
				c := s.assemble(tm, zbar, &out)
				fill := -1
				if tm.Seq() {
					fill = fillFor(r, func(pm int) bool {
						tmIdx := slices.Index(pureOf, pm)
						return tmIdx >= 0 && mask&(1<<srcBit[tmIdx]) != 0
					})
				}
				acc.add(temporalStrict(r, &out, c, fill), first(out.Value), ds.f[ti][r].raw[0])
			}
			var srcs []string
			for m, l := range te.members {
				if m != self && mask&(1<<srcBit[m]) != 0 {
					srcs = append(srcs, l.Source)
				}
			}
			if acc.n == 0 {
				continue
			}
			sc := acc.score(count)
			res.tens = append(res.tens, EnsembleAccuracy{Target: tm.Name, Sources: srcs, Age: age, Score: sc})
			scores[len(srcs)] = append(scores[len(srcs)], sc)
		}
		res.tsizes = append(res.tsizes, sizeSummary(tm.Name, age, scores, count)...)
	}
	return res
}

func sizeSummary(target string, age int, bySize map[int][]Score, count bool) []SizeAccuracy {
	var out []SizeAccuracy
	for _, k := range slices.Sorted(maps.Keys(bySize)) {
		sc := bySize[k]
		sa := SizeAccuracy{Target: target, Size: k, Age: age, Subsets: len(sc), Min: math.Inf(1), Max: math.Inf(-1)}
		cm := 0.0
		for _, x := range sc {
			sa.Mean += x.Accuracy
			sa.Min = min(sa.Min, x.Accuracy)
			sa.Max = max(sa.Max, x.Accuracy)
			if x.Count != nil {
				cm += x.Count.Accuracy
			}
		}
		sa.Mean /= float64(len(sc))
		if count {
			v := cm / float64(len(sc))
			sa.CountMean = &v
		}
		out = append(out, sa)
	}
	return out
}
