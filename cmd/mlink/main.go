// Command mlink runs many ML models over many camera streams within a
// hardware budget. Only wiring lives here: flags, config, signals, and the
// start/stop order of the stages.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/mlink-project/mlink/pipeline"
)

const usage = `mlink — multi-model video analytics over NATS

Usage:
  mlink run -c FILE [--max-frames N] [--nats URL] [--policy P] [--budget B] [--role ROLES]
                                   run the pipeline (embedded NATS unless nats.url/--nats);
                                   policies: all, standalone, mlink; budgets: 5GB, 450ms, 5GB,450ms
  mlink watch [--nats URL] [--camera ID] [--json] [--since DURATION]
                                   print results live
  mlink validate -c FILE           check a config; every problem is listed, exit 2 on any
  mlink models -c FILE [--frames N] load each model and measure its cost
  mlink profile -c FILE --out TRACE [--max-frames N]
                                   run every model on every frame and record a trace
  mlink links train --trace TRACE --out DIR [--epochs N] [--seed S] [--train-frac F]
                                   train model links on the first part of a trace
  mlink links eval --trace TRACE --links DIR [--json]
                                   print link and ensemble accuracy on the rest
  mlink bench --trace TRACE [--budgets B,...] [--policies P,...] [--sampling native,1fps] [--out DIR]
                                   replay a trace through every policy at every budget: table, results.json, plots
  mlink bench pipeline -c FILE [--frames N]
                                   measure throughput, latency and the pipeline's overhead
  mlink bench live -c FILE [--policy P] [--budget B] [--seconds N]
                                   files paced as live cameras: frames/s, stale drops, savings
  mlink version

Run 'mlink COMMAND -h' for a command's flags.
`

// exitError carries a process exit code (2 for invalid input).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "run":
		err = cmdRun(args)
	case "watch":
		err = cmdWatch(args)
	case "validate":
		err = cmdValidate(args)
	case "models":
		err = cmdModels(args)
	case "bench":
		err = cmdBench(args)
	case "profile":
		err = cmdProfile(args)
	case "links":
		err = cmdLinks(args)
	case "version":
		fmt.Println("mlink", version)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "mlink: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mlink %s: %v\n", os.Args[1], err)
		var ee *exitError
		var ce *pipeline.ConfigError
		switch {
		case errors.As(err, &ee):
			os.Exit(ee.code)
		case errors.As(err, &ce):
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var version = "dev"

func cmdValidate(args []string) error {
	fs := newFlagSet("validate")
	var cf configFlags
	cf.register(fs, true)
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	fmt.Printf("%s: ok (%d cameras, %d models, policy %s)\n", cf.path, len(cfg.Cameras), len(cfg.Models), cfg.Scheduler.Policy)
	return nil
}
