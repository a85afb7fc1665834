package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const vtest = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidConfigGetsDefaults(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "m.onnx", "x")
	cfg, err := ParseConfig([]byte(`
cameras:
  - {id: cam1, source: rtsp, url: "rtsp://127.0.0.1:8554/x"}
models:
  - {name: hog, backend: opencv-hog}
  - {name: face, backend: onnx, file: m.onnx, decoder: blazeface}
  - {name: motion, backend: opencv-mog2}
merger: {deadline: 3s}
nats: {max_payload: 4MB}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Merger.Deadline != 3*time.Second || cfg.NATS.MaxPayload != 4<<20 {
		t.Errorf("parsed values lost: deadline %s payload %d", cfg.Merger.Deadline, cfg.NATS.MaxPayload)
	}
	if cfg.Scheduler.Policy != "all" || cfg.Ingest.MaxInFlight != 2 || cfg.Cameras[0].JPEGQuality != 90 {
		t.Errorf("defaults not filled: %+v %+v", cfg.Scheduler, cfg.Ingest)
	}
	face, _ := cfg.Model("face")
	if face.Output != TypeBoxes || face.Output.Kind() != KindSequence {
		t.Errorf("blazeface output defaults to boxes, got %q", face.Output)
	}
	motion, _ := cfg.Model("motion")
	if motion.Output != TypeClass || motion.Output.Kind() != KindVector {
		t.Errorf("mog2 output defaults to class, got %q", motion.Output)
	}
	if got := cfg.Path("m.onnx"); got != filepath.Join(dir, "m.onnx") {
		t.Errorf("relative paths resolve against the config dir: %s", got)
	}
}

func TestInvalidConfigListsEveryProblem(t *testing.T) {
	_, err := ParseConfig([]byte(`
cameras:
  - {id: "bad.id", source: file, url: /nonexistent/video.avi}
  - {id: cam2, source: ftp, url: x}
  - {id: cam2, source: rtsp, url: "http://x", loop: true}
models:
  - {name: hog, backend: opencv-hog, threshold: 2}
  - {name: hog, backend: tensorflow}
  - {name: face, backend: onnx, decoder: magic, file: /nonexistent/m.onnx}
scheduler: {policy: fastest, training: cloud, active_share: 0.9}
merger: {deadline: 1ms}
nats: {subject_prefix: Site.A}
`), t.TempDir())
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	want := []string{
		`cameras[0] (bad.id).id`,
		`video file /nonexistent/video.avi`,
		`cameras[1] (cam2).source: "ftp"`,
		`cameras[2] (cam2).id: duplicate`,
		`needs an rtsp:// URL`,
		`loop and realtime apply to file sources only`,
		`models[0] (hog).threshold`,
		`models[1] (hog).name: duplicate`,
		`models[1] (hog).backend: "tensorflow"`,
		`models[2] (face).decoder: "magic"`,
		`/nonexistent/m.onnx`,
		`scheduler.policy: "fastest"`,
		`scheduler.training: "cloud"`,
		`scheduler.active_share`,
		`merger.deadline`,
		`nats.subject_prefix: "Site.A"`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("problem %q not reported in:\n%s", w, msg)
		}
	}
	if len(ce.Problems) < len(want) {
		t.Errorf("want at least %d problems, got %d", len(want), len(ce.Problems))
	}
}

func TestUnknownFieldsAndBadTypesAreReported(t *testing.T) {
	_, err := ParseConfig([]byte("cameras: []\nmodels: []\nmergr: {}\nmerger: {deadline: soon}\n"), "")
	if err == nil || !strings.Contains(err.Error(), "mergr") || !strings.Contains(err.Error(), "soon") {
		t.Fatalf("want unknown field and bad duration reported together, got %v", err)
	}
}

func TestEmptyConfigNeedsCamerasAndModels(t *testing.T) {
	_, err := ParseConfig([]byte("{}"), "")
	if err == nil || !strings.Contains(err.Error(), "at least one camera") || !strings.Contains(err.Error(), "at least one model") {
		t.Fatalf("got %v", err)
	}
}

func TestParseByteSize(t *testing.T) {
	cases := map[string]ByteSize{"512": 512, "64KB": 64 << 10, "8MB": 8 << 20, "1.5GB": 3 << 29, "2 GiB": 2 << 30}
	for in, want := range cases {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1MB", "MB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) should fail", bad)
		}
	}
}

func TestShippedConfigsAreValid(t *testing.T) {
	if _, err := os.Stat(vtest); err != nil {
		t.Skip("sample video not installed: run `make deps`")
	}
	if _, err := os.Stat("../.deps/models"); err != nil {
		t.Skip("models not fetched: run `make deps`")
	}
	files, _ := filepath.Glob("../configs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no configs found")
	}
	// The configs the committed traces were profiled with.
	traces, _ := filepath.Glob("../testdata/traces/*.yaml")
	files = append(files, traces...)
	for _, f := range files {
		if _, err := LoadConfig(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestCameraFilesResolveAgainstTheConfigDir(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	writeFile(t, dir, "clip.mp4", "x")
	abs := writeFile(t, other, "abs.mp4", "x")
	cfg, err := ParseConfig([]byte(`
cameras:
  - {id: rel, source: file, url: clip.mp4}
  - {id: abs, source: file, url: `+abs+`}
  - {id: rtsp, source: rtsp, url: "rtsp://127.0.0.1:8554/x"}
models: [{name: hog, backend: opencv-hog}]
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "clip.mp4"), abs, "rtsp://127.0.0.1:8554/x"}
	for i, w := range want {
		if got := cfg.Cameras[i].URL; got != w {
			t.Errorf("camera %s url %q, want %q", cfg.Cameras[i].ID, got, w)
		}
	}
}

// minimalConfig is a valid config without files, for sections tested alone.
const minimalConfig = `
cameras: [{id: cam, source: rtsp, url: "rtsp://127.0.0.1:8554/x"}]
models: [{name: hog, backend: opencv-hog}]
`

func TestReductoIsOffWithPublishedDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimalConfig), "")
	if err != nil {
		t.Fatal(err)
	}
	want := ReductoConfig{Feature: "area", TargetAccuracy: 0.9, Segment: 5 * time.Second, Candidates: 50,
		Bins: 30, K: 5, BootstrapSegments: 5, DistanceBound: 0.5, Width: 320}
	if cfg.Reducto != want {
		t.Errorf("reducto defaults %+v, want %+v", cfg.Reducto, want)
	}

	cfg, err = ParseConfig([]byte(minimalConfig+`
reducto: {enabled: true, feature: edge, target_accuracy: 0.8, safety_margin: -0.1, segment: 2s,
          candidates: 20, bins: 10, k: 3, bootstrap_segments: 2, distance_bound: 0.3, width: 160}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	want = ReductoConfig{Enabled: true, Feature: "edge", TargetAccuracy: 0.8, SafetyMargin: -0.1, Segment: 2 * time.Second,
		Candidates: 20, Bins: 10, K: 3, BootstrapSegments: 2, DistanceBound: 0.3, Width: 160}
	if cfg.Reducto != want {
		t.Errorf("reducto parsed as %+v, want %+v", cfg.Reducto, want)
	}
}

func TestInvalidReductoListsEveryProblem(t *testing.T) {
	// Checked even while disabled; reported with the rest of the config's
	// problems.
	_, err := ParseConfig([]byte(minimalConfig+`
merger: {deadline: 1ms}
reducto: {feature: optical-flow, target_accuracy: 1.5, segment: 10ms, candidates: -1, bins: 20000,
          k: -2, bootstrap_segments: -1, distance_bound: -0.5, width: 4}
`), "")
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	want := []string{
		`merger.deadline`,
		`reducto.feature: "optical-flow" is not one of pixel, area, edge, corner`,
		`reducto.target_accuracy`,
		`reducto.segment`,
		`reducto.candidates`,
		`reducto.bins`,
		`reducto.k`,
		`reducto.bootstrap_segments`,
		`reducto.distance_bound`,
		`reducto.width`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("problem %q not reported in:\n%s", w, err)
		}
	}
	if len(ce.Problems) != len(want) {
		t.Errorf("want %d problems, got %d:\n%s", len(want), len(ce.Problems), err)
	}

	for margin, problem := range map[string]string{"1": "must be within (-1,1)", "0.2": "exceeds 1"} {
		_, err := ParseConfig([]byte(minimalConfig+"reducto: {enabled: true, safety_margin: "+margin+"}\n"), "")
		if err == nil || !strings.Contains(err.Error(), "reducto.safety_margin: ") || !strings.Contains(err.Error(), problem) {
			t.Errorf("safety margin %s: want %q, got %v", margin, problem, err)
		}
	}
	if _, err := ParseConfig([]byte(minimalConfig+"reducto: {enabled: true, safety_margin: 0.1}\n"), ""); err != nil {
		t.Errorf("target 0.9 + margin 0.1 = 1 is reachable: %v", err)
	}
}

// A misspelt params key is a validation problem naming the key, the
// backend and what it does read; every one is listed at once, and the
// keys each backend and decoder reads pass.
func TestMisspeltParamsKeysAreProblems(t *testing.T) {
	_, err := ParseConfig([]byte(`
cameras: [{id: cam, source: rtsp, url: "rtsp://127.0.0.1:8554/x"}]
models:
  - {name: hog, backend: opencv-hog, params: {upscale_widht: 960, scale: 1.1}}
  - {name: motion, backend: opencv-mog2, params: {history: 100, threshold: 3}}
`), "")
	if err == nil {
		t.Fatal("misspelt params keys validate")
	}
	for _, want := range []string{
		`models[0] (hog).params.upscale_widht: not a parameter of opencv-hog (known: hit_threshold, scale, upscale_width, win_stride)`,
		`models[1] (motion).params.threshold: not a parameter of opencv-mog2`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no problem %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "params.scale:") || strings.Contains(err.Error(), "params.history") {
		t.Errorf("a known key is refused:\n%v", err)
	}
	for _, c := range []struct{ backend, decoder, key string }{
		{BackendONNX, DecoderPPOCRDet, "max_side"}, {BackendONNX, DecoderMLSD, "min_length"},
		{BackendONNX, DecoderSSD, "box_order_yxyx"}, {BackendONNX, DecoderBlazeFace, "threads"},
	} {
		if !slices.Contains(ParamKeys(c.backend, c.decoder), c.key) {
			t.Errorf("%s/%s does not take %s", c.backend, c.decoder, c.key)
		}
	}
	if slices.Contains(ParamKeys(BackendONNX, DecoderBlazeFace), "max_side") {
		t.Error("blazeface takes ppocr-det's max_side")
	}
}
