// Package ingest turns video sources (files, RTSP and HTTP MJPEG streams,
// local devices) into JPEG frames on NATS.
//
// A Source is a small Benthos-style input: Open connects (the Camera retries
// it with back-off), Read returns one decoded frame, Close releases it. A
// Camera owns one Source and runs it in two goroutines joined by a
// latest-frame slot:
//
//	capture goroutine: Open/Read with reconnects ──► slot ──► publish loop:
//	                                                 credit window, fps cap,
//	                                                 resize, JPEG, publish
//
// Flow control is end to end: a camera has at most IngestConfig.MaxInFlight
// frames in the pipeline and frees a credit when the frame's result comes
// back on mlink.results.<camera>. A slow pipeline therefore makes a live
// camera discard stale frames at the source (the slot keeps only the newest)
// and makes a non-realtime file wait, so no frame of a file is ever lost.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// ErrEndOfStream is returned by Read at the end of a non-looping file: the
// camera then finishes cleanly instead of reconnecting.
var ErrEndOfStream = errors.New("end of stream")

// ErrBadFrame marks a Read error that concerns one frame only (an undecodable
// JPEG part, say): the camera counts it and reads on without reconnecting.
// Sources wrap it: fmt.Errorf("...: %w", ErrBadFrame).
var ErrBadFrame = errors.New("bad frame")

// Source is one video input.
//
// Open, Read and Close are called from one goroutine, never concurrently.
// Any Read error other than ErrEndOfStream and ErrBadFrame means the source is
// disconnected: the camera closes it and calls Open again after a back-off.
type Source interface {
	// Open connects to the source. It may block for the source's own
	// connection timeout.
	Open(ctx context.Context) error
	// Read returns the next frame and its capture time. The caller owns the
	// Mat and must Close it.
	Read(ctx context.Context) (gocv.Mat, time.Time, error)
	// Close releases the connection; the source may be opened again.
	Close() error
	// NativeFPS is the source's frame rate as reported after Open (0 when
	// unknown).
	NativeFPS() float64
}

// NewSource builds the source a camera config describes. It checks the
// config but does not connect.
func NewSource(cfg pipeline.CameraConfig) (Source, error) {
	return newSource(cfg, pipeline.IngestConfig{})
}

// newSource is NewSource with the settings shared by all cameras (the
// frame size limit of MJPEG parts).
func newSource(cfg pipeline.CameraConfig, icfg pipeline.IngestConfig) (Source, error) {
	switch cfg.Source {
	case pipeline.SourceFile:
		if cfg.URL == "" {
			return nil, fmt.Errorf("camera %s: a file source needs a path in url", cfg.ID)
		}
		return NewFileSource(cfg.URL, cfg.Loop, cfg.Realtime), nil
	case pipeline.SourceRTSP:
		return NewRTSPSource(cfg.URL)
	case pipeline.SourceHTTP:
		return NewMJPEGSource(cfg.URL, MJPEGOptions{MaxFramePixels: icfg.MaxFramePixels})
	case pipeline.SourceDevice:
		idx, err := strconv.Atoi(cfg.URL)
		if err != nil || idx < 0 {
			return nil, fmt.Errorf("camera %s: a device source needs a device index such as \"0\" in url, got %q", cfg.ID, cfg.URL)
		}
		return NewDeviceSource(idx), nil
	default:
		return nil, fmt.Errorf("camera %s: unknown source type %q (want file, rtsp, http or device)", cfg.ID, cfg.Source)
	}
}

// isLive reports whether a camera of this config produces frames on its own
// clock (and so must drop stale ones) rather than on demand.
func isLive(cfg pipeline.CameraConfig) bool {
	return cfg.Source != pipeline.SourceFile || cfg.Realtime
}
