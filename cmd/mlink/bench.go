package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages"
	"github.com/mlink-project/mlink/stages/vision"
)

// cmdBench is mlink bench [trace|pipeline|live] (commands.go dispatches).
func cmdBench(args []string) error { return dispatch(append([]string{"bench"}, args...)) }

// benchPipelineOptions are the flags of mlink bench pipeline besides -c.
type benchPipelineOptions struct {
	frames, modelFrames int
	out                 string
	split               bool
}

func benchPipelineFlags() (*flag.FlagSet, *configFlags, *benchPipelineOptions) {
	fs := newFlagSet("bench pipeline")
	cf, o := &configFlags{}, &benchPipelineOptions{}
	cf.register(fs, false)
	fs.IntVar(&o.frames, "frames", 100, "frames per camera in the end-to-end runs")
	fs.IntVar(&o.modelFrames, "model-frames", 20, "frames to time each model alone on")
	fs.StringVar(&o.out, "out", "", "also write the report as JSON to this file")
	fs.BoolVar(&o.split, "split", false, "also run with every model in a second process (mlink run --role worker): throughput of two processes against one")
	return fs, cf, o
}

func cmdBenchPipeline(args []string) error {
	fs, cf, o := benchPipelineFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	rep, err := benchPipeline(cfg, o.frames, o.modelFrames, cf.path, o.split)
	if err != nil {
		return err
	}
	rep.print(os.Stdout)
	if o.out != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.out, data, 0o644); err != nil {
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
	ModelCPUMS    map[string]float64 `json:"model_cpu_ms"` // each model alone, process CPU ms/frame
	ModelSumCPUMS float64            `json:"model_sum_cpu_ms"`
	E2E           runMeasure         `json:"end_to_end"`
	PipelineOnly  runMeasure         `json:"pipeline_only"` // same pipeline, no-op models
	OverheadShare float64            `json:"overhead_share"`
	// ThroughputRatio is end-to-end frames/s over the frames/s the models
	// alone would reach run one after another (1000 / ModelSumMS).
	ThroughputRatio float64 `json:"throughput_ratio"`
	// Split is the end-to-end run with the models in a second process
	// (--split); SplitRatio its frames/s over the one process's.
	Split      *runMeasure `json:"split,omitempty"`
	SplitRatio float64     `json:"split_throughput_ratio,omitempty"`
}

type runMeasure struct {
	Results     int64   `json:"results"`
	Partial     int64   `json:"partial"`
	FPS         float64 `json:"fps"`
	LatencyP50  float64 `json:"latency_p50_ms"`
	LatencyP99  float64 `json:"latency_p99_ms"`
	CPUPerFrame float64 `json:"cpu_ms_per_frame"`
	// RSS of the process after the first tenth of the run, at its middle
	// and at its end: a long run must hold steady memory.
	RSSEarlyMB float64 `json:"rss_early_mb"`
	RSSMidMB   float64 `json:"rss_mid_mb"`
	RSSEndMB   float64 `json:"rss_end_mb"`
}

func benchPipeline(cfg *pipeline.Config, frames, modelFrames int, cfgPath string, split bool) (*pipelineReport, error) {
	rep := &pipelineReport{Config: cfg.Dir, Frames: frames, Cameras: len(cfg.Cameras), ModelMS: map[string]float64{}, ModelCPUMS: map[string]float64{}}
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
		rep.ModelCPUMS[c.Model] = c.InferCPUMS
		rep.ModelSumCPUMS += c.InferCPUMS
	}
	// Every model on every frame: this measures the pipeline's throughput
	// and overhead (policies are compared by bench live and bench --trace;
	// the no-op models' outputs would not train links anyway).
	cfg.Scheduler.Policy = "all"
	cfg.Reducto.Enabled = false
	// Files are replayed as fast as the pipeline goes, looping so every
	// camera yields the requested frames.
	for i := range cfg.Cameras {
		if cfg.Cameras[i].Source == pipeline.SourceFile {
			cfg.Cameras[i].Realtime, cfg.Cameras[i].Loop = false, true
		}
	}
	cleanup, err := privateBus(cfg)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if rep.E2E, err = measureRun(cfg, frames, nil); err != nil {
		return nil, err
	}
	if rep.PipelineOnly, err = measureRun(cfg, frames, openNoop); err != nil {
		return nil, err
	}
	if split {
		s, err := measureSplitRun(cfg, cfgPath, frames)
		if err != nil {
			return nil, fmt.Errorf("split run: %w", err)
		}
		rep.Split = &s
		if rep.E2E.FPS > 0 {
			rep.SplitRatio = s.FPS / rep.E2E.FPS
		}
	}
	if rep.ModelSumCPUMS > 0 {
		// CPU against CPU: the pipeline's own work per frame (no-op models)
		// over what the models themselves burn per frame.
		rep.OverheadShare = rep.PipelineOnly.CPUPerFrame / rep.ModelSumCPUMS
	}
	if rep.ModelSumMS > 0 {
		rep.ThroughputRatio = rep.E2E.FPS / (1000 / rep.ModelSumMS)
	}
	return rep, nil
}

func measureRun(cfg *pipeline.Config, frames int, opener stages.Opener) (runMeasure, error) {
	var m runMeasure
	o := runOptions{maxFrames: frames, roles: "all", status: "off", opener: opener}
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	// Only the pipeline's run listens for SIGINT/SIGTERM: it stops, and
	// the benchmark ends without a report.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := startApp(ctx, cfg, o, log)
	if err != nil {
		return m, err
	}
	cpu0, t0 := pipeline.CPUTime(), time.Now()
	// RSS when the first camera's results reach a tenth and half of the run.
	marks := []int64{int64(max(1, frames/10)), int64(max(1, frames/2))}
	rss := make([]float64, len(marks))
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(marks); {
			select {
			case <-done:
				return
			case <-tick.C:
				if a.results.count(a.cfg.Cameras[0].ID) >= marks[i] {
					rss[i] = float64(pipeline.RSS()) / (1 << 20)
					i++
				}
			}
		}
	}()
	err = a.wait(ctx)
	elapsed, cpu := time.Since(t0), pipeline.CPUTime()-cpu0
	m.RSSEndMB = float64(pipeline.RSS()) / (1 << 20)
	close(done)
	<-sampled
	m.RSSEarlyMB, m.RSSMidMB = rss[0], rss[1]
	a.shutdown()
	if err != nil {
		return m, err
	}
	if ctx.Err() != nil {
		return m, &exitError{1, errors.New("interrupted: no report")}
	}
	a.results.measure(&m, elapsed, cpu)
	return m, nil
}

// measure fills m's result counts, latencies, frames/s and CPU per frame
// from the results tracked over a run of elapsed that used cpu.
func (r *resultTracker) measure(m *runMeasure, elapsed, cpu time.Duration) {
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
}

func (r *pipelineReport) print(w *os.File) {
	fmt.Fprintf(w, "models alone (in-process, decoded frames): wall ms/frame, CPU ms/frame\n")
	names := make([]string, 0, len(r.ModelMS))
	for name := range r.ModelMS {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-16s %7.1f %7.1f\n", name, r.ModelMS[name], r.ModelCPUMS[name])
	}
	fmt.Fprintf(w, "  %-16s %7.1f %7.1f\n", "sum", r.ModelSumMS, r.ModelSumCPUMS)
	fmt.Fprintf(w, "end-to-end:    %6.2f frames/s, latency p50 %.0f ms p99 %.0f ms, CPU %.1f ms/frame, %d results (%d partial), RSS %.0f → %.0f → %.0f MB (10%%, 50%%, end)\n",
		r.E2E.FPS, r.E2E.LatencyP50, r.E2E.LatencyP99, r.E2E.CPUPerFrame, r.E2E.Results, r.E2E.Partial, r.E2E.RSSEarlyMB, r.E2E.RSSMidMB, r.E2E.RSSEndMB)
	fmt.Fprintf(w, "pipeline only: %6.1f frames/s, latency p50 %.1f ms p99 %.1f ms, CPU %.2f ms/frame (no-op models)\n",
		r.PipelineOnly.FPS, r.PipelineOnly.LatencyP50, r.PipelineOnly.LatencyP99, r.PipelineOnly.CPUPerFrame)
	fmt.Fprintf(w, "pipeline overhead: %.1f%% of the models' CPU per frame; end-to-end throughput %.2fx the models run one after another\n",
		100*r.OverheadShare, r.ThroughputRatio)
	if s := r.Split; s != nil {
		fmt.Fprintf(w, "two processes:  %6.2f frames/s (%.2fx one process), latency p50 %.0f ms p99 %.0f ms, CPU %.1f ms/frame (both), %d results (%d partial), RSS %.0f MB (both, end)\n",
			s.FPS, r.SplitRatio, s.LatencyP50, s.LatencyP99, s.CPUPerFrame, s.Results, s.Partial, s.RSSEndMB)
	}
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

// liveReport is what `mlink bench live` measures: a file paced at its native
// rate, as a camera, through the configured policy.
type liveReport struct {
	Policy      string  `json:"policy"`
	Budget      string  `json:"budget"`
	Seconds     float64 `json:"seconds"`
	Captured    uint64  `json:"captured"`
	Processed   int64   `json:"processed"`
	FPS         float64 `json:"fps"`
	DroppedFrac float64 `json:"dropped_share"`
	LatencyP50  float64 `json:"latency_p50_ms"`
	Saved       float64 `json:"executions_saved"`
	Agreement   float64 `json:"measured_agreement,omitempty"`
}

func benchLiveFlags() (*flag.FlagSet, *configFlags, *float64) {
	fs := newFlagSet("bench live")
	cf := &configFlags{}
	cf.register(fs, true)
	seconds := fs.Float64("seconds", 60, "measuring window, after the policy's first selection")
	return fs, cf, seconds
}

func cmdBenchLive(args []string) error {
	fs, cf, seconds := benchLiveFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, cleanup, err := loadLive(cf)
	if err != nil {
		return err
	}
	defer cleanup()
	// SIGINT/SIGTERM end the measurement early: the report covers the
	// window measured so far.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := startApp(ctx, cfg, runOptions{roles: "all", status: "off"}, zerolog.New(os.Stderr).Level(zerolog.WarnLevel))
	if err != nil {
		return err
	}
	defer a.shutdown()
	if err := a.waitFirstSelection(ctx, fmt.Sprintf("(mlink bootstraps on %d frames; standalone measures costs first)", cfg.Scheduler.BootstrapFrames)); err != nil {
		return err
	}
	// Executions saved count against every configured model on every
	// routed frame: Standalone's absent models are saved executions too.
	models := int64(len(cfg.Models))
	snap := func() (captured uint64, processed int64, exec, planned int64) {
		for _, c := range a.cameras {
			st := c.Stats()
			captured += st.Published + st.Dropped
			processed += a.results.count(c.ID())
		}
		return captured, processed, a.sched.Stats().Executions.Load(), a.sched.Stats().Frames.Load() * models
	}
	c0, p0, e0, pl0 := snap()
	a.results.mu.Lock()
	lat0 := len(a.results.latencies)
	a.results.mu.Unlock()
	t0 := time.Now()
	select {
	case <-time.After(time.Duration(*seconds * float64(time.Second))):
	case <-ctx.Done():
		fmt.Fprintf(os.Stderr, "interrupted: reporting the %.0f s measured\n", time.Since(t0).Seconds())
	case <-a.group.Failed():
		return a.group.Err()
	}
	c1, p1, e1, pl1 := snap()
	el := time.Since(t0).Seconds()
	rep := liveReport{Policy: string(cfg.Scheduler.Policy), Budget: schedulerBudget(cfg).String(), Seconds: el,
		Captured: c1 - c0, Processed: p1 - p0, FPS: float64(p1-p0) / el}
	if rep.Captured > 0 {
		rep.DroppedFrac = 1 - float64(rep.Processed)/float64(rep.Captured)
	}
	if pl1 > pl0 {
		rep.Saved = 1 - float64(e1-e0)/float64(pl1-pl0)
	}
	a.results.mu.Lock()
	lat := append([]float64(nil), a.results.latencies[lat0:]...)
	a.results.mu.Unlock()
	rep.LatencyP50 = percentile(lat, 50)
	if a.control != nil {
		rep.Agreement, _ = a.control.Stats().MeasuredAccuracy()
	}
	fmt.Printf("policy %s, budget %s: %.2f frames/s processed of %.1f captured/s, %.0f%% dropped as stale, latency p50 %.0f ms, %.0f%% executions saved",
		rep.Policy, rep.Budget, rep.FPS, float64(rep.Captured)/el, 100*rep.DroppedFrac, rep.LatencyP50, 100*rep.Saved)
	if a.control != nil && rep.Agreement > 0 {
		fmt.Printf(", measured agreement %.3f", rep.Agreement)
	}
	fmt.Println()
	if a.control != nil {
		fmt.Printf("selection: %s\n", a.control.Selection())
	}
	return nil
}

// waitFirstSelection waits until the policy has made its first selection
// (a live benchmark measures from there), saying so on stderr with why.
func (a *app) waitFirstSelection(ctx context.Context, why string) error {
	if a.control == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "waiting for the first selection %s...\n", why)
	for a.control.Selection() == nil {
		select {
		case <-ctx.Done():
			return &exitError{1, errors.New("interrupted before the policy's first selection: nothing measured")}
		case <-a.group.Failed():
			return a.group.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// loadLive loads the config of a live benchmark: its files replayed as
// live cameras (paced, looping) on a private NATS server.
func loadLive(cf *configFlags) (*pipeline.Config, func(), error) {
	cfg, err := cf.load()
	if err != nil {
		return nil, nil, err
	}
	for i := range cfg.Cameras {
		if cfg.Cameras[i].Source == pipeline.SourceFile {
			cfg.Cameras[i].Realtime, cfg.Cameras[i].Loop = true, true
		}
	}
	cleanup, err := privateBus(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, cleanup, nil
}

// privateBus gives a benchmark its own embedded NATS server: a free port and
// a throw-away JetStream store, so it never meets a running mlink.
func privateBus(cfg *pipeline.Config) (cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "mlink-bench-")
	if err != nil {
		return nil, err
	}
	cfg.NATS.Listen, cfg.NATS.DataDir = "127.0.0.1:-1", dir
	return func() { os.RemoveAll(dir) }, nil
}
