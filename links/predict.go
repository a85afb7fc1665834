package links

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/mlink-project/mlink/pipeline"
)

// ErrNoSource is returned by Predict when none of the target's sources
// has a usable exact output.
var ErrNoSource = errors.New("no usable source output")

// maxMembers bounds the members of one ensemble handled on the stack (a
// set holds at most 64 models).
const maxMembers = 64

// Predict predicts target's output from the exact outputs of whichever
// other models ran (exact, by model name; entries with an Error, for the
// target itself or for models the links do not know are ignored). The
// result is the target's ensemble over the sources present, with Source
// predicted, Sources the models used and Confidence the measured accuracy
// of that ensemble (0 when the set was never evaluated).
//
// For count outputs and detectors Value[0] is the predicted count, real
// valued (the strict metric accepts |error| < 0.5; round it for display);
// detectors' Boxes holds round(count) elements decoded by the link of the
// most heavily weighted source present. Safe for concurrent use.
func (s *Set) Predict(target string, exact map[string]*pipeline.Output) (pipeline.Output, error) {
	return s.predictPure(target, exact, false)
}

// PredictWithLosses is Predict, and the output also carries the loss each
// link that predicted it expects (LinkLosses: the values PredictedLosses
// reports for these sources). The loss heads read the hidden features the
// prediction has just computed, so the predictor hands active sampling its
// scores at the cost of a dot product per link, where PredictedLosses runs
// the links a second time. Non-finite losses are left out (JSON cannot
// carry them).
func (s *Set) PredictWithLosses(target string, exact map[string]*pipeline.Output) (pipeline.Output, error) {
	return s.predictPure(target, exact, true)
}

// predictPure predicts with the pure links (and their losses, if asked).
func (s *Set) predictPure(target string, exact map[string]*pipeline.Output, losses bool) (pipeline.Output, error) {
	ti, ok := s.index[target]
	if !ok {
		return pipeline.Output{}, fmt.Errorf("predict: unknown target model %q (the links know %s)", target, s.modelList())
	}
	t := s.getTape()
	defer s.putTape(t)
	t.reset(false, false)
	return s.predict(t, ti, exact, nil, 0, losses)
}

// PredictTemporal predicts target's output like Predict, with the temporal
// links: each also takes the target's last exact output (last) and its
// age in frames at the camera's own rate, i.e. the seq difference (≥ 1;
// fractional ages are fine: age in seconds × the camera's frame rate; on
// a sampled stream one frame is several). exact may be
// empty: the self-temporal link then predicts from last and age alone.
// For detectors, Boxes are last's highest-scoring boxes, as many as the
// predicted count, topped up by the pure links' decoded boxes when the
// count grew. Confidence is the temporal ensemble's measured accuracy at
// the oldest measured age not above age (the youngest if none is).
func (s *Set) PredictTemporal(target string, exact map[string]*pipeline.Output, last *pipeline.Output, age float64) (pipeline.Output, error) {
	ti, ok := s.index[target]
	if !ok {
		return pipeline.Output{}, fmt.Errorf("predict: unknown target model %q (the links know %s)", target, s.modelList())
	}
	if s.tens[ti] == nil {
		return pipeline.Output{}, errors.New("predict: these links were trained without temporal links (NoTemporal)")
	}
	if !usable(last) {
		return pipeline.Output{}, fmt.Errorf("predict %s: no usable last output", target)
	}
	if math.IsNaN(age) || age < 0 {
		return pipeline.Output{}, fmt.Errorf("predict %s: invalid age %v", target, age)
	}
	t := s.getTape()
	defer s.putTape(t)
	t.reset(false, false)
	return s.predict(t, ti, exact, last, age, false)
}

// predict is Predict (last == nil) or PredictTemporal; losses: fill
// LinkLosses from the pure links' loss heads (PredictWithLosses).
func (s *Set) predict(t *tape, ti int, exact map[string]*pipeline.Output, last *pipeline.Output, age float64, losses bool) (pipeline.Output, error) {
	tm := s.Models[ti]
	e := s.ens[ti]
	if last != nil {
		e = s.tens[ti]
	}
	M := len(e.members)
	var presentBuf [maxMembers]bool
	var wBuf [maxMembers]float64
	var fwBuf [maxMembers]fwd
	present, w, fws := presentBuf[:M], wBuf[:M], fwBuf[:M]
	var mask uint64
	nSrc := 0
	for m, l := range e.members {
		var src *pipeline.Output
		if l.src != nil {
			src = exact[l.Source]
			if !usable(src) {
				continue
			}
		}
		in, err := s.inputFor(t, l, src, last, age)
		if err != nil {
			return pipeline.Output{}, fmt.Errorf("predict %s: %w", tm.Name, err)
		}
		fws[m] = l.forward(t, in, 0)
		present[m] = true
		if l.src != nil {
			mask |= 1 << uint(s.index[l.Source])
			nSrc++
		}
	}
	if !e.weights(present, w) {
		return pipeline.Output{}, fmt.Errorf("predict %s: %w (its sources are %v)", tm.Name, ErrNoSource, e.Sources)
	}
	zbar := t.mem.alloc(tm.Dim)
	for m := range e.members {
		if present[m] {
			z := t.val(fws[m].z)
			for k := range zbar {
				zbar[k] += w[m] * z[k]
			}
		}
	}
	out := pipeline.Output{Model: tm.Name, Kind: tm.Type.Kind(), Type: tm.Type, Source: pipeline.SourcePredicted}
	if losses {
		out.LinkLosses = make(map[string]float64, nSrc)
		for m, l := range e.members {
			if present[m] && l.src != nil {
				if v := l.lossPred(t, fws[m]); !math.IsNaN(v) && !math.IsInf(v, 0) {
					out.LinkLosses[l.Source+">"+tm.Name] = v
				}
			}
		}
	}
	count := s.assemble(tm, zbar, &out)
	srcs := make([]string, 0, nSrc+1)
	for _, l := range e.members {
		if l.src != nil && mask&(1<<uint(s.index[l.Source])) != 0 {
			srcs = append(srcs, l.Source)
		}
	}
	if tm.Seq() {
		n := min(int(math.Round(count)), s.Options.MaxSeqLen)
		if last == nil {
			top := topMember(e, present)
			out.Boxes = s.decodeBoxes(t, e.members[top], fws[top], n)
		} else {
			pe := s.ens[ti]
			fill := func(n int) []pipeline.Box {
				var pp [maxMembers]bool
				ok := false
				for m, l := range pe.members {
					if o := exact[l.Source]; usable(o) {
						pp[m], ok = true, true
					}
				}
				if !ok {
					return nil
				}
				top := topMember(pe, pp[:len(pe.members)])
				l := pe.members[top]
				in, err := s.inputFor(t, l, exact[l.Source], nil, 0)
				if err != nil {
					return nil
				}
				return s.decodeBoxes(t, l, l.forward(t, in, 0), n)
			}
			out.Boxes = temporalBoxes(tm, last.Boxes, n, fill)
		}
	}
	if last != nil {
		srcs = append(srcs, tm.Name)
	}
	out.Sources = srcs
	if ix := s.eval.Load(); ix != nil {
		if last == nil {
			out.Confidence = ix.ensemble(ti, mask)
		} else {
			out.Confidence = ix.temporal(ti, mask, age)
		}
	}
	return out, nil
}

// topMember is the present member with the largest weight.
func topMember(e *Ensemble, present []bool) int {
	best := -1
	for m, ok := range present {
		if ok && (best < 0 || e.W.W[m] > e.W.W[best]) {
			best = m
		}
	}
	return best
}

// assemble turns a combined head output into the target's Value (and
// Label) and returns the predicted count for count-like targets.
func (s *Set) assemble(tm *ModelInfo, z []float64, out *pipeline.Output) float64 {
	v := make([]float64, tm.Dim)
	if tm.Type == pipeline.TypeClass {
		softmaxTo(v, z)
		if k := ArgMax(v); k >= 0 && k < len(tm.Classes) {
			out.Label = tm.Classes[k]
		}
		out.Value = v
		return 0
	}
	for k := range v {
		v[k] = z[k]*tm.VecStd[k] + tm.VecMean[k]
	}
	if tm.countLike() {
		v[0] = max(v[0], 0)
	}
	out.Value = v
	return v[0]
}

func softmaxTo(dst, z []float64) {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = max(mx, v)
	}
	sum := 0.0
	for i, v := range z {
		dst[i] = math.Exp(v - mx)
		sum += dst[i]
	}
	for i := range dst {
		dst[i] /= sum
	}
}

// decodeBoxes decodes n elements with a pure link's decoder.
func (s *Set) decodeBoxes(t *tape, l *Link, f fwd, n int) []pipeline.Box {
	if n <= 0 {
		return nil
	}
	tm := l.tgt
	switch l.a.decoder {
	case DecoderAttention:
		out := t.val(l.decodeAttention(t, f, n, nil))
		boxes := make([]pipeline.Box, n)
		for i := range boxes {
			boxes[i] = tm.denormBox(out[i*ElemDim : (i+1)*ElemDim])
		}
		return boxes
	case DecoderSet:
		out := t.val(l.decodeSet(t, f, 0))
		idx := t.intScratch(l.a.slots)
		key := t.mem.alloc(l.a.slots)
		top := setBoxes(out, l.a.slots, n, idx, key)
		boxes := make([]pipeline.Box, len(top))
		for i, k := range top {
			boxes[i] = tm.denormBox(out[k*(ElemDim+1) : k*(ElemDim+1)+ElemDim])
		}
		return boxes
	}
	return nil
}

// temporalBoxes keeps last's n highest-scoring boxes; when n exceeds them,
// fill (if any) proposes decoded boxes, added unless they duplicate a kept one.
func temporalBoxes(tm *ModelInfo, last []pipeline.Box, n int, fill func(n int) []pipeline.Box) []pipeline.Box {
	if n <= 0 {
		return nil
	}
	kept := slices.Clone(last)
	slices.SortStableFunc(kept, func(a, b pipeline.Box) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	if len(kept) >= n {
		return kept[:n]
	}
	if fill == nil {
		return kept
	}
	sim := IoU
	if tm.Type == pipeline.TypeLines {
		sim = SegmentSimilarity
	}
	for _, c := range fill(n) {
		if len(kept) == n {
			break
		}
		dup := false
		for _, k := range kept {
			if sim(c, k) > 0.5 {
				dup = true
				break
			}
		}
		if !dup {
			kept = append(kept, c)
		}
	}
	return kept
}

// inputFor builds a link's normalised input from exact outputs, in the
// tape's arena (no allocation once the tape is warm).
func (s *Set) inputFor(t *tape, l *Link, src *pipeline.Output, last *pipeline.Output, age float64) (linkInput, error) {
	var in linkInput
	if l.src != nil {
		sm := l.src
		in.vec = t.mem.alloc(sm.Dim)
		if err := sm.vectorView(src, in.vec); err != nil {
			return in, err
		}
		sm.normVec(in.vec)
		if sm.Seq() {
			n := len(src.Boxes)
			idx := t.intScratch(n)
			key := t.mem.alloc(n)
			buf := t.mem.alloc(min(n, s.Options.MaxSeqLen) * ElemDim)
			in.elems = sm.elements(src, s.Options.MaxSeqLen, buf, idx, key)
		}
	}
	if l.Temporal {
		tm := l.tgt
		in.extra = t.mem.alloc(tm.Dim + 1)
		if err := tm.vectorView(last, in.extra[:tm.Dim]); err != nil {
			return in, fmt.Errorf("last output: %w", err)
		}
		tm.normVec(in.extra[:tm.Dim])
		in.extra[tm.Dim] = ageFeature(age, l.maxAge)
	}
	return in, nil
}
