package stages

import (
	"fmt"
	"runtime"
	"sort"
	"time"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// ModelCost is a model's measured cost: what the scheduler's budget counts.
type ModelCost struct {
	Model  string
	LoadMS float64
	// MemoryBytes is the RSS growth while loading and first running the
	// model (the GPU memory measured by NVML replaces it on GPU hosts).
	MemoryBytes int64
	// InferMS is the mean and P90 of the execution time per frame.
	InferMS    float64
	InferP90MS float64
	// InferCPUMS is the process CPU time per frame while the model ran
	// (OpenCV's and ONNX Runtime's own threads included).
	InferCPUMS float64
	Frames     int
	// LastOutput is the model's output on the last frame.
	LastOutput pipeline.Output
}

// MeasureModel loads one instance of the model, runs it on frames (BGR
// images) and closes it. The first frame is a warm-up and is not timed.
func MeasureModel(spec *pipeline.ModelSpec, open Opener, frames []gocv.Mat) (ModelCost, error) {
	c := ModelCost{Model: spec.Name}
	runtime.GC()
	rss0 := pipeline.RSS()
	start := time.Now()
	b, err := open(spec)
	if err != nil {
		return c, fmt.Errorf("load model %q: %w", spec.Name, err)
	}
	defer b.Close()
	c.LoadMS = float64(time.Since(start).Microseconds()) / 1000
	var times []float64
	var cpu time.Duration
	for i, img := range frames {
		cpu0 := pipeline.CPUTime()
		t0 := time.Now()
		out, err := b.Infer("measure", img)
		d := float64(time.Since(t0).Microseconds()) / 1000
		if err != nil {
			return c, fmt.Errorf("model %q on frame %d: %w", spec.Name, i, err)
		}
		c.LastOutput = out
		if i > 0 || len(frames) == 1 {
			times = append(times, d)
			cpu += pipeline.CPUTime() - cpu0
		}
	}
	c.MemoryBytes = max(0, pipeline.RSS()-rss0)
	c.Frames = len(times)
	if len(times) > 0 {
		sum := 0.0
		for _, t := range times {
			sum += t
		}
		c.InferMS = sum / float64(len(times))
		c.InferCPUMS = float64(cpu.Microseconds()) / 1000 / float64(len(times))
		sort.Float64s(times)
		c.InferP90MS = times[int(0.9*float64(len(times)-1))]
	}
	return c, nil
}

// ReadFrames decodes up to n frames from a video file, taking every step-th
// frame; the caller closes them.
func ReadFrames(path string, n, step int) ([]gocv.Mat, error) {
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return nil, fmt.Errorf("open video %s: %w", path, err)
	}
	defer vc.Close()
	var frames []gocv.Mat
	img := gocv.NewMat()
	defer img.Close()
	for i := 0; len(frames) < n; i++ {
		if !vc.Read(&img) || img.Empty() {
			break
		}
		if step <= 1 || i%step == 0 {
			frames = append(frames, img.Clone())
		}
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("video %s: no frames could be read", path)
	}
	return frames, nil
}
