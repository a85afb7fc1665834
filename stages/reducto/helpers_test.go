package reducto

import (
	"image"
	"os"
	"sync"
	"testing"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

// vtest.avi (Debian opencv-doc): a fixed camera over a plaza, 768×576,
// 10 fps, 795 frames, 5–8 people walking. links/testdata/vtest.trace.gz
// holds every model's exact outputs on it (record seq i+1 = frame i).
const (
	vtestPath = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
	tracePath = "../../links/testdata/vtest.trace.gz"
)

// loadedFrames is how many of vtest's first frames the tests keep: five
// 5 s segments at 10 fps, enough for a bootstrap, and frames 100 apart.
const loadedFrames = 250

var (
	framesOnce sync.Once
	frames     []gocv.Mat
	framesErr  string
)

// frame returns vtest frame i (< loadedFrames), read once for the test
// binary and closed by TestMain. The caller must not close it.
func frame(tb testing.TB, i int) gocv.Mat {
	tb.Helper()
	framesOnce.Do(loadFrames)
	if framesErr != "" {
		tb.Skip(framesErr)
	}
	if i >= len(frames) {
		tb.Fatalf("frame %d is beyond the %d frames loaded for tests", i, len(frames))
	}
	return frames[i]
}

func loadFrames() {
	if _, err := os.Stat(vtestPath); err != nil {
		framesErr = "vtest.avi not installed (apt-get install opencv-doc): " + err.Error()
		return
	}
	err := forEachFrame(vtestPath, func(i int, img gocv.Mat) (bool, error) {
		frames = append(frames, img.Clone())
		return len(frames) < loadedFrames, nil
	})
	if err != nil || len(frames) < loadedFrames {
		framesErr = "read vtest.avi: too few frames"
		if err != nil {
			framesErr = err.Error()
		}
	}
}

// traceOutputs returns the committed trace's outputs, indexed by frame.
func traceOutputs(tb testing.TB) []map[string]*pipeline.Output {
	tb.Helper()
	_, recs, err := links.ReadTrace(tracePath)
	if err != nil {
		tb.Skipf("no committed trace: %v", err)
	}
	out := make([]map[string]*pipeline.Output, len(recs))
	for i, r := range recs {
		if r.Seq != uint64(i)+1 {
			tb.Fatalf("trace record %d has seq %d", i, r.Seq)
		}
		out[i] = r.Outputs
	}
	return out
}

// blank returns a black BGR image.
func blank(w, h int) gocv.Mat {
	return gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), h, w, gocv.MatTypeCV8UC3)
}

// withRects returns a copy of img with white filled rectangles (exact
// pixels, no anti-aliasing).
func withRects(img gocv.Mat, rects ...image.Rectangle) gocv.Mat {
	out := img.Clone()
	for _, r := range rects {
		roi := out.Region(r)
		roi.SetTo(gocv.NewScalar(255, 255, 255, 0))
		roi.Close()
	}
	return out
}

func newFeature(tb testing.TB, name string) Feature {
	tb.Helper()
	f, err := NewFeature(name, FeatureOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range frames {
		f.Close()
	}
	os.Exit(code)
}
