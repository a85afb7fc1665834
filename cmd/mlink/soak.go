package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// soakSample is one interval of `mlink bench soak`.
type soakSample struct {
	ElapsedS    float64 `json:"elapsed_s"`
	FPS         float64 `json:"fps"`          // results per second, every camera
	CapturedFPS float64 `json:"captured_fps"` // frames captured per second
	Dropped     uint64  `json:"dropped"`      // dropped as stale in the interval
	Partial     int64   `json:"partial"`      // partial results in the interval
	LatencyP50  float64 `json:"latency_p50_ms"`
	LatencyP99  float64 `json:"latency_p99_ms"`
	RSSMB       float64 `json:"rss_mb"`
	HeapMB      float64 `json:"heap_mb"`
	// GoMB is the memory the Go runtime holds from the OS (Sys less what
	// it released): RSS above it is C memory (OpenCV, ONNX Runtime).
	GoMB       float64 `json:"go_mb"`
	Goroutines int     `json:"goroutines"`
	// Mats is the number of gocv Mats alive (-tags matprofile builds
	// only; -1 otherwise).
	Mats int `json:"mats"`
}

// soakReport is the whole soak: samples and the verdict.
type soakReport struct {
	Config     string       `json:"config"`
	Cameras    int          `json:"cameras"`
	Policy     string       `json:"policy"`
	Budget     string       `json:"budget"`
	Every      string       `json:"every"`
	Samples    []soakSample `json:"samples"`
	FPSMin     float64      `json:"fps_min"`
	FPSMedian  float64      `json:"fps_median"`
	RSSWarm    float64      `json:"rss_after_warmup_mb"`
	RSSEnd     float64      `json:"rss_end_mb"`
	RSSMax     float64      `json:"rss_max_mb"`
	LatencyP99 float64      `json:"latency_p99_ms"` // of the whole run after warm-up
	Problems   []string     `json:"problems,omitempty"`
}

// Soak verdict bounds: the throughput of every interval after warm-up
// within soakFPSFloor of the median, and resident memory at the end at
// most soakRSSGrowth above what it was once warm (plus soakRSSSlackMB for
// allocator noise).
const (
	soakFPSFloor   = 0.85
	soakRSSGrowth  = 0.10
	soakRSSSlackMB = 24
)

func benchSoakFlags() (*flag.FlagSet, *configFlags, *time.Duration, *time.Duration, *string) {
	fs := newFlagSet("bench soak")
	cf := &configFlags{}
	cf.register(fs, true)
	duration := fs.Duration("duration", 30*time.Minute, "how long to run, after the policy's first selection")
	every := fs.Duration("every", time.Minute, "sampling interval")
	out := fs.String("json", "", "also write the samples and verdict to this JSON file")
	return fs, cf, duration, every, out
}

// cmdBenchSoak runs the config's cameras (files replayed as live cameras)
// for a long time and samples throughput, latency, drops and the process's
// memory at every interval: a long run must hold its frames/s and keep its
// memory flat. Exit 1 when it did not.
func cmdBenchSoak(args []string) error {
	fs, cf, duration, every, out := benchSoakFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *every <= 0 || *duration < 2**every {
		return &exitError{2, fmt.Errorf("--duration %s must be at least two --every %s intervals", *duration, *every)}
	}
	cfg, cleanup, err := loadLive(cf)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var mu sync.Mutex
	var lat []float64 // this interval's latencies
	var partial int64
	onResult := func(r *pipeline.Result) {
		if r.Reason == pipeline.PartialLost {
			return
		}
		mu.Lock()
		lat = append(lat, r.LatencyMS)
		if r.Partial {
			partial++
		}
		mu.Unlock()
	}
	a, err := startApp(ctx, cfg, runOptions{roles: "all", status: "off", onResult: onResult}, zerolog.New(os.Stderr).Level(zerolog.WarnLevel))
	if err != nil {
		return err
	}
	defer a.shutdown()
	if err := a.waitFirstSelection(ctx, "(the policy's bootstrap)"); err != nil {
		return err
	}
	counts := func() (results int64, captured, dropped uint64) {
		for _, c := range a.cameras {
			st := c.Stats()
			captured += st.Published + st.Dropped
			dropped += st.Dropped
			results += a.results.count(c.ID())
		}
		return
	}
	rep := soakReport{Config: cf.path, Cameras: len(cfg.Cameras), Policy: string(cfg.Scheduler.Policy),
		Budget: schedulerBudget(cfg).String(), Every: every.String()}
	fmt.Printf("soak: %d cameras, policy %s, budget %s, %s sampled every %s\n", rep.Cameras, rep.Policy, rep.Budget, *duration, *every)
	fmt.Printf("%8s %8s %9s %7s %7s %9s %9s %8s %8s %8s %6s %6s\n", "elapsed", "fps", "captured", "dropped", "partial", "p50 ms", "p99 ms", "RSS MB", "Go MB", "heap MB", "gorout", "Mats")
	mu.Lock()
	lat, partial = nil, 0
	mu.Unlock()
	r0, c0, d0 := counts()
	t0, last := time.Now(), time.Now()
	tick := time.NewTicker(*every)
	defer tick.Stop()
	var all []float64
	interrupted := false
	for time.Since(t0) < *duration-*every/2 && !interrupted {
		select {
		case <-ctx.Done():
			interrupted = true
			continue
		case <-a.group.Failed():
			return a.group.Err()
		case <-tick.C:
		}
		r1, c1, d1 := counts()
		el := time.Since(last).Seconds()
		last = time.Now()
		mu.Lock()
		window, part := lat, partial
		lat, partial = nil, 0
		mu.Unlock()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := soakSample{
			ElapsedS: time.Since(t0).Seconds(), FPS: float64(r1-r0) / el, CapturedFPS: float64(c1-c0) / el,
			Dropped: d1 - d0, Partial: part, RSSMB: float64(pipeline.RSS()) / (1 << 20), HeapMB: float64(ms.HeapAlloc) / (1 << 20),
			GoMB: float64(ms.Sys-ms.HeapReleased) / (1 << 20), Goroutines: runtime.NumGoroutine(),
			Mats: liveMats(),
		}
		if len(rep.Samples) > 0 { // the first interval is the warm-up
			all = append(all, window...)
		}
		s.LatencyP50, s.LatencyP99 = percentile(window, 50), percentile(window, 99)
		rep.Samples = append(rep.Samples, s)
		r0, c0, d0 = r1, c1, d1
		fmt.Printf("%7.0fs %8.2f %9.2f %7d %7d %9.0f %9.0f %8.1f %8.1f %8.1f %6d %6d\n", s.ElapsedS, s.FPS, s.CapturedFPS, s.Dropped, s.Partial,
			s.LatencyP50, s.LatencyP99, s.RSSMB, s.GoMB, s.HeapMB, s.Goroutines, s.Mats)
	}
	rep.LatencyP99 = percentile(all, 99)
	rep.judge()
	if interrupted {
		rep.Problems = append(rep.Problems, fmt.Sprintf("interrupted after %s of %s", time.Since(t0).Round(time.Second), *duration))
	}
	rep.print(os.Stdout)
	if *out != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
	}
	if len(rep.Problems) > 0 {
		return &exitError{1, fmt.Errorf("soak: %s", strings.Join(rep.Problems, "; "))}
	}
	return nil
}

// judge fills the verdict: the first interval is the warm-up (models
// loading their caches, links bootstrapping); memory is compared with the
// end of the first third of the run, once every path has been taken.
func (r *soakReport) judge() {
	n := len(r.Samples)
	if n < 2 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d samples: too few to judge", n))
		return
	}
	warm := r.Samples[1:]
	fps := make([]float64, len(warm))
	for i, s := range warm {
		fps[i] = s.FPS
		r.RSSMax = max(r.RSSMax, s.RSSMB)
	}
	r.FPSMedian = percentile(append([]float64(nil), fps...), 50)
	r.FPSMin = percentile(fps, 0)
	r.RSSWarm = r.Samples[max(1, n/3)].RSSMB
	r.RSSEnd = r.Samples[n-1].RSSMB
	if r.FPSMedian <= 0 {
		r.Problems = append(r.Problems, "no results after the warm-up")
	} else if r.FPSMin < soakFPSFloor*r.FPSMedian {
		r.Problems = append(r.Problems, fmt.Sprintf("throughput not held: an interval at %.2f frames/s, the median %.2f (floor %.0f%%)", r.FPSMin, r.FPSMedian, 100*soakFPSFloor))
	}
	if limit := r.RSSWarm*(1+soakRSSGrowth) + soakRSSSlackMB; r.RSSEnd > limit {
		r.Problems = append(r.Problems, fmt.Sprintf("memory not flat: RSS %.0f MB at the end, %.0f MB once warm (limit %.0f MB)", r.RSSEnd, r.RSSWarm, limit))
	}
}

func (r *soakReport) print(w io.Writer) {
	fmt.Fprintf(w, "throughput: median %.2f frames/s, lowest interval %.2f; latency p99 %.0f ms after warm-up; RSS %.0f MB once warm, %.0f MB at the end (max %.0f)\n",
		r.FPSMedian, r.FPSMin, r.LatencyP99, r.RSSWarm, r.RSSEnd, r.RSSMax)
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "verdict: held (throughput within 85% of its median, memory flat)")
	}
}
