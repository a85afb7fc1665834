package onnx

import (
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// benchModel measures Infer (pre-processing, inference, decoding) on a
// vtest.avi frame (768×576) with one intra-op thread, as mlink runs models.
func benchModel(b *testing.B, spec pipeline.ModelSpec, file string) {
	m := newModel(b, spec, file)
	frame := vtestFrames(b, 1, 1)[0]
	if _, err := m.Infer("bench", frame); err != nil { // warm-up: allocations, first-run setup
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := m.Infer("bench", frame); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/frame")
}

func BenchmarkBlazeFace(b *testing.B) {
	benchModel(b, pipeline.ModelSpec{Decoder: pipeline.DecoderBlazeFace}, blazeFaceFile)
}

func BenchmarkPPOCRDet(b *testing.B) {
	benchModel(b, pipeline.ModelSpec{Decoder: pipeline.DecoderPPOCRDet}, ppocrDetFile)
}

func BenchmarkMLSD(b *testing.B) {
	benchModel(b, pipeline.ModelSpec{Decoder: pipeline.DecoderMLSD}, mlsdFile)
}

func BenchmarkPPOCRCls(b *testing.B) {
	benchModel(b, clsSpec(), ppocrClsFile)
}
