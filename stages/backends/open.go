// Package backends opens the model backend a ModelSpec declares. It is the
// one place that knows every backend implementation.
package backends

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages"
	"github.com/mlink-project/mlink/stages/onnx"
	"github.com/mlink-project/mlink/stages/opencv"
	"github.com/mlink-project/mlink/stages/vision"
)

// Opener returns a stages.Opener for models of cfg.
func Opener(cfg *pipeline.Config, log zerolog.Logger) stages.Opener {
	return func(spec *pipeline.ModelSpec) (vision.Backend, error) {
		return Open(cfg, spec, log)
	}
}

// Open loads one instance of the model spec declares.
func Open(cfg *pipeline.Config, spec *pipeline.ModelSpec, log zerolog.Logger) (vision.Backend, error) {
	switch spec.Backend {
	case pipeline.BackendHOG:
		return opencv.NewHOG(spec)
	case pipeline.BackendCascade:
		return opencv.NewCascade(spec, cfg.Path(spec.File))
	case pipeline.BackendMOG2:
		return opencv.NewMOG2(spec)
	case pipeline.BackendONNX:
		if err := onnx.Init(ONNXLibrary(cfg)); err != nil {
			return nil, err
		}
		return onnx.New(spec, cfg.Path(spec.File), log.With().Str("model", spec.Name).Logger())
	}
	return nil, fmt.Errorf("model %q: unknown backend %q", spec.Name, spec.Backend)
}

// ONNXLibrary finds the ONNX Runtime shared library: onnx.library in the
// config, else $ONNXRUNTIME_LIB, else the copy `make deps` puts in .deps/
// (looked for beside the working directory, the config and the binary).
func ONNXLibrary(cfg *pipeline.Config) string {
	if cfg.ONNX.Library != "" {
		return cfg.Path(cfg.ONNX.Library)
	}
	if env := os.Getenv("ONNXRUNTIME_LIB"); env != "" {
		return env
	}
	const rel = ".deps/onnxruntime/libonnxruntime.so.1"
	candidates := []string{rel}
	if cfg.Dir != "" {
		candidates = append(candidates, filepath.Join(cfg.Dir, rel), filepath.Join(cfg.Dir, "..", rel))
	}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), rel), filepath.Join(filepath.Dir(exe), "..", rel))
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			abs, _ := filepath.Abs(c)
			return abs
		}
	}
	return rel
}
