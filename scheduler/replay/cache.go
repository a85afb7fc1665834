package replay

import (
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/scheduler"
)

// CachedLearner memoises a Learner: replays of one trace at several budgets
// profile the same frames and so train, measure and fine-tune the same
// links. Training is deterministic for a seed, so a cached answer is the
// answer the learner would give again. Safe for concurrent use.
type CachedLearner struct {
	inner scheduler.Learner

	mu    sync.Mutex
	calls map[string]*cached
	ids   map[scheduler.Predictor]int
}

type cached struct {
	done chan struct{}
	p    scheduler.Predictor
	ev   scheduler.SetEvidence
	err  error
}

// NewCachedLearner wraps inner.
func NewCachedLearner(inner scheduler.Learner) *CachedLearner {
	return &CachedLearner{inner: inner, calls: map[string]*cached{}, ids: map[scheduler.Predictor]int{}}
}

// Train implements scheduler.Learner.
func (c *CachedLearner) Train(samples []*links.TraceRecord) (scheduler.Predictor, error) {
	r := c.do("train", nil, samples, func(r *cached) { r.p, r.err = c.inner.Train(samples) })
	return r.p, r.err
}

// Measure implements scheduler.Learner.
func (c *CachedLearner) Measure(p scheduler.Predictor, samples []*links.TraceRecord) (scheduler.SetEvidence, error) {
	r := c.do("measure", p, samples, func(r *cached) { r.ev, r.err = c.inner.Measure(p, samples) })
	return r.ev, r.err
}

// FineTune implements scheduler.Learner.
func (c *CachedLearner) FineTune(p scheduler.Predictor, samples []*links.TraceRecord) (scheduler.Predictor, error) {
	r := c.do("finetune", p, samples, func(r *cached) { r.p, r.err = c.inner.FineTune(p, samples) })
	return r.p, r.err
}

// do runs f once per (operation, predictor, samples); concurrent callers
// of the same call wait for the first.
func (c *CachedLearner) do(op string, p scheduler.Predictor, samples []*links.TraceRecord, f func(*cached)) *cached {
	h := fnv.New64a()
	for _, s := range samples {
		fmt.Fprintf(h, "%s/%d;", s.Camera, s.Seq)
	}
	c.mu.Lock()
	key := fmt.Sprintf("%s/%d/%d/%x", op, c.idLocked(p), len(samples), h.Sum64())
	r, ok := c.calls[key]
	if !ok {
		r = &cached{done: make(chan struct{})}
		c.calls[key] = r
	}
	c.mu.Unlock()
	if !ok {
		f(r)
		close(r.done)
	}
	<-r.done
	return r
}

// idLocked numbers predictors so keys need not hold them by address.
func (c *CachedLearner) idLocked(p scheduler.Predictor) int {
	if p == nil {
		return 0
	}
	id, ok := c.ids[p]
	if !ok {
		id = len(c.ids) + 1
		c.ids[p] = id
	}
	return id
}
