//go:build matprofile

package stages

import (
	"testing"

	"gocv.io/x/gocv"
)

// TestFrameCacheNoMatLeak: every decoded frame is freed once evicted and
// released, or at Close. Run with:
// go test -tags matprofile -run FrameCacheNoMatLeak ./stages/
func TestFrameCacheNoMatLeak(t *testing.T) {
	before := gocv.MatProfile.Count()
	c := NewFrameCache(3)
	var held []func()
	for seq := uint64(1); seq <= 20; seq++ {
		for range 3 {
			_, release, err := c.Acquire(testFrame(t, seq))
			if err != nil {
				t.Fatal(err)
			}
			if seq%5 == 0 {
				held = append(held, release) // in use past its eviction
			} else {
				release()
			}
		}
	}
	bad := testFrame(t, 99)
	bad.JPEG = bad.JPEG[:100]
	c.Acquire(bad)
	for _, r := range held {
		r()
	}
	c.Close()
	if n := gocv.MatProfile.Count(); n != before {
		t.Fatalf("%d Mats alive after the cache closed, %d before", n, before)
	}
}
