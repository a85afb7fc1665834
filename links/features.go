package links

import (
	"fmt"
	"math"
	"sort"

	"github.com/mlink-project/mlink/pipeline"
)

// ElemDim is the number of features of one sequence element: a box or line
// segment as [x1, y1, x2, y2, score].
const ElemDim = 5

// ModelInfo describes one model of a link set: its output type, the length
// of its vector view, and the normalisation learned from the training data.
type ModelInfo struct {
	Name    string              `json:"name"`
	Type    pipeline.OutputType `json:"type"`
	Classes []string            `json:"classes,omitempty"`
	// Dim is the length of the output's vector view (Value): the number of
	// classes for class outputs, 1 for counts and detectors (their count).
	Dim int `json:"dim"`
	// VecMean/VecStd normalise the vector view; ElemMean/ElemStd the
	// [x1,y1,x2,y2,score] features of sequence elements.
	VecMean  []float64 `json:"vec_mean"`
	VecStd   []float64 `json:"vec_std"`
	ElemMean []float64 `json:"elem_mean,omitempty"`
	ElemStd  []float64 `json:"elem_std,omitempty"`
	// MaxCount is the longest (capped) sequence seen in training: the number
	// of slots of a set decoder.
	MaxCount int `json:"max_count,omitempty"`
	// Constant is the constant-prediction baseline learned from the training
	// data: the majority class, the most frequent count (with the training
	// frame's boxes that agree best with the others), the mean scalar.
	Constant *pipeline.Output `json:"constant,omitempty"`
	// Samples is the number of training frames the statistics come from
	// (weights for federated averaging).
	Samples int `json:"samples"`
}

// Seq reports whether the model's output is a sequence (boxes, lines).
func (m *ModelInfo) Seq() bool { return m.Type.Kind() == pipeline.KindSequence }

// countLike reports whether the vector view is a count (strict count metric).
func (m *ModelInfo) countLike() bool {
	return m.Type == pipeline.TypeCount || m.Seq()
}

// usable reports whether o is an exact output that links can use.
func usable(o *pipeline.Output) bool {
	return o != nil && o.Error == ""
}

// vectorView writes the output's vector view (length m.Dim) into dst.
func (m *ModelInfo) vectorView(o *pipeline.Output, dst []float64) error {
	switch m.Type {
	case pipeline.TypeClass:
		if len(o.Value) == m.Dim {
			copy(dst, o.Value)
			return nil
		}
		if len(o.Value) == 0 && o.Label != "" {
			clear(dst)
			for i, c := range m.Classes {
				if c == o.Label {
					dst[i] = 1
					return nil
				}
			}
			return fmt.Errorf("model %q: unknown class %q", m.Name, o.Label)
		}
	case pipeline.TypeScalar:
		if len(o.Value) == m.Dim {
			copy(dst, o.Value)
			return nil
		}
	default: // count, boxes, lines: the count
		if len(o.Value) >= 1 {
			dst[0] = o.Value[0]
			return nil
		}
		if m.Seq() {
			dst[0] = float64(len(o.Boxes))
			return nil
		}
		return fmt.Errorf("model %q: count output has no value", m.Name)
	}
	return fmt.Errorf("model %q: output has %d values, the links were trained on %d (mismatched dimensions)", m.Name, len(o.Value), m.Dim)
}

// normVec normalises a vector view in place.
func (m *ModelInfo) normVec(v []float64) {
	for i := range v {
		v[i] = (v[i] - m.VecMean[i]) / m.VecStd[i]
	}
}

// elements writes the output's sequence elements, normalised, into dst
// (capacity ≥ maxLen·ElemDim) and returns them. Canonical order: the
// maxLen highest-scoring elements, then left to right by centre x (then
// y), so a decoder has a well-defined order to learn. Line segments are
// oriented so that (x1,y1) is the left (then upper) end point. idx is
// scratch of capacity ≥ len(o.Boxes).
func (m *ModelInfo) elements(o *pipeline.Output, maxLen int, dst []float64, idx []int, key []float64) []float64 {
	n := len(o.Boxes)
	idx = idx[:n]
	key = key[:n]
	for i := range idx {
		idx[i] = i
		key[i] = -float64(o.Boxes[i].Score)
	}
	insertionSort(idx, key)
	if n > maxLen {
		n = maxLen
		idx = idx[:n]
	}
	for i, j := range idx {
		b := o.Boxes[j]
		key[i] = float64(b.X1+b.X2) + 1e-3*float64(b.Y1+b.Y2)
	}
	// key is now indexed by position in idx: sort positions.
	pos := idx[:n]
	sortByKeyPositions(pos, key[:n])
	out := dst[:n*ElemDim]
	for i, j := range pos {
		b := o.Boxes[j]
		x1, y1, x2, y2 := float64(b.X1), float64(b.Y1), float64(b.X2), float64(b.Y2)
		if m.Type == pipeline.TypeLines && (x1 > x2 || (x1 == x2 && y1 > y2)) {
			x1, y1, x2, y2 = x2, y2, x1, y1
		}
		e := out[i*ElemDim : (i+1)*ElemDim]
		e[0], e[1], e[2], e[3], e[4] = x1, y1, x2, y2, float64(b.Score)
		for f := range ElemDim {
			e[f] = (e[f] - m.ElemMean[f]) / m.ElemStd[f]
		}
	}
	return out
}

// insertionSort orders idx by key[idx[i]] ascending (stable). Sequences
// are short (≤ a few hundred), and it allocates nothing.
func insertionSort(idx []int, key []float64) {
	for i := 1; i < len(idx); i++ {
		v := idx[i]
		k := key[v]
		j := i - 1
		for j >= 0 && key[idx[j]] > k {
			idx[j+1] = idx[j]
			j--
		}
		idx[j+1] = v
	}
}

// sortByKeyPositions sorts pos (and key alongside, key[i] belonging to
// pos[i]) by key ascending, stable.
func sortByKeyPositions(pos []int, key []float64) {
	for i := 1; i < len(pos); i++ {
		p, k := pos[i], key[i]
		j := i - 1
		for j >= 0 && key[j] > k {
			pos[j+1], key[j+1] = pos[j], key[j]
			j--
		}
		pos[j+1], key[j+1] = p, k
	}
}

// denormBox turns a decoded, normalised element into a box of the model.
func (m *ModelInfo) denormBox(e []float64) pipeline.Box {
	var v [ElemDim]float64
	for f := range ElemDim {
		v[f] = e[f]*m.ElemStd[f] + m.ElemMean[f]
	}
	for f := range 4 {
		v[f] = math.Min(1, math.Max(0, v[f]))
	}
	if m.Type == pipeline.TypeBoxes {
		if v[0] > v[2] {
			v[0], v[2] = v[2], v[0]
		}
		if v[1] > v[3] {
			v[1], v[3] = v[3], v[1]
		}
	}
	b := pipeline.Box{X1: float32(v[0]), Y1: float32(v[1]), X2: float32(v[2]), Y2: float32(v[3]), Score: float32(v[4])}
	if len(m.Classes) == 1 {
		b.Class = m.Classes[0]
	}
	return b
}

// modelInfos derives the models of a link set from a trace header and its
// training records: dimensions, normalisation, baselines.
func modelInfos(h TraceHeader, recs []*TraceRecord, maxLen int) ([]*ModelInfo, error) {
	if len(h.Models) == 0 {
		return nil, fmt.Errorf("trace declares no models")
	}
	if len(h.Models) > 64 {
		return nil, fmt.Errorf("%d models: links support at most 64", len(h.Models))
	}
	seen := map[string]bool{}
	var out []*ModelInfo
	for _, tm := range h.Models {
		if tm.Name == "" || seen[tm.Name] {
			return nil, fmt.Errorf("trace header: empty or duplicate model name %q", tm.Name)
		}
		seen[tm.Name] = true
		if !tm.Type.Valid() {
			return nil, fmt.Errorf("model %q: unknown output type %q", tm.Name, tm.Type)
		}
		m := &ModelInfo{Name: tm.Name, Type: tm.Type, Classes: tm.Classes, Dim: 1}
		switch tm.Type {
		case pipeline.TypeClass:
			m.Dim = len(tm.Classes)
			if m.Dim == 0 {
				m.Dim = dimFromData(tm.Name, recs)
			}
		case pipeline.TypeScalar:
			m.Dim = dimFromData(tm.Name, recs)
		}
		if m.Dim == 0 {
			return nil, fmt.Errorf("model %q: cannot tell the length of its output (no class list and no output in the training frames)", tm.Name)
		}
		if err := m.fitStats(recs, maxLen); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func dimFromData(name string, recs []*TraceRecord) int {
	for _, r := range recs {
		if o := r.Outputs[name]; usable(o) && len(o.Value) > 0 {
			return len(o.Value)
		}
	}
	return 0
}

// fitStats computes the normalisation and the constant baseline.
func (m *ModelInfo) fitStats(recs []*TraceRecord, maxLen int) error {
	vm := make([]float64, m.Dim)
	vs := make([]float64, m.Dim)
	em := make([]float64, ElemDim)
	es := make([]float64, ElemDim)
	v := make([]float64, m.Dim)
	var outs []*pipeline.Output
	nElem := 0
	for _, r := range recs {
		o := r.Outputs[m.Name]
		if !usable(o) {
			continue
		}
		if err := m.vectorView(o, v); err != nil {
			return fmt.Errorf("frame %s/%d: %w", r.Camera, r.Seq, err)
		}
		outs = append(outs, o)
		for i, x := range v {
			vm[i] += x
			vs[i] += x * x
		}
		if m.Seq() {
			n := min(len(o.Boxes), maxLen)
			m.MaxCount = max(m.MaxCount, n)
			for _, b := range o.Boxes {
				x1, y1, x2, y2 := b.X1, b.Y1, b.X2, b.Y2
				if m.Type == pipeline.TypeLines && (x1 > x2 || (x1 == x2 && y1 > y2)) {
					x1, y1, x2, y2 = x2, y2, x1, y1
				}
				for f, x := range [ElemDim]float64{float64(x1), float64(y1), float64(x2), float64(y2), float64(b.Score)} {
					em[f] += x
					es[f] += x * x
				}
				nElem++
			}
		}
	}
	if len(outs) == 0 {
		return fmt.Errorf("model %q has no usable output in the training frames", m.Name)
	}
	m.Samples = len(outs)
	m.VecMean, m.VecStd = meanStd(vm, vs, len(outs))
	if m.Type == pipeline.TypeClass {
		// Class probabilities are already in [0,1]: centre them but keep
		// their scale, so that absent classes do not blow up.
		for i := range m.VecStd {
			m.VecStd[i] = 1
		}
	}
	if m.Seq() {
		m.ElemMean, m.ElemStd = meanStd(em, es, nElem)
		m.MaxCount = max(m.MaxCount, 1)
	}
	m.Constant = m.constantBaseline(outs)
	return nil
}

func meanStd(sum, sq []float64, n int) ([]float64, []float64) {
	mean := make([]float64, len(sum))
	std := make([]float64, len(sum))
	for i := range sum {
		if n > 0 {
			mean[i] = sum[i] / float64(n)
			std[i] = math.Sqrt(math.Max(0, sq[i]/float64(n)-mean[i]*mean[i]))
		}
		if std[i] < 1e-6 {
			std[i] = 1 // constant feature: keep it centred, never divide by ~0
		}
	}
	return mean, std
}

// constantBaseline is the best constant prediction from the training data:
// majority class, most frequent count (its boxes: the training frame with
// that count whose boxes agree best with the other frames), mean scalar.
func (m *ModelInfo) constantBaseline(outs []*pipeline.Output) *pipeline.Output {
	c := &pipeline.Output{Model: m.Name, Kind: m.Type.Kind(), Type: m.Type, Source: pipeline.SourcePredicted}
	v := make([]float64, m.Dim)
	switch m.Type {
	case pipeline.TypeClass:
		votes := make([]int, m.Dim)
		for _, o := range outs {
			_ = m.vectorView(o, v)
			votes[ArgMax(v)]++
		}
		best := 0
		for i, n := range votes {
			if n > votes[best] {
				best = i
			}
		}
		c.Value = make([]float64, m.Dim)
		c.Value[best] = 1
		if best < len(m.Classes) {
			c.Label = m.Classes[best]
		}
	case pipeline.TypeScalar:
		c.Value = append([]float64(nil), m.VecMean...)
	default:
		freq := map[int]int{}
		for _, o := range outs {
			_ = m.vectorView(o, v)
			freq[int(math.Round(v[0]))]++
		}
		keys := make([]int, 0, len(freq))
		for k := range freq {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		mode := keys[0]
		for _, k := range keys {
			if freq[k] > freq[mode] {
				mode = k
			}
		}
		c.Value = []float64{float64(mode)}
		if m.Seq() {
			c.Boxes = medoidBoxes(m, outs, mode)
		}
	}
	return c
}

// medoidBoxes picks, among training outputs with `count` elements, the box
// set with the highest mean agreement with all training outputs.
func medoidBoxes(m *ModelInfo, outs []*pipeline.Output, count int) []pipeline.Box {
	var cands []*pipeline.Output
	for _, o := range outs {
		if len(o.Boxes) == count {
			cands = append(cands, o)
		}
	}
	if len(cands) > 40 { // bound the O(n²) search on long training sets
		step := float64(len(cands)) / 40
		var sub []*pipeline.Output
		for i := 0.0; int(i) < len(cands); i += step {
			sub = append(sub, cands[int(i)])
		}
		cands = sub
	}
	best, bestScore := -1, -1.0
	for i, c := range cands {
		s := 0.0
		for _, o := range outs {
			s += Accuracy(m.Type, c, o)
		}
		if s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return nil
	}
	return append([]pipeline.Box(nil), cands[best].Boxes...)
}
