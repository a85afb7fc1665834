package links

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"

	"github.com/mlink-project/mlink/pipeline"
)

// clone deep-copies the set's models and weights (not its evaluation or
// optimiser state).
func (s *Set) clone() *Set {
	models := make([]*ModelInfo, len(s.Models))
	for i, m := range s.Models {
		c := *m
		c.Classes = slices.Clone(m.Classes)
		c.VecMean, c.VecStd = slices.Clone(m.VecMean), slices.Clone(m.VecStd)
		c.ElemMean, c.ElemStd = slices.Clone(m.ElemMean), slices.Clone(m.ElemStd)
		models[i] = &c
	}
	c := newSet(models, s.Options)
	c.build()
	src, dst := s.orderedParams(), c.orderedParams()
	for i := range src {
		copy(dst[i].W, src[i].W)
	}
	c.TrainFrames, c.TrainSeconds, c.CreatedAt = s.TrainFrames, s.TrainSeconds, s.CreatedAt
	return c
}

// MCDropoutPasses is the number of stochastic forward passes used to
// estimate a regression link's predictive variance.
const MCDropoutPasses = 10

// SelectByUncertainty picks the frames on which the links are least sure
// (active sampling): entropy of the predicted class distribution for
// class targets, variance of the predicted value under MC dropout
// (MCDropoutPasses passes) for the others. Every pure link whose source is
// present in a frame scores it; scores are turned into percentile ranks
// per link (entropy and variance are not comparable) and averaged. It
// returns the indices into recs of the top frac of frames, most uncertain
// first. frac is typically 0.01–0.05 of a window.
func (s *Set) SelectByUncertainty(recs []*TraceRecord, frac float64) ([]int, error) {
	rng := rand.New(rand.NewSource(seedFor(s.Options.Seed, "mc-dropout")))
	t := newTape(rng)
	drop := s.Options.dropout()
	return s.selectTop(recs, frac, func(l *Link, in linkInput) float64 {
		if l.tgt.Type == pipeline.TypeClass {
			t.reset(false, false)
			f := l.forward(t, in, 0)
			p := make([]float64, l.tgt.Dim)
			softmaxTo(p, t.val(f.z))
			h := 0.0
			for _, x := range p {
				if x > 0 {
					h -= x * math.Log(x)
				}
			}
			return h
		}
		var sum, sq float64
		for k := 0; k < MCDropoutPasses; k++ {
			t.reset(true, false)
			f := l.forward(t, in, drop)
			v := t.val(f.z)[0]
			sum += v
			sq += v * v
		}
		n := float64(MCDropoutPasses)
		return sq/n - (sum/n)*(sum/n)
	})
}

// SelectByPredictedLoss picks the frames with the highest loss predicted
// by the links' loss-prediction heads (MLink's adaptive update): top frac
// (1–5 % in the paper) of the window, as indices into recs, highest first.
// Scores are combined across links as in SelectByUncertainty.
func (s *Set) SelectByPredictedLoss(recs []*TraceRecord, frac float64) ([]int, error) {
	t := newTape(rand.New(rand.NewSource(1)))
	return s.selectTop(recs, frac, func(l *Link, in linkInput) float64 {
		t.reset(false, false)
		f := l.forward(t, in, 0)
		return l.lossPred(t, f)
	})
}

func (s *Set) selectTop(recs []*TraceRecord, frac float64, score func(*Link, linkInput) float64) ([]int, error) {
	if !(frac > 0 && frac <= 1) {
		return nil, fmt.Errorf("select: fraction %v must be in (0, 1]", frac)
	}
	if len(recs) == 0 {
		return nil, errors.New("select: no frames")
	}
	o := s.Options
	ds := prepareLenient(s.Models, recs, &o)
	R := len(recs)
	rankSum := make([]float64, R)
	rankN := make([]int, R)
	type scored struct {
		r int
		v float64
	}
	var buf []scored
	for _, l := range s.Links() {
		si, ti := s.index[l.Source], s.index[l.Target]
		buf = buf[:0]
		for r := 0; r < R; r++ {
			if !ds.f[si][r].ok {
				continue
			}
			buf = append(buf, scored{r, score(l, ds.input(l, si, ti, r, prevRef{}, nil))})
		}
		if len(buf) < 2 {
			continue
		}
		slices.SortStableFunc(buf, func(a, b scored) int { return cmp.Compare(a.v, b.v) })
		// Percentile rank, ties sharing their mean rank.
		for i := 0; i < len(buf); {
			j := i
			for j+1 < len(buf) && buf[j+1].v == buf[i].v {
				j++
			}
			rank := float64(i+j) / 2 / float64(len(buf)-1)
			for k := i; k <= j; k++ {
				rankSum[buf[k].r] += rank
				rankN[buf[k].r]++
			}
			i = j + 1
		}
	}
	all := make([]scored, 0, R)
	for r := 0; r < R; r++ {
		if rankN[r] > 0 {
			all = append(all, scored{r, rankSum[r] / float64(rankN[r])})
		}
	}
	slices.SortStableFunc(all, func(a, b scored) int { return cmp.Compare(b.v, a.v) })
	k := min(max(1, int(math.Ceil(frac*float64(R)-1e-9))), len(all))
	out := make([]int, k)
	for i := range out {
		out[i] = all[i].r
	}
	return out, nil
}

// FedAvg averages the link and ensemble weights of sets trained on
// different cameras (federated averaging, weighted by each set's number of
// training frames). The sets must share the architecture: same models
// (names, types, dimensions, set-decoder slots) and options. Sets
// fine-tuned from one common set share its normalisation and average
// exactly; otherwise normalisation statistics are pooled too, an
// approximation. The result has no evaluation: evaluate it before use.
func FedAvg(sets ...*Set) (*Set, error) {
	if len(sets) == 0 {
		return nil, errors.New("fedavg: no link sets")
	}
	for i, s := range sets {
		if s == nil {
			return nil, fmt.Errorf("fedavg: set %d is nil", i)
		}
	}
	base := sets[0]
	for i, s := range sets[1:] {
		if err := sameArch(base, s); err != nil {
			return nil, fmt.Errorf("fedavg: set %d has a different architecture than set 0: %w", i+1, err)
		}
	}
	out := base.clone()
	total := 0.0
	wts := make([]float64, len(sets))
	for i, s := range sets {
		wts[i] = float64(max(s.TrainFrames, 1))
		total += wts[i]
	}
	dst := out.orderedParams()
	for k := range dst {
		clear(dst[k].W)
	}
	for i, s := range sets {
		src := s.orderedParams()
		f := wts[i] / total
		for k := range dst {
			for j, v := range src[k].W {
				dst[k].W[j] += f * v
			}
		}
	}
	for mi, m := range out.Models {
		n := 0.0
		vm := make([]float64, m.Dim)
		vq := make([]float64, m.Dim)
		em := make([]float64, len(m.ElemMean))
		eq := make([]float64, len(m.ElemMean))
		for _, s := range sets {
			sm := s.Models[mi]
			w := float64(max(sm.Samples, 1))
			n += w
			for k := range vm {
				vm[k] += w * sm.VecMean[k]
				vq[k] += w * (sm.VecStd[k]*sm.VecStd[k] + sm.VecMean[k]*sm.VecMean[k])
			}
			for k := range em {
				em[k] += w * sm.ElemMean[k]
				eq[k] += w * (sm.ElemStd[k]*sm.ElemStd[k] + sm.ElemMean[k]*sm.ElemMean[k])
			}
		}
		pool := func(mean, sq, dm, ds []float64) {
			for k := range mean {
				mu := mean[k] / n
				dm[k] = mu
				ds[k] = math.Sqrt(math.Max(sq[k]/n-mu*mu, 1e-12))
			}
		}
		pool(vm, vq, m.VecMean, m.VecStd)
		pool(em, eq, m.ElemMean, m.ElemStd)
		if m.Type == pipeline.TypeClass {
			for k := range m.VecStd {
				m.VecStd[k] = 1
			}
		}
		m.Samples = int(n)
	}
	out.TrainFrames = 0
	for _, s := range sets {
		out.TrainFrames += s.TrainFrames
	}
	return out, nil
}

func sameArch(a, b *Set) error {
	if len(a.Models) != len(b.Models) {
		return fmt.Errorf("%d models vs %d", len(a.Models), len(b.Models))
	}
	for i, m := range a.Models {
		n := b.Models[i]
		if m.Name != n.Name || m.Type != n.Type || m.Dim != n.Dim {
			return fmt.Errorf("model %d is %s (%s, %d values) vs %s (%s, %d values)", i, m.Name, m.Type, m.Dim, n.Name, n.Type, n.Dim)
		}
		if m.Seq() && m.MaxCount != n.MaxCount && a.Options.SeqDecoder == DecoderSet {
			return fmt.Errorf("model %s: set decoders of %d vs %d slots", m.Name, m.MaxCount, n.MaxCount)
		}
	}
	oa, ob := a.Options, b.Options
	if oa.Hidden != ob.Hidden || oa.MinHidden != ob.MinHidden || oa.DecoderUnits != ob.DecoderUnits ||
		oa.AttentionUnits != ob.AttentionUnits || oa.SeqDecoder != ob.SeqDecoder || oa.MaxSeqLen != ob.MaxSeqLen ||
		oa.NoTemporal != ob.NoTemporal {
		return errors.New("different link options (hidden widths, decoder, sequence length or temporal links)")
	}
	pa, pb := a.orderedParams(), b.orderedParams()
	if len(pa) != len(pb) {
		return fmt.Errorf("%d weight tensors vs %d", len(pa), len(pb))
	}
	for k := range pa {
		if len(pa[k].W) != len(pb[k].W) {
			return fmt.Errorf("weight %s: %d vs %d values", pa[k].Name, len(pa[k].W), len(pb[k].W))
		}
	}
	return nil
}

// PredictedLosses is active sampling's view of one frame: for every pure
// link from a model with an exact output in exact to a model in targets,
// the loss its loss-prediction head predicts, keyed "source>target". Losses
// of different links are on different scales (cross-entropy, MAE): compare
// each link's values only with its own.
func (s *Set) PredictedLosses(exact map[string]*pipeline.Output, targets []string) (map[string]float64, error) {
	t := s.getTape()
	defer s.putTape(t)
	out := map[string]float64{}
	for _, target := range targets {
		ti, ok := s.index[target]
		if !ok {
			return nil, fmt.Errorf("predicted losses: unknown model %q (links are for %s)", target, s.modelList())
		}
		for _, l := range s.ens[ti].members {
			if l.src == nil {
				continue
			}
			src := exact[l.Source]
			if !usable(src) {
				continue
			}
			t.reset(false, false)
			in, err := s.inputFor(t, l, src, nil, 0)
			if err != nil {
				return nil, fmt.Errorf("predicted losses %s>%s: %w", l.Source, target, err)
			}
			out[l.Source+">"+target] = l.lossPred(t, l.forward(t, in, 0))
		}
	}
	return out, nil
}
