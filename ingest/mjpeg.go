package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// MJPEGOptions tunes an HTTP MJPEG source; zero values take the defaults.
type MJPEGOptions struct {
	// RequestTimeout bounds connecting and receiving the response headers
	// (default 10 s).
	RequestTimeout time.Duration
	// StallTimeout bounds the wait for one frame once streaming (default
	// 10 s): a camera that keeps the connection open but sends nothing is
	// treated as disconnected.
	StallTimeout time.Duration
	// MaxFrameBytes bounds one JPEG part (default 16 MiB).
	MaxFrameBytes int64
	// MaxFramePixels bounds the image a part's JPEG header may declare
	// (default pipeline.DefaultMaxFramePixels).
	MaxFramePixels int
	// Client sends the request (default: a client without overall timeout,
	// which would cut the endless stream).
	Client *http.Client
}

// MJPEGSource reads an HTTP multipart/x-mixed-replace stream of JPEGs, the
// format of most IP cameras' "MJPEG" URLs. It is plain Go over net/http,
// decoding each part with OpenCV: no FFmpeg involved.
type MJPEGSource struct {
	url  string
	name string
	opts MJPEGOptions

	cancel  context.CancelFunc
	body    io.ReadCloser
	parts   *multipart.Reader
	stalled atomic.Bool
}

// NewMJPEGSource returns a source for an http(s):// MJPEG stream URL.
func NewMJPEGSource(rawURL string, opts MJPEGOptions) (*MJPEGSource, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http source: %q is not an http:// URL", redactURL(rawURL))
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = 10 * time.Second
	}
	if opts.MaxFrameBytes <= 0 {
		opts.MaxFrameBytes = 16 << 20
	}
	if opts.MaxFramePixels <= 0 {
		opts.MaxFramePixels = pipeline.DefaultMaxFramePixels
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	return &MJPEGSource{url: rawURL, name: "MJPEG stream " + u.Redacted(), opts: opts}, nil
}

// Open sends the request and checks that the answer is a multipart stream.
func (s *MJPEGSource) Open(ctx context.Context) error {
	// The request outlives Open: its context is cancelled by Close, by the
	// caller's ctx, or by the timeouts below.
	reqCtx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, s.url, nil)
	if err != nil {
		cancel()
		return fmt.Errorf("open %s: %w", s.name, err)
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(s.opts.RequestTimeout, func() { timedOut.Store(true); cancel() })
	resp, err := s.opts.Client.Do(req)
	timer.Stop()
	if err != nil {
		cancel()
		if timedOut.Load() {
			return fmt.Errorf("open %s: no response within %s", s.name, s.opts.RequestTimeout)
		}
		return fmt.Errorf("open %s: %w", s.name, err)
	}
	fail := func(format string, args ...any) error {
		resp.Body.Close()
		cancel()
		return fmt.Errorf("open %s: "+format, append([]any{s.name}, args...)...)
	}
	if resp.StatusCode != http.StatusOK {
		return fail("HTTP status %s", resp.Status)
	}
	mediaType, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") || params["boundary"] == "" {
		return fail("content type %q is not a multipart (MJPEG) stream; use the camera's MJPEG stream URL, not a snapshot URL", resp.Header.Get("Content-Type"))
	}
	// Some cameras put the delimiter's leading "--" into the parameter.
	boundary := strings.TrimPrefix(params["boundary"], "--")
	s.cancel = cancel
	s.body = resp.Body
	s.parts = multipart.NewReader(resp.Body, boundary)
	s.stalled.Store(false)
	return nil
}

// Read returns the next JPEG part decoded. An undecodable part is an
// ErrBadFrame; a broken or stalled connection is a disconnection.
func (s *MJPEGSource) Read(ctx context.Context) (gocv.Mat, time.Time, error) {
	if s.parts == nil {
		return gocv.Mat{}, time.Time{}, fmt.Errorf("%s not open", s.name)
	}
	// Reads on the body cannot take a deadline: cancelling the request
	// context is what unblocks them.
	stall := time.AfterFunc(s.opts.StallTimeout, func() { s.stalled.Store(true); s.cancel() })
	defer stall.Stop()
	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()

	data, err := s.nextPart()
	if err != nil {
		switch {
		case s.stalled.Load():
			return gocv.Mat{}, time.Time{}, fmt.Errorf("read %s: no frame for %s (stalled)", s.name, s.opts.StallTimeout)
		case errors.Is(err, ErrBadFrame):
			return gocv.Mat{}, time.Time{}, err
		case errors.Is(err, io.EOF):
			return gocv.Mat{}, time.Time{}, fmt.Errorf("read %s: server ended the stream", s.name)
		}
		return gocv.Mat{}, time.Time{}, fmt.Errorf("read %s: %w", s.name, err)
	}
	at := time.Now()
	// The header first: a part claiming a huge image is refused before
	// the decoder allocates it.
	if _, _, err := pipeline.CheckJPEG(data, s.opts.MaxFramePixels); err != nil {
		if errors.Is(err, pipeline.ErrFrameTooLarge) {
			return gocv.Mat{}, time.Time{}, fmt.Errorf("%s: part of %d bytes refused: %w: %w", s.name, len(data), err, ErrBadFrame)
		}
		return gocv.Mat{}, time.Time{}, fmt.Errorf("%s: part of %d bytes is not a decodable JPEG (%v): %w", s.name, len(data), err, ErrBadFrame)
	}
	m, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil || m.Empty() {
		m.Close()
		return gocv.Mat{}, time.Time{}, fmt.Errorf("%s: part of %d bytes is not a decodable JPEG: %w", s.name, len(data), ErrBadFrame)
	}
	return m, at, nil
}

func (s *MJPEGSource) nextPart() ([]byte, error) {
	part, err := s.parts.NextPart()
	if err != nil {
		return nil, err
	}
	defer part.Close()
	data, err := io.ReadAll(io.LimitReader(part, s.opts.MaxFrameBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > s.opts.MaxFrameBytes {
		// NextPart skips the rest of this part.
		return nil, fmt.Errorf("%s: part larger than %d bytes: %w", s.name, s.opts.MaxFrameBytes, ErrBadFrame)
	}
	return data, nil
}

// Close ends the request.
func (s *MJPEGSource) Close() error {
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	if s.body != nil {
		s.body.Close()
		s.body = nil
	}
	s.parts = nil
	return nil
}

// NativeFPS is unknown for MJPEG: the camera sets the pace.
func (s *MJPEGSource) NativeFPS() float64 { return 0 }
