package ingest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// A non-realtime file behind a slow pipeline loses nothing: every frame is
// published, in order, resized as configured.
func TestFileSlowPipelineLosesNothing(t *testing.T) {
	needVTest(t)
	// As in a process that also has RTSP cameras: the RTSP options are in
	// the environment and must not cost a file any frame.
	setFFmpegOptions()
	camConn, pipeConn := startNATS(t)
	fm := startMerger(t, pipeConn, "plaza", 2*time.Millisecond)
	cam := newTestCamera(t, pipeline.CameraConfig{
		ID: "plaza", Source: pipeline.SourceFile, URL: vtestPath, Width: 384, JPEGQuality: 80,
	}, pipeline.IngestConfig{MaxInFlight: 2, InFlightTimeout: 10 * time.Second}, camConn)

	start := time.Now()
	if err := cam.Run(context.Background(), 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	elapsed := time.Since(start)
	waitFor(t, 5*time.Second, "the last frame to arrive", func() bool { return fm.count() >= vtestFrames })

	frames := fm.got(t)
	if len(frames) != vtestFrames {
		t.Fatalf("got %d frames, want %d", len(frames), vtestFrames)
	}
	checkConsecutive(t, frames, 1)
	for _, f := range frames {
		// 768x576 at width 384 keeps the aspect ratio: 384x288.
		if f.width != 384 || f.height != 288 {
			t.Fatalf("frame %d is %dx%d, want 384x288", f.seq, f.width, f.height)
		}
	}
	st := cam.Stats()
	if st.Published != vtestFrames || st.Dropped != 0 || st.Skipped != 0 || st.Errors != 0 {
		t.Fatalf("stats %+v: want %d published, none dropped, skipped or failed", st, vtestFrames)
	}
	if st.LastSeq != vtestFrames {
		t.Fatalf("LastSeq %d, want %d", st.LastSeq, vtestFrames)
	}
	t.Logf("file read, resized, encoded and published at %.0f frames/s (%d frames in %s, 2 ms per result)",
		float64(vtestFrames)/elapsed.Seconds(), vtestFrames, elapsed.Round(time.Millisecond))
}

// maxFrames stops Run after exactly that many frames, and a second Run
// continues the seq.
func TestFileMaxFrames(t *testing.T) {
	needVTest(t)
	camConn, pipeConn := startNATS(t)
	fm := startMerger(t, pipeConn, "plaza", 0)
	cam := newTestCamera(t, pipeline.CameraConfig{
		ID: "plaza", Source: pipeline.SourceFile, URL: vtestPath, Height: 144,
	}, pipeline.IngestConfig{}, camConn)

	for run := 1; run <= 2; run++ {
		if err := cam.Run(context.Background(), 25); err != nil {
			t.Fatalf("Run %d: %v", run, err)
		}
		if st := cam.Stats(); st.Published != uint64(25*run) {
			t.Fatalf("after run %d: published %d, want %d", run, st.Published, 25*run)
		}
	}
	waitFor(t, 5*time.Second, "50 frames", func() bool { return fm.count() >= 50 })
	frames := fm.got(t)
	if len(frames) != 50 {
		t.Fatalf("got %d frames, want 50", len(frames))
	}
	checkConsecutive(t, frames, 1)
	if f := frames[0]; f.width != 192 || f.height != 144 {
		t.Fatalf("frame is %dx%d, want 192x144 (height 144 keeps the aspect ratio)", f.width, f.height)
	}
}

// The fps cap subsamples a file on its media clock: a 10 fps file capped
// at 5 fps publishes every other frame, and the skipped ones are not
// counted as dropped.
func TestFileFPSCap(t *testing.T) {
	needVTest(t)
	camConn, pipeConn := startNATS(t)
	fm := startMerger(t, pipeConn, "plaza", 0)
	cam := newTestCamera(t, pipeline.CameraConfig{
		ID: "plaza", Source: pipeline.SourceFile, URL: vtestPath, FPS: 5, Width: 160, Height: 120,
	}, pipeline.IngestConfig{MaxInFlight: 1}, camConn)

	if err := cam.Run(context.Background(), 40); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitFor(t, 5*time.Second, "40 frames", func() bool { return fm.count() >= 40 })
	frames := fm.got(t)
	checkConsecutive(t, frames, 1)
	if f := frames[0]; f.width != 160 || f.height != 120 {
		t.Fatalf("frame is %dx%d, want 160x120", f.width, f.height)
	}
	st := cam.Stats()
	// 40 published out of the first 79 frames read: 39 skipped in between.
	if st.Published != 40 || st.Skipped != 39 || st.Dropped != 0 {
		t.Fatalf("stats %+v: want 40 published, 39 skipped, 0 dropped", st)
	}
}

// A looping file starts again at its end and the seq keeps counting.
func TestFileLoop(t *testing.T) {
	short := shortVideo(t) // 20 frames
	camConn, pipeConn := startNATS(t)
	fm := startMerger(t, pipeConn, "loop", 0)
	cam := newTestCamera(t, pipeline.CameraConfig{
		ID: "loop", Source: pipeline.SourceFile, URL: short, Loop: true,
	}, pipeline.IngestConfig{}, camConn)

	if err := cam.Run(context.Background(), 50); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitFor(t, 5*time.Second, "50 frames", func() bool { return fm.count() >= 50 })
	checkConsecutive(t, fm.got(t), 1)
	if st := cam.Stats(); st.Published != 50 || st.Errors != 0 {
		t.Fatalf("stats %+v: want 50 published through two rewinds, no errors", st)
	}

	// Without loop the same file ends after its 20 frames and Run returns.
	cam = newTestCamera(t, pipeline.CameraConfig{
		ID: "once", Source: pipeline.SourceFile, URL: short,
	}, pipeline.IngestConfig{}, camConn)
	startMerger(t, pipeConn, "once", 0)
	if err := cam.Run(context.Background(), 50); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := cam.Stats(); st.Published != 20 {
		t.Fatalf("published %d, want the file's 20 frames", st.Published)
	}
}

// A realtime file behaves like a camera: a slow pipeline makes it drop
// stale frames, counts them, and still publishes consecutive seqs.
func TestRealtimeFileDropsStaleFrames(t *testing.T) {
	needVTest(t)
	camConn, pipeConn := startNATS(t)
	fm := startMerger(t, pipeConn, "live", 300*time.Millisecond)
	cam := newTestCamera(t, pipeline.CameraConfig{
		ID: "live", Source: pipeline.SourceFile, URL: vtestPath, Realtime: true, Width: 320,
	}, pipeline.IngestConfig{MaxInFlight: 1, InFlightTimeout: 10 * time.Second}, camConn)

	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := cam.Run(ctx, 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("Run took %s to return after cancellation", d)
	}
	st := cam.Stats()
	frames := fm.got(t)
	checkConsecutive(t, frames, 1)
	// 10 fps for 2.5 s is ~25 frames; one result per 300 ms lets ~9 through.
	if st.Published < 5 || st.Published > 12 {
		t.Errorf("published %d, want about 9 (one per 300 ms result)", st.Published)
	}
	if st.Dropped < 10 {
		t.Errorf("dropped %d, want at least 10 stale frames", st.Dropped)
	}
	if read := st.Published + st.Dropped; read < 20 || read > 30 {
		t.Errorf("published+dropped = %d, want about 25 (2.5 s at 10 fps)", read)
	}
	t.Logf("realtime file, 300 ms per result: %+v", st)
}

func TestFPSCapAllow(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name   string
		fps    float64
		period time.Duration // source frame period
		jitter time.Duration // alternating +/- on capture times
		frames int
		want   int
	}{
		{"no cap", 0, 100 * ms, 0, 50, 50},
		{"cap equals rate", 10, 100 * ms, 0, 50, 50},
		{"cap equals rate with jitter", 10, 100 * ms, 3 * ms, 50, 50},
		{"half rate", 5, 100 * ms, 0, 50, 25},
		{"non-multiple rate", 4, 100 * ms, 0, 50, 20},
		{"30 fps to 1 fps", 1, 33333 * time.Microsecond, 2 * ms, 300, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newFPSCap(tc.fps)
			got := 0
			for i := 0; i < tc.frames; i++ {
				at := time.Duration(i) * tc.period
				if i%2 == 1 {
					at += tc.jitter
				} else if i > 0 {
					at -= tc.jitter
				}
				if c.allow(at) {
					got++
				}
			}
			if got != tc.want {
				t.Fatalf("allowed %d of %d frames, want %d", got, tc.frames, tc.want)
			}
		})
	}
}

func TestTargetSize(t *testing.T) {
	cases := []struct{ w, h, cw, ch, ww, wh int }{
		{768, 576, 0, 0, 768, 576},
		{768, 576, 384, 0, 384, 288},
		{768, 576, 0, 144, 192, 144},
		{768, 576, 100, 100, 100, 100},
		{768, 576, 1, 0, 1, 1},
	}
	for _, c := range cases {
		if w, h := targetSize(c.w, c.h, c.cw, c.ch); w != c.ww || h != c.wh {
			t.Errorf("targetSize(%d,%d,%d,%d) = %dx%d, want %dx%d", c.w, c.h, c.cw, c.ch, w, h, c.ww, c.wh)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		d := b.next()
		if d < w/2 || d > w {
			t.Fatalf("attempt %d: delay %s outside [%s, %s]", i+1, d, w/2, w)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Fatalf("after reset: delay %s, want at most 100ms", d)
	}
}

func TestNewSourceRejectsBadConfig(t *testing.T) {
	for _, cfg := range []pipeline.CameraConfig{
		{ID: "a", Source: pipeline.SourceFile},
		{ID: "a", Source: pipeline.SourceRTSP, URL: "http://host/x"},
		{ID: "a", Source: pipeline.SourceHTTP, URL: "rtsp://host/x"},
		{ID: "a", Source: pipeline.SourceDevice, URL: "front"},
		{ID: "a", Source: "webrtc", URL: "x"},
	} {
		if _, err := NewSource(cfg); err == nil {
			t.Errorf("NewSource(%+v) accepted a bad config", cfg)
		}
	}
	camConn, _ := startNATS(t)
	if _, err := NewCamera(pipeline.CameraConfig{ID: "bad.id", Source: pipeline.SourceFile, URL: vtestPath}, pipeline.IngestConfig{}, camConn, testLogger(t)); err == nil {
		t.Error("NewCamera accepted a camera id that is not a subject token")
	}
}

// A missing device fails Open with an error naming it (no hang).
func TestDeviceMissing(t *testing.T) {
	src, err := NewSource(pipeline.CameraConfig{ID: "cam", Source: pipeline.SourceDevice, URL: "99"})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Open(context.Background())
	if err == nil {
		src.Close()
		t.Skip("this machine has a video device 99")
	}
	if !strings.Contains(err.Error(), "video device 99") {
		t.Fatalf("error %q does not name the device", err)
	}
}
