package opencv

import (
	"testing"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages/vision"
)

// The backends satisfy the worker's contract.
var (
	_ vision.Backend = (*HOG)(nil)
	_ vision.Backend = (*Cascade)(nil)
	_ vision.Backend = (*MOG2)(nil)
)

// benchInfer runs b on vtest frames (cycling through the consecutive run, so
// MOG2 sees real motion) and reports milliseconds per frame.
func benchInfer(b *testing.B, backend vision.Backend) {
	var imgs []gocv.Mat
	for i := runStart; i <= runEnd; i++ {
		imgs = append(imgs, frame(b, i))
	}
	n := 0
	for b.Loop() {
		if _, err := backend.Infer("cam", imgs[n%len(imgs)]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(n), "ms/frame")
}

func BenchmarkHOG(b *testing.B) {
	benchInfer(b, newTestHOG(b, nil))
}

func BenchmarkCascadeFullbody(b *testing.B) {
	benchInfer(b, newTestCascade(b, &pipeline.ModelSpec{Name: "fullbody"}, fullbodyXML))
}

func BenchmarkCascadeUpperbody(b *testing.B) {
	benchInfer(b, newTestCascade(b, &pipeline.ModelSpec{Name: "upperbody"}, upperbodyXML))
}

func BenchmarkCascadeFace(b *testing.B) {
	benchInfer(b, newTestCascade(b, &pipeline.ModelSpec{Name: "face"}, faceXML))
}

func BenchmarkMOG2(b *testing.B) {
	benchInfer(b, newTestMOG2(b, nil))
}
