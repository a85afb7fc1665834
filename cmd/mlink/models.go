package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages"
	"github.com/mlink-project/mlink/stages/backends"
)

// modelsOptions are the flags of mlink models besides -c.
type modelsOptions struct {
	frames int
	video  string
}

func modelsFlags() (*flag.FlagSet, *configFlags, *modelsOptions) {
	fs := newFlagSet("models")
	cf, o := &configFlags{}, &modelsOptions{}
	cf.register(fs, false)
	fs.IntVar(&o.frames, "frames", 20, "frames to time each model on")
	fs.StringVar(&o.video, "video", "", "video to take the frames from (default: the config's first file camera)")
	return fs, cf, o
}

func cmdModels(args []string) error {
	fs, cf, o := modelsFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	imgs, err := sampleFrames(cfg, o.video, o.frames)
	if err != nil {
		return err
	}
	defer closeMats(imgs)
	costs, err := measureModels(cfg, imgs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tbackend\toutput\tload ms\tmemory MB\tms/frame\tp90 ms\tlast value\t")
	for i, c := range costs {
		spec := &cfg.Models[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.1f\t%.1f\t%.1f\t%s\t\n", spec.Name, spec.Backend, spec.Output,
			c.LoadMS, float64(c.MemoryBytes)/(1<<20), c.InferMS, c.InferP90MS, outputSummary(&c.LastOutput))
	}
	tw.Flush()
	return err
}

// measureModels measures every configured model on imgs; it goes on past a
// model that fails and reports all failures.
func measureModels(cfg *pipeline.Config, imgs []gocv.Mat) ([]stages.ModelCost, error) {
	var errs []error
	costs := make([]stages.ModelCost, len(cfg.Models))
	open := backends.Opener(cfg, zerolog.Nop())
	for i := range cfg.Models {
		c, err := stages.MeasureModel(&cfg.Models[i], open, imgs)
		if err != nil {
			errs = append(errs, err)
		}
		costs[i] = c
	}
	return costs, errors.Join(errs...)
}

func sampleFrames(cfg *pipeline.Config, video string, n int) ([]gocv.Mat, error) {
	if video == "" {
		for _, cam := range cfg.Cameras {
			if cam.Source == pipeline.SourceFile {
				video = cfg.Path(cam.URL)
				break
			}
		}
	}
	if video == "" {
		return nil, &exitError{2, errors.New("no file camera in the config to take frames from: pass --video FILE")}
	}
	// Spread the frames over the video's first ~n*10 frames so that they
	// differ, as a live stream's would.
	return stages.ReadFrames(video, n, 10)
}

func closeMats(ms []gocv.Mat) {
	for i := range ms {
		ms[i].Close()
	}
}
