package framefeat

import (
	"os"
	"testing"
)

const vtest = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

func TestVideoFeatures(t *testing.T) {
	if _, err := os.Stat(vtest); err != nil {
		t.Skipf("vtest.avi: %v", err)
	}
	s := Size{W: 8, H: 6}
	tab, err := ForVideos(map[string]string{"plaza": vtest}, s)
	if err != nil {
		t.Fatal(err)
	}
	frames := tab.frames["plaza"]
	if len(frames) != 795 {
		t.Fatalf("%d frames, want vtest.avi's 795", len(frames))
	}
	n := s.W * s.H
	moved := 0.0
	for i, f := range frames {
		if len(f) != s.Len() {
			t.Fatalf("frame %d: %d features, want %d", i, len(f), s.Len())
		}
		for k, v := range f {
			if v < 0 || v > 1 {
				t.Fatalf("frame %d feature %d = %v, outside [0,1]", i, k, v)
			}
			if k >= n {
				moved += v
			}
		}
	}
	for _, v := range frames[0][n:] {
		if v != 0 {
			t.Fatal("the first frame has a change since a previous one")
		}
	}
	if moved == 0 {
		t.Error("nothing changes between frames of a street scene")
	}
	if f, err := tab.Features("plaza", 1); err != nil || &f[0] != &frames[0][0] {
		t.Errorf("seq 1 is not the video's first frame (%v)", err)
	}
	for _, seq := range []uint64{0, 796} {
		if _, err := tab.Features("plaza", seq); err == nil {
			t.Errorf("seq %d of a 795-frame video: no error", seq)
		}
	}
	if _, err := tab.Features("door", 1); err == nil {
		t.Error("a camera without a video: no error")
	}
	if _, err := ForVideos(map[string]string{"x": "/nonexistent.avi"}, s); err == nil {
		t.Error("a missing video: no error")
	}
}
