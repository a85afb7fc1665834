package opencv

import (
	"os"
	"sync"
	"testing"

	"gocv.io/x/gocv"
)

// vtest.avi (Debian opencv-doc): a fixed camera over a plaza, 768×576,
// 795 frames, 5–8 people walking.
const vtestPath = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

// Frames the tests use: a few spread over the video, and a consecutive run
// for MOG2 (which needs a history).
var (
	sampleFrames = []int{100, 200, 300, 400}
	runStart     = 60
	runEnd       = 100 // inclusive
)

var (
	framesOnce sync.Once
	frames     map[int]gocv.Mat
	framesErr  string
)

func wanted(i int) bool {
	if i >= runStart && i <= runEnd {
		return true
	}
	for _, f := range sampleFrames {
		if f == i {
			return true
		}
	}
	return false
}

// frame returns frame i of vtest.avi (read once for the whole test binary,
// closed by TestMain). The caller must not close it.
func frame(tb testing.TB, i int) gocv.Mat {
	tb.Helper()
	framesOnce.Do(loadFrames)
	if framesErr != "" {
		tb.Skip(framesErr)
	}
	m, ok := frames[i]
	if !ok {
		tb.Fatalf("frame %d is not among the frames loaded for tests", i)
	}
	return m
}

func loadFrames() {
	if _, err := os.Stat(vtestPath); err != nil {
		framesErr = "vtest.avi not installed (apt-get install opencv-doc): " + err.Error()
		return
	}
	vc, err := gocv.VideoCaptureFile(vtestPath)
	if err != nil {
		framesErr = "open vtest.avi: " + err.Error()
		return
	}
	defer vc.Close()
	last := runEnd
	for _, f := range sampleFrames {
		last = max(last, f)
	}
	frames = map[int]gocv.Mat{}
	img := gocv.NewMat()
	defer img.Close()
	for i := 0; i <= last; i++ {
		if !vc.Read(&img) || img.Empty() {
			framesErr = "vtest.avi ended early"
			return
		}
		if wanted(i) {
			frames[i] = img.Clone()
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range frames {
		f.Close()
	}
	os.Exit(code)
}
