package backends

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

func demoConfig(t *testing.T) *pipeline.Config {
	t.Helper()
	cfg, err := pipeline.LoadConfig("../../configs/demo.yaml")
	if err != nil {
		t.Skipf("demo config: %v (run `make deps`)", err)
	}
	return cfg
}

func TestOpenEveryDemoBackendAndInfer(t *testing.T) {
	cfg := demoConfig(t)
	img := gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC3)
	defer img.Close()
	for i := range cfg.Models {
		spec := &cfg.Models[i]
		b, err := Open(cfg, spec, zerolog.Nop())
		if err != nil {
			t.Fatalf("open %s (%s): %v", spec.Name, spec.Backend, err)
		}
		out, err := b.Infer("cam", img)
		if err != nil {
			t.Errorf("%s on a blank frame: %v", spec.Name, err)
		}
		if out.Type != spec.Output || out.Kind != spec.Output.Kind() || len(out.Value) == 0 {
			t.Errorf("%s: output %+v does not match its declared type %s", spec.Name, out, spec.Output)
		}
		if err := b.Close(); err != nil {
			t.Errorf("close %s: %v", spec.Name, err)
		}
	}
}

func TestOpenRejectsUnknownBackendAndBadFiles(t *testing.T) {
	cfg := demoConfig(t)
	if _, err := Open(cfg, &pipeline.ModelSpec{Name: "x", Backend: "caffe"}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "caffe") {
		t.Errorf("unknown backend: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.xml")
	os.WriteFile(bad, []byte("<opencv_storage>garbage"), 0o644)
	if _, err := Open(cfg, &pipeline.ModelSpec{Name: "c", Backend: pipeline.BackendCascade, Output: pipeline.TypeBoxes, File: bad}, zerolog.Nop()); err == nil {
		t.Error("a corrupt cascade must be an error")
	}
}

func TestONNXLibraryResolution(t *testing.T) {
	cfg := &pipeline.Config{Dir: "/etc/mlink"}
	cfg.ONNX.Library = "lib/libonnxruntime.so.1"
	if got := ONNXLibrary(cfg); got != "/etc/mlink/lib/libonnxruntime.so.1" {
		t.Errorf("configured library resolves against the config dir: %s", got)
	}
	cfg.ONNX.Library = ""
	t.Setenv("ONNXRUNTIME_LIB", "/opt/ort/libonnxruntime.so.1")
	if got := ONNXLibrary(cfg); got != "/opt/ort/libonnxruntime.so.1" {
		t.Errorf("$ONNXRUNTIME_LIB comes next: %s", got)
	}
}

// The workers of a process share one decoded frame (stages.FrameCache):
// no backend may write into its input.
func TestNoBackendWritesIntoItsInput(t *testing.T) {
	cfg := demoConfig(t)
	data, err := os.ReadFile("../../cmd/mlink/testdata/vtest-frame.jpg")
	if err != nil {
		t.Fatal(err)
	}
	img, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil || img.Empty() {
		t.Fatalf("decode the test frame: %v", err)
	}
	defer img.Close()
	before := img.ToBytes()
	for i := range cfg.Models {
		spec := &cfg.Models[i]
		b, err := Open(cfg, spec, zerolog.Nop())
		if err != nil {
			t.Fatalf("open %s: %v", spec.Name, err)
		}
		for range 2 { // MOG2 keeps state: a second frame takes another path
			if _, err := b.Infer("cam", img); err != nil {
				t.Errorf("%s: %v", spec.Name, err)
			}
		}
		b.Close()
		if after := img.ToBytes(); string(after) != string(before) {
			t.Fatalf("%s wrote into its input frame", spec.Name)
		}
	}
}
