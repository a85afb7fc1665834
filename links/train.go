package links

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand"
	"slices"
	"sync"
	"time"
)

// SplitByTime orders records by time (then camera and sequence number) and
// returns the first frac of them for training and the rest for
// evaluation, as the paper's video systems did (first 10 % of a stream).
func SplitByTime(recs []*TraceRecord, frac float64) (train, eval []*TraceRecord) {
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b *TraceRecord) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Camera, b.Camera); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	k := int(math.Ceil(frac*float64(len(sorted)) - 1e-9))
	k = min(max(k, 0), len(sorted))
	return sorted[:k], sorted[k:]
}

// Train trains every ordered pair of models of the trace (pure links), the
// temporal links unless opts.NoTemporal, then one ensemble per target.
// recs are the training frames (see SplitByTime). Training is
// deterministic given opts.Seed.
func Train(h TraceHeader, recs []*TraceRecord, opts TrainOptions) (*Set, error) {
	start := time.Now()
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("train options: %w", err)
	}
	if h.Version != 0 && h.Version != TraceVersion {
		return nil, fmt.Errorf("trace version %d is not supported (this mlink reads version %d)", h.Version, TraceVersion)
	}
	if len(recs) == 0 {
		return nil, errors.New("no training frames: the trace (or its training fraction) is empty")
	}
	if len(h.Models) < 2 {
		return nil, fmt.Errorf("links need at least two models, the trace has %d", len(h.Models))
	}
	models, err := modelInfos(h, recs, opts.MaxSeqLen)
	if err != nil {
		return nil, err
	}
	s := newSet(models, opts)
	s.build()
	for _, l := range s.allLinks() {
		l.init(rand.New(rand.NewSource(seedFor(opts.Seed, l.key()))))
	}
	ds, err := prepare(models, recs, &s.Options, false)
	if err != nil {
		return nil, err
	}
	if err := s.fit(ds, &opts, false); err != nil {
		return nil, err
	}
	s.TrainFrames = len(recs)
	s.TrainSeconds = time.Since(start).Seconds()
	s.CreatedAt = time.Now().UTC()
	return s, nil
}

// FineTune returns a copy of the set trained further on new profiled
// frames (the paper's periodic update: e.g. 50 frames every 10 minutes).
// Architecture and normalisation stay; opts gives the epochs, learning
// rate, batch size, seed and progress (zero values: the defaults). s is
// not modified and stays usable by concurrent predictors.
func (s *Set) FineTune(recs []*TraceRecord, opts TrainOptions) (*Set, error) {
	if len(recs) == 0 {
		return nil, errors.New("fine-tune: no frames")
	}
	c := s.clone()
	o := c.Options
	opts.EnsureDefaults()
	o.Epochs, o.BatchSize, o.LearningRate, o.Seed = opts.Epochs, opts.BatchSize, opts.LearningRate, opts.Seed
	o.Workers, o.Progress = opts.Workers, opts.Progress
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("fine-tune options: %w", err)
	}
	ds, err := prepare(c.Models, recs, &o, false)
	if err != nil {
		return nil, fmt.Errorf("fine-tune: %w", err)
	}
	// A few new frames may give some links nothing to learn from (a
	// temporal link needs two frames of one camera): those keep their
	// weights.
	if err := c.fit(ds, &o, true); err != nil {
		return nil, fmt.Errorf("fine-tune: %w", err)
	}
	c.TrainFrames += len(recs)
	return c, nil
}

func seedFor(seed int64, key string) int64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return int64(h.Sum64()) ^ (seed * 0x5851F42D4C957F2D)
}

// feat is one model output's features, computed once per frame.
type feat struct {
	ok    bool
	raw   []float64 // vector view
	vec   []float64 // normalised vector view
	elems []float64 // normalised elements (sequence models)
}

// target returns the training target of the head: class probabilities as
// they are (soft targets), anything else normalised.
func (f *feat) target(m *ModelInfo) []float64 {
	if m.Type == "class" {
		return f.raw
	}
	return f.vec
}

type prevRef struct{ rec, age int }

// dataset is a list of frames with every model's features.
type dataset struct {
	models []*ModelInfo
	recs   []*TraceRecord
	f      [][]feat    // [model][frame]
	prev   [][]prevRef // [frame]: earlier frames of the same camera within MaxAge
}

// prepareLenient is prepare for evaluation: outputs that do not fit the
// links (wrong dimensions) are skipped like missing ones.
func prepareLenient(models []*ModelInfo, recs []*TraceRecord, o *TrainOptions) *dataset {
	ds, _ := prepare(models, recs, o, true)
	return ds
}

// prepare computes every model's features on every frame. Unless lenient,
// an output that does not fit its model is an error.
func prepare(models []*ModelInfo, recs []*TraceRecord, o *TrainOptions, lenient bool) (*dataset, error) {
	ds := &dataset{models: models, recs: recs, f: make([][]feat, len(models)), prev: make([][]prevRef, len(recs))}
	maxBoxes := 0
	for _, r := range recs {
		for _, out := range r.Outputs {
			if out != nil {
				maxBoxes = max(maxBoxes, len(out.Boxes))
			}
		}
	}
	idx := make([]int, maxBoxes)
	key := make([]float64, maxBoxes)
	buf := make([]float64, o.MaxSeqLen*ElemDim)
	for mi, m := range models {
		ds.f[mi] = make([]feat, len(recs))
		for ri, r := range recs {
			out := r.Outputs[m.Name]
			if !usable(out) {
				continue
			}
			f := &ds.f[mi][ri]
			f.raw = make([]float64, m.Dim)
			if err := m.vectorView(out, f.raw); err != nil {
				if lenient {
					f.raw = nil
					continue
				}
				return nil, fmt.Errorf("frame %s/%d: %w", r.Camera, r.Seq, err)
			}
			f.vec = slices.Clone(f.raw)
			m.normVec(f.vec)
			if m.Seq() {
				f.elems = slices.Clone(m.elements(out, o.MaxSeqLen, buf, idx, key))
			}
			f.ok = true
		}
	}
	type ref struct {
		seq uint64
		i   int
	}
	byCam := map[string][]ref{}
	for i, r := range recs {
		byCam[r.Camera] = append(byCam[r.Camera], ref{r.Seq, i})
	}
	for _, refs := range byCam {
		slices.SortFunc(refs, func(a, b ref) int { return cmp.Compare(a.seq, b.seq) })
		for k, cur := range refs {
			for j := k - 1; j >= 0; j-- {
				age := int(cur.seq - refs[j].seq)
				if age > o.MaxAge {
					break
				}
				if age > 0 {
					ds.prev[cur.i] = append(ds.prev[cur.i], prevRef{refs[j].i, age})
				}
			}
		}
	}
	return ds, nil
}

// ageFeature maps an age in frames to the temporal links' input.
func ageFeature(age float64, maxAge int) float64 {
	return math.Log1p(max(age, 0)) / math.Log1p(float64(maxAge))
}

// input builds a link's input for frame r (and, for temporal links, the
// target's output on frame prev, age frames earlier). extra is scratch.
func (ds *dataset) input(l *Link, si, ti, r int, p prevRef, extra []float64) linkInput {
	var in linkInput
	if l.src != nil {
		f := &ds.f[si][r]
		in.vec, in.elems = f.vec, f.elems
	}
	if l.Temporal {
		copy(extra, ds.f[ti][p.rec].vec)
		extra[len(extra)-1] = ageFeature(float64(p.age), l.maxAge)
		in.extra = extra
	}
	return in
}

// job is one unit of training.
type job struct {
	link     *Link
	ens      *Ensemble
	si, ti   int
	stage    string
	finished bool
}

type progressState struct {
	mu    sync.Mutex
	done  int
	total int
	fn    func(Progress)
}

func (p *progressState) report(stage, src, tgt string, epoch, epochs int, loss float64, finished bool) {
	if p.fn == nil && !finished {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if finished {
		p.done++
	}
	if p.fn != nil {
		p.fn(Progress{Stage: stage, Source: src, Target: tgt, Epoch: epoch, Epochs: epochs, Loss: loss, Done: p.done, Total: p.total, Finished: finished})
	}
}

// fit trains every link, then every ensemble, on ds.
// errNoFrames: a link has no frame to train on.
var errNoFrames = errors.New("no training frame")

// fit trains every link, then every ensemble. lenient skips links without
// training frames instead of failing (fine-tuning).
func (s *Set) fit(ds *dataset, o *TrainOptions, lenient bool) error {
	var linkJobs []job
	for t := range s.Models {
		for i := range s.Models {
			if l := s.pure[t][i]; l != nil {
				linkJobs = append(linkJobs, job{link: l, si: i, ti: t, stage: "link"})
			}
		}
	}
	for t := range s.Models {
		for i := range s.Models {
			if l := s.temp[t][i]; l != nil {
				linkJobs = append(linkJobs, job{link: l, si: i, ti: t, stage: "temporal"})
			}
		}
	}
	ens := s.ensembles()
	ps := &progressState{total: len(linkJobs) + len(ens), fn: o.Progress}
	err := parallel(o.Workers, len(linkJobs), func(k int) error {
		j := linkJobs[k]
		err := trainLink(j.link, j.si, j.ti, ds, o, ps)
		if lenient && errors.Is(err, errNoFrames) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return parallel(o.Workers, len(ens), func(k int) error {
		err := s.trainEnsemble(ens[k], ds, o, ps)
		if lenient && errors.Is(err, errNoFrames) {
			return nil
		}
		return err
	})
}

// parallel runs fn(0..n-1) on up to workers goroutines and returns the
// first error (by index, so errors are deterministic).
func parallel(workers, n int, fn func(int) error) error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < max(1, min(workers, n)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				errs[k] = fn(k)
			}
		}()
	}
	for k := 0; k < n; k++ {
		next <- k
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// trainLink trains one link (and its loss-prediction head) with RMSprop.
func trainLink(l *Link, si, ti int, ds *dataset, o *TrainOptions, ps *progressState) error {
	rng := rand.New(rand.NewSource(seedFor(o.Seed, "train:"+l.key())))
	tgt := ds.models[ti]
	var frames []int
	for r := range ds.recs {
		if !ds.f[ti][r].ok || (l.src != nil && !ds.f[si][r].ok) {
			continue
		}
		if l.Temporal && !hasPrev(ds, ti, r) {
			continue
		}
		frames = append(frames, r)
	}
	if len(frames) == 0 {
		what := "outputs of both " + l.Source + " and " + l.Target
		if l.Temporal {
			what = "an earlier output of " + l.Target
		}
		return fmt.Errorf("link %s: %w has %s", l.key(), errNoFrames, what)
	}
	t := newTape(rng)
	extra := make([]float64, l.a.extra)
	hid := make([][]float64, o.BatchSize)
	for i := range hid {
		hid[i] = make([]float64, l.a.hidden)
	}
	losses := make([]float64, o.BatchSize)
	ms := &matchScratch{}
	cands := make([]prevRef, 0, o.MaxAge)
	dropout := o.dropout()
	lpParams := []*Param{l.lp.W, l.lp.B}
	var last float64
	alive := make([]bool, l.a.hidden)
	for epoch := 1; epoch <= o.Epochs; epoch++ {
		rng.Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
		total := 0.0
		clear(alive)
		for b := 0; b < len(frames); b += o.BatchSize {
			batch := frames[b:min(b+o.BatchSize, len(frames))]
			for k, r := range batch {
				var p prevRef
				if l.Temporal {
					cands = cands[:0]
					for _, c := range ds.prev[r] {
						if ds.f[ti][c.rec].ok {
							cands = append(cands, c)
						}
					}
					p = drawPrev(cands, o.MaxAge, rng)
				}
				in := ds.input(l, si, ti, r, p, extra)
				loss, f := l.step(t, in, &ds.f[ti][r], tgt, o, dropout, ms)
				total += loss
				losses[k] = loss
				copy(hid[k], t.val(f.hidden))
				for j, v := range hid[k] {
					alive[j] = alive[j] || v > 0
				}
			}
			rmsprop(l.params, o.LearningRate, len(batch))
			trainLossHead(l, hid[:len(batch)], losses[:len(batch)], o.LossMargin)
			rmsprop(lpParams, o.LearningRate, 1)
		}
		last = total / float64(len(frames))
		if epoch < o.Epochs {
			l.revive(alive, rng)
		}
		ps.report(stageOf(l), l.Source, l.Target, epoch, o.Epochs, last, false)
	}
	ps.report(stageOf(l), l.Source, l.Target, o.Epochs, o.Epochs, last, true)
	return nil
}

func stageOf(l *Link) string {
	if l.Temporal {
		return "temporal"
	}
	return "link"
}

func hasPrev(ds *dataset, ti, r int) bool {
	for _, c := range ds.prev[r] {
		if ds.f[ti][c.rec].ok {
			return true
		}
	}
	return false
}

// step runs one training sample forward and backward, accumulating the
// gradients; it returns the sample's loss.
func (l *Link) step(t *tape, in linkInput, y *feat, tgt *ModelInfo, o *TrainOptions, dropout float64, ms *matchScratch) (float64, fwd) {
	t.reset(true, true)
	f := l.forward(t, in, dropout)
	z := &t.nodes[f.z]
	loss := vecLoss(tgt.Type, o.CountLoss, z.val, y.target(tgt), z.grad, 1)
	switch l.a.decoder {
	case DecoderAttention:
		if n := len(y.elems) / ElemDim; n > 0 {
			out := l.decodeAttention(t, f, n, y.elems)
			loss += seqLossAttention(t.val(out), y.elems, t.nodes[out].grad)
		}
	case DecoderSet:
		out := l.decodeSet(t, f, dropout)
		loss += seqLossSet(t.val(out), y.elems, l.a.slots, t.nodes[out].grad, ms)
	}
	t.backward()
	return loss, f
}

// trainLossHead accumulates the margin ranking loss of the loss-prediction
// head over the batch's pairs (i, B−1−i), as in the MLink reference code:
// the head must order each pair's predicted losses like the true ones.
// Its input (the link's last hidden layer) is detached: ranking does not
// change the link.
func trainLossHead(l *Link, hid [][]float64, losses []float64, margin float64) {
	B := len(hid)
	half := B / 2
	if half == 0 {
		return
	}
	pred := func(h []float64) float64 {
		s := l.lp.B.W[0]
		for i, v := range h {
			s += l.lp.W.W[i] * v
		}
		return s
	}
	wg, bg := l.lp.W.grad(), l.lp.B.grad()
	for i := 0; i < half; i++ {
		j := B - 1 - i
		sgn := -1.0
		if losses[i]-losses[j] > 0 {
			sgn = 1
		}
		if margin-sgn*(pred(hid[i])-pred(hid[j])) <= 0 {
			continue
		}
		gi, gj := -sgn/float64(half), sgn/float64(half)
		bg[0] += gi + gj
		for k := range hid[i] {
			wg[k] += gi*hid[i][k] + gj*hid[j][k]
		}
	}
}

// zOf runs a link without dropout and returns its head output (copied).
func (l *Link) zOf(t *tape, in linkInput) []float64 {
	t.reset(false, false)
	f := l.forward(t, in, 0)
	return slices.Clone(t.val(f.z))
}

// trainEnsemble fits one ensemble's weights on its members' outputs.
func (s *Set) trainEnsemble(e *Ensemble, ds *dataset, o *TrainOptions, ps *progressState) error {
	ti := s.index[e.Target]
	tgt := s.Models[ti]
	rng := rand.New(rand.NewSource(seedFor(o.Seed, "train:"+e.W.Name)))
	t := newTape(rng)
	extra := make([]float64, tgt.Dim+1)
	var samples []ensSample
	for r := range ds.recs {
		if !ds.f[ti][r].ok {
			continue
		}
		var prevs []prevRef
		if e.Temporal {
			for _, c := range ds.prev[r] {
				if ds.f[ti][c.rec].ok {
					prevs = append(prevs, c)
				}
			}
			if len(prevs) == 0 {
				continue
			}
			// A few ages per frame, drawn once: members' outputs are
			// computed once, not at every epoch.
			drawn := make([]prevRef, 8)
			for k := range drawn {
				drawn[k] = drawPrev(prevs, o.MaxAge, rng)
			}
			prevs = drawn
		} else {
			prevs = []prevRef{{}}
		}
		for _, p := range prevs {
			sm := ensSample{z: make([][]float64, len(e.members)), y: ds.f[ti][r].target(tgt)}
			any := false
			for m, l := range e.members {
				si := ti
				if l.src != nil {
					si = s.index[l.Source]
					if !ds.f[si][r].ok {
						continue
					}
				}
				sm.z[m] = l.zOf(t, ds.input(l, si, ti, r, p, extra))
				any = true
			}
			if any {
				samples = append(samples, sm)
			}
		}
	}
	if len(samples) == 0 {
		return fmt.Errorf("ensemble for %s: %w has the target and a source", e.Target, errNoFrames)
	}
	stage := "ensemble"
	last := 0.0
	e.train(tgt, samples, o, rng, func(epoch int, loss float64) {
		last = loss
		ps.report(stage, "", e.Target, epoch, o.Epochs, loss, false)
	})
	ps.report(stage, "", e.Target, o.Epochs, o.Epochs, last, true)
	return nil
}

// revive re-initialises hidden units of the head that were inactive (ReLU
// output 0) on every training frame of an epoch. With the published width
// (2 units per output dimension) a dead unit is half the link: without
// this, count links could collapse to a constant (measured: a count→count
// link, 90 % identity, reached 0.10 instead of 0.92 on one seed).
func (l *Link) revive(alive []bool, rng *rand.Rand) {
	w, b := l.h1.W, l.h1.B
	lim := math.Sqrt(6 / float64(w.Rows+w.Cols))
	for j, ok := range alive {
		if ok {
			continue
		}
		row := w.W[j*w.Cols : (j+1)*w.Cols]
		for k := range row {
			row[k] = (rng.Float64()*2 - 1) * lim
		}
		b.W[j] = 0
		if w.ms != nil {
			clear(w.ms[j*w.Cols : (j+1)*w.Cols])
			b.ms[j] = 0
		}
	}
}

// drawPrev draws an earlier frame for a temporal training sample: an age
// log-uniform in [1, maxAge] (small ages, where the last output says most
// and where a scheduler mostly uses it, are not drowned by large ones),
// then the candidate of the nearest age. cands are ordered by age.
func drawPrev(cands []prevRef, maxAge int, rng *rand.Rand) prevRef {
	want := math.Floor(math.Exp(rng.Float64() * math.Log(float64(maxAge)+1)))
	best := cands[0]
	for _, c := range cands[1:] {
		if math.Abs(float64(c.age)-want) < math.Abs(float64(best.age)-want) {
			best = c
		}
	}
	return best
}
