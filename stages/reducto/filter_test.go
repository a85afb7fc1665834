package reducto

import (
	"image"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// scene draws synthetic frame i (160×120, below the working width): in
// the quiet scene one 10×10 square drifts a pixel per frame; in the busy
// one twenty squares jump ten pixels per frame.
func scene(i int, busy bool) gocv.Mat {
	bg := blank(160, 120)
	defer bg.Close()
	if !busy {
		x := 10 + i%100
		return withRects(bg, image.Rect(x, 50, x+10, 60))
	}
	var rects []image.Rectangle
	for k := range 20 {
		x := (k*37 + i*10) % 150
		y := (k * 23) % 110
		rects = append(rects, image.Rect(x, y, x+10, y+10))
	}
	return withRects(bg, rects...)
}

func countOutputs(n float64) map[string]*pipeline.Output {
	return map[string]*pipeline.Output{
		"people": {Model: "people", Type: pipeline.TypeCount, Kind: pipeline.KindVector, Value: []float64{n}, Source: pipeline.SourceExact},
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at is frame i's capture time at 10 fps.
func at(i int) time.Time { return t0.Add(time.Duration(i) * 100 * time.Millisecond) }

// 1 s segments at 10 fps: ten frames each.
func newTestFilter(t *testing.T, opts FilterOptions) *Filter {
	t.Helper()
	if opts.Segment == 0 {
		opts.Segment = time.Second
	}
	f, err := NewFilter(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFilterStateMachine(t *testing.T) {
	f := newTestFilter(t, FilterOptions{})
	bySegment := map[int64][]Decision{}
	for i := range 150 {
		busy := i >= 100 // segments 10.. are busy
		img := scene(i, busy)
		d, err := f.Decide("cam", uint64(i+1), img, at(i))
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d.Segment != int64(i/10) {
			t.Fatalf("frame %d in segment %d, want %d", i, d.Segment, i/10)
		}
		if d.Profiling {
			// The models answer at once.
			f.Observe("cam", uint64(i+1), countOutputs(map[bool]float64{false: 1, true: 20}[busy]))
		}
		bySegment[d.Segment] = append(bySegment[d.Segment], d)
	}
	for s := int64(0); s < 15; s++ {
		ds := bySegment[s]
		sent := 0
		for _, d := range ds {
			if d.Send {
				sent++
			}
		}
		t.Logf("segment %d: profiling %v threshold %.4f distance %.3f sent %d/%d", s, ds[0].Profiling, ds[0].Threshold, ds[0].Distance, sent, len(ds))
		switch {
		case s < 5: // bootstrap: sent whole
			if !ds[0].Profiling || sent != len(ds) {
				t.Errorf("bootstrap segment %d: profiling %v, sent %d/%d", s, ds[0].Profiling, sent, len(ds))
			}
		case s < 10: // the quiet scene is filtered
			if ds[0].Profiling || !ds[0].Send || sent == len(ds) {
				t.Errorf("segment %d: profiling %v, first sent %v, sent %d/%d; want filtered, first frame sent", s, ds[0].Profiling, ds[0].Send, sent, len(ds))
			}
		case s == 10: // the first busy segment is decided on the last quiet one's signature
			if ds[0].Profiling {
				t.Errorf("segment 10 is profiled, want filtered (the live filter sees a change one segment late)")
			}
		case s == 11: // the busy scene's signature is far from every quiet one
			if !ds[0].Profiling || ds[0].Distance <= DefaultDistanceBound {
				t.Errorf("segment 11: profiling %v at distance %g; want re-profiled beyond %g", ds[0].Profiling, ds[0].Distance, DefaultDistanceBound)
			}
		}
	}
	st, ok := f.Stats("cam")
	if !ok || st.Frames != 150 || st.Segments != 15 || st.ProfiledSegments < 6 || st.DroppedProfiles != 0 {
		t.Errorf("stats %+v", st)
	}
	if _, ok := f.Stats("other"); ok {
		t.Error("stats of an unknown camera")
	}
}

// Outputs that arrive after their segment ended are profiled on arrival;
// outputs that never arrive are dropped after MaxPending segments.
func TestFilterLateAndMissingOutputs(t *testing.T) {
	f := newTestFilter(t, FilterOptions{})
	decide := func(i int) Decision {
		img := scene(i, false)
		defer img.Close()
		d, err := f.Decide("cam", uint64(i+1), img, at(i))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i := range 10 { // segment 0, outputs withheld
		decide(i)
	}
	decide(10) // segment 1 starts: segment 0 waits
	if st, _ := f.Stats("cam"); st.ProfiledSegments != 0 {
		t.Fatalf("profiled %d segments before any output", st.ProfiledSegments)
	}
	for i := range 10 {
		f.Observe("cam", uint64(i+1), countOutputs(1))
	}
	if st, _ := f.Stats("cam"); st.ProfiledSegments != 1 {
		t.Fatalf("profiled %d segments once segment 0's outputs are in, want 1", st.ProfiledSegments)
	}
	// Segment 1's outputs never come: dropped when segment 4 starts
	// (MaxPending 2).
	for i := 11; i <= 40; i++ {
		decide(i)
	}
	st, _ := f.Stats("cam")
	if st.DroppedProfiles != 1 {
		t.Errorf("dropped %d profiles, want 1 (segment 1)", st.DroppedProfiles)
	}
	// Outputs of unknown frames and cameras are ignored.
	f.Observe("cam", 9999, countOutputs(1))
	f.Observe("nobody", 1, countOutputs(1))
}

func TestFilterBadInput(t *testing.T) {
	f := newTestFilter(t, FilterOptions{})
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := f.Decide("cam", 1, empty, at(0)); err == nil {
		t.Error("Decide accepted an empty Mat")
	}
	// A camera that changes resolution: the frame is sent, no error.
	a, b := blank(160, 120), blank(200, 100)
	defer a.Close()
	defer b.Close()
	if _, err := f.Decide("cam", 2, a, at(1)); err != nil {
		t.Fatal(err)
	}
	f.Decide("cam", 3, a, at(2))
	d, err := f.Decide("cam", 4, b, at(3))
	if err != nil || !d.Send || d.Diff != 1 {
		t.Errorf("resolution change: %+v, %v; want sent with diff 1", d, err)
	}
	f.Forget("cam")
	if _, ok := f.Stats("cam"); ok {
		t.Error("Forget kept the camera")
	}
	f.Close()
	if _, err := f.Decide("cam", 5, a, at(4)); err == nil {
		t.Error("Decide after Close gave no error")
	}

	_, err = NewFilter(FilterOptions{Feature: "hog", Segment: time.Millisecond, Selector: SelectorOptions{K: -1}})
	for _, want := range []string{"hog", "segment", "k -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewFilter: %v; want it to mention %q", err, want)
		}
	}
}
