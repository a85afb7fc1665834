package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/mlink-project/mlink/ingest/rtsptest"
	"github.com/mlink-project/mlink/pipeline"
)

// An RTSP server that freezes (connection open, nothing sent: a hung
// camera) is detected within (6 * time.Second), and the camera streams again
// once the server sends again.
func TestRTSPStallDetected(t *testing.T) {
	h264 := vtestH264(t)
	srv, err := rtsptest.Start(h264, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	camConn, pipeConn := startNATS(t)
	fm := startMerger(t, pipeConn, "gate", 0)
	cam := newTestCamera(t, pipeline.CameraConfig{
		ID: "gate", Source: pipeline.SourceRTSP, URL: srv.URL(), Width: 384,
		ReconnectMin: 100 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
	}, pipeline.IngestConfig{}, camConn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runCamera(ctx, cam, 0)
	waitFor(t, 20*time.Second, "10 RTSP frames", func() bool { return fm.count() >= 10 })

	srv.Freeze()
	frozen := time.Now()
	waitFor(t, 30*time.Second, "the stall to be detected", func() bool { return cam.Stats().Stalled })
	detected := time.Since(frozen)
	waitFor(t, 30*time.Second, "the stalled source to be closed", func() bool { return !cam.Stats().Connected })
	closed := time.Since(frozen)
	if st := cam.Stats(); st.Stalls != 1 {
		t.Errorf("%d stalls reported for one freeze", st.Stalls)
	}
	srv.Resume()
	resumed := time.Now()
	before := fm.count()
	waitFor(t, 30*time.Second, "frames after the stall", func() bool { return fm.count() >= before+10 })
	back := time.Since(resumed)
	st := cam.Stats()
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("RTSP stall: detected in %s (StallAfter %s); source closed after %s (FFmpeg's read timing out); frames again %s after the server resumed; stalls %d",
		detected.Round(time.Millisecond), StallAfter, closed.Round(time.Millisecond), back.Round(time.Millisecond), st.Stalls)
	// The bound the README states: StallAfter plus the watchdog's poll
	// and a frame interval of slack.
	if detected > 3*time.Second {
		t.Errorf("stall detected in %s, the README states at most 3 s", detected)
	}
	if st.Stalls != 1 || st.Stalled || !st.Connected {
		t.Errorf("after the recovery: stalls %d, stalled %v, connected %v; want 1, false, true", st.Stalls, st.Stalled, st.Connected)
	}
	checkConsecutive(t, fm.got(t), 1)
}
