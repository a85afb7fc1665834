package stages

import (
	"fmt"
	"sync"
	"sync/atomic"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// FrameCache shares decoded frames between the model workers of one
// process: each frame's JPEG is decoded once rather than once per model.
// With cheap models the decode is a large part of the pipeline's own cost
// (a 768×576 JPEG takes 3–4 ms; BlazeFace runs in 5).
//
// Workers only read the shared image: vision.Backend's contract is that
// Infer never writes into its input. An entry is freed when it has left
// the cache (the oldest go first, beyond the capacity) and its last user
// has released it.
type FrameCache struct {
	capacity int

	mu      sync.Mutex
	entries map[decodedKey]*cachedFrame
	order   []decodedKey
	stats   FrameCacheStats
}

// FrameCacheStats counts a cache's work.
type FrameCacheStats struct {
	Decodes, Hits atomic.Int64
}

// decodedKey identifies a frame; the capture time tells apart frames of a
// camera whose seq restarted (a restarted ingest process).
type decodedKey struct {
	camera   string
	seq      uint64
	captured int64
	// token keeps a forged frame (same camera and seq, another plan)
	// from being served in place of the real one.
	token string
}

type cachedFrame struct {
	ready   chan struct{}
	img     gocv.Mat
	err     error
	refs    int
	evicted bool
}

// NewFrameCache keeps up to capacity decoded frames (at least 1).
func NewFrameCache(capacity int) *FrameCache {
	return &FrameCache{capacity: max(1, capacity), entries: map[decodedKey]*cachedFrame{}}
}

// Stats returns the cache's counters.
func (c *FrameCache) Stats() *FrameCacheStats { return &c.stats }

// Acquire returns f decoded, shared with other users of the same frame,
// and the function to call when done with it (exactly once). The image
// must not be written to.
func (c *FrameCache) Acquire(f *pipeline.Frame) (gocv.Mat, func(), error) {
	k := decodedKey{f.Camera, f.Seq, f.CapturedAt.UnixNano(), f.Token}
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok {
		e.refs++
		c.stats.Hits.Add(1)
	} else {
		e = &cachedFrame{ready: make(chan struct{}), refs: 1}
		c.entries[k] = e
		c.order = append(c.order, k)
		c.evictLocked()
	}
	c.mu.Unlock()
	if !ok {
		c.stats.Decodes.Add(1)
		e.img, e.err = decodeFrame(f)
		close(e.ready)
	}
	<-e.ready
	release := sync.OnceFunc(func() { c.release(e) })
	if e.err != nil {
		release()
		return gocv.Mat{}, func() {}, e.err
	}
	return e.img, release, nil
}

// decodeFrame decodes a frame's JPEG. The JPEG's header is checked first:
// it must be a JPEG of at most pipeline.DefaultMaxFramePixels pixels whose
// size is the frame's (its Mlink-Width/Height headers; frames made in
// process may leave them 0), so that a few bytes claiming a huge image
// never make the decoder allocate it.
func decodeFrame(f *pipeline.Frame) (gocv.Mat, error) {
	w, h, err := pipeline.CheckJPEG(f.JPEG, pipeline.DefaultMaxFramePixels)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("decode JPEG: %w", err)
	}
	sized := f.Width > 0 && f.Height > 0
	// EXIF orientation may swap the decoded width and height.
	if sized && (w != f.Width || h != f.Height) && (h != f.Width || w != f.Height) {
		return gocv.Mat{}, fmt.Errorf("decode JPEG: the JPEG is %d×%d, the frame's headers say %d×%d", w, h, f.Width, f.Height)
	}
	img, err := decodeJPEG(f.JPEG)
	if err != nil {
		return img, err
	}
	if sized && (img.Cols() != f.Width || img.Rows() != f.Height) {
		defer img.Close()
		return gocv.Mat{}, fmt.Errorf("decode JPEG: it decodes to %d×%d, the frame's headers say %d×%d", img.Cols(), img.Rows(), f.Width, f.Height)
	}
	return img, nil
}

// decodeJPEG decodes data that CheckJPEG accepted.
func decodeJPEG(data []byte) (gocv.Mat, error) {
	img, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil {
		return img, fmt.Errorf("decode JPEG: %w", err)
	}
	if img.Empty() {
		img.Close()
		return gocv.Mat{}, fmt.Errorf("JPEG of %d bytes does not decode", len(data))
	}
	return img, nil
}

// evictLocked drops the oldest entries beyond the capacity; one still in
// use is freed by its last release.
func (c *FrameCache) evictLocked() {
	for len(c.order) > c.capacity {
		k := c.order[0]
		c.order = c.order[1:]
		e := c.entries[k]
		delete(c.entries, k)
		e.evicted = true
		if e.refs == 0 {
			c.free(e)
		}
	}
}

func (c *FrameCache) release(e *cachedFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	if e.refs == 0 && e.evicted {
		c.free(e)
	}
}

// free closes an entry's image once it is decoded (an entry evicted while
// still decoding has a user, who frees it on release).
func (c *FrameCache) free(e *cachedFrame) {
	select {
	case <-e.ready:
		if e.err == nil {
			e.img.Close()
		}
	default:
	}
}

// Close frees every cached frame; frames still in use are freed when
// released.
func (c *FrameCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		delete(c.entries, k)
		e.evicted = true
		if e.refs == 0 {
			c.free(e)
		}
	}
	c.order = nil
	return nil
}
