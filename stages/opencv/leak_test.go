//go:build matprofile

package opencv

import (
	"testing"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages/vision"
)

// TestNoMatLeak counts the gocv Mats alive around many Infer calls and a
// Close. Run with: go test -tags matprofile -run NoMatLeak ./stages/opencv/
func TestNoMatLeak(t *testing.T) {
	frame(t, runStart) // load the shared frames before the baseline
	for name, create := range map[string]func() vision.Backend{
		"hog": func() vision.Backend { return newTestHOG(t, map[string]float64{"upscale_width": 640}) },
		"cascade": func() vision.Backend {
			return newTestCascade(t, &pipeline.ModelSpec{Name: "fullbody", NMS: 0.3,
				Params: map[string]float64{"upscale_width": 640}}, fullbodyXML)
		},
		"mog2":     func() vision.Backend { return newTestMOG2(t, nil) },
		"mog2-big": func() vision.Backend { return newTestMOG2(t, map[string]float64{"process_width": 0}) },
	} {
		before := gocv.MatProfile.Count()
		b := create()
		for i := runStart; i <= runEnd; i++ {
			if _, err := b.Infer("cam", frame(t, i)); err != nil {
				t.Fatal(err)
			}
		}
		var empty gocv.Mat
		b.Infer("cam", empty) // errors must not leak either
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if n := gocv.MatProfile.Count(); n != before {
			t.Errorf("%s: %d Mats alive, %d before", name, n, before)
		}
	}
}
