// Package vision is the contract between model workers and model backends
// that work on decoded images (OpenCV, ONNX Runtime), plus the image helpers
// they share. It is the only place the worker meets gocv.
package vision

import (
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// Backend is one loaded instance of a model.
//
// Infer is never called concurrently on one instance (the worker runs one
// goroutine per instance); backends with per-camera state (MOG2) key it by
// camera. img is a BGR 8-bit image owned by the caller and valid only for the
// duration of the call: a backend must not keep it, and must not write
// into it (the workers of a process share one decoded frame). Infer fills Kind, Type,
// Value, Label, Boxes and Extra of the returned Output; the worker sets the
// frame identity, source and timing.
type Backend interface {
	Infer(camera string, img gocv.Mat) (pipeline.Output, error)
	Close() error
}
