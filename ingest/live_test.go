package ingest

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/ingest/rtsptest"
	"github.com/mlink-project/mlink/pipeline"
)

// An RTSP camera survives its server going away: it reconnects with
// back-off when the server is back on the same port and the seq goes on.
func TestRTSPReconnect(t *testing.T) {
	h264 := vtestH264(t)
	srv, err := rtsptest.Start(h264, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() }) // the latest server: it is restarted below

	camConn, pipeConn := startNATS(t)
	fm := startMerger(t, pipeConn, "gate", 0)
	cam := newTestCamera(t, pipeline.CameraConfig{
		ID: "gate", Source: pipeline.SourceRTSP, URL: srv.URL(), Width: 384,
		ReconnectMin: 100 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
	}, pipeline.IngestConfig{MaxInFlight: 2, InFlightTimeout: 5 * time.Second}, camConn)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	wait := runCamera(ctx, cam, 0)

	waitFor(t, 15*time.Second, "the first RTSP frame", func() bool { return fm.count() >= 1 })
	firstFrame := time.Since(start)
	waitFor(t, 10*time.Second, "10 RTSP frames", func() bool { return fm.count() >= 10 })
	before := fm.got(t)
	checkConsecutive(t, before, 1)
	if f := before[0]; f.width != 384 || f.height != 288 {
		t.Fatalf("frame is %dx%d, want 384x288", f.width, f.height)
	}
	rate := float64(len(before)-1) / before[len(before)-1].receivedAt.Sub(before[0].receivedAt).Seconds()

	srv.Stop()
	stopAt := time.Now()
	waitFor(t, 10*time.Second, "the camera to notice the server is gone", func() bool { return !cam.Stats().Connected })
	noticed := time.Since(stopAt)
	time.Sleep(700 * time.Millisecond) // a few failed reconnection attempts
	st := cam.Stats()
	if st.Errors < 2 {
		t.Errorf("after the server stopped: %d errors, want the loss and failed reconnects counted", st.Errors)
	}
	countAtStop := fm.count()

	srv, err = rtsptest.Start(h264, srv.Addr())
	if err != nil {
		t.Fatalf("restart on the same port: %v", err)
	}
	restartAt := time.Now()
	waitFor(t, 15*time.Second, "frames after the restart", func() bool { return fm.count() >= countAtStop+10 })
	resumed := time.Since(restartAt)

	st = cam.Stats()
	if st.Reconnects < 1 {
		t.Errorf("Reconnects = %d, want at least 1", st.Reconnects)
	}
	frames := fm.got(t)
	checkConsecutive(t, frames, 1)
	cancel()
	cancelAt := time.Now()
	if err := wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("RTSP: first frame %s after Run, %.1f frames/s; loss noticed in %s; frames again %s after the restart; Run returned %s after cancel; stats %+v",
		firstFrame.Round(time.Millisecond), rate, noticed.Round(time.Millisecond), resumed.Round(time.Millisecond),
		time.Since(cancelAt).Round(time.Millisecond), st)
}

// A camera that can never connect keeps retrying without blocking another
// camera on the same connection, and stops promptly when cancelled.
func TestUnreachableCameraDoesNotBlockOthers(t *testing.T) {
	needVTest(t)
	camConn, pipeConn := startNATS(t)
	startMerger(t, pipeConn, "dead", 0)
	fm := startMerger(t, pipeConn, "alive", 0)
	dead := newTestCamera(t, pipeline.CameraConfig{
		ID: "dead", Source: pipeline.SourceRTSP, URL: "rtsp://" + closedPort(t) + "/x",
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
	}, pipeline.IngestConfig{}, camConn)
	alive := newTestCamera(t, pipeline.CameraConfig{
		ID: "alive", Source: pipeline.SourceFile, URL: vtestPath, Width: 192,
	}, pipeline.IngestConfig{}, camConn)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waitDead := runCamera(ctx, dead, 0)
	if err := alive.Run(ctx, 100); err != nil {
		t.Fatalf("alive camera: %v", err)
	}
	waitFor(t, 5*time.Second, "100 frames of the alive camera", func() bool { return fm.count() >= 100 })
	checkConsecutive(t, fm.got(t), 1)

	waitFor(t, 10*time.Second, "the dead camera to retry", func() bool { return dead.Stats().Errors >= 3 })
	st := dead.Stats()
	if st.Published != 0 || st.Connected {
		t.Fatalf("dead camera stats %+v: want nothing published, not connected", st)
	}
	if !strings.Contains(st.LastError, "rtsp") {
		t.Errorf("LastError %q does not name the source", st.LastError)
	}
	cancel()
	start := time.Now()
	if err := waitDead(); err != nil {
		t.Fatalf("dead camera Run: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dead camera took %s to stop", d)
	}
	t.Logf("dead camera after the alive one published 100 frames: %+v", st)
}

// mjpegServer serves a multipart/x-mixed-replace stream of JPEGs at about
// 50 fps; part number badAt (0: none) is garbage.
func mjpegServer(t testing.TB, badAt int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var jpegs [][]byte
	for i := 0; i < 4; i++ {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(40*i), 100, 200, 0), 240, 320, gocv.MatTypeCV8UC3)
		gocv.Rectangle(&m, image.Rect(20*i, 20, 20*i+60, 80), color.RGBA{255, 255, 255, 0}, -1)
		buf, err := gocv.IMEncode(gocv.JPEGFileExt, m)
		if err != nil {
			t.Fatal(err)
		}
		jpegs = append(jpegs, bytes.Clone(buf.GetBytes()))
		buf.Close()
		m.Close()
	}
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mw := multipart.NewWriter(w)
		mw.SetBoundary("mlinkframe")
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=mlinkframe")
		flusher := w.(http.Flusher)
		for i := 1; r.Context().Err() == nil; i++ {
			body := jpegs[i%len(jpegs)]
			if i == badAt {
				body = []byte("this is not a JPEG image, just garbage bytes")
			}
			part, err := mw.CreatePart(textproto.MIMEHeader{
				"Content-Type":   {"image/jpeg"},
				"Content-Length": {fmt.Sprint(len(body))},
			})
			if err != nil {
				return
			}
			if _, err := part.Write(body); err != nil {
				return
			}
			flusher.Flush()
			served.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &served
}

// An HTTP MJPEG camera publishes the stream's frames; a garbage part is
// skipped and counted as an error without a reconnection.
func TestMJPEGSkipsGarbagePart(t *testing.T) {
	srv, served := mjpegServer(t, 5)
	camConn, pipeConn := startNATS(t)
	fm := startMerger(t, pipeConn, "door", 0)
	cam := newTestCamera(t, pipeline.CameraConfig{
		ID: "door", Source: pipeline.SourceHTTP, URL: srv.URL + "/video.mjpg",
	}, pipeline.IngestConfig{MaxInFlight: 2}, camConn)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runCamera(ctx, cam, 0)
	waitFor(t, 10*time.Second, "20 MJPEG frames", func() bool { return fm.count() >= 20 })
	cancel()
	if err := wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	frames := fm.got(t)
	checkConsecutive(t, frames, 1)
	if f := frames[0]; f.width != 320 || f.height != 240 {
		t.Fatalf("frame is %dx%d, want 320x240", f.width, f.height)
	}
	st := cam.Stats()
	if st.Errors != 1 || !strings.Contains(st.LastError, "not a decodable JPEG") {
		t.Fatalf("stats %+v: want exactly one error, for the garbage part", st)
	}
	if st.Reconnects != 0 {
		t.Fatalf("Reconnects = %d: a bad part must not cost the connection", st.Reconnects)
	}
	t.Logf("MJPEG: served %d parts, %+v", served.Load(), st)
}

// A server that stops sending is detected by the stall timeout and the
// source reconnects.
func TestMJPEGStallReconnects(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 128, 255, 0), 120, 160, gocv.MatTypeCV8UC3)
		buf, _ := gocv.IMEncode(gocv.JPEGFileExt, m)
		jpeg := bytes.Clone(buf.GetBytes())
		buf.Close()
		m.Close()
		mw := multipart.NewWriter(w)
		w.Header().Set("Content-Type", "multipart/x-mixed-replace;boundary="+mw.Boundary())
		for i := 0; i < 3; i++ {
			part, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"image/jpeg"}})
			part.Write(jpeg)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then hang, connection open
	}))
	t.Cleanup(srv.Close)

	src, err := NewMJPEGSource(srv.URL, MJPEGOptions{StallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	camConn, pipeConn := startNATS(t)
	fm := startMerger(t, pipeConn, "hang", 0)
	cam, err := NewCameraWithSource(pipeline.CameraConfig{
		ID: "hang", Source: pipeline.SourceHTTP, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
	}, pipeline.IngestConfig{}, src, camConn, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runCamera(ctx, cam, 0)
	// The third part is only known complete when the next boundary comes:
	// each connection yields two frames, then stalls.
	waitFor(t, 10*time.Second, "frames from three connections", func() bool { return fm.count() >= 6 })
	cancel()
	if err := wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := cam.Stats()
	if st.Reconnects < 2 || !strings.Contains(st.LastError, "stalled") {
		t.Fatalf("stats %+v: want reconnects after stalls", st)
	}
	checkConsecutive(t, fm.got(t), 1)
}
