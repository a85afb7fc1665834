package links

import (
	"cmp"
	"math"
	"math/rand"
	"slices"

	"github.com/mlink-project/mlink/pipeline"
)

// Link families (pipeline.Kind of the source → of the target). A temporal
// link without a source (only the target's last output and its age) has
// family FamilySelf.
const (
	FamilyVec2Vec = "vec2vec"
	FamilySeq2Vec = "seq2vec"
	FamilyVec2Seq = "vec2seq"
	FamilySeq2Seq = "seq2seq"
	FamilySelf    = "self"
)

// Family returns the link family between two output types.
func Family(src, tgt pipeline.OutputType) string {
	s, t := src.Kind() == pipeline.KindSequence, tgt.Kind() == pipeline.KindSequence
	switch {
	case s && t:
		return FamilySeq2Seq
	case s:
		return FamilySeq2Vec
	case t:
		return FamilyVec2Seq
	}
	return FamilyVec2Vec
}

type dense struct{ W, B *Param }

func newDense(name string, out, in int, bias bool) dense { return alloc{}.dense(name, out, in, bias) }

func (al alloc) dense(name string, out, in int, bias bool) dense {
	d := dense{W: al.param(name+".W", out, in)}
	if bias {
		d.B = al.bias(name+".b", out)
	}
	return d
}

// arch is a link's architecture: every size, derived from the two models
// and the options, so that a saved link can be rebuilt and checked.
type arch struct {
	seqIn   bool // source is a sequence: per-element projection + GRU encoder
	vecIn   int  // source vector view length (0 for a self link)
	enc     int  // encoder width for sequence sources
	extra   int  // temporal inputs: target's last vector view + age
	summary int  // input of the heads
	out     int  // head output: target vector view length
	hidden  int
	decoder string // "" for vector targets
	dec     int    // decoder units
	att     int    // attention units
	mem     int    // memory row width (attention decoder)
	slots   int    // set decoder slots
}

// Link is one model link g_ij: it predicts target j's output from source
// i's exact output (and, for a temporal link, from j's last exact output
// and its age). Source is empty for a self-temporal link.
type Link struct {
	Source   string
	Target   string
	Family   string
	Temporal bool

	src, tgt *ModelInfo
	a        arch
	maxAge   int // temporal links: the age scale of the age feature

	proj dense    // per-element projection (sequence sources)
	enc  *gruCell // recurrent encoder (sequence sources)
	h1   dense    // head: summary → hidden (ReLU, dropout)
	h2   dense    // hidden → target vector view (pre-activation)
	lp   dense    // loss-prediction head: hidden → predicted loss
	// skip and skipAge (temporal links) are per-dimension gains on the
	// target's last output, and on that output times the age feature,
	// added to the head: the link starts as "reuse the last output" and
	// learns how that decays with age, plus corrections from the source.
	skip, skipAge *Param

	// attention decoder
	memIn, decInit, attKey, attQuery, out dense
	attV                                  *Param
	dec                                   *gruCell
	// set decoder
	slot1, slot2 dense

	params []*Param
}

func newLink(src, tgt *ModelInfo, temporal bool, o *TrainOptions, al alloc) *Link {
	l := &Link{Target: tgt.Name, Temporal: temporal, src: src, tgt: tgt, maxAge: o.MaxAge}
	a := &l.a
	a.out = tgt.Dim
	a.hidden = max(o.Hidden*a.out, o.MinHidden)
	encOut := a.out // the published rule: encoder width 2 × output dim
	if tgt.Seq() {
		encOut = ElemDim
		if !temporal {
			// Temporal links predict the count only: their boxes are the
			// last exact boxes (see Set.PredictTemporal).
			a.decoder = o.SeqDecoder
		}
	}
	if src != nil {
		l.Source = src.Name
		l.Family = Family(src.Type, tgt.Type)
		a.vecIn = src.Dim
		a.summary = src.Dim
		if src.Seq() {
			a.seqIn = true
			a.enc = max(o.Hidden*encOut, o.MinHidden)
			a.summary += a.enc
		}
	} else {
		l.Family = FamilySelf
	}
	if temporal {
		a.extra = tgt.Dim + 1
		a.summary += a.extra
	}
	name := l.key()
	add := func(ps ...*Param) {
		for _, p := range ps {
			if p != nil {
				l.params = append(l.params, p)
			}
		}
	}
	if a.seqIn {
		l.proj = al.dense(name+".proj", a.enc, ElemDim, true)
		l.enc = al.gru(name+".enc", a.enc, a.enc)
		add(l.proj.W, l.proj.B)
		add(l.enc.params()...)
	}
	l.h1 = al.dense(name+".h1", a.hidden, a.summary, true)
	l.h2 = al.dense(name+".h2", a.out, a.hidden, true)
	l.lp = al.dense(name+".lp", 1, a.hidden, true)
	add(l.h1.W, l.h1.B, l.h2.W, l.h2.B)
	if temporal {
		l.skip = al.bias(name+".skip", tgt.Dim)
		g := 1.0 // normalised value: prediction = last value
		if tgt.Type == pipeline.TypeClass {
			g = 4 // logits: the last class wins unless the head disagrees clearly
		}
		for i := range l.skip.W {
			l.skip.W[i] = g
		}
		l.skipAge = al.bias(name+".skipAge", tgt.Dim)
		add(l.skip, l.skipAge)
	}
	switch a.decoder {
	case DecoderAttention:
		a.dec, a.att = o.DecoderUnits, o.AttentionUnits
		a.mem = max(o.Hidden*ElemDim, o.MinHidden)
		if a.seqIn {
			a.mem = a.enc
		}
		l.memIn = al.dense(name+".mem", a.mem, a.summary, true)
		l.decInit = al.dense(name+".init", a.dec, a.summary, true)
		l.attKey = al.dense(name+".key", a.att, a.mem, true)
		l.attQuery = al.dense(name+".query", a.att, a.dec, false)
		l.attV = al.param(name+".v", a.att, 1)
		l.dec = al.gru(name+".dec", ElemDim+a.mem, a.dec)
		l.out = al.dense(name+".out", ElemDim, a.dec, true)
		add(l.memIn.W, l.memIn.B, l.decInit.W, l.decInit.B, l.attKey.W, l.attKey.B, l.attQuery.W, l.attV)
		add(l.dec.params()...)
		add(l.out.W, l.out.B)
	case DecoderSet:
		a.dec = o.DecoderUnits
		a.slots = min(tgt.MaxCount, o.MaxSeqLen)
		l.slot1 = al.dense(name+".slot1", a.dec, a.summary, true)
		l.slot2 = al.dense(name+".slot2", a.slots*(ElemDim+1), a.dec, true)
		add(l.slot1.W, l.slot1.B, l.slot2.W, l.slot2.B)
	}
	// The loss-prediction head is trained apart (on detached features):
	// it is not in params, so the link's optimiser never touches it.
	return l
}

// key names the link in files and errors.
func (l *Link) key() string {
	src := l.Source
	if src == "" {
		src = "self"
	}
	k := src + "->" + l.Target
	if l.Temporal {
		k += "@t"
	}
	return k
}

// allParams lists every weight, the loss head included (persistence, FedAvg).
func (l *Link) allParams() []*Param {
	return append(slices.Clip(l.params), l.lp.W, l.lp.B)
}

func (l *Link) init(rng *rand.Rand) {
	for _, p := range l.allParams() {
		if !p.Bias {
			p.glorot(rng)
		}
	}
}

// linkInput is a link's input, already normalised.
type linkInput struct {
	vec   []float64 // source vector view
	elems []float64 // source elements (S×ElemDim), sequence sources
	extra []float64 // temporal: target's last vector view, age feature
}

// fwd holds the tape nodes of one forward pass.
type fwd struct {
	summary, mem, hidden, z int
}

// forward runs encoder and head: z is the target's vector view before the
// output activation (normalised for counts and scalars, logits for classes).
func (l *Link) forward(t *tape, in linkInput, dropout float64) fwd {
	f := fwd{summary: -1, mem: -1}
	if l.src != nil {
		v := t.input(in.vec)
		f.summary = v
		if l.a.seqIn {
			E := l.a.enc
			S := len(in.elems) / ElemDim
			p := t.relu(t.rowLinear(l.proj.W, l.proj.B, t.input(in.elems)))
			states := t.zeros(S * E)
			h := t.zeros(E)
			for s := 0; s < S; s++ {
				h = t.gru(l.enc, t.view(p, s*E, E), h, states, s)
			}
			f.summary = t.concat(h, v)
			f.mem = states
		}
	}
	e := -1
	if l.a.extra > 0 {
		e = t.input(in.extra)
		if f.summary < 0 {
			f.summary = e
		} else {
			f.summary = t.concat(f.summary, e)
		}
	}
	h := t.linear(l.h1.W, l.h1.B, f.summary)
	h = t.relu(t.dropoutOp(h, dropout))
	f.hidden = h
	f.z = t.linear(l.h2.W, l.h2.B, h)
	if l.skip != nil {
		D := l.tgt.Dim
		last := t.view(e, 0, D)
		aged := t.zeros(D)
		for i, v := range in.extra[:D] {
			t.val(aged)[i] = v * in.extra[D]
		}
		f.z = t.addOp(f.z, t.addOp(t.scale(l.skip, last), t.scale(l.skipAge, aged)))
	}
	return f
}

// decodeAttention runs the recurrent decoder for n steps. With teacher
// (n×ElemDim normalised target elements) it is teacher-forced. It returns
// the node of the n×ElemDim decoded elements.
func (l *Link) decodeAttention(t *tape, f fwd, n int, teacher []float64) int {
	row0 := t.relu(t.linear(l.memIn.W, l.memIn.B, f.summary))
	mem := row0
	if f.mem >= 0 && len(t.val(f.mem)) > 0 {
		mem = t.concat(row0, f.mem)
	}
	keys := t.rowLinear(l.attKey.W, l.attKey.B, mem)
	h := t.tanh(t.linear(l.decInit.W, l.decInit.B, f.summary))
	out := t.zeros(n * ElemDim)
	prev := t.zeros(ElemDim)
	tn := -1
	if teacher != nil {
		tn = t.input(teacher[:n*ElemDim])
	}
	for i := 0; i < n; i++ {
		q := t.linear(l.attQuery.W, nil, h)
		c := t.attend(l.attV, keys, q, mem)
		h = t.gru(l.dec, t.concat(prev, c), h, -1, 0)
		y := t.linearTo(l.out.W, l.out.B, h, out, i)
		if tn >= 0 {
			prev = t.view(tn, i*ElemDim, ElemDim)
		} else {
			prev = y
		}
	}
	return out
}

// decodeSet returns the node of slots×(ElemDim+1): each slot's element and
// its existence logit.
func (l *Link) decodeSet(t *tape, f fwd, dropout float64) int {
	h := t.relu(t.dropoutOp(t.linear(l.slot1.W, l.slot1.B, f.summary), dropout))
	return t.linear(l.slot2.W, l.slot2.B, h)
}

// lossPred is the loss-prediction head's output for a forward pass.
func (l *Link) lossPred(t *tape, f fwd) float64 {
	h := t.val(f.hidden)
	s := l.lp.B.W[0]
	for i, v := range h {
		s += l.lp.W.W[i] * v
	}
	return s
}

// vecLoss computes the loss of the head output z against the target
// vector y and sets z's gradient (scaled by w).
func vecLoss(typ pipeline.OutputType, countLoss string, z, y, grad []float64, w float64) float64 {
	if typ == pipeline.TypeClass {
		// Softmax cross-entropy on soft targets.
		mx := math.Inf(-1)
		for _, v := range z {
			mx = max(mx, v)
		}
		sum := 0.0
		for _, v := range z {
			sum += math.Exp(v - mx)
		}
		lse := mx + math.Log(sum)
		loss, ysum := 0.0, 0.0
		for i := range z {
			ysum += y[i]
		}
		for i, v := range z {
			p := math.Exp(v - lse)
			loss -= y[i] * (v - lse)
			if grad != nil {
				grad[i] += w * (p*ysum - y[i])
			}
		}
		return loss
	}
	loss := 0.0
	inv := 1 / float64(len(z))
	for i, v := range z {
		d := v - y[i]
		if countLoss == "mae" {
			loss += math.Abs(d) * inv
			if grad != nil {
				grad[i] += w * sign(d) * inv
			}
		} else {
			loss += d * d * inv
			if grad != nil {
				grad[i] += w * 2 * d * inv
			}
		}
	}
	return loss
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// seqLossAttention: masked per-element MSE of the teacher-forced decoder.
func seqLossAttention(out, target, grad []float64) float64 {
	if len(out) == 0 {
		return 0
	}
	inv := 1 / float64(len(out))
	loss := 0.0
	for i, v := range out {
		d := v - target[i]
		loss += d * d * inv
		grad[i] += 2 * d * inv
	}
	return loss
}

// matchScratch is reused across samples by the set decoder's loss.
type matchScratch struct {
	pairs        []slotPair
	slotOf       []int
	usedS, usedE []bool
}

type slotPair struct {
	k, i int
	c    float64
}

// seqLossSet: greedy matching of slots to target elements by L1 distance of
// the coordinates (cheapest pairs first), MSE on matched elements, binary
// cross-entropy on every slot's existence (1 if matched).
func seqLossSet(out, target []float64, slots int, grad []float64, ms *matchScratch) float64 {
	const w = ElemDim + 1
	n := min(len(target)/ElemDim, slots)
	ms.pairs = ms.pairs[:0]
	for k := 0; k < slots; k++ {
		s := out[k*w : k*w+4]
		for i := 0; i < n; i++ {
			e := target[i*ElemDim : i*ElemDim+4]
			c := math.Abs(s[0]-e[0]) + math.Abs(s[1]-e[1]) + math.Abs(s[2]-e[2]) + math.Abs(s[3]-e[3])
			ms.pairs = append(ms.pairs, slotPair{k, i, c})
		}
	}
	slices.SortFunc(ms.pairs, func(a, b slotPair) int {
		if c := cmp.Compare(a.c, b.c); c != 0 {
			return c
		}
		if a.k != b.k {
			return a.k - b.k
		}
		return a.i - b.i
	})
	ms.slotOf = grow(ms.slotOf, slots)
	ms.usedS = growB(ms.usedS, slots)
	ms.usedE = growB(ms.usedE, n)
	for k := range ms.slotOf {
		ms.slotOf[k] = -1
	}
	matched := 0
	for _, p := range ms.pairs {
		if matched == n {
			break
		}
		if ms.usedS[p.k] || ms.usedE[p.i] {
			continue
		}
		ms.usedS[p.k], ms.usedE[p.i] = true, true
		ms.slotOf[p.k] = p.i
		matched++
	}
	loss := 0.0
	invE := 1 / float64(max(n, 1)*ElemDim)
	invS := 1 / float64(slots)
	for k := 0; k < slots; k++ {
		s := out[k*w : (k+1)*w]
		g := grad[k*w : (k+1)*w]
		y := 0.0
		if i := ms.slotOf[k]; i >= 0 {
			y = 1
			e := target[i*ElemDim : (i+1)*ElemDim]
			for f := 0; f < ElemDim; f++ {
				d := s[f] - e[f]
				loss += d * d * invE
				g[f] += 2 * d * invE
			}
		}
		p := sigmoid(s[ElemDim])
		loss -= invS * (y*math.Log(p+1e-12) + (1-y)*math.Log(1-p+1e-12))
		g[ElemDim] += invS * (p - y)
	}
	return loss
}

func grow(s []int, n int) []int {
	if cap(s) < n {
		return make([]int, n)
	}
	return s[:n]
}

func growB(s []bool, n int) []bool {
	if cap(s) < n {
		return make([]bool, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// setBoxes returns the n slots with the highest existence scores.
func setBoxes(out []float64, slots, n int, idx []int, key []float64) []int {
	const w = ElemDim + 1
	idx, key = idx[:slots], key[:slots]
	for k := range idx {
		idx[k] = k
		key[k] = -out[k*w+ElemDim]
	}
	insertionSort(idx, key)
	return idx[:min(n, slots)]
}
