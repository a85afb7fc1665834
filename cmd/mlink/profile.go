package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
)

// profileOptions are the flags of mlink profile besides -c.
type profileOptions struct {
	out       string
	maxFrames int
	extend    string
}

func profileFlags() (*flag.FlagSet, *configFlags, *profileOptions) {
	fs := newFlagSet("profile")
	cf, o := &configFlags{}, &profileOptions{}
	cf.register(fs, false)
	fs.StringVar(&o.out, "out", "", "trace file to write (gzip JSON lines)")
	fs.IntVar(&o.maxFrames, "max-frames", 0, "frames per camera (0: each file to its end)")
	fs.StringVar(&o.extend, "extend", "", "an existing trace of the config's videos: profile only the config's models it lacks and write it with them added to --out (its records and costs kept)")
	return fs, cf, o
}

func cmdProfile(args []string) error {
	fs, cf, o := profileFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.out == "" {
		return &exitError{2, errors.New("--out TRACE is required")}
	}
	cfg, log, ctx, stop, err := cf.start()
	if err != nil {
		return err
	}
	defer stop()
	var n int
	if o.extend != "" {
		n, err = extendTrace(ctx, cfg, o.extend, o.out, o.maxFrames, log, isatty.IsTerminal(os.Stderr.Fd()))
	} else {
		n, err = profile(ctx, cfg, o.out, o.maxFrames, log, isatty.IsTerminal(os.Stderr.Fd()))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %d frames to %s\n", n, o.out)
	return nil
}

// profile runs every configured model on every frame of the configured
// sources and records their exact outputs as a trace.
func profile(ctx context.Context, cfg *pipeline.Config, out string, maxFrames int, log zerolog.Logger, progress bool) (int, error) {
	// Every model on every frame, with no frame dropped: files are read as
	// fast as the models go, once.
	cfg.Scheduler.Policy = "all"
	// A trace must be complete, not fast: give slow models (on a loaded
	// machine) time rather than record partial frames.
	cfg.Merger.Deadline = max(cfg.Merger.Deadline, 2*time.Minute)
	for i := range cfg.Cameras {
		if cfg.Cameras[i].Source == pipeline.SourceFile {
			cfg.Cameras[i].Realtime, cfg.Cameras[i].Loop = false, false
		} else if maxFrames == 0 {
			return 0, &exitError{2, fmt.Errorf("camera %s is live: give --max-frames", cfg.Cameras[i].ID)}
		}
	}
	header := links.TraceHeader{Source: cfg.Dir}
	for _, cam := range cfg.Cameras {
		header.Cameras = append(header.Cameras, cam.ID)
		if cam.Source != pipeline.SourceFile {
			continue
		}
		if header.Videos == nil {
			header.Videos = map[string]string{}
		}
		header.Videos[cam.ID] = cam.URL
		// Replays place frames on the media clock: the file's own rate,
		// capped like the camera's published rate.
		fps := fileFPS(cam.URL)
		if cam.FPS > 0 && (fps == 0 || cam.FPS < fps) {
			fps = cam.FPS
		}
		if header.FPS == 0 || (fps > 0 && fps < header.FPS) {
			header.FPS = fps
		}
	}
	imgs, err := sampleFrames(cfg, "", 5)
	var costs []struct {
		mem int64
		ms  float64
	}
	if err == nil {
		measured, merr := measureModels(cfg, imgs)
		closeMats(imgs)
		if merr != nil {
			log.Warn().Err(merr).Msg("cost measurement")
		}
		for _, c := range measured {
			costs = append(costs, struct {
				mem int64
				ms  float64
			}{c.MemoryBytes, c.InferMS})
		}
	}
	for i := range cfg.Models {
		tm := traceModel(&cfg.Models[i])
		if i < len(costs) {
			tm.MemoryBytes, tm.InferMS = costs[i].mem, costs[i].ms
		}
		header.Models = append(header.Models, tm)
	}
	tw, err := links.CreateTrace(out, header)
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	var writeErr error
	start := time.Now()
	o := runOptions{maxFrames: maxFrames, roles: "all", onResult: func(r *pipeline.Result) {
		rec := &links.TraceRecord{Camera: r.Camera, Seq: r.Seq, Time: r.CapturedAt, Outputs: map[string]*pipeline.Output{}}
		for name, o := range r.Outputs {
			if o.Error == "" && o.Source == pipeline.SourceExact {
				o.Camera, o.Seq, o.Worker = "", 0, "" // implied by the record
				rec.Outputs[name] = o
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if err := tw.Write(rec); err != nil && writeErr == nil {
			writeErr = err
		}
		el := time.Since(start).Seconds()
		switch {
		case progress && tw.Records()%5 == 0:
			fmt.Fprintf(os.Stderr, "\rprofiling: %d frames, %.2f frames/s", tw.Records(), float64(tw.Records())/el)
		case !progress && tw.Records()%100 == 0:
			log.Info().Int("frames", tw.Records()).Float64("fps", float64(tw.Records())/el).Msg("profiling")
		}
	}}
	a, err := startApp(ctx, cfg, o, log)
	if err != nil {
		tw.Close()
		return 0, err
	}
	err = a.wait(ctx)
	a.shutdown()
	if progress {
		fmt.Fprintln(os.Stderr)
	}
	mu.Lock()
	n := tw.Records()
	err = errors.Join(err, writeErr, tw.Close())
	mu.Unlock()
	if len(a.failedModels) > 0 {
		var names []string
		for name := range a.failedModels {
			names = append(names, name)
		}
		sort.Strings(names)
		err = errors.Join(err, fmt.Errorf("models that failed to load are missing from the trace: %v", names))
	}
	return n, err
}

// extendTrace adds the config's models that the trace at base lacks: it
// profiles only those, over the same videos, and writes base's header and
// records with their outputs and measured costs added. The models already
// in base keep their outputs and costs, so the new trace differs from base
// by the new models alone (a regeneration would measure every cost again).
// Every frame of base must come back from the new profile: the same
// cameras, the same videos, the same frame numbers.
func extendTrace(ctx context.Context, cfg *pipeline.Config, base, out string, maxFrames int, log zerolog.Logger, progress bool) (int, error) {
	header, records, err := links.ReadTrace(base)
	if err != nil {
		return 0, err
	}
	have := map[string]bool{}
	for _, m := range header.Models {
		have[m.Name] = true
	}
	configured := map[string]bool{}
	var added []pipeline.ModelSpec
	for _, m := range cfg.Models {
		configured[m.Name] = true
		if !have[m.Name] {
			added = append(added, m)
		}
	}
	var problems []error
	for _, m := range header.Models {
		if !configured[m.Name] {
			problems = append(problems, fmt.Errorf("model %s of %s is not in the config: extend with a config that declares all of the trace's models", m.Name, base))
		}
	}
	if len(added) == 0 {
		problems = append(problems, fmt.Errorf("the config declares no model that %s lacks: nothing to add", base))
	}
	if !slices.Equal(header.Cameras, cameraIDs(cfg.Cameras)) {
		problems = append(problems, fmt.Errorf("%s has cameras %v, the config %v: extend with the config it was profiled from", base, header.Cameras, cameraIDs(cfg.Cameras)))
	}
	if err := errors.Join(problems...); err != nil {
		return 0, &exitError{2, err}
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".extend-*.trace.gz")
	if err != nil {
		return 0, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cfg.Models = added
	if _, err := profile(ctx, cfg, tmp.Name(), maxFrames, log, progress); err != nil {
		return 0, err
	}
	addHeader, addRecords, err := links.ReadTrace(tmp.Name())
	if err != nil {
		return 0, err
	}
	type key struct {
		camera string
		seq    uint64
	}
	fresh := make(map[key]*links.TraceRecord, len(addRecords))
	for _, r := range addRecords {
		fresh[key{r.Camera, r.Seq}] = r
	}
	header.Models = append(header.Models, addHeader.Models...)
	// ReadTrace resolved the videos against base's directory, relative to
	// the working directory; CreateTrace stores them relative to out's.
	for cam, v := range header.Videos {
		if abs, err := filepath.Abs(v); err == nil {
			header.Videos[cam] = abs
		}
	}
	// The merged trace is written beside out and renamed over it once
	// complete: out may be base itself, and a failure half way must not
	// lose it.
	merged, err := os.CreateTemp(filepath.Dir(out), ".extended-*.trace.gz")
	if err != nil {
		return 0, err
	}
	merged.Close()
	defer os.Remove(merged.Name()) // gone once renamed
	tw, err := links.CreateTrace(merged.Name(), header)
	if err != nil {
		return 0, err
	}
	for _, r := range records {
		f, ok := fresh[key{r.Camera, r.Seq}]
		if !ok {
			tw.Close()
			return 0, fmt.Errorf("frame %d of camera %s of %s did not come back from the new profile: is the config's video the trace's?", r.Seq, r.Camera, base)
		}
		for name, o := range f.Outputs {
			r.Outputs[name] = o
		}
		if err := tw.Write(r); err != nil {
			tw.Close()
			return 0, err
		}
	}
	n := tw.Records()
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(merged.Name(), out); err != nil {
		return 0, fmt.Errorf("extend: %w", err)
	}
	return n, nil
}

// fileFPS is a video file's frame rate (0 when it does not say).
func fileFPS(path string) float64 {
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return 0
	}
	defer vc.Close()
	if fps := vc.Get(gocv.VideoCaptureFPS); fps > 0 && fps < 1000 {
		return fps
	}
	return 0
}
