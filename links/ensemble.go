package links

import (
	"math"
	"math/rand"
)

// Ensemble is MLink's aggregation h_j for one target: every member link's
// output (before the target activation) gets a trainable weight; the
// weighted sum goes through the target's activation. Weights are a softmax
// over the members present, so the same weights serve any subset of
// executed sources: absent members drop out and the rest renormalise.
type Ensemble struct {
	Target   string
	Temporal bool
	// Sources names the members in order; "" is the self-temporal link.
	Sources []string
	// W holds one logit per member.
	W       *Param
	members []*Link
}

func newEnsemble(target string, temporal bool, srcs []string, members []*Link, al alloc) *Ensemble {
	name := "ens." + target
	if temporal {
		name += "@t"
	}
	w := al.bias(name+".w", len(srcs)) // zero logits: equal weights before training
	return &Ensemble{Target: target, Temporal: temporal, Sources: srcs, W: w, members: members}
}

// Weights returns the normalised weight of each member when the members
// marked present take part (0 for the others).
func (e *Ensemble) Weights(present []bool) []float64 {
	w := make([]float64, len(e.Sources))
	e.weights(present, w)
	return w
}

func (e *Ensemble) weights(present []bool, w []float64) bool {
	mx := math.Inf(-1)
	for m, ok := range present {
		if ok {
			mx = max(mx, e.W.W[m])
		}
	}
	if math.IsInf(mx, -1) {
		return false
	}
	sum := 0.0
	for m, ok := range present {
		if ok {
			w[m] = math.Exp(e.W.W[m] - mx)
			sum += w[m]
		} else {
			w[m] = 0
		}
	}
	for m := range w {
		w[m] /= sum
	}
	return true
}

// ensSample is one training frame of an ensemble: each member's output
// (nil when the member's source is missing) and the target.
type ensSample struct {
	z [][]float64
	y []float64
}

// train fits the member weights with the target's loss.
func (e *Ensemble) train(tgt *ModelInfo, samples []ensSample, o *TrainOptions, rng *rand.Rand, report func(epoch int, loss float64)) {
	M := len(e.Sources)
	present := make([]bool, M)
	w := make([]float64, M)
	dw := make([]float64, M)
	zbar := make([]float64, tgt.Dim)
	g := make([]float64, tgt.Dim)
	order := make([]int, len(samples))
	for i := range order {
		order[i] = i
	}
	grad := e.W.grad()
	for epoch := 1; epoch <= o.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		total := 0.0
		for b := 0; b < len(order); b += o.BatchSize {
			batch := order[b:min(b+o.BatchSize, len(order))]
			for _, si := range batch {
				s := &samples[si]
				for m := range present {
					present[m] = s.z[m] != nil
				}
				if !e.weights(present, w) {
					continue
				}
				clear(zbar)
				for m, z := range s.z {
					for k := range z {
						zbar[k] += w[m] * z[k]
					}
				}
				clear(g)
				total += vecLoss(tgt.Type, o.CountLoss, zbar, s.y, g, 1)
				dot := 0.0
				for m, z := range s.z {
					dw[m] = 0
					for k := range z {
						dw[m] += g[k] * z[k]
					}
					dot += w[m] * dw[m]
				}
				for m := range dw {
					if present[m] {
						grad[m] += w[m] * (dw[m] - dot)
					}
				}
			}
			rmsprop([]*Param{e.W}, o.LearningRate, len(batch))
		}
		if report != nil {
			report(epoch, total/float64(max(len(samples), 1)))
		}
	}
}
