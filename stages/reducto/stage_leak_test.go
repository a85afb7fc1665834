//go:build matprofile

package reducto

import (
	"testing"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// TestFrameFilterNoMatLeak: the decoded frames, corrupt ones included, are
// freed. Run with:
// go test -tags matprofile -run FrameFilterNoMatLeak ./stages/reducto/
func TestFrameFilterNoMatLeak(t *testing.T) {
	var jpegs [][]byte
	for i := range 40 {
		jpegs = append(jpegs, encodeJPEG(t, frame(t, i)))
	}
	before := gocv.MatProfile.Count()
	ff, err := NewFrameFilter(FilterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, jpeg := range jpegs {
		f := &pipeline.Frame{Camera: "cam", Seq: uint64(i + 1), CapturedAt: at(i), JPEG: jpeg}
		if _, err := ff.Filter(f); err != nil {
			t.Fatal(err)
		}
		ff.ObserveResult(&pipeline.Result{Camera: "cam", Seq: f.Seq, Outputs: countOutputs(1)})
		ff.Filter(&pipeline.Frame{Camera: "cam", Seq: f.Seq, CapturedAt: at(i), JPEG: jpeg[:10]}) // corrupt
	}
	ff.Close()
	if n := gocv.MatProfile.Count(); n != before {
		t.Fatalf("%d Mats alive, %d before", n, before)
	}
}
