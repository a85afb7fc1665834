package links

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sync"

	"github.com/mlink-project/mlink/pipeline"
)

// This file is the MTL baseline of the MLink evaluation: one small shared
// network over a frame's own features (downsampled pixels) with a head per
// model, trained on the models' exact outputs. Unlike links it needs no
// model to run on the frame: it predicts every model from the image alone,
// which is what makes it the paper's comparison point for links.

// MTLOptions configure an MTL network and its training.
type MTLOptions struct {
	// Hidden and Shared are the widths of the two shared layers.
	Hidden, Shared int
	// Epochs over the training frames; BatchSize frames per update.
	Epochs, BatchSize int
	LearningRate      float64
	// Dropout on the shared layers while training (the cold start is a few
	// dozen frames: without it the network memorises them).
	Dropout float64
	// Slots bounds the boxes a sequence head predicts (its set decoder's
	// slots; capped by the most boxes seen in training).
	Slots int
	Seed  int64
}

// DefaultMTLOptions are the options the bench uses.
func DefaultMTLOptions() MTLOptions {
	return MTLOptions{Hidden: 64, Shared: 32, Epochs: 300, BatchSize: 16, LearningRate: 3e-3, Dropout: 0.1, Slots: 8, Seed: 1}
}

// MTLSample is one training frame: its features and every model's exact
// output on it.
type MTLSample struct {
	Features []float64
	Outputs  map[string]*pipeline.Output
}

// MTL is a trained multi-task network: shared layers over the frame's
// features, and per model a head predicting its vector view (count, class
// probabilities, scalars) and, for sequence outputs, a set of boxes.
type MTL struct {
	models []*ModelInfo
	index  map[string]int
	// featMean and featStd standardise the input features (from training).
	featMean, featStd []float64
	w1, b1, w2, b2    *Param
	heads             []mtlHead
	opts              MTLOptions
	// labels name class outputs' classes by index (learned from the
	// training outputs when the model's class list is unknown).
	labels [][]string
	// tapes are Predict's warm tapes: a warm tape allocates nothing.
	tapes sync.Pool
}

type mtlHead struct {
	// wv, bv: the vector view; ws, bs: Slots × (ElemDim+1) set outputs
	// (sequence models only: box features and an existence logit).
	wv, bv, ws, bs *Param
	slots          int
}

// TrainMTL trains an MTL network on samples. models lists the outputs to
// predict (their names and types; a class model without a class list takes
// its length from the data). Every sample must have features of one
// length; a sample without a usable output of a model does not train that
// model's head.
func TrainMTL(models []TraceModel, samples []MTLSample, opts MTLOptions) (*MTL, error) {
	if len(samples) < 2 {
		return nil, fmt.Errorf("train mtl: %d frames: need at least 2", len(samples))
	}
	dim := len(samples[0].Features)
	if dim == 0 {
		return nil, errors.New("train mtl: frames have no features")
	}
	recs := make([]*TraceRecord, len(samples))
	for i, s := range samples {
		if len(s.Features) != dim {
			return nil, fmt.Errorf("train mtl: frame %d has %d features, the first has %d", i, len(s.Features), dim)
		}
		recs[i] = &TraceRecord{Outputs: s.Outputs}
	}
	def := DefaultMTLOptions()
	if opts.Hidden <= 0 {
		opts.Hidden = def.Hidden
	}
	if opts.Shared <= 0 {
		opts.Shared = def.Shared
	}
	if opts.Epochs <= 0 {
		opts.Epochs = def.Epochs
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = def.BatchSize
	}
	if opts.LearningRate <= 0 {
		opts.LearningRate = def.LearningRate
	}
	if opts.Slots <= 0 {
		opts.Slots = def.Slots
	}
	infos, err := modelInfos(TraceHeader{Models: models}, recs, opts.Slots)
	if err != nil {
		return nil, fmt.Errorf("train mtl: %w", err)
	}
	n := &MTL{models: infos, index: map[string]int{}, opts: opts}
	n.tapes.New = func() any { return newTape(nil) } // inference: no dropout, no randomness
	n.featMean, n.featStd = featureStats(samples, dim)
	rng := rand.New(rand.NewSource(opts.Seed))
	n.w1, n.b1 = newParam("mtl.w1", opts.Hidden, dim), newBias("mtl.b1", opts.Hidden)
	n.w2, n.b2 = newParam("mtl.w2", opts.Shared, opts.Hidden), newBias("mtl.b2", opts.Shared)
	n.w1.glorot(rng)
	n.w2.glorot(rng)
	params := []*Param{n.w1, n.b1, n.w2, n.b2}
	for i, m := range infos {
		n.index[m.Name] = i
		h := mtlHead{wv: newParam("mtl."+m.Name+".wv", m.Dim, opts.Shared), bv: newBias("mtl."+m.Name+".bv", m.Dim)}
		h.wv.glorot(rng)
		params = append(params, h.wv, h.bv)
		if m.Seq() {
			h.slots = min(opts.Slots, m.MaxCount)
			w := h.slots * (ElemDim + 1)
			h.ws, h.bs = newParam("mtl."+m.Name+".ws", w, opts.Shared), newBias("mtl."+m.Name+".bs", w)
			h.ws.glorot(rng)
			params = append(params, h.ws, h.bs)
		}
		n.heads = append(n.heads, h)
		n.labels = append(n.labels, classLabels(m, recs))
	}
	if err := n.train(samples, params, rng); err != nil {
		return nil, err
	}
	return n, nil
}

// featureStats are the features' means and standard deviations; a feature
// constant over the training frames keeps its scale (std 1).
func featureStats(samples []MTLSample, dim int) (mean, std []float64) {
	mean, std = make([]float64, dim), make([]float64, dim)
	for _, s := range samples {
		for i, x := range s.Features {
			mean[i] += x
			std[i] += x * x
		}
	}
	inv := 1 / float64(len(samples))
	for i := range mean {
		mean[i] *= inv
		v := std[i]*inv - mean[i]*mean[i]
		std[i] = math.Sqrt(max(v, 0))
		if std[i] < 1e-6 {
			std[i] = 1
		}
	}
	return mean, std
}

// classLabels names a class model's classes by index: its class list, else
// the labels its training outputs carry for their argmax.
func classLabels(m *ModelInfo, recs []*TraceRecord) []string {
	if m.Type != pipeline.TypeClass {
		return nil
	}
	if len(m.Classes) == m.Dim {
		return m.Classes
	}
	labels := make([]string, m.Dim)
	for _, r := range recs {
		if o := r.Outputs[m.Name]; usable(o) && o.Label != "" {
			if k := ArgMax(o.Value); k >= 0 && k < m.Dim {
				labels[k] = o.Label
			}
		}
	}
	return labels
}

// mtlTarget is one model's training target on one frame.
type mtlTarget struct {
	ok    bool
	vec   []float64 // class probabilities, or the normalised vector view
	elems []float64 // normalised box elements (sequence models)
}

func (n *MTL) train(samples []MTLSample, params []*Param, rng *rand.Rand) error {
	targets := make([][]mtlTarget, len(samples))
	for i, s := range samples {
		targets[i] = make([]mtlTarget, len(n.models))
		for mi, m := range n.models {
			o := s.Outputs[m.Name]
			if !usable(o) {
				continue
			}
			v := make([]float64, m.Dim)
			if err := m.vectorView(o, v); err != nil {
				return fmt.Errorf("train mtl: frame %d: %w", i, err)
			}
			if m.Type != pipeline.TypeClass {
				m.normVec(v)
			}
			tg := mtlTarget{ok: true, vec: v}
			if m.Seq() {
				k := len(o.Boxes)
				buf := make([]float64, min(k, n.opts.Slots)*ElemDim)
				tg.elems = m.elements(o, n.opts.Slots, buf, make([]int, k), make([]float64, k))
			}
			targets[i][mi] = tg
		}
	}
	order := make([]int, len(samples))
	for i := range order {
		order[i] = i
	}
	t := newTape(rng)
	ms := &matchScratch{}
	x := make([]float64, len(n.featMean))
	for epoch := 0; epoch < n.opts.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for b := 0; b < len(order); b += n.opts.BatchSize {
			batch := order[b:min(b+n.opts.BatchSize, len(order))]
			for _, i := range batch {
				n.normalise(samples[i].Features, x)
				t.reset(true, true)
				shared := n.forwardShared(t, x)
				for mi, m := range n.models {
					tg := targets[i][mi]
					if !tg.ok {
						continue
					}
					h := &n.heads[mi]
					z := t.linear(h.wv, h.bv, shared)
					vecLoss(m.Type, "mse", t.val(z), tg.vec, t.nodes[z].grad, 1)
					if h.slots > 0 {
						s := t.linear(h.ws, h.bs, shared)
						seqLossSet(t.val(s), tg.elems, h.slots, t.nodes[s].grad, ms)
					}
				}
				t.backward()
			}
			rmsprop(params, n.opts.LearningRate, len(batch))
		}
	}
	return nil
}

func (n *MTL) normalise(f, dst []float64) {
	for i, v := range f {
		dst[i] = (v - n.featMean[i]) / n.featStd[i]
	}
}

// forwardShared records the shared layers on t.
func (n *MTL) forwardShared(t *tape, x []float64) int {
	h := t.relu(t.linear(n.w1, n.b1, t.input(x)))
	if n.opts.Dropout > 0 {
		h = t.dropoutOp(h, n.opts.Dropout)
	}
	h = t.relu(t.linear(n.w2, n.b2, h))
	if n.opts.Dropout > 0 {
		h = t.dropoutOp(h, n.opts.Dropout)
	}
	return h
}

// Models lists the models the network predicts.
func (n *MTL) Models() []string {
	out := make([]string, len(n.models))
	for i, m := range n.models {
		out[i] = m.Name
	}
	return out
}

// Inputs is the length of the feature vector the network takes.
func (n *MTL) Inputs() int { return len(n.featMean) }

// Predict predicts target's output on a frame from the frame's features
// alone. For counts and detectors Value[0] is the predicted count (real
// valued, never negative); a detector's Boxes are its set head's boxes, as
// many as the rounded count (at most its slots). Safe for concurrent use.
func (n *MTL) Predict(target string, features []float64) (pipeline.Output, error) {
	mi, ok := n.index[target]
	if !ok {
		return pipeline.Output{}, fmt.Errorf("mtl: unknown model %q (the network predicts %v)", target, n.Models())
	}
	if len(features) != len(n.featMean) {
		return pipeline.Output{}, fmt.Errorf("mtl: %d features, the network takes %d", len(features), len(n.featMean))
	}
	m, h := n.models[mi], &n.heads[mi]
	t := n.tapes.Get().(*tape)
	defer n.tapes.Put(t)
	t.reset(false, false)
	x := t.mem.alloc(len(features))
	n.normalise(features, x)
	shared := n.forwardShared(t, x)
	z := t.val(t.linear(h.wv, h.bv, shared))
	out := pipeline.Output{Model: m.Name, Kind: m.Type.Kind(), Type: m.Type, Source: pipeline.SourcePredicted}
	v := make([]float64, m.Dim)
	if m.Type == pipeline.TypeClass {
		softmaxTo(v, z)
		if k := ArgMax(v); k >= 0 && k < len(n.labels[mi]) {
			out.Label = n.labels[mi][k]
		}
	} else {
		for k := range v {
			v[k] = z[k]*m.VecStd[k] + m.VecMean[k]
		}
		if m.countLike() {
			v[0] = max(v[0], 0)
		}
	}
	out.Value = v
	if h.slots > 0 {
		count := min(int(math.Round(v[0])), h.slots)
		s := t.val(t.linear(h.ws, h.bs, shared))
		top := setBoxes(s, h.slots, count, make([]int, h.slots), make([]float64, h.slots))
		for _, k := range top {
			out.Boxes = append(out.Boxes, m.denormBox(s[k*(ElemDim+1):k*(ElemDim+1)+ElemDim]))
		}
	}
	if err := out.CheckFinite(); err != nil {
		return pipeline.Output{}, fmt.Errorf("mtl: predict %s: %w", target, err)
	}
	return out, nil
}
