package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// defaultLibrary is where `make deps` puts the ONNX Runtime library,
// relative to the repository root (the working directory of `mlink run`).
const defaultLibrary = ".deps/onnxruntime/libonnxruntime.so.1"

var (
	initMu sync.Mutex
	// initLib is the library the environment was initialised with; empty
	// until Init succeeds.
	initLib string
)

// Init loads the ONNX Runtime shared library and initialises its
// environment. libPath "" means $ONNXRUNTIME_LIB, then the `make deps`
// location. Init is safe to call from several goroutines and more than once:
// after the first success further calls return nil, unless they name a
// different library (a process can load only one).
func Init(libPath string) error {
	initMu.Lock()
	defer initMu.Unlock()
	path, err := resolveLibrary(libPath)
	if initLib != "" {
		if libPath != "" && err == nil && path != initLib {
			return fmt.Errorf("onnx runtime: already initialised with %s, cannot switch to %s", initLib, path)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if ort.IsInitialized() {
		// Someone in this process initialised onnxruntime_go directly.
		initLib = path
		return nil
	}
	ort.SetSharedLibraryPath(path)
	// Error level: ORT's warnings (e.g. unused initialisers in converted
	// models) would otherwise flood stderr once per session.
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("onnx runtime: initialise with %s: %w (run `make deps` to fetch a compatible library)", path, err)
	}
	initLib = path
	return nil
}

// resolveLibrary picks the library path and checks that the file exists, so
// that a missing library gives an actionable error instead of dlopen's.
func resolveLibrary(libPath string) (string, error) {
	src := "configured"
	if libPath == "" {
		libPath, src = os.Getenv("ONNXRUNTIME_LIB"), "$ONNXRUNTIME_LIB"
	}
	if libPath == "" {
		libPath, src = defaultLibrary, "default"
	}
	abs, err := filepath.Abs(libPath)
	if err != nil {
		return "", fmt.Errorf("onnx runtime library %q: %w", libPath, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("onnx runtime library not found (%s path %s): run `make deps` to fetch it, or set onnx.library / $ONNXRUNTIME_LIB", src, abs)
		}
		return "", fmt.Errorf("onnx runtime library %s: %w", abs, err)
	}
	if st.IsDir() {
		return "", fmt.Errorf("onnx runtime library %s is a directory: point it at libonnxruntime.so", abs)
	}
	return abs, nil
}
