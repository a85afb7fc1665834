//go:build matprofile

package reducto

import (
	"testing"

	"gocv.io/x/gocv"
)

// TestNoMatLeak counts the gocv Mats alive around the features, a filter's
// life and the replay helpers. Run with:
// go test -tags matprofile -run NoMatLeak ./stages/reducto/
func TestNoMatLeak(t *testing.T) {
	frame(t, 0) // load the shared frames before the baseline
	outputs := traceOutputs(t)
	before := gocv.MatProfile.Count()

	for _, name := range FeatureNames {
		f := newFeature(t, name)
		for i := 100; i < 110; i++ {
			if _, err := DiffFrames(f, frame(t, i), frame(t, i+1)); err != nil {
				t.Fatal(err)
			}
		}
		var empty gocv.Mat
		f.Prepare(empty) // errors must not leak either
	}
	if n := gocv.MatProfile.Count(); n != before {
		t.Fatalf("features: %d Mats alive, %d before", n, before)
	}

	f, err := NewFilter(FilterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 120 {
		d, err := f.Decide("cam", uint64(i+1), frame(t, i), at(i))
		if err != nil {
			t.Fatal(err)
		}
		if d.Profiling && i%7 != 0 { // some outputs never come
			f.Observe("cam", uint64(i+1), outputs[i])
		}
	}
	f.Close()
	if n := gocv.MatProfile.Count(); n != before {
		t.Fatalf("filter: %d Mats alive, %d before", n, before)
	}

	if _, err := SimulateVideo(vtestPath, outputs[:120], SimulateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := SweepVideo(vtestPath, FeatureEdge, 0, []float64{0, 0.01, 1}); err != nil {
		t.Fatal(err)
	}
	if n := gocv.MatProfile.Count(); n != before {
		t.Fatalf("replay: %d Mats alive, %d before", n, before)
	}
}
