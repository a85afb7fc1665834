package stages

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

func testFrame(t *testing.T, seq uint64) *pipeline.Frame {
	t.Helper()
	data, err := os.ReadFile("../cmd/mlink/testdata/vtest-frame.jpg")
	if err != nil {
		t.Fatal(err)
	}
	return &pipeline.Frame{Camera: "cam", Seq: seq, CapturedAt: time.Unix(100, int64(seq)), JPEG: data}
}

func TestFrameCacheDecodesOncePerFrame(t *testing.T) {
	c := NewFrameCache(2)
	defer c.Close()
	f := testFrame(t, 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, release, err := c.Acquire(f)
			if err != nil {
				t.Error(err)
				return
			}
			defer release()
			if img.Rows() != 576 || img.Cols() != 768 {
				t.Errorf("decoded %dx%d", img.Cols(), img.Rows())
			}
		}()
	}
	wg.Wait()
	if d, h := c.Stats().Decodes.Load(), c.Stats().Hits.Load(); d != 1 || h != 7 {
		t.Fatalf("8 workers on one frame: %d decodes, %d hits; want 1 and 7", d, h)
	}
	// A frame of the same camera and seq captured at another time (a
	// restarted ingest) is another frame.
	g := testFrame(t, 1)
	g.CapturedAt = g.CapturedAt.Add(time.Hour)
	_, release, err := c.Acquire(g)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if c.Stats().Decodes.Load() != 2 {
		t.Fatal("a restarted camera's frame was served from the cache")
	}
}

// Frames leave the cache oldest first; one still in use stays valid until
// released.
func TestFrameCacheEvictsButKeepsFramesInUse(t *testing.T) {
	c := NewFrameCache(2)
	defer c.Close()
	held, release, err := c.Acquire(testFrame(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(2); seq <= 5; seq++ {
		_, r, err := c.Acquire(testFrame(t, seq))
		if err != nil {
			t.Fatal(err)
		}
		r()
	}
	// Frame 1 was evicted while held: still readable.
	if held.Empty() || held.Rows() != 576 {
		t.Fatal("a frame in use was freed")
	}
	release()
	release() // releasing twice is harmless
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d frames cached, capacity 2", n)
	}
	// Frame 1 again: decoded anew.
	before := c.Stats().Decodes.Load()
	_, r, _ := c.Acquire(testFrame(t, 1))
	r()
	if c.Stats().Decodes.Load() != before+1 {
		t.Fatal("an evicted frame was served")
	}
}

func TestFrameCacheCorruptFrame(t *testing.T) {
	c := NewFrameCache(4)
	defer c.Close()
	f := testFrame(t, 9)
	f.JPEG = f.JPEG[:200]
	for range 2 {
		if _, release, err := c.Acquire(f); err == nil {
			release()
			t.Fatal("a truncated JPEG decoded")
		}
	}
	f.JPEG = []byte("not a jpeg")
	f.Seq = 10
	if _, _, err := c.Acquire(f); err == nil {
		t.Fatal("garbage decoded")
	}
}
