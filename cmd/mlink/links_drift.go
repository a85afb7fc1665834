package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mlink-project/mlink/links"
)

// Defaults of mlink links drift and mlink links drift --make.
const (
	driftDefaultTrace  = "testdata/drift/left-then-right.trace.gz"
	driftDefaultBefore = "testdata/traces/vtest-left.trace.gz"
	driftDefaultAfter  = "testdata/traces/vtest-right.trace.gz"
)

// linksDriftOptions are the flags of mlink links drift.
type linksDriftOptions struct {
	trace, changeAt, decoder string
	window, period, labels   int
	trainFrames              int
	epochs, ftEpochs         int
	seed                     int64
	tolerance                float64
	noTemporal, asJSON       bool
	// --make: write the drift trace instead of running the experiment.
	make          bool
	before, after string
	models        string
}

func linksDriftFlags() (*flag.FlagSet, *linksDriftOptions) {
	fs := newFlagSet("links drift")
	o := &linksDriftOptions{}
	fs.StringVar(&o.trace, "trace", "", "drift trace (with --make: the trace to write)")
	fs.StringVar(&o.changeAt, "change-at", "auto", "index of the first record after the scene change, or auto (the one the drift trace's header records)")
	d := links.DefaultDriftOptions(0)
	fs.IntVar(&o.window, "window", d.Window, "post-change frames per accuracy window")
	fs.IntVar(&o.period, "period", d.Period, "post-change frames between updates (a multiple of --window)")
	fs.IntVar(&o.labels, "labels", d.Labels, "frames labelled (all models run) per period: every adapting strategy's budget")
	fs.IntVar(&o.trainFrames, "train-frames", d.TrainFrames, "frames the initial links and the oracle train on, evenly spaced before (after) the change")
	fs.IntVar(&o.epochs, "epochs", d.Train.Epochs, "training epochs of the initial links and the oracle")
	fs.IntVar(&o.ftEpochs, "finetune-epochs", d.FineTuneEpochs, "epochs of each fine-tuning")
	fs.Int64Var(&o.seed, "seed", d.Train.Seed, "random seed (the experiment is deterministic given the seed)")
	fs.StringVar(&o.decoder, "decoder", links.DecoderSet, "decoder for box/line targets: set or attention")
	fs.BoolVar(&o.noTemporal, "no-temporal", false, "skip temporal links")
	fs.Float64Var(&o.tolerance, "tolerance", d.Tolerance, "recovered: every later window within this much of the oracle's accuracy")
	fs.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	fs.BoolVar(&o.make, "make", false, "write the drift trace --trace from --before then --after, and exit")
	fs.StringVar(&o.before, "before", driftDefaultBefore, "with --make: the trace before the change")
	fs.StringVar(&o.after, "after", driftDefaultAfter, "with --make: the trace after the change")
	fs.StringVar(&o.models, "models", strings.Join(links.DriftModels, ","), "with --make: models to keep (comma-separated)")
	return fs, o
}

func cmdLinksDrift(args []string) error {
	fs, o := linksDriftFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.trace == "" {
		return &exitError{2, errors.New("--trace TRACE is required")}
	}
	if o.make {
		return makeDriftTrace(o)
	}
	if o.epochs < 1 {
		return &exitError{2, fmt.Errorf("--epochs %d: want ≥ 1", o.epochs)}
	}
	h, recs, err := links.ReadTrace(o.trace)
	if err != nil {
		return err
	}
	change, ok := links.DriftChangeAt(h)
	if o.changeAt != "auto" {
		if change, err = strconv.Atoi(o.changeAt); err != nil {
			return &exitError{2, fmt.Errorf("--change-at %q: want a record index or auto", o.changeAt)}
		}
	} else if !ok {
		return &exitError{2, fmt.Errorf("--change-at auto: trace %s records no change point; give the index", o.trace)}
	}
	opts := links.DriftOptions{
		ChangeAt: change, Window: o.window, Period: o.period, Labels: o.labels,
		TrainFrames: o.trainFrames, FineTuneEpochs: o.ftEpochs, Tolerance: o.tolerance,
		Train: links.TrainOptions{Epochs: o.epochs, Seed: o.seed, SeqDecoder: o.decoder, NoTemporal: o.noTemporal},
	}
	if err := opts.Validate(len(recs)); err != nil {
		return &exitError{2, err}
	}
	start := time.Now()
	res, err := links.RunDrift(h, recs, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "drift experiment in %.1fs\n", time.Since(start).Seconds())
	if o.asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printDrift(os.Stdout, res)
	return nil
}

// makeDriftTrace writes --trace: --before's records then --after's as one
// camera (links.MakeDriftTrace).
func makeDriftTrace(o *linksDriftOptions) error {
	hb, before, err := links.ReadTrace(o.before)
	if err != nil {
		return err
	}
	ha, after, err := links.ReadTrace(o.after)
	if err != nil {
		return err
	}
	var keep []string
	if o.models != "" {
		keep = strings.Split(o.models, ",")
	}
	h, recs, err := links.MakeDriftTrace(hb, before, ha, after, keep)
	if err != nil {
		return &exitError{2, err}
	}
	w, err := links.CreateTrace(o.trace, h)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			w.Close()
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d records (%d before the change, %d after), %d models\n",
		o.trace, len(recs), len(before), len(after), len(h.Models))
	return nil
}

// printDrift prints the experiment's table: one row per strategy, one
// column per window after the change.
func printDrift(w io.Writer, r *links.DriftResult) {
	fmt.Fprintf(w, "Drift: links trained before the change (%d frames), scored on %d of the %d frames after it\n",
		r.Before, r.EvalFrames, r.After)
	fmt.Fprintf(w, "(mean strict accuracy of the pure links per window of %d frames; updates every %d frames on %d labelled frames;\n", r.Window, r.Period, r.Labels)
	fmt.Fprintf(w, " recovered: every later window within %.3g of the oracle, trained on the post-change scene)\n\n", r.Tolerance)
	fmt.Fprintf(w, "Before the change (held-out frames): %.3f\n\n", r.BeforeAccuracy)
	fmt.Fprintf(w, "%-19s %6s %9s %9s", "strategy", "mean", "labelled", "recovery")
	if len(r.Strategies) > 0 {
		for i := range r.Strategies[0].Windows {
			fmt.Fprintf(w, " %6s", fmt.Sprintf("+%d", i*r.Window))
		}
	}
	fmt.Fprintln(w)
	for _, s := range r.Strategies {
		rec := "never"
		if s.RecoveryFrames >= 0 {
			rec = strconv.Itoa(s.RecoveryFrames)
		}
		fmt.Fprintf(w, "%-19s %6.3f %9d %9s", s.Name, s.Mean, s.Labelled, rec)
		for _, v := range s.Windows {
			if math.IsNaN(float64(v)) {
				fmt.Fprintf(w, " %6s", "")
				continue
			}
			fmt.Fprintf(w, " %6.3f", v)
		}
		fmt.Fprintln(w)
	}
}
