package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

// captureStdout runs f with os.Stdout redirected and returns what it wrote.
func captureStdout(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	ferr := f()
	os.Stdout = saved
	w.Close()
	return <-done, ferr
}

const vtestTrace = "../../links/testdata/vtest.trace.gz"

func TestLinksTrainAndEvalCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "links")
	if _, err := captureStdout(t, func() error {
		return cmdLinks([]string{"train", "--trace", vtestTrace, "--out", dir, "--epochs", "3", "--no-temporal"})
	}); err != nil {
		t.Fatal(err)
	}
	out, err := captureStdout(t, func() error {
		return cmdLinks([]string{"eval", "--trace", vtestTrace, "--links", dir, "--json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Pairs []struct {
			Source, Target, Kind string
			Accuracy             float64
		} `json:"pairs"`
		Ensembles []struct {
			Target  string   `json:"target"`
			Sources []string `json:"sources"`
		} `json:"ensembles"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("eval --json is not JSON: %v\n%.300s", err, out)
	}
	if len(ev.Pairs) != 8*7 {
		t.Errorf("%d pairs, want 56 (every ordered pair of the 8 models)", len(ev.Pairs))
	}
	for _, p := range ev.Pairs {
		if p.Accuracy < 0 || p.Accuracy > 1 || p.Source == p.Target || p.Kind == "" {
			t.Errorf("bad pair %+v", p)
		}
	}
	if len(ev.Ensembles) == 0 {
		t.Error("no ensemble accuracies")
	}
	table, err := captureStdout(t, func() error {
		return cmdLinks([]string{"eval", "--trace", vtestTrace, "--links", dir})
	})
	if err != nil || !strings.Contains(table, "hog_people") {
		t.Errorf("table output: %v\n%.300s", err, table)
	}
}

func TestLinksCLIBadInput(t *testing.T) {
	corrupt := t.TempDir()
	os.WriteFile(filepath.Join(corrupt, "manifest.json"), []byte("{garbage"), 0o644)
	cases := [][]string{
		{"train", "--trace", "/nonexistent.trace.gz", "--out", t.TempDir()},
		{"eval", "--trace", vtestTrace, "--links", corrupt},
		{"eval", "--trace", vtestTrace, "--links", "/nonexistent-links"},
		{"nonsense"},
	}
	for _, args := range cases {
		if _, err := captureStdout(t, func() error { return cmdLinks(args) }); err == nil {
			t.Errorf("mlink links %v: want an error", args)
		}
	}
}

func TestWatchPrintsLiveAndStoredResults(t *testing.T) {
	cfg := demoConfig(t, "motion")
	cfg.Cameras[0].Loop = true
	const frames = 5
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app, err := startApp(ctx, cfg, runOptions{roles: "all"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer app.shutdown()
	// Live: results keep flowing; watch prints the next three and exits.
	live, err := captureStdout(t, func() error {
		return cmdWatch([]string{"--nats", app.srv.ClientURL(), "--data-dir", cfg.NATS.DataDir, "-n", "3"})
	})
	if err != nil || strings.Count(live, "plaza #") != 3 {
		t.Fatalf("live watch printed %q (%v)", live, err)
	}
	// Stored results replayed with --since, as JSON lines.
	out, err := captureStdout(t, func() error {
		return cmdWatch([]string{"--nats", app.srv.ClientURL(), "--data-dir", cfg.NATS.DataDir, "--since", "1h", "--json", "-n", fmt.Sprint(frames)})
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != frames {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), frames, out)
	}
	for i, l := range lines {
		var r pipeline.Result
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Seq != uint64(i+1) || r.Outputs["motion"] == nil {
			t.Fatalf("line %d: %v %q", i, err, l)
		}
	}
	// The compact form names the camera, seq and each model's value.
	out, err = captureStdout(t, func() error {
		return cmdWatch([]string{"--nats", app.srv.ClientURL(), "--data-dir", cfg.NATS.DataDir, "--since", "1h", "--camera", "plaza", "-n", "1"})
	})
	if err != nil || !strings.HasPrefix(out, "plaza #1 ") || !strings.Contains(out, "motion=") {
		t.Fatalf("compact line %q (%v)", out, err)
	}
	if err := cmdWatch([]string{"--camera", "bad.name"}); err == nil {
		t.Error("an invalid camera name must be refused")
	}
}

func TestModelsCommandMeasuresEveryModel(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface")
	path := filepath.Join(t.TempDir(), "two.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`
cameras: [{id: plaza, source: file, url: %s}]
models:
  - {name: motion, backend: opencv-mog2}
  - {name: face, backend: onnx, decoder: blazeface, file: %s}
onnx: {library: %s}
`, vtestPath, cfg.Path(cfg.Models[1].File), cfg.Path(cfg.ONNX.Library))), 0o644)
	out, err := captureStdout(t, func() error { return cmdModels([]string{"-c", path, "--frames", "3"}) })
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"motion", "opencv-mog2", "face", "onnx", "ms/frame"} {
		if !strings.Contains(out, want) {
			t.Errorf("models table lacks %q:\n%s", want, out)
		}
	}
}

func TestProfileWritesAReadableTrace(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface")
	out := filepath.Join(t.TempDir(), "t.trace.gz")
	n, err := profile(context.Background(), cfg, out, 6, testLogger(t), false)
	if err != nil || n != 6 {
		t.Fatalf("profile: %d frames, %v", n, err)
	}
	h, recs, err := links.ReadTrace(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Models) != 2 || h.Models[0].Name != "motion" || len(h.Models[0].Classes) != 4 || h.Models[1].InferMS <= 0 {
		t.Errorf("header %+v", h)
	}
	// Replays place frames on the video's clock and find the video again.
	if h.FPS != 10 || h.Videos[cfg.Cameras[0].ID] != cfg.Cameras[0].URL {
		t.Errorf("trace header fps %v videos %v, want 10 and the camera's file", h.FPS, h.Videos)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || r.Outputs["motion"] == nil || r.Outputs["face_blazeface"] == nil {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
}

// --extend adds a model to a trace without touching what the trace holds:
// the base's outputs and costs stay, the new model's come from a profile
// of the same frames; a config that drops one of the trace's models, or
// adds none, is refused.
func TestProfileExtendAddsAModelToATrace(t *testing.T) {
	dir := t.TempDir()
	base, out := filepath.Join(dir, "base.trace.gz"), filepath.Join(dir, "extended.trace.gz")
	if n, err := profile(context.Background(), demoConfig(t, "motion"), base, 6, testLogger(t), false); err != nil || n != 6 {
		t.Fatalf("profile: %d frames, %v", n, err)
	}
	bh, brecs, err := links.ReadTrace(base)
	if err != nil {
		t.Fatal(err)
	}
	n, err := extendTrace(context.Background(), demoConfig(t, "motion", "face_blazeface"), base, out, 6, testLogger(t), false)
	if err != nil || n != 6 {
		t.Fatalf("extend: %d frames, %v", n, err)
	}
	h, recs, err := links.ReadTrace(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Models) != 2 || h.Models[0].Name != "motion" || h.Models[0].InferMS != bh.Models[0].InferMS || h.Models[1].Name != "face_blazeface" || h.Models[1].InferMS <= 0 {
		t.Fatalf("extended header models %+v, want the base's motion (same cost) and a measured face_blazeface", h.Models)
	}
	for i, r := range recs {
		if r.Seq != brecs[i].Seq || r.Outputs["face_blazeface"] == nil {
			t.Fatalf("record %d: %+v", i, r)
		}
		if got, want := r.Outputs["motion"], brecs[i].Outputs["motion"]; got.Label != want.Label || fmt.Sprint(got.Value) != fmt.Sprint(want.Value) {
			t.Fatalf("record %d: motion %+v, the base had %+v", i, got, want)
		}
	}
	// In place: the extended trace replaces the base only once complete,
	// and nothing is left beside it.
	if n, err := extendTrace(context.Background(), demoConfig(t, "motion", "face_blazeface", "text"), out, out, 6, testLogger(t), false); err != nil || n != 6 {
		t.Fatalf("extend in place: %d frames, %v", n, err)
	}
	if h, _, err := links.ReadTrace(out); err != nil || len(h.Models) != 3 || h.Models[2].Name != "text" {
		t.Fatalf("extended in place: %+v, %v; want motion, face_blazeface and text", h.Models, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("left beside the trace: %v", left)
	}
	for name, cfg := range map[string]*pipeline.Config{
		"not in the config": demoConfig(t, "face_blazeface"),
		"nothing to add":    demoConfig(t, "motion"),
	} {
		_, err := extendTrace(context.Background(), cfg, base, filepath.Join(dir, "bad.trace.gz"), 6, testLogger(t), false)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), name) {
			t.Errorf("want exit 2 saying %q, got %v", name, err)
		}
	}
}

func TestBenchPipelineReportsOverhead(t *testing.T) {
	cfg := demoConfig(t, "motion")
	rep, err := benchPipeline(cfg, 8, 3, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.E2E.Results != 8 || rep.PipelineOnly.Results != 8 || rep.ModelMS["motion"] <= 0 ||
		rep.E2E.FPS <= 0 || rep.PipelineOnly.CPUPerFrame <= 0 || rep.OverheadShare <= 0 {
		t.Errorf("incomplete report %+v", rep)
	}
	if rep.Split != nil {
		t.Error("a split run without --split")
	}
}

// --split runs the models in a child `mlink run --role worker` process
// against this process's NATS server: every frame's result comes back,
// and the CPU of both processes is counted.
func TestBenchPipelineSplitRunsTheModelsInASecondProcess(t *testing.T) {
	path := processConfig(t, motionModel)
	cfg, err := pipeline.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := benchPipeline(cfg, 20, 3, path, true)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Split
	if s == nil || s.Results != 20 || s.Partial != 0 || s.FPS <= 0 || rep.SplitRatio <= 0 {
		t.Fatalf("split run %+v, ratio %v", s, rep.SplitRatio)
	}
	// The models' CPU is the child's: a split run that counted only this
	// process would report less than the models alone burn.
	if s.CPUPerFrame < rep.ModelCPUMS["motion"] {
		t.Errorf("split run CPU %.2f ms/frame below the model's own %.2f: the worker process is not counted", s.CPUPerFrame, rep.ModelCPUMS["motion"])
	}
}
