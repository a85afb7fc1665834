package links

import (
	"math"
	"math/rand"
	"testing"
)

// TestGradientsMatchFiniteDifferences checks every tape operation's
// backward pass against central finite differences on a graph that uses
// them all (an encoder-decoder with attention, as the sequence links do).
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	const S, E, A, D = 3, 4, 5, 6
	proj := newDense("proj", E, ElemDim, true)
	enc := newGRU("enc", E, E)
	key := newDense("key", A, E, true)
	query := newDense("query", A, D, false)
	v := newParam("v", A, 1)
	dec := newGRU("dec", E+2, D)
	out := newDense("out", 2, D, true)
	init := newDense("init", D, E, true)
	gain := newParam("gain", 4, 1)
	params := []*Param{proj.W, proj.B, key.W, key.B, query.W, v, out.W, out.B, init.W, init.B, gain}
	params = append(params, enc.params()...)
	params = append(params, dec.params()...)
	for _, p := range params {
		for i := range p.W {
			p.W[i] = rng.NormFloat64() * 0.5
		}
	}
	x := make([]float64, S*ElemDim)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	coef := make([]float64, 64)
	for i := range coef {
		coef[i] = rng.NormFloat64()
	}
	tp := newTape(rand.New(rand.NewSource(1)))
	// forward builds the graph and returns Σ coef·outputs.
	forward := func(grads bool) float64 {
		tp.reset(true, grads)
		tp.rng = rand.New(rand.NewSource(7)) // same dropout mask every pass
		p := tp.relu(tp.rowLinear(proj.W, proj.B, tp.input(x)))
		states := tp.zeros(S * E)
		h := tp.zeros(E)
		for s := 0; s < S; s++ {
			h = tp.gru(enc, tp.view(p, s*E, E), h, states, s)
		}
		keys := tp.rowLinear(key.W, key.B, states)
		dh := tp.tanh(tp.linear(init.W, init.B, h))
		outs := tp.zeros(2 * 2)
		prev := tp.sigmoid(tp.zeros(2))
		for i := 0; i < 2; i++ {
			q := tp.linear(query.W, nil, dh)
			c := tp.attend(v, keys, q, states)
			dh = tp.gru(dec, tp.concat(prev, c), dh, -1, 0)
			prev = tp.linearTo(out.W, out.B, tp.dropoutOp(dh, 0.3), outs, i)
		}
		final := tp.addOp(outs, tp.scale(gain, tp.view(outs, 0, 4)))
		loss := 0.0
		for i, y := range tp.val(final) {
			loss += coef[i] * y
			if grads {
				tp.nodes[final].grad[i] = coef[i]
			}
		}
		loss += coef[10] * tp.val(h)[0]
		if grads {
			tp.nodes[h].grad[0] += coef[10]
			tp.backward()
		}
		return loss
	}
	forward(true)
	const eps = 1e-6
	for _, p := range params {
		g := append([]float64(nil), p.grad()...)
		for i := range p.W {
			old := p.W[i]
			p.W[i] = old + eps
			up := forward(false)
			p.W[i] = old - eps
			down := forward(false)
			p.W[i] = old
			num := (up - down) / (2 * eps)
			if math.Abs(num-g[i]) > 1e-5*math.Max(1, math.Abs(num)) {
				t.Errorf("%s[%d]: backward %.8f, finite difference %.8f", p.Name, i, g[i], num)
			}
		}
	}
}
