package reducto

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// encodeJPEG returns img as JPEG bytes, as ingest publishes frames.
func encodeJPEG(tb testing.TB, img gocv.Mat) []byte {
	tb.Helper()
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, img)
	if err != nil {
		tb.Fatal(err)
	}
	defer buf.Close()
	return bytes.Clone(buf.GetBytes()) // the buffer's bytes are C memory
}

func TestFrameFilterOnVtestFrames(t *testing.T) {
	var mu sync.Mutex
	var profiles []Profile
	ff, err := NewFrameFilter(FilterOptions{
		Segment:  time.Second, // ten frames at vtest's 10 fps
		Selector: SelectorOptions{Bootstrap: 1},
		OnProfile: func(_ string, _ int64, p Profile) {
			mu.Lock()
			profiles = append(profiles, p)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	frameAt := func(i int, jpeg []byte) *pipeline.Frame {
		return &pipeline.Frame{Camera: "plaza", Seq: uint64(i + 1), CapturedAt: at(i), JPEG: jpeg}
	}

	// Segment 0 is profiled: every frame is sent, and its results come
	// back on another goroutine, as from the scheduler's results
	// subscription. The people count never changes, so reusing any frame
	// is exact; a predicted output that changes on every frame must not
	// reach the filter, or reusing would look inexact.
	results := make(chan *pipeline.Result, 10)
	observed := make(chan struct{})
	go func() {
		defer close(observed)
		for r := range results {
			ff.ObserveResult(r)
		}
	}()
	for i := range 10 {
		send, err := ff.Filter(frameAt(i, encodeJPEG(t, frame(t, i))))
		if err != nil || !send {
			t.Fatalf("profiled frame %d: send %v, err %v; a profiled segment is sent whole", i, send, err)
		}
		results <- &pipeline.Result{Camera: "plaza", Seq: uint64(i + 1), Outputs: map[string]*pipeline.Output{
			"people": {Model: "people", Type: pipeline.TypeCount, Value: []float64{3}, Source: pipeline.SourceExact},
			"linked": {Model: "linked", Type: pipeline.TypeCount, Value: []float64{float64(10 * i)}, Source: pipeline.SourcePredicted},
			"failed": {Model: "failed", Type: pipeline.TypeCount, Value: []float64{float64(i)}, Source: pipeline.SourceExact, Error: "model failed"},
		}}
	}
	close(results)
	<-observed

	// Segment 1 has a threshold: frame 10 opens it and is sent, its exact
	// copies are filtered, and a black frame (everything changed) is sent.
	still := encodeJPEG(t, frame(t, 10))
	var sent []bool
	for i := 10; i < 18; i++ {
		send, err := ff.Filter(frameAt(i, still))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, send)
	}
	black := blank(768, 576)
	defer black.Close()
	send, err := ff.Filter(frameAt(18, encodeJPEG(t, black)))
	if err != nil {
		t.Fatal(err)
	}
	sent = append(sent, send)
	want := []bool{true, false, false, false, false, false, false, false, true}
	for i := range want {
		if sent[i] != want[i] {
			t.Fatalf("segment 1 sent %v, want %v", sent, want)
		}
	}

	st, _ := ff.Stats("plaza")
	if st.ProfiledSegments != 1 || st.Profiling || st.Frames != 19 || st.Sent != 12 {
		t.Errorf("stats %+v: want segment 0 profiled, 19 frames, 12 sent", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(profiles) != 1 || profiles[0].Accuracy != 1 {
		t.Fatalf("profiles %+v: reusing a constant count is exact (only exact, error-free outputs count)", profiles)
	}
	if top := profiles[0].Candidates[len(profiles[0].Candidates)-1]; profiles[0].Threshold != top.Threshold {
		t.Errorf("threshold %g, want the largest candidate %g: every candidate is exact", profiles[0].Threshold, top.Threshold)
	}
}

func TestFrameFilterCorruptFrames(t *testing.T) {
	ff, err := NewFrameFilter(FilterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, jpeg := range map[string][]byte{
		"garbage after a JPEG marker": {0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 5},
		"empty":                       nil,
	} {
		send, err := ff.Filter(&pipeline.Frame{Camera: "cam", Seq: 1, CapturedAt: at(0), JPEG: jpeg})
		if err == nil || !send {
			t.Errorf("%s: send %v, err %v; want an error and the frame sent", name, send, err)
		}
	}
	if _, ok := ff.Stats("cam"); ok {
		t.Error("a corrupt frame started the camera's state")
	}
	if err := ff.Close(); err != nil {
		t.Fatal(err)
	}
	img := blank(64, 48)
	defer img.Close()
	if send, err := ff.Filter(&pipeline.Frame{Camera: "cam", Seq: 2, CapturedAt: at(1), JPEG: encodeJPEG(t, img)}); err == nil || !send {
		t.Errorf("closed filter: send %v, err %v; want an error and the frame sent", send, err)
	}
	ff.ObserveResult(&pipeline.Result{Camera: "cam", Seq: 2}) // ignored, no panic
}

func TestConfigDefaultsAreTheFiltersDefaults(t *testing.T) {
	// pipeline cannot import this package, so its defaults are copies.
	var cfg pipeline.Config
	cfg.EnsureDefaults()
	got := ConfigOptions(cfg.Reducto)
	got.EnsureDefaults() // fills what the config does not expose
	var want FilterOptions
	want.EnsureDefaults()
	if got.Feature != want.Feature || got.Segment != want.Segment || got.Features != want.Features || got.Selector != want.Selector {
		t.Errorf("config defaults map to\n%+v %v %+v %+v\nthe filter's defaults are\n%+v %v %+v %+v",
			got.Feature, got.Segment, got.Features, got.Selector, want.Feature, want.Segment, want.Features, want.Selector)
	}

	// A bootstrap longer than the default profile bound still validates.
	cfg.Reducto.BootstrapSegments = DefaultMaxProfiles + 100
	ff, err := NewFrameFilter(ConfigOptions(cfg.Reducto))
	if err != nil {
		t.Fatal(err)
	}
	ff.Close()
}

// BenchmarkFrameFilter is the scheduler's cost per frame with Reducto on:
// decoding a 768×576 vtest JPEG and deciding on it (area feature).
func BenchmarkFrameFilter(b *testing.B) {
	var jpegs [][]byte
	for i := range 100 {
		jpegs = append(jpegs, encodeJPEG(b, frame(b, i)))
	}
	ff, err := NewFrameFilter(FilterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer ff.Close()
	b.ResetTimer()
	for i := range b.N {
		f := &pipeline.Frame{Camera: "cam", Seq: uint64(i + 1), CapturedAt: at(i), JPEG: jpegs[i%len(jpegs)]}
		if _, err := ff.Filter(f); err != nil {
			b.Fatal(err)
		}
	}
}
