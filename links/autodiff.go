package links

import (
	"math"
	"math/rand"
)

// This file is a small reverse-mode automatic differentiation for the tiny
// networks of model links: a tape of fused float64 operations (dense layer,
// GRU cell, additive attention, element-wise activations) recorded per
// sample, then replayed backwards. Links have tens to a few thousand
// weights, batches of 32 and variable-length box sequences, so per-sample
// graphs over plain slices beat a tensor framework here (see README.md for
// the measurements). Values live in a chunked arena that is reused from one
// sample to the next, so a warm tape allocates nothing.

// Param is one trainable weight tensor (row-major Rows×Cols).
type Param struct {
	Name       string
	Rows, Cols int
	// Bias parameters start at zero, the others Glorot-uniform.
	Bias bool
	W    []float64
	// g accumulates gradients over a batch; ms is RMSprop's running mean
	// of squared gradients. Neither is persisted.
	g, ms []float64
}

func newParam(name string, rows, cols int) *Param { return alloc{}.param(name, rows, cols) }

func newBias(name string, n int) *Param { return alloc{}.bias(name, n) }

// alloc creates the weights of an architecture. A counting alloc (count
// set) allocates none: it sums the weights the architecture needs, so that
// Load can refuse a file that describes a huge one before building it.
type alloc struct{ count *weightCount }

// weightCount sums weight tensor sizes; a negative or overflowing size
// marks it bad.
type weightCount struct {
	n   int64
	bad bool
}

func (c *weightCount) add(rows, cols int) {
	if c.bad || rows < 0 || cols < 0 || (cols > 0 && rows > math.MaxInt64/cols) || int64(rows*cols) > math.MaxInt64-c.n {
		c.bad = true
		return
	}
	c.n += int64(rows * cols)
}

func (a alloc) param(name string, rows, cols int) *Param {
	if a.count != nil {
		a.count.add(rows, cols)
		return &Param{Name: name, Rows: rows, Cols: cols}
	}
	return &Param{Name: name, Rows: rows, Cols: cols, W: make([]float64, rows*cols)}
}

func (a alloc) bias(name string, n int) *Param {
	p := a.param(name, n, 1)
	p.Bias = true
	return p
}

// glorot fills p with Glorot-uniform weights (Keras' default initialiser).
func (p *Param) glorot(rng *rand.Rand) {
	lim := math.Sqrt(6 / float64(p.Rows+p.Cols))
	for i := range p.W {
		p.W[i] = (rng.Float64()*2 - 1) * lim
	}
}

func (p *Param) grad() []float64 {
	if p.g == nil {
		p.g = make([]float64, len(p.W))
	}
	return p.g
}

type opcode uint8

const (
	opLeaf      opcode = iota // input, constant or view: nothing to propagate
	opLinear                  // y = W·x + b
	opRowLinear               // Y[s] = W·X[s] + b for every row s of X
	opReLU
	opTanh
	opSigmoid
	opDropout // y = x ⊙ mask (inverted dropout, mask in aux)
	opAdd
	opConcat
	opScale  // y = g ⊙ x with g a Param vector
	opGRU    // one GRU step: h' = GRU(x, h)
	opAttend // additive (Bahdanau) attention: context over memory rows
)

type node struct {
	op        opcode
	a, b, c   int32
	w, u      *Param
	bw, bu    *Param
	val, grad []float64
	aux       []float64
}

// arena hands out float64 slices that stay valid until reset; chunks are
// kept and reused, never moved.
type arena struct {
	chunks [][]float64
	ci     int
	off    int
}

const arenaChunk = 1 << 14

func (a *arena) alloc(n int) []float64 {
	for {
		if a.ci < len(a.chunks) {
			c := a.chunks[a.ci]
			if a.off+n <= len(c) {
				s := c[a.off : a.off+n : a.off+n]
				a.off += n
				clear(s)
				return s
			}
			a.ci++
			a.off = 0
			continue
		}
		a.chunks = append(a.chunks, make([]float64, max(n, arenaChunk)))
	}
}

func (a *arena) reset() { a.ci, a.off = 0, 0 }

// tape records one forward pass so that backward can propagate gradients
// into the Params' accumulators.
type tape struct {
	nodes []node
	mem   arena
	// train enables dropout; grads enables gradient storage and backward.
	train, grads bool
	rng          *rand.Rand
	ints         []int
}

// intScratch returns n ints of reusable scratch.
func (t *tape) intScratch(n int) []int {
	if cap(t.ints) < n {
		t.ints = make([]int, n)
	}
	return t.ints[:n]
}

func newTape(rng *rand.Rand) *tape { return &tape{rng: rng} }

func (t *tape) reset(train, grads bool) {
	t.nodes = t.nodes[:0]
	t.mem.reset()
	t.train, t.grads = train, grads
}

func (t *tape) add(op opcode, n int) int {
	id := len(t.nodes)
	nd := node{op: op, a: -1, b: -1, c: -1, val: t.mem.alloc(n)}
	if t.grads {
		nd.grad = t.mem.alloc(n)
	}
	t.nodes = append(t.nodes, nd)
	return id
}

// input is a leaf holding a copy of x.
func (t *tape) input(x []float64) int {
	id := t.add(opLeaf, len(x))
	copy(t.nodes[id].val, x)
	return id
}

// zeros is a leaf of n zeros.
func (t *tape) zeros(n int) int { return t.add(opLeaf, n) }

// view is a leaf aliasing values off..off+n of node p: gradients written to
// it land directly in p's gradient.
func (t *tape) view(p, off, n int) int {
	pv := &t.nodes[p]
	nd := node{op: opLeaf, a: -1, b: -1, c: -1, val: pv.val[off : off+n : off+n]}
	if t.grads {
		nd.grad = pv.grad[off : off+n : off+n]
	}
	t.nodes = append(t.nodes, nd)
	return len(t.nodes) - 1
}

func (t *tape) val(id int) []float64 { return t.nodes[id].val }

func (t *tape) linear(w, b *Param, x int) int { return t.linearTo(w, b, x, -1, 0) }

// linearTo is linear; with into ≥ 0 the result is stored in row `row` of
// node into (so a decoder's steps fill one output matrix).
func (t *tape) linearTo(w, b *Param, x, into, row int) int {
	var id int
	if into >= 0 {
		id = t.view(into, row*w.Rows, w.Rows)
		t.nodes[id].op = opLinear
	} else {
		id = t.add(opLinear, w.Rows)
	}
	n := &t.nodes[id]
	n.a, n.w, n.bw = int32(x), w, b
	xv := t.nodes[x].val
	matVec(n.val, w.W, xv, w.Rows, w.Cols)
	if b != nil {
		for i := range n.val {
			n.val[i] += b.W[i]
		}
	}
	return id
}

// rowLinear applies the dense layer to every row of x (len(x) = S·w.Cols).
func (t *tape) rowLinear(w, b *Param, x int) int {
	xv := t.nodes[x].val
	rows := len(xv) / w.Cols
	id := t.add(opRowLinear, rows*w.Rows)
	n := &t.nodes[id]
	n.a, n.w, n.bw = int32(x), w, b
	for s := 0; s < rows; s++ {
		y := n.val[s*w.Rows : (s+1)*w.Rows]
		matVec(y, w.W, xv[s*w.Cols:(s+1)*w.Cols], w.Rows, w.Cols)
		for i := range y {
			y[i] += b.W[i]
		}
	}
	return id
}

func (t *tape) unary(op opcode, x int) int {
	xv := t.nodes[x].val
	id := t.add(op, len(xv))
	n := &t.nodes[id]
	n.a = int32(x)
	switch op {
	case opReLU:
		for i, v := range xv {
			n.val[i] = max(v, 0)
		}
	case opTanh:
		for i, v := range xv {
			n.val[i] = math.Tanh(v)
		}
	case opSigmoid:
		for i, v := range xv {
			n.val[i] = sigmoid(v)
		}
	}
	return id
}

func (t *tape) relu(x int) int    { return t.unary(opReLU, x) }
func (t *tape) tanh(x int) int    { return t.unary(opTanh, x) }
func (t *tape) sigmoid(x int) int { return t.unary(opSigmoid, x) }

// dropoutOp is inverted dropout in training mode and the identity otherwise.
func (t *tape) dropoutOp(x int, p float64) int {
	if !t.train || p <= 0 {
		return x
	}
	xv := t.nodes[x].val
	id := t.add(opDropout, len(xv))
	n := &t.nodes[id]
	n.a = int32(x)
	n.aux = t.mem.alloc(len(xv))
	keep := 1 / (1 - p)
	for i, v := range xv {
		if t.rng.Float64() >= p {
			n.aux[i] = keep
			n.val[i] = v * keep
		}
	}
	return id
}

func (t *tape) addOp(a, b int) int {
	av, bv := t.nodes[a].val, t.nodes[b].val
	id := t.add(opAdd, len(av))
	n := &t.nodes[id]
	n.a, n.b = int32(a), int32(b)
	for i := range av {
		n.val[i] = av[i] + bv[i]
	}
	return id
}

// scale multiplies x element-wise by the weight vector g.
func (t *tape) scale(g *Param, x int) int {
	xv := t.nodes[x].val
	id := t.add(opScale, len(xv))
	n := &t.nodes[id]
	n.a, n.w = int32(x), g
	for i, v := range xv {
		n.val[i] = g.W[i] * v
	}
	return id
}

func (t *tape) concat(a, b int) int {
	av, bv := t.nodes[a].val, t.nodes[b].val
	id := t.add(opConcat, len(av)+len(bv))
	n := &t.nodes[id]
	n.a, n.b = int32(a), int32(b)
	copy(n.val, av)
	copy(n.val[len(av):], bv)
	return id
}

// gruCell holds a GRU's weights; gates are ordered r, z, n (as in PyTorch
// and Keras' reset_after variant): n = tanh(Wn·x + bWn + r ⊙ (Un·h + bUn)).
type gruCell struct {
	W, U, BW, BU *Param
	H            int
}

func newGRU(name string, in, h int) *gruCell { return alloc{}.gru(name, in, h) }

func (a alloc) gru(name string, in, h int) *gruCell {
	return &gruCell{
		W:  a.param(name+".W", 3*h, in),
		U:  a.param(name+".U", 3*h, h),
		BW: a.bias(name+".bW", 3*h),
		BU: a.bias(name+".bU", 3*h),
		H:  h,
	}
}

func (g *gruCell) params() []*Param { return []*Param{g.W, g.U, g.BW, g.BU} }

// gru runs one step. With into ≥ 0 the new state is stored in row `row` of
// node into (a memory matrix of states), so attention can read all states.
func (t *tape) gru(c *gruCell, x, h, into, row int) int {
	H := c.H
	var id int
	if into >= 0 {
		id = t.view(into, row*H, H)
		t.nodes[id].op = opGRU
	} else {
		id = t.add(opGRU, H)
	}
	aux := t.mem.alloc(10 * H) // r z n ghn | scratch 6H for backward
	n := &t.nodes[id]
	n.a, n.b = int32(x), int32(h)
	n.w, n.u, n.bw, n.bu = c.W, c.U, c.BW, c.BU
	n.aux = aux
	xv, hv := t.nodes[x].val, t.nodes[h].val
	gx := aux[4*H : 7*H]
	gh := aux[7*H : 10*H]
	matVec(gx, c.W.W, xv, 3*H, c.W.Cols)
	matVec(gh, c.U.W, hv, 3*H, H)
	r, z, nn, ghn := aux[:H], aux[H:2*H], aux[2*H:3*H], aux[3*H:4*H]
	for i := 0; i < H; i++ {
		r[i] = sigmoid(gx[i] + c.BW.W[i] + gh[i] + c.BU.W[i])
		z[i] = sigmoid(gx[H+i] + c.BW.W[H+i] + gh[H+i] + c.BU.W[H+i])
		ghn[i] = gh[2*H+i] + c.BU.W[2*H+i]
		nn[i] = math.Tanh(gx[2*H+i] + c.BW.W[2*H+i] + r[i]*ghn[i])
		n.val[i] = (1-z[i])*nn[i] + z[i]*hv[i]
	}
	return id
}

// attend computes additive attention: for memory rows M[s] with keys K[s]
// (already projected) and query q, e_s = v·tanh(K[s] + q), α = softmax(e),
// context = Σ α_s M[s].
func (t *tape) attend(v *Param, keys, q, mem int) int {
	A := len(t.nodes[q].val)
	kv := t.nodes[keys].val
	S := len(kv) / A
	mv := t.nodes[mem].val
	D := len(mv) / S
	id := t.add(opAttend, D)
	n := &t.nodes[id]
	n.a, n.b, n.c, n.w = int32(keys), int32(q), int32(mem), v
	n.aux = t.mem.alloc(2*S + S*A)
	alpha, tv := n.aux[:S], n.aux[2*S:]
	qv := t.nodes[q].val
	mx := math.Inf(-1)
	for s := 0; s < S; s++ {
		e := 0.0
		ks := kv[s*A : (s+1)*A]
		ts := tv[s*A : (s+1)*A]
		for j := 0; j < A; j++ {
			ts[j] = math.Tanh(ks[j] + qv[j])
			e += v.W[j] * ts[j]
		}
		alpha[s] = e
		mx = max(mx, e)
	}
	sum := 0.0
	for s := range alpha {
		alpha[s] = math.Exp(alpha[s] - mx)
		sum += alpha[s]
	}
	for s := range alpha {
		alpha[s] /= sum
		ms := mv[s*D : (s+1)*D]
		for j := range D {
			n.val[j] += alpha[s] * ms[j]
		}
	}
	return id
}

// backward propagates the gradients set on output nodes (node.grad) back
// to every Param's accumulator.
func (t *tape) backward() {
	for i := len(t.nodes) - 1; i >= 0; i-- {
		n := &t.nodes[i]
		switch n.op {
		case opLeaf:
		case opLinear:
			x := &t.nodes[n.a]
			w := n.w
			wg := w.grad()
			var bg []float64
			if n.bw != nil {
				bg = n.bw.grad()
			}
			for o, g := range n.grad {
				if g == 0 {
					continue
				}
				if bg != nil {
					bg[o] += g
				}
				row := w.W[o*w.Cols : (o+1)*w.Cols]
				growRow := wg[o*w.Cols : (o+1)*w.Cols]
				for k, xv := range x.val {
					growRow[k] += g * xv
					x.grad[k] += g * row[k]
				}
			}
		case opRowLinear:
			x := &t.nodes[n.a]
			w := n.w
			wg, bg := w.grad(), n.bw.grad()
			rows := len(x.val) / w.Cols
			for s := 0; s < rows; s++ {
				xs := x.val[s*w.Cols : (s+1)*w.Cols]
				xg := x.grad[s*w.Cols : (s+1)*w.Cols]
				for o := 0; o < w.Rows; o++ {
					g := n.grad[s*w.Rows+o]
					if g == 0 {
						continue
					}
					bg[o] += g
					row := w.W[o*w.Cols : (o+1)*w.Cols]
					growRow := wg[o*w.Cols : (o+1)*w.Cols]
					for k, xv := range xs {
						growRow[k] += g * xv
						xg[k] += g * row[k]
					}
				}
			}
		case opReLU:
			x := &t.nodes[n.a]
			for k, g := range n.grad {
				if n.val[k] > 0 {
					x.grad[k] += g
				}
			}
		case opTanh:
			x := &t.nodes[n.a]
			for k, g := range n.grad {
				x.grad[k] += g * (1 - n.val[k]*n.val[k])
			}
		case opSigmoid:
			x := &t.nodes[n.a]
			for k, g := range n.grad {
				x.grad[k] += g * n.val[k] * (1 - n.val[k])
			}
		case opDropout:
			x := &t.nodes[n.a]
			for k, g := range n.grad {
				x.grad[k] += g * n.aux[k]
			}
		case opAdd:
			a, b := &t.nodes[n.a], &t.nodes[n.b]
			for k, g := range n.grad {
				a.grad[k] += g
				b.grad[k] += g
			}
		case opScale:
			x := &t.nodes[n.a]
			gg := n.w.grad()
			for k, g := range n.grad {
				gg[k] += g * x.val[k]
				x.grad[k] += g * n.w.W[k]
			}
		case opConcat:
			a, b := &t.nodes[n.a], &t.nodes[n.b]
			la := len(a.grad)
			for k, g := range n.grad[:la] {
				a.grad[k] += g
			}
			for k, g := range n.grad[la:] {
				b.grad[k] += g
			}
		case opGRU:
			t.backGRU(n)
		case opAttend:
			t.backAttend(n)
		}
	}
}

func (t *tape) backGRU(n *node) {
	x, h := &t.nodes[n.a], &t.nodes[n.b]
	H := len(n.val)
	aux := n.aux
	r, z, nn, ghn := aux[:H], aux[H:2*H], aux[2*H:3*H], aux[3*H:4*H]
	gxg := aux[4*H : 7*H] // reused as scratch: forward pre-activations are no longer needed
	ghg := aux[7*H : 10*H]
	for i := 0; i < H; i++ {
		dh := n.grad[i]
		dn := dh * (1 - z[i])
		dz := dh * (h.val[i] - nn[i])
		h.grad[i] += dh * z[i]
		dan := dn * (1 - nn[i]*nn[i])
		dr := dan * ghn[i]
		daz := dz * z[i] * (1 - z[i])
		dar := dr * r[i] * (1 - r[i])
		gxg[i], gxg[H+i], gxg[2*H+i] = dar, daz, dan
		ghg[i], ghg[H+i], ghg[2*H+i] = dar, daz, dan*r[i]
	}
	backDense(n.w, n.bw, gxg, x.val, x.grad)
	backDense(n.u, n.bu, ghg, h.val, h.grad)
}

// backDense accumulates the gradients of y = W·x + b given dy.
func backDense(w, b *Param, dy, x, dx []float64) {
	wg, bg := w.grad(), b.grad()
	cols := w.Cols
	for o, g := range dy {
		if g == 0 {
			continue
		}
		bg[o] += g
		row := w.W[o*cols : (o+1)*cols]
		growRow := wg[o*cols : (o+1)*cols]
		for k, xv := range x {
			growRow[k] += g * xv
			dx[k] += g * row[k]
		}
	}
}

func (t *tape) backAttend(n *node) {
	keys, q, mem := &t.nodes[n.a], &t.nodes[n.b], &t.nodes[n.c]
	A := len(q.val)
	S := len(keys.val) / A
	D := len(n.val)
	alpha, dalpha, tv := n.aux[:S], n.aux[S:2*S], n.aux[2*S:]
	dot := 0.0
	for s := 0; s < S; s++ {
		ms := mem.val[s*D : (s+1)*D]
		mg := mem.grad[s*D : (s+1)*D]
		da := 0.0
		for j, g := range n.grad {
			da += g * ms[j]
			mg[j] += alpha[s] * g
		}
		dalpha[s] = da
		dot += alpha[s] * da
	}
	v := n.w
	vg := v.grad()
	for s := 0; s < S; s++ {
		de := alpha[s] * (dalpha[s] - dot)
		if de == 0 {
			continue
		}
		ts := tv[s*A : (s+1)*A]
		kg := keys.grad[s*A : (s+1)*A]
		for j := 0; j < A; j++ {
			vg[j] += de * ts[j]
			du := de * v.W[j] * (1 - ts[j]*ts[j])
			kg[j] += du
			q.grad[j] += du
		}
	}
}

func matVec(y, w, x []float64, rows, cols int) {
	x = x[:cols]
	for o := 0; o < rows; o++ {
		row := w[o*cols : (o+1)*cols]
		s := 0.0
		for k, xv := range x {
			s += row[k] * xv
		}
		y[o] = s
	}
}

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// rmsprop is Keras' RMSprop (rho 0.9, epsilon 1e-7) applied to the mean
// gradient of a batch; it zeroes the accumulators.
func rmsprop(params []*Param, lr float64, batch int) {
	const rho, eps = 0.9, 1e-7
	inv := 1 / float64(batch)
	for _, p := range params {
		if p.g == nil {
			continue
		}
		if p.ms == nil {
			p.ms = make([]float64, len(p.W))
		}
		for i, g := range p.g {
			g *= inv
			p.ms[i] = rho*p.ms[i] + (1-rho)*g*g
			p.W[i] -= lr * g / (math.Sqrt(p.ms[i]) + eps)
		}
		clear(p.g)
	}
}
