package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// FFmpegCaptureOptions are the FFmpeg options mlink sets for RTSP: TCP
// (no UDP loss), a short probe, low-delay decoding and a 2 s socket
// timeout. Measured here against an in-process server: open takes ~0.5 s
// instead of ~3 s, the ~30-frame stale backlog after open goes away, and a
// silent server fails Open in 2.1 s.
//
// OpenCV reads them from the environment for every FFmpeg capture in the
// process, files included. That is why "fflags;nobuffer", often
// recommended, is left out: it made every video file opened in the same
// process lose its first frame (its first key frame), and it changed
// neither RTSP open time nor latency measurably.
const FFmpegCaptureOptions = "rtsp_transport;tcp|flags;low_delay|analyzeduration;100000|probesize;32768|timeout;2000000"

const ffmpegOptionsEnv = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

var ffmpegOptionsOnce sync.Once

// setFFmpegOptions sets OPENCV_FFMPEG_CAPTURE_OPTIONS once per process,
// unless the user set it: OpenCV reads it from the environment at every
// open, so it cannot be set per capture.
func setFFmpegOptions() {
	ffmpegOptionsOnce.Do(func() {
		if _, ok := os.LookupEnv(ffmpegOptionsEnv); !ok {
			os.Setenv(ffmpegOptionsEnv, FFmpegCaptureOptions)
		}
	})
}

// saneFPS filters the frame rates OpenCV reports: 0, NaN and absurd values
// (some containers report 1000 or 90000) mean "unknown".
func saneFPS(fps float64) float64 {
	if fps > 0 && fps <= 240 {
		return fps
	}
	return 0
}

// FileSource reads a video file through OpenCV.
type FileSource struct {
	path     string
	loop     bool
	realtime bool

	vc   *gocv.VideoCapture
	fps  float64
	next time.Time // realtime: when the next frame is due
}

// NewFileSource returns a source reading the video file at path. With loop
// it restarts at the end; with realtime it paces reads at the file's native
// frame rate, otherwise it reads as fast as it is asked.
func NewFileSource(path string, loop, realtime bool) *FileSource {
	return &FileSource{path: path, loop: loop, realtime: realtime}
}

// Open opens the file.
func (s *FileSource) Open(ctx context.Context) error {
	if _, err := os.Stat(s.path); err != nil {
		return fmt.Errorf("open video file: %w", err)
	}
	vc, err := gocv.VideoCaptureFile(s.path)
	if err != nil {
		vc.Close() // gocv allocates the capture even when open fails
		return fmt.Errorf("open video file %s: OpenCV cannot decode it", s.path)
	}
	s.vc = vc
	s.fps = saneFPS(vc.Get(gocv.VideoCaptureFPS))
	s.next = time.Time{}
	return nil
}

// Read returns the next frame; at the end of the file it rewinds (loop) or
// returns ErrEndOfStream.
func (s *FileSource) Read(ctx context.Context) (gocv.Mat, time.Time, error) {
	if s.vc == nil {
		return gocv.Mat{}, time.Time{}, errors.New("file source not open")
	}
	if err := s.pace(ctx); err != nil {
		return gocv.Mat{}, time.Time{}, err
	}
	m := gocv.NewMat()
	if s.vc.Read(&m) && !m.Empty() {
		return m, time.Now(), nil
	}
	if !s.loop {
		m.Close()
		return gocv.Mat{}, time.Time{}, ErrEndOfStream
	}
	// Reopen rather than seek to frame 0: seeking is unreliable for some
	// codecs and containers, reopening always works.
	s.vc.Close()
	s.vc = nil
	if err := s.Open(ctx); err != nil {
		m.Close()
		return gocv.Mat{}, time.Time{}, fmt.Errorf("rewind: %w", err)
	}
	if s.vc.Read(&m) && !m.Empty() {
		return m, time.Now(), nil
	}
	m.Close()
	return gocv.Mat{}, time.Time{}, fmt.Errorf("video file %s has no decodable frame", s.path)
}

// pace sleeps until the next frame is due when the file plays in real time.
func (s *FileSource) pace(ctx context.Context) error {
	if !s.realtime || s.fps == 0 {
		return nil
	}
	period := time.Duration(float64(time.Second) / s.fps)
	now := time.Now()
	// Start the clock at the first read, and restart it after a long pause
	// so that a stalled reader does not get a burst of catch-up frames.
	if s.next.IsZero() || now.Sub(s.next) > time.Second {
		s.next = now
	}
	if wait := s.next.Sub(now); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.next = s.next.Add(period)
	return nil
}

// Close closes the file.
func (s *FileSource) Close() error {
	if s.vc != nil {
		s.vc.Close()
		s.vc = nil
	}
	return nil
}

// NativeFPS is the file's frame rate.
func (s *FileSource) NativeFPS() float64 { return s.fps }

// captureSource is a live OpenCV capture: an RTSP stream or a local device.
type captureSource struct {
	name string // for errors; credentials removed
	hint string // likely causes of a failed open
	open func() (*gocv.VideoCapture, error)

	vc  *gocv.VideoCapture
	fps float64
}

// NewRTSPSource returns a source reading an RTSP stream through OpenCV's
// FFmpeg backend with low-latency options (see FFmpegCaptureOptions).
func NewRTSPSource(rawURL string) (Source, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
		return nil, fmt.Errorf("rtsp source: %q is not an rtsp:// URL", redactURL(rawURL))
	}
	name := "rtsp stream " + u.Redacted()
	hint := "unreachable, refused, wrong path, or no decodable video"
	return &captureSource{name: name, hint: hint, open: func() (*gocv.VideoCapture, error) {
		setFFmpegOptions()
		// Force FFmpeg: the options above apply to it only, and OpenCV might
		// otherwise try GStreamer first.
		return gocv.VideoCaptureFileWithAPI(rawURL, gocv.VideoCaptureFFmpeg)
	}}, nil
}

// NewDeviceSource returns a source reading a local capture device (V4L2
// /dev/video<index> on Linux).
func NewDeviceSource(index int) Source {
	hint := "no such device, busy, or not a video capture device"
	return &captureSource{name: fmt.Sprintf("video device %d", index), hint: hint, open: func() (*gocv.VideoCapture, error) {
		return gocv.VideoCaptureDevice(index)
	}}
}

func (s *captureSource) Open(ctx context.Context) error {
	vc, err := s.open()
	if err != nil || !vc.IsOpened() {
		vc.Close() // gocv allocates the capture even when open fails
		return fmt.Errorf("open %s: %s", s.name, s.hint)
	}
	s.vc = vc
	s.fps = saneFPS(vc.Get(gocv.VideoCaptureFPS))
	return nil
}

func (s *captureSource) Read(ctx context.Context) (gocv.Mat, time.Time, error) {
	if s.vc == nil {
		return gocv.Mat{}, time.Time{}, fmt.Errorf("%s not open", s.name)
	}
	m := gocv.NewMat()
	if s.vc.Read(&m) && !m.Empty() {
		return m, time.Now(), nil
	}
	m.Close()
	return gocv.Mat{}, time.Time{}, fmt.Errorf("read %s: disconnected or stalled", s.name)
}

func (s *captureSource) Close() error {
	if s.vc != nil {
		s.vc.Close()
		s.vc = nil
	}
	return nil
}

func (s *captureSource) NativeFPS() float64 { return s.fps }

// redactURL hides a password in a URL for logs and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}
