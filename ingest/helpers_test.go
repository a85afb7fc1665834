package ingest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/ingest/rtsptest"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

const vtestPath = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

const vtestFrames = 795

// testDir holds media derived from vtest.avi, made once per test binary.
var testDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ingest-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if err := matLeaks(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// matLeaks reports Mats left open; it checks only in a build with
// -tags matprofile (see matprofile_test.go).
var matLeaks = func() error { return nil }

func needVTest(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(vtestPath); err != nil {
		t.Skipf("vtest.avi not installed (apt-get install opencv-doc): %v", err)
	}
}

var (
	h264Once sync.Once
	h264File string
	h264Err  error
)

// vtestH264 is vtest.avi transcoded to an H.264 elementary stream.
func vtestH264(t testing.TB) string {
	t.Helper()
	needVTest(t)
	h264Once.Do(func() {
		start := time.Now()
		h264File = filepath.Join(testDir, "vtest.h264")
		h264Err = rtsptest.TranscodeH264(vtestPath, h264File)
		t.Logf("transcoded vtest.avi to H.264 in %s", time.Since(start).Round(time.Millisecond))
	})
	if h264Err != nil {
		t.Skipf("cannot make the H.264 test stream: %v", h264Err)
	}
	return h264File
}

var (
	shortOnce sync.Once
	shortFile string
	shortErr  error
)

// shortVideo is the first 20 frames of vtest.avi, for loop tests.
func shortVideo(t testing.TB) string {
	t.Helper()
	needVTest(t)
	shortOnce.Do(func() {
		shortFile = filepath.Join(testDir, "short.avi")
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
			"-i", vtestPath, "-frames:v", "20", "-c:v", "mjpeg", "-q:v", "3", shortFile).CombinedOutput()
		if err != nil {
			shortErr = fmt.Errorf("%w: %s", err, out)
		}
	})
	if shortErr != nil {
		t.Skipf("cannot make the short test video: %v", shortErr)
	}
	return shortFile
}

// startNATS starts an embedded NATS server and returns two connections:
// one for the camera, one for the fake pipeline.
func startNATS(t testing.TB) (camConn, pipeConn *nats.Conn) {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(s.Shutdown)
	connect := func() *nats.Conn {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	return connect(), connect()
}

type gotFrame struct {
	seq           uint64
	width, height int
	capturedAt    time.Time
	receivedAt    time.Time
}

// fakeMerger plays the pipeline: it receives a camera's frames and, after
// delay per frame, publishes a result carrying the frame's seq, so that the
// camera's credits flow.
type fakeMerger struct {
	mu     sync.Mutex
	frames []gotFrame
	bad    []error
}

func startMerger(t testing.TB, nc *nats.Conn, camera string, delay time.Duration) *fakeMerger {
	t.Helper()
	fm := &fakeMerger{}
	sub, err := nc.Subscribe(pipeline.DefaultSubjects.Frames(camera), func(m *nats.Msg) {
		f, err := pipeline.DecodeFrame(m)
		fm.mu.Lock()
		if err != nil {
			fm.bad = append(fm.bad, err)
		} else {
			fm.frames = append(fm.frames, gotFrame{seq: f.Seq, width: f.Width, height: f.Height, capturedAt: f.CapturedAt, receivedAt: time.Now()})
		}
		fm.mu.Unlock()
		if err != nil {
			return
		}
		time.Sleep(delay) // a slow pipeline: handlers of one subscription run one at a time
		res := nats.NewMsg(pipeline.DefaultSubjects.Results(camera))
		res.Header.Set(pipeline.HeaderSeq, m.Header.Get(pipeline.HeaderSeq))
		res.Data = []byte("{}")
		nc.PublishMsg(res)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return fm
}

func (fm *fakeMerger) got(t testing.TB) []gotFrame {
	t.Helper()
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if len(fm.bad) > 0 {
		t.Fatalf("undecodable frame messages: %v", fm.bad)
	}
	return append([]gotFrame(nil), fm.frames...)
}

func (fm *fakeMerger) count() int {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return len(fm.frames)
}

// checkConsecutive fails unless the seqs are first, first+1, ...
func checkConsecutive(t testing.TB, frames []gotFrame, first uint64) {
	t.Helper()
	for i, f := range frames {
		if f.seq != first+uint64(i) {
			t.Fatalf("frame %d has seq %d, want %d (seqs must be consecutive)", i, f.seq, first+uint64(i))
		}
	}
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// runCamera runs cam.Run in a goroutine; wait returns its error.
func runCamera(ctx context.Context, cam *Camera, maxFrames int) (wait func() error) {
	done := make(chan error, 1)
	go func() { done <- cam.Run(ctx, maxFrames) }()
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("camera %s: Run did not return", cam.ID())
		}
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func newTestCamera(t testing.TB, cfg pipeline.CameraConfig, icfg pipeline.IngestConfig, nc *nats.Conn) *Camera {
	t.Helper()
	cam, err := NewCamera(cfg, icfg, nc, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return cam
}

var waitFor = natstest.WaitFor
