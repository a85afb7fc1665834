package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages"
	"github.com/mlink-project/mlink/stages/vision"
)

func cmdBench(args []string) error {
	if len(args) == 0 || args[0] != "pipeline" {
		return &exitError{2, errors.New("usage: mlink bench pipeline -c FILE [--frames N] [--out FILE]")}
	}
	fs := newFlagSet("bench pipeline")
	cfgPath := fs.String("c", "", "config file")
	frames := fs.Int("frames", 100, "frames per camera in the end-to-end runs")
	modelFrames := fs.Int("model-frames", 20, "frames to time each model alone on")
	out := fs.String("out", "", "also write the report as JSON to this file")
	if err := fs.Parse(args[1:]); err != nil {
		return &exitError{2, err}
	}
	if *cfgPath == "" {
		return &exitError{2, errors.New("-c FILE is required")}
	}
	cfg, err := pipeline.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	rep, err := benchPipeline(cfg, *frames, *modelFrames)
	if err != nil {
		return err
	}
	rep.print(os.Stdout)
	if *out != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*out, data, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// pipelineReport is what `mlink bench pipeline` measures, all in one run so
// that its ratios are fair on a noisy machine.
type pipelineReport struct {
	Config        string             `json:"config"`
	Frames        int                `json:"frames"`
	Cameras       int                `json:"cameras"`
	ModelMS       map[string]float64 `json:"model_ms"`     // each model alone, ms/frame
	ModelSumMS    float64            `json:"model_sum_ms"` // Σ of ModelMS: one frame through every model, serially
	E2E           runMeasure         `json:"end_to_end"`
	PipelineOnly  runMeasure         `json:"pipeline_only"` // same pipeline, no-op models
	OverheadShare float64            `json:"overhead_share"`
	// ThroughputRatio is end-to-end frames/s over the frames/s the models
	// alone would reach run one after another (1000 / ModelSumMS).
	ThroughputRatio float64 `json:"throughput_ratio"`
}

type runMeasure struct {
	Results     int64   `json:"results"`
	Partial     int64   `json:"partial"`
	FPS         float64 `json:"fps"`
	LatencyP50  float64 `json:"latency_p50_ms"`
	LatencyP99  float64 `json:"latency_p99_ms"`
	CPUPerFrame float64 `json:"cpu_ms_per_frame"`
}

func benchPipeline(cfg *pipeline.Config, frames, modelFrames int) (*pipelineReport, error) {
	rep := &pipelineReport{Config: cfg.Dir, Frames: frames, Cameras: len(cfg.Cameras), ModelMS: map[string]float64{}}
	imgs, err := sampleFrames(cfg, "", modelFrames)
	if err != nil {
		return nil, err
	}
	costs, err := measureModels(cfg, imgs)
	closeMats(imgs)
	if err != nil {
		return nil, err
	}
	for _, c := range costs {
		rep.ModelMS[c.Model] = c.InferMS
		rep.ModelSumMS += c.InferMS
	}
	// Files are replayed as fast as the pipeline goes, looping so every
	// camera yields the requested frames.
	for i := range cfg.Cameras {
		if cfg.Cameras[i].Source == pipeline.SourceFile {
			cfg.Cameras[i].Realtime, cfg.Cameras[i].Loop = false, true
		}
	}
	cfg.NATS.Listen = "127.0.0.1:-1"
	dir, err := os.MkdirTemp("", "mlink-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg.NATS.DataDir = dir
	if rep.E2E, err = measureRun(cfg, frames, nil); err != nil {
		return nil, err
	}
	if rep.PipelineOnly, err = measureRun(cfg, frames, openNoop); err != nil {
		return nil, err
	}
	if rep.ModelSumMS > 0 {
		rep.OverheadShare = rep.PipelineOnly.CPUPerFrame / rep.ModelSumMS
		rep.ThroughputRatio = rep.E2E.FPS / (1000 / rep.ModelSumMS)
	}
	return rep, nil
}

func measureRun(cfg *pipeline.Config, frames int, opener stages.Opener) (runMeasure, error) {
	var m runMeasure
	o := runOptions{maxFrames: frames, roles: "all", status: "off", opener: opener}
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	ctx := context.Background()
	a, err := startApp(ctx, cfg, o, log)
	if err != nil {
		return m, err
	}
	cpu0, t0 := pipeline.CPUTime(), time.Now()
	err = a.wait(ctx)
	elapsed, cpu := time.Since(t0), pipeline.CPUTime()-cpu0
	a.shutdown()
	if err != nil {
		return m, err
	}
	r := a.results
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.counts {
		m.Results += n
	}
	m.Partial = r.partial
	lat := append([]float64(nil), r.latencies...)
	m.LatencyP50, m.LatencyP99 = percentile(lat, 50), percentile(lat, 99)
	if m.Results > 0 {
		m.FPS = float64(m.Results) / elapsed.Seconds()
		m.CPUPerFrame = float64(cpu.Microseconds()) / 1000 / float64(m.Results)
	}
	return m, nil
}

func (r *pipelineReport) print(w *os.File) {
	fmt.Fprintf(w, "models alone (in-process, decoded frames), ms/frame:\n")
	for name, ms := range r.ModelMS {
		fmt.Fprintf(w, "  %-16s %7.1f\n", name, ms)
	}
	fmt.Fprintf(w, "  %-16s %7.1f\n", "sum", r.ModelSumMS)
	fmt.Fprintf(w, "end-to-end:    %6.2f frames/s, latency p50 %.0f ms p99 %.0f ms, CPU %.1f ms/frame, %d results (%d partial)\n",
		r.E2E.FPS, r.E2E.LatencyP50, r.E2E.LatencyP99, r.E2E.CPUPerFrame, r.E2E.Results, r.E2E.Partial)
	fmt.Fprintf(w, "pipeline only: %6.1f frames/s, latency p50 %.1f ms p99 %.1f ms, CPU %.2f ms/frame (no-op models)\n",
		r.PipelineOnly.FPS, r.PipelineOnly.LatencyP50, r.PipelineOnly.LatencyP99, r.PipelineOnly.CPUPerFrame)
	fmt.Fprintf(w, "pipeline overhead: %.1f%% of model time per frame; end-to-end throughput %.2fx the models run serially\n",
		100*r.OverheadShare, r.ThroughputRatio)
}

// noopBackend stands in for every model when the benchmark measures the
// pipeline's own work: the worker still decodes each JPEG, and every hop,
// encode and merge happens as with real models.
type noopBackend struct{ spec *pipeline.ModelSpec }

func openNoop(spec *pipeline.ModelSpec) (vision.Backend, error) { return &noopBackend{spec}, nil }

func (n *noopBackend) Infer(camera string, img gocv.Mat) (pipeline.Output, error) {
	return pipeline.Output{Kind: n.spec.Output.Kind(), Type: n.spec.Output, Value: []float64{0}}, nil
}

func (n *noopBackend) Close() error { return nil }
