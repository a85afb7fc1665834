package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/mlink-project/mlink/links"
)

// cmdLinks is mlink links SUBCOMMAND.
func cmdLinks(args []string) error { return dispatch(append([]string{"links"}, args...)) }

// linksTrainOptions are the flags of mlink links train.
type linksTrainOptions struct {
	trace, out, decoder string
	epochs              int
	seed                int64
	frac                float64
	noTemporal, noEval  bool
}

func linksTrainFlags() (*flag.FlagSet, *linksTrainOptions) {
	fs := newFlagSet("links train")
	o := &linksTrainOptions{}
	fs.StringVar(&o.trace, "trace", "", "trace recorded by 'mlink profile'")
	fs.StringVar(&o.out, "out", "", "directory to write the links to")
	fs.IntVar(&o.epochs, "epochs", 100, "training epochs")
	fs.Int64Var(&o.seed, "seed", 1, "random seed (training is deterministic given the seed)")
	fs.Float64Var(&o.frac, "train-frac", 0.1, "fraction of the trace (first, by time) to train on")
	fs.StringVar(&o.decoder, "decoder", links.DecoderSet, "decoder for box/line targets: set or attention")
	fs.BoolVar(&o.noTemporal, "no-temporal", false, "skip temporal links")
	fs.BoolVar(&o.noEval, "no-eval", false, "do not evaluate on the rest of the trace")
	return fs, o
}

func cmdLinksTrain(args []string) error {
	fs, o := linksTrainFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.trace == "" || o.out == "" {
		return &exitError{2, errors.New("--trace TRACE and --out DIR are required")}
	}
	if !(o.frac > 0 && o.frac < 1) {
		return &exitError{2, fmt.Errorf("--train-frac %v: want a fraction in (0, 1)", o.frac)}
	}
	if o.epochs < 1 {
		return &exitError{2, fmt.Errorf("--epochs %d: want ≥ 1", o.epochs)}
	}
	h, recs, err := links.ReadTrace(o.trace)
	if err != nil {
		return err
	}
	train, eval := links.SplitByTime(recs, o.frac)
	bar := newTrainBar(os.Stderr, isatty.IsTerminal(os.Stderr.Fd()))
	opts := links.TrainOptions{Epochs: o.epochs, Seed: o.seed, SeqDecoder: o.decoder, NoTemporal: o.noTemporal, Progress: bar.update}
	fmt.Fprintf(os.Stderr, "training links on %d of %d frames (%d models)\n", len(train), len(recs), len(h.Models))
	set, err := links.Train(h, train, opts)
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "trained %d links, %d temporal links and %d ensembles in %.1fs\n",
		len(set.Links()), len(set.TemporalLinks()), 2*len(set.Models)-boolInt(o.noTemporal)*len(set.Models), set.TrainSeconds)
	if !o.noEval && len(eval) > 0 {
		start := time.Now()
		ev := set.Evaluate(eval)
		fmt.Fprintf(os.Stderr, "evaluated on %d frames in %.1fs\n", ev.Frames, time.Since(start).Seconds())
	}
	if err := set.Save(o.out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "saved to %s\n", o.out)
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// linksEvalOptions are the flags of mlink links eval.
type linksEvalOptions struct {
	trace, dir string
	frac       float64
	asJSON     bool
}

func linksEvalFlags() (*flag.FlagSet, *linksEvalOptions) {
	fs := newFlagSet("links eval")
	o := &linksEvalOptions{}
	fs.StringVar(&o.trace, "trace", "", "trace recorded by 'mlink profile'")
	fs.StringVar(&o.dir, "links", "", "links directory written by 'mlink links train'")
	fs.Float64Var(&o.frac, "train-frac", 0.1, "fraction of the trace the links were trained on (evaluation uses the rest)")
	fs.BoolVar(&o.asJSON, "json", false, "print the evaluation as JSON")
	return fs, o
}

func cmdLinksEval(args []string) error {
	fs, o := linksEvalFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.trace == "" || o.dir == "" {
		return &exitError{2, errors.New("--trace TRACE and --links DIR are required")}
	}
	if !(o.frac >= 0 && o.frac < 1) {
		return &exitError{2, fmt.Errorf("--train-frac %v: want a fraction in [0, 1)", o.frac)}
	}
	set, err := links.Load(o.dir)
	if err != nil {
		return err
	}
	h, recs, err := links.ReadTrace(o.trace)
	if err != nil {
		return err
	}
	if err := set.CheckTrace(h); err != nil {
		return err
	}
	_, eval := links.SplitByTime(recs, o.frac)
	if len(eval) == 0 {
		return &exitError{2, errors.New("no frames left to evaluate after the training fraction")}
	}
	ev := set.Evaluate(eval)
	if o.asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ev)
	}
	printEvaluation(os.Stdout, set, ev)
	return nil
}

// printEvaluation prints the evaluation as tables.
func printEvaluation(w io.Writer, set *links.Set, ev *links.Evaluation) {
	names := make([]string, len(set.Models))
	for i, m := range set.Models {
		names[i] = m.Name
	}
	col := 0
	for _, n := range names {
		col = max(col, len(n))
	}
	short := func(s string) string {
		if len(s) > 9 {
			return s[:9]
		}
		return s
	}
	fmt.Fprintf(w, "Evaluated on %d frames (links trained on %d).\n\n", ev.Frames, set.TrainFrames)
	matrix := func(title string, val func(p links.PairAccuracy) (float64, bool)) {
		fmt.Fprintf(w, "%s (rows: source, columns: target)\n", title)
		fmt.Fprintf(w, "%-*s", col+1, "")
		for _, n := range names {
			fmt.Fprintf(w, " %9s", short(n))
		}
		fmt.Fprintln(w)
		for _, s := range names {
			fmt.Fprintf(w, "%-*s", col+1, s)
			for _, t := range names {
				p, ok := ev.Pair(s, t)
				v, has := val(p)
				switch {
				case s == t:
					fmt.Fprintf(w, " %9s", "-")
				case !ok || !has:
					fmt.Fprintf(w, " %9s", "")
				default:
					fmt.Fprintf(w, " %9.3f", v)
				}
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	matrix("Link accuracy, strict p(·): class match, matched IoU for boxes, matched segments for lines", func(p links.PairAccuracy) (float64, bool) { return p.Accuracy, true })
	matrix("Link count accuracy, |error| < 0.5", func(p links.PairAccuracy) (float64, bool) {
		if p.Count == nil {
			return 0, false
		}
		return p.Count.Accuracy, true
	})
	matrix("Link graded count accuracy", func(p links.PairAccuracy) (float64, bool) {
		if p.Count == nil {
			return 0, false
		}
		return p.Count.Graded, true
	})

	maxSize := 0
	for _, s := range ev.Sizes {
		maxSize = max(maxSize, s.Size)
	}
	fmt.Fprintln(w, "Ensemble accuracy (strict) by number of executed sources: mean [min–max] over source sets")
	fmt.Fprintf(w, "%-*s", col+1, "target")
	for k := 1; k <= maxSize; k++ {
		fmt.Fprintf(w, " %21s", fmt.Sprintf("%d source%s", k, plural(k)))
	}
	fmt.Fprintln(w)
	for _, t := range names {
		fmt.Fprintf(w, "%-*s", col+1, t)
		for k := 1; k <= maxSize; k++ {
			cell := ""
			for _, s := range ev.Sizes {
				if s.Target == t && s.Size == k {
					cell = fmt.Sprintf("%.3f [%.3f–%.3f]", s.Mean, s.Min, s.Max)
				}
			}
			fmt.Fprintf(w, " %21s", cell)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Ensemble count accuracy (|error| < 0.5) by number of executed sources: mean over source sets")
	fmt.Fprintf(w, "%-*s", col+1, "target")
	for k := 1; k <= maxSize; k++ {
		fmt.Fprintf(w, " %10s", fmt.Sprintf("%d src", k))
	}
	fmt.Fprintln(w)
	for _, t := range names {
		line := ""
		for k := 1; k <= maxSize; k++ {
			for _, s := range ev.Sizes {
				if s.Target == t && s.Size == k && s.CountMean != nil {
					line += fmt.Sprintf(" %10.3f", *s.CountMean)
				}
			}
		}
		if line != "" {
			fmt.Fprintf(w, "%-*s%s\n", col+1, t, line)
		}
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Baselines and temporal links (strict accuracy; count accuracy in parentheses)")
	fmt.Fprintf(w, "%-*s %15s", col+1, "target", "constant")
	for _, a := range ev.Ages {
		fmt.Fprintf(w, " %15s", fmt.Sprintf("reuse@%d", a))
	}
	fmt.Fprintln(w)
	cell := func(s links.Score) string {
		if s.Count != nil {
			return fmt.Sprintf("%.3f (%.3f)", s.Accuracy, s.Count.Accuracy)
		}
		return fmt.Sprintf("%.3f", s.Accuracy)
	}
	for _, t := range names {
		fmt.Fprintf(w, "%-*s", col+1, t)
		if b, ok := ev.Baseline(t, "constant", 0); ok {
			fmt.Fprintf(w, " %15s", cell(b))
		} else {
			fmt.Fprintf(w, " %15s", "")
		}
		for _, a := range ev.Ages {
			if b, ok := ev.Baseline(t, "reuse", a); ok {
				fmt.Fprintf(w, " %15s", cell(b))
			} else {
				fmt.Fprintf(w, " %15s", "")
			}
		}
		fmt.Fprintln(w)
	}
	if len(ev.TemporalEnsembles) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%-*s %15s", col+1, "temporal: target", "sources")
		for _, a := range ev.Ages {
			fmt.Fprintf(w, " %15s", fmt.Sprintf("age %d", a))
		}
		fmt.Fprintln(w)
		all := func(t string) []string {
			var out []string
			for _, n := range names {
				if n != t {
					out = append(out, n)
				}
			}
			return out
		}
		for _, t := range names {
			for _, row := range []struct {
				label string
				srcs  []string
			}{{"none (self)", nil}, {"all", all(t)}} {
				fmt.Fprintf(w, "%-*s %15s", col+1, t, row.label)
				for _, a := range ev.Ages {
					c := ""
					for _, e := range ev.TemporalEnsembles {
						if e.Target == t && e.Age == a && len(e.Sources) == len(row.srcs) && sameNames(e.Sources, row.srcs) {
							c = cell(e.Score)
						}
					}
					fmt.Fprintf(w, " %15s", c)
				}
				fmt.Fprintln(w)
			}
		}
	}
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
	}
	return true
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// trainBar shows training progress: a redrawn bar with the current loss on
// a terminal, one line per finished link or ensemble otherwise.
type trainBar struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	last  time.Time
	start time.Time
	drawn bool
}

func newTrainBar(w io.Writer, tty bool) *trainBar {
	return &trainBar{w: w, tty: tty, start: time.Now()}
}

func (b *trainBar) update(p links.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	name := p.Target
	if p.Stage != "ensemble" {
		src := p.Source
		if src == "" {
			src = "self"
		}
		name = src + "→" + p.Target
	}
	if !b.tty {
		if p.Finished {
			fmt.Fprintf(b.w, "[%d/%d] %-8s %-32s loss %.4f  %6.1fs\n", p.Done, p.Total, p.Stage, name, p.Loss, time.Since(b.start).Seconds())
		}
		return
	}
	if !p.Finished && time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last = time.Now()
	const width = 30
	filled := width * p.Done / max(p.Total, 1)
	fmt.Fprintf(b.w, "\r[%s%s] %3d/%d %-8s %-30.30s epoch %3d/%d loss %.4f %5.0fs\x1b[K",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.Done, p.Total, p.Stage, name, p.Epoch, p.Epochs, p.Loss, time.Since(b.start).Seconds())
	b.drawn = true
}

func (b *trainBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
	}
}
