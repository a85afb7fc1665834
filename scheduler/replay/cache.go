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
	ids   map[*cachedLearned]int
}

type cached struct {
	done chan struct{}
	l    *cachedLearned
	ev   scheduler.SetEvidence
	err  error
}

// cachedLearned is learned links whose measures and fine-tunings go
// through the cache. The predictor is the inner links' own, so the
// replays install exactly what the learner trained.
type cachedLearned struct {
	c     *CachedLearner
	inner scheduler.Learned
}

// NewCachedLearner wraps inner.
func NewCachedLearner(inner scheduler.Learner) *CachedLearner {
	return &CachedLearner{inner: inner, calls: map[string]*cached{}, ids: map[*cachedLearned]int{}}
}

// Train implements scheduler.Learner.
func (c *CachedLearner) Train(samples []*links.TraceRecord) (scheduler.Learned, error) {
	r := c.do("train", nil, samples, func(r *cached) {
		var l scheduler.Learned
		if l, r.err = c.inner.Train(samples); r.err == nil {
			r.l = &cachedLearned{c: c, inner: l}
		}
	})
	return r.learned()
}

// learned is the cached links as a Learned (a nil interface on error).
func (r *cached) learned() (scheduler.Learned, error) {
	if r.err != nil {
		return nil, r.err
	}
	return r.l, nil
}

// Predictor implements scheduler.Learned.
func (l *cachedLearned) Predictor() scheduler.Predictor { return l.inner.Predictor() }

// Measure implements scheduler.Learned.
func (l *cachedLearned) Measure(samples []*links.TraceRecord) (scheduler.SetEvidence, error) {
	r := l.c.do("measure", l, samples, func(r *cached) { r.ev, r.err = l.inner.Measure(samples) })
	return r.ev, r.err
}

// FineTune implements scheduler.Learned.
func (l *cachedLearned) FineTune(samples []*links.TraceRecord) (scheduler.Learned, error) {
	r := l.c.do("finetune", l, samples, func(r *cached) {
		var tuned scheduler.Learned
		if tuned, r.err = l.inner.FineTune(samples); r.err == nil {
			r.l = &cachedLearned{c: l.c, inner: tuned}
		}
	})
	return r.learned()
}

// do runs f once per (operation, links, samples); concurrent callers of
// the same call wait for the first.
func (c *CachedLearner) do(op string, l *cachedLearned, samples []*links.TraceRecord, f func(*cached)) *cached {
	h := fnv.New64a()
	for _, s := range samples {
		fmt.Fprintf(h, "%s/%d;", s.Camera, s.Seq)
	}
	c.mu.Lock()
	key := fmt.Sprintf("%s/%d/%d/%x", op, c.idLocked(l), len(samples), h.Sum64())
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

// idLocked numbers links so keys need not hold them by address.
func (c *CachedLearner) idLocked(l *cachedLearned) int {
	if l == nil {
		return 0
	}
	id, ok := c.ids[l]
	if !ok {
		id = len(c.ids) + 1
		c.ids[l] = id
	}
	return id
}
