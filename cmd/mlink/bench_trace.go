package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/scheduler/replay"
	"github.com/mlink-project/mlink/scheduler/report"
	"github.com/mlink-project/mlink/stages/framefeat"
	"github.com/mlink-project/mlink/stages/reducto"
)

// Reducto's frame filter composes with any policy: the bench has it alone
// (in front of all) at its published target, and in front of mlink.
const (
	policyReducto      = "reducto"
	policyReductoMLink = "reducto+mlink"
)

// benchPolicies are every registered policy (frame skipping and
// mlink-hybrid's ablations among them), then Reducto's two compositions.
func benchPolicies() []string {
	return append(pipeline.PolicyNames(), policyReducto, policyReductoMLink)
}

// benchAll is the reference row: it ignores budgets.
const benchAll = string(scheduler.PolicyAll)

// reductoTarget is Reducto's published accuracy target. The bench does not
// tune it to a budget: choosing it from the whole trace's cost would be an
// oracle no user has. Reducto's cost is what it is; its row says whether
// that fits each budget.
const reductoTarget = 0.9

type benchTraceOptions struct {
	trace   string
	budgets []scheduler.Budget
	// shares are budgets given as shares of the trace's total cost (in unit).
	shares []float64
	// autoBudgets adds the automatic budget points.
	autoBudgets  bool
	unit         string
	policies     []string
	samplings    []int // strides: 1 native, 10 = 1 fps on a 10 fps trace
	modes        []scheduler.TimeMode
	out          string
	fps          float64
	period       time.Duration
	profileShare float64
	trainShare   float64
	seed         int64
	epochs       int
	activeShare  float64
	turnBatch    int
	activeBatch  int
	logLevel     string
	turnEvidence bool
	tuneFrames   int
	temporal     bool
	// policiesGiven: the user chose the policies (a Reducto policy that
	// cannot run is then an error, not skipped).
	policiesGiven bool
	holdOut       float64
	video         string
	// importance weighs outputs for dcta (the config's scheduler.importance).
	importance map[string]float64
	// cascadesFrom is the config policy coe's cascades are read from ("":
	// -c's, else the trace's profiling config beside it); cascades, when
	// -c gave them.
	cascadesFrom string
	cascades     *pipeline.CoEConfig
	// jellybean is policy jellybean's SLOs and variants (the config's
	// scheduler.jellybean); pools the config's worker pools.
	jellybean pipeline.JellyBeanConfig
	pools     []pipeline.WorkerPool
	// learners, when set, share trained links between benchTrace calls of
	// one process (the pin test's blocks replay one trace several times);
	// nil: each call trains its own.
	learners *learnerPool
}

// learnerPool hands out one cached learner per trace and training options:
// training is deterministic for them, and a CachedLearner answers each
// call (train, measure, fine-tune on the same frames) once. Safe for
// concurrent use.
type learnerPool struct {
	mu       sync.Mutex
	learners map[string]*replay.CachedLearner
}

func newLearnerPool() *learnerPool {
	return &learnerPool{learners: map[string]*replay.CachedLearner{}}
}

// get returns the pool's learner of trace with opts, made by newLearner
// the first time.
func (p *learnerPool) get(trace string, opts links.TrainOptions, newLearner func() *replay.CachedLearner) *replay.CachedLearner {
	if p == nil {
		return newLearner()
	}
	key := fmt.Sprintf("%s %+v", trace, opts)
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.learners[key]
	if !ok {
		l = newLearner()
		p.learners[key] = l
	}
	return l
}

func cmdBenchTrace(args []string) error {
	o, err := parseBenchTrace(args)
	if err != nil {
		return err
	}
	log, err := pipeline.NewLogger(pipeline.LogConfig{Level: o.logLevel}, os.Stderr)
	if err != nil {
		return err
	}
	rows, err := benchTrace(o, log, os.Stderr)
	if err != nil {
		return err
	}
	return writeBenchTrace(o, rows)
}

// parseBenchTrace reads the flags of mlink bench --trace; every problem is
// reported at once (exit 2).
func parseBenchTrace(args []string) (benchTraceOptions, error) {
	fs, options := benchTraceFlags()
	if err := parseFlags(fs, args); err != nil {
		return benchTraceOptions{}, err
	}
	return options()
}

// benchTraceFlags builds the flag set of mlink bench --trace, and the
// function that turns the parsed flags into options.
func benchTraceFlags() (*flag.FlagSet, func() (benchTraceOptions, error)) {
	fs := newFlagSet("bench")
	trace := fs.String("trace", "", "trace recorded by 'mlink profile' (required)")
	budgets := fs.String("budgets", "", "budgets to add to the automatic ones, comma-separated (e.g. 460ms,920ms or 5GB; 5GB+40ms for both; 25% or 1/4 for a share of the total cost in --unit)")
	auto := fs.Bool("auto-budgets", true, "include the automatic budget points (where 1, 2, … of the cheapest models fit; ¼, ⅓, ½, ⅔ of the total cost)")
	unit := fs.String("unit", "ms", "unit of the automatic budget points: ms or memory")
	policies := fs.String("policies", strings.Join(benchPolicies(), ","), "policies to compare")
	sampling := fs.String("sampling", "native,1fps", "samplings of the trace: native, and/or Nfps")
	modes := fs.String("budget-mode", "mean,cap", "what a time budget means, one table each: mean (throughput, profiling included) and/or cap (no unprofiled frame over it)")
	out := fs.String("out", "", "directory for results.json and the plots (default: none)")
	fps := fs.Float64("fps", 0, "frame rate of the trace (default: the trace's, else the records' times)")
	period := fs.Duration("period", 20*time.Second, "re-profiling period of the mlink policies (media time)")
	share := fs.Float64("profile-share", 0.05, "share of each period profiled with every model")
	train := fs.Float64("train-share", 0.1, "share of the trace (first, by time) profiled to train the first links")
	seed := fs.Int64("seed", 1, "seed of link training and of drls/random's order")
	epochs := fs.Int("epochs", 100, "link training epochs (the paper's 100)")
	active := fs.Float64("active-share", 0, "share of frames active sampling may profile on top of the periodic windows (0: off)")
	turns := fs.Int("turn-batch", 0, "fine-tune the links on every N frames on which a rotating model ran on its turn (0: off)")
	turnEvidence := fs.Bool("turn-evidence", false, "mlink-hybrid re-selects on what its rotation turns measure (scheduler.turn_evidence)")
	temporal := fs.Bool("temporal", false, "train temporal links for mlink-hybrid (scheduler.temporal_links)")
	video := fs.String("video", "", "the trace's video, for Reducto (default: the trace's)")
	cfgPath := fs.String("c", "", "take period, profile-share, seed, active-share, hold-out, importance, coe, jellybean from this config's scheduler section (flags given override it)")
	logLevel := fs.String("log-level", "warn", "log level of the replayed policies (info shows every selection and why it was made)")
	cascades := fs.String("cascades", "", "take policy coe's cascades (scheduler.coe) from this config (default: -c's, else the trace's profiling config beside it, X.yaml for X.trace.gz)")
	return fs, func() (benchTraceOptions, error) {
		o := benchTraceOptions{trace: *trace, unit: *unit, out: *out, fps: *fps, period: *period,
			profileShare: *share, trainShare: *train, seed: *seed, epochs: *epochs, activeShare: *active, turnBatch: *turns,
			holdOut: 0.3, activeBatch: 16, tuneFrames: 30, temporal: *temporal, video: *video, autoBudgets: *auto,
			logLevel: *logLevel, turnEvidence: *turnEvidence}
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		o.policiesGiven = given["policies"]
		if *cfgPath != "" {
			cfg, err := pipeline.LoadConfig(*cfgPath)
			if err != nil {
				return o, err
			}
			sc := cfg.Scheduler
			if !given["period"] {
				o.period = sc.Period
			}
			if !given["profile-share"] {
				o.profileShare = sc.ProfileShare
			}
			if !given["seed"] {
				o.seed = sc.Seed
			}
			if !given["active-share"] {
				o.activeShare = sc.ActiveShare
			}
			if !given["turn-batch"] {
				o.turnBatch = sc.TurnBatch
			}
			if !given["temporal"] {
				o.temporal = sc.TemporalLinks
			}
			if !given["turn-evidence"] {
				o.turnEvidence = sc.TurnEvidence
			}
			o.holdOut, o.activeBatch, o.tuneFrames = sc.HoldOut, sc.ActiveBatch, sc.TuneFrames
			o.importance = sc.Importance
			o.cascades = &sc.CoE
			o.jellybean = sc.JellyBean
			o.pools = cfg.Pools
		}
		o.cascadesFrom = *cascades
		var problems []error
		if o.trace == "" {
			problems = append(problems, errors.New("--trace TRACE is required"))
		}
		if _, err := zerolog.ParseLevel(o.logLevel); err != nil || o.logLevel == "" {
			problems = append(problems, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel))
		}
		if o.unit != "ms" && o.unit != "memory" {
			problems = append(problems, fmt.Errorf("--unit %q: want ms or memory", o.unit))
		}
		for _, b := range splitList(*budgets) {
			if num, den, ok := strings.Cut(b, "/"); ok {
				n, err1 := strconv.ParseFloat(num, 64)
				d, err2 := strconv.ParseFloat(den, 64)
				if err1 != nil || err2 != nil || n <= 0 || d <= 0 {
					problems = append(problems, fmt.Errorf("--budgets %q: want a share of the total cost such as 1/3", b))
					continue
				}
				o.shares = append(o.shares, n/d)
				continue
			}
			if pct, ok := strings.CutSuffix(b, "%"); ok {
				v, err := strconv.ParseFloat(pct, 64)
				if err != nil || v <= 0 {
					problems = append(problems, fmt.Errorf("--budgets %q: want a positive share such as 33%%", b))
					continue
				}
				o.shares = append(o.shares, v/100)
				continue
			}
			parsed, err := scheduler.ParseBudget(strings.ReplaceAll(b, "+", ","))
			if err != nil {
				problems = append(problems, err)
				continue
			}
			o.budgets = append(o.budgets, parsed)
		}
		for _, p := range splitList(*policies) {
			if !slices.Contains(benchPolicies(), p) {
				problems = append(problems, fmt.Errorf("unknown policy %q (known: %s)", p, strings.Join(benchPolicies(), ", ")))
			}
			o.policies = append(o.policies, p)
		}
		if len(o.policies) == 0 {
			problems = append(problems, errors.New("--policies: none given"))
		}
		for _, m := range splitList(*modes) {
			mode, err := scheduler.ParseTimeMode(m)
			if err != nil {
				problems = append(problems, fmt.Errorf("--budget-mode: %w", err))
				continue
			}
			if !slices.Contains(o.modes, mode) {
				o.modes = append(o.modes, mode)
			}
		}
		if len(o.modes) == 0 {
			problems = append(problems, errors.New("--budget-mode: none given (mean, cap)"))
		}
		for _, s := range splitList(*sampling) {
			stride, err := parseSampling(s)
			if err != nil {
				problems = append(problems, err)
				continue
			}
			o.samplings = append(o.samplings, stride)
		}
		if o.activeShare < 0 || o.activeShare > 0.5 {
			problems = append(problems, fmt.Errorf("--active-share %g: want 0 to 0.5", o.activeShare))
		}
		if o.epochs <= 0 {
			problems = append(problems, fmt.Errorf("--epochs %d: want at least 1", o.epochs))
		}
		if o.period < time.Second || o.profileShare <= 0 || o.profileShare > 1 || o.trainShare <= 0 || o.trainShare >= 1 {
			problems = append(problems, errors.New("--period must be ≥ 1s, --profile-share in (0,1], --train-share in (0,1)"))
		}
		if len(problems) > 0 {
			return o, &exitError{2, errors.Join(problems...)}
		}
		return o, nil
	}
}

func writeBenchTrace(o benchTraceOptions, rows []report.Row) error {
	if err := report.WriteTable(os.Stdout, rows); err != nil {
		return err
	}
	if o.out != "" {
		if err := report.WriteJSON(filepath.Join(o.out, "results.json"), rows); err != nil {
			return err
		}
		paths, err := report.Plot(o.out, rows)
		if err != nil {
			return err
		}
		var md strings.Builder
		if err := report.WriteMarkdown(&md, rows); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.out, "table.md"), []byte(md.String()), 0o644); err != nil {
			return fmt.Errorf("bench: write table.md: %w", err)
		}
		// Each budget's costs under the one cost rule, per sampling.
		var costs strings.Builder
		for _, sampling := range distinct(rows, func(r report.Row) string { return r.Sampling }) {
			var of []report.Row
			for _, r := range rows {
				if r.Sampling == sampling && !r.IsNone() {
					of = append(of, r)
				}
			}
			for _, budget := range distinct(of, func(r report.Row) string { return r.Budget }) {
				fmt.Fprintf(&costs, "\n**%s, %s**\n\n", sampling, budget)
				if err := report.WriteCostMarkdown(&costs, of, budget); err != nil {
					return err
				}
			}
		}
		if err := os.WriteFile(filepath.Join(o.out, "costs.md"), []byte(costs.String()), 0o644); err != nil {
			return fmt.Errorf("bench: write costs.md: %w", err)
		}
		fmt.Fprintf(os.Stderr, "wrote results.json, table.md, costs.md and %d plots to %s\n", len(paths), o.out)
	}
	return nil
}

// distinct lists the values key gives the rows, in order of first
// appearance (the rows' samplings, budgets).
func distinct(rows []report.Row, key func(report.Row) string) []string {
	var out []string
	for _, r := range rows {
		if k := key(r); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// parseSampling reads "native" (stride 1) or "Nfps" (a stride, resolved
// against the trace's frame rate later; kept here as −N).
func parseSampling(s string) (int, error) {
	if s == "native" {
		return 1, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%dfps", &n); err != nil || n <= 0 || fmt.Sprintf("%dfps", n) != s {
		return 0, fmt.Errorf("--sampling %q: want native or Nfps (e.g. 1fps)", s)
	}
	return -n, nil
}

// benchTrace replays the trace through every policy at every budget and
// sampling.
func benchTrace(o benchTraceOptions, log zerolog.Logger, progress io.Writer) ([]report.Row, error) {
	tr, err := replay.Load(o.trace)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	fps := o.fps
	if fps == 0 {
		fps = tr.Header.FPS
	}
	costs := tr.Costs()
	var budgets []scheduler.Budget
	if o.autoBudgets {
		budgets = replay.BudgetPoints(costs, o.unit)
	}
	for _, share := range o.shares {
		if b := replay.BudgetAtShare(costs, o.unit, share); !slices.Contains(budgets, b) {
			budgets = append(budgets, b)
		}
	}
	for _, b := range o.budgets {
		if !slices.Contains(budgets, b) {
			budgets = append(budgets, b)
		}
	}
	if len(budgets) == 0 {
		return nil, errors.New("bench: no budgets (give --budgets, or keep --auto-budgets)")
	}
	video := o.video
	if video == "" && len(tr.Header.Videos) == 1 {
		for _, v := range tr.Header.Videos {
			video = v
		}
	}
	if why := reductoUnavailable(tr, video); why != "" {
		uses := slices.ContainsFunc(o.policies, func(p string) bool { return p == policyReducto || p == policyReductoMLink })
		if uses && o.policiesGiven {
			return nil, fmt.Errorf("bench: reducto: %s", why)
		}
		if uses {
			fmt.Fprintf(progress, "bench: skipping reducto and reducto+mlink: %s\n", why)
			o.policies = slices.DeleteFunc(slices.Clone(o.policies), func(p string) bool { return p == policyReducto || p == policyReductoMLink })
		}
	}
	if o.unit == "memory" {
		// A policy that needs a time budget (frame skipping saves time, not
		// memory) is not defined under a memory budget (mlink validate says
		// so too).
		timed := func(p string) bool {
			info, ok := pipeline.LookupPolicy(pipeline.PolicyName(p))
			return ok && info.Needs == pipeline.NeedsTimeBudget
		}
		if slices.ContainsFunc(o.policies, timed) {
			var names []string
			for _, p := range o.policies {
				if timed(p) {
					names = append(names, p)
				}
			}
			info, _ := pipeline.LookupPolicy(pipeline.PolicyName(names[0]))
			if o.policiesGiven {
				return nil, fmt.Errorf("bench: %s need a time budget (--unit ms)%s", strings.Join(names, " and "), info.NeedsWhy)
			}
			fmt.Fprintf(progress, "bench: skipping %s: under a memory budget they save nothing%s\n", strings.Join(names, " and "), info.NeedsWhy)
			o.policies = slices.DeleteFunc(slices.Clone(o.policies), timed)
		}
	}
	// The policies that predict from the frames themselves (mtl) get the
	// trace's videos decoded once, for every budget.
	var features scheduler.FrameFeatures
	if slices.ContainsFunc(o.policies, needsFrames) {
		table, err := framefeat.ForVideos(tr.Header.Videos, framefeat.DefaultSize)
		switch {
		case err != nil && o.policiesGiven:
			return nil, fmt.Errorf("bench: %w", err)
		case err != nil:
			fmt.Fprintf(progress, "bench: skipping the policies that look at the frames: %v\n", err)
			o.policies = slices.DeleteFunc(slices.Clone(o.policies), needsFrames)
		default:
			features = table.Features
		}
	}
	// The cascades matter only to coe: a config made for another trace
	// (-c with a model zoo, a vtest trace) must not stop the other rows.
	var coe pipeline.CoEConfig
	if slices.Contains(o.policies, string(scheduler.PolicyCoE)) {
		if coe, err = benchCascades(o, tr); err != nil {
			return nil, err
		}
	}
	outputs := videoOutputs(tr)
	var rows []report.Row
	for _, stride := range o.samplings {
		sampling := "native"
		if stride < 0 {
			if fps <= 0 {
				return nil, fmt.Errorf("bench: sampling at %dfps needs the trace's frame rate: give --fps", -stride)
			}
			sampling = fmt.Sprintf("%dfps", -stride)
			stride = max(1, int(fps/float64(-stride)+0.5))
		}
		// One learner per kind of links, each training once for every
		// budget (the profiled frames do not depend on the budget).
		learners := map[bool]scheduler.Learner{}
		for _, temporal := range []bool{false, true} {
			policy := scheduler.PolicyMLink
			if temporal {
				policy = scheduler.PolicyHybrid
			}
			lo := learnerOptions(policy, o.temporal, o.seed, o.epochs)
			learners[temporal] = o.learners.get(o.trace, lo, func() *replay.CachedLearner {
				return replay.NewCachedLearner(scheduler.NewLinkLearner(tr.Header, lo))
			})
		}
		if !o.temporal {
			learners[true] = learners[false] // the same links: train them once
		}
		base := replay.Options{FPS: fps, Stride: stride, TrainShare: o.trainShare, Period: o.period,
			ProfileShare: o.profileShare, ActiveShare: o.activeShare, ActiveBatch: o.activeBatch, TuneFrames: o.tuneFrames, TurnBatch: o.turnBatch, TurnEvidence: o.turnEvidence, HoldOut: o.holdOut,
			Sampling: sampling, Log: log, Importance: o.importance, CoE: coe, JellyBean: o.jellybean, Pools: o.pools, Seed: o.seed}
		sims := &reductoSims{video: video, outputs: outputs, fps: fps, stride: stride}
		modes := o.modes
		if o.unit == "memory" {
			modes = []scheduler.TimeMode{scheduler.TimeMean} // memory is a cap; time is not budgeted
		}
		for mi, mode := range modes {
			for _, policy := range o.policies {
				if policy == benchAll && mi > 0 {
					continue // all ignores budgets: one row per sampling
				}
				start := time.Now()
				n := 0
				for _, b := range budgets {
					if policy == benchAll && n > 0 {
						break
					}
					opts := base
					opts.Learner = learners[usesTemporalLinks(policy)]
					if needsFrames(policy) {
						opts.Features = features
					}
					if policy != benchAll {
						opts.Budget = b // all ignores budgets; its row has none
						if opts.Budget.MS > 0 {
							opts.Budget.Mode = mode
						}
					}
					got, err := benchOne(opts, policy, tr, sims)
					if err != nil {
						return nil, fmt.Errorf("bench %s at %s (%s, %s): %w", policy, b, sampling, mode, err)
					}
					rows = append(rows, got...)
					for _, r := range got {
						printCascades(progress, r)
					}
					n++
				}
				label := sampling
				if o.unit != "memory" && policy != benchAll {
					label += ", " + string(mode)
				}
				fmt.Fprintf(progress, "bench: %s (%s): %d budgets in %s\n", policy, label, n, time.Since(start).Round(time.Millisecond))
			}
		}
	}
	return rows, nil
}

// benchOne replays one policy at one budget.
func benchOne(opts replay.Options, policy string, tr *replay.Trace, sims *reductoSims) ([]report.Row, error) {
	switch {
	case policy == policyReducto:
		// Every model on the frames Reducto sends; its profiled segments
		// (sent whole) are its evidence.
		send, profiled, err := sims.send(reductoTarget)
		if err != nil {
			return nil, err
		}
		opts.Policy, opts.Name, opts.Send, opts.FilterProfiles = benchAll, policyReducto, send, profiled
	case policy == policyReductoMLink:
		send, profiled, err := sims.send(reductoTarget)
		if err != nil {
			return nil, err
		}
		opts.Policy, opts.Name, opts.Send, opts.FilterProfiles = string(scheduler.PolicyMLink), policyReductoMLink, send, profiled
	default:
		opts.Policy = policy
	}
	row, err := replay.Run(tr, opts)
	if err != nil {
		return nil, err
	}
	return []report.Row{row}, nil
}

// usesTemporalLinks: the bench row's policy may use temporal links (the
// learner that trains them too).
func usesTemporalLinks(policy string) bool {
	info, _ := pipeline.LookupPolicy(pipeline.PolicyName(policy))
	return info.TemporalLinks
}

// needsFrames: the policy predicts from the frames themselves (the
// replay hands it the decoded frames' features).
func needsFrames(policy string) bool {
	spec, _ := scheduler.LookupPolicy(scheduler.PolicyName(policy))
	return spec.FrameFeatures
}

// reductoUnavailable says why Reducto cannot replay the trace ("" when
// it can): it needs the one camera's video to compute its features.
func reductoUnavailable(tr *replay.Trace, video string) string {
	switch {
	case len(tr.Header.Cameras) > 1:
		return "it replays one camera's video and the trace has several cameras"
	case video == "":
		return "the trace names no video (give --video)"
	}
	if _, err := os.Stat(video); err != nil {
		return fmt.Sprintf("video %s: %v", video, err)
	}
	return ""
}

// reductoSims runs Reducto's live filter over the trace's video once per
// accuracy target and remembers which frames it sends.
type reductoSims struct {
	video   string
	outputs []map[string]*pipeline.Output // per video frame (videoOutputs)
	fps     float64
	stride  int
	byTgt   map[float64][2]func(camera string, seq uint64) bool
}

// videoOutputs lays a one-camera trace's outputs out by video frame: record
// seq s is frame s−1 (a frame the trace lacks has none).
func videoOutputs(tr *replay.Trace) []map[string]*pipeline.Output {
	var outputs []map[string]*pipeline.Output
	for _, rec := range tr.Records {
		i := int(rec.Seq) - 1
		for len(outputs) <= i {
			outputs = append(outputs, map[string]*pipeline.Output{})
		}
		if i >= 0 {
			outputs[i] = rec.Outputs
		}
	}
	return outputs
}

// send returns, for a target, whether Reducto sends each frame and whether
// the frame was in a segment it profiled (sent whole to learn thresholds).
func (r *reductoSims) send(target float64) (send, profiled func(string, uint64) bool, err error) {
	if f, ok := r.byTgt[target]; ok {
		return f[0], f[1], nil
	}
	var opts reducto.SimulateOptions
	opts.FPS, opts.Stride = r.fps, r.stride
	opts.Filter.Selector.Target = target
	sim, err := reducto.SimulateVideo(r.video, r.outputs, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("reducto on %s: %w", r.video, err)
	}
	sent, prof := map[uint64]bool{}, map[uint64]bool{}
	for _, f := range sim.Frames {
		sent[uint64(f.Frame)+1] = f.Send
		prof[uint64(f.Frame)+1] = f.Profiling
	}
	send = func(_ string, seq uint64) bool {
		s, known := sent[seq]
		return s || !known
	}
	profiled = func(_ string, seq uint64) bool { return prof[seq] }
	if r.byTgt == nil {
		r.byTgt = map[float64][2]func(string, uint64) bool{}
	}
	r.byTgt[target] = [2]func(string, uint64) bool{send, profiled}
	return send, profiled, nil
}

// benchCascades are policy coe's cascades for the trace: from --cascades,
// else -c's config, else the trace's profiling config beside it (X.yaml
// for X.trace.gz) when there is one; none: coe runs as skip-per-model.
func benchCascades(o benchTraceOptions, tr *replay.Trace) (pipeline.CoEConfig, error) {
	var cfg pipeline.CoEConfig
	from := o.cascadesFrom
	switch {
	case from != "":
	case o.cascades != nil:
		cfg = *o.cascades
	default:
		beside := strings.TrimSuffix(strings.TrimSuffix(o.trace, ".gz"), ".trace") + ".yaml"
		if _, err := os.Stat(beside); err == nil {
			from = beside
		}
	}
	pools := o.pools
	if from != "" {
		var err error
		if cfg, pools, err = pipeline.ReadCoEConfig(from); err != nil {
			return cfg, fmt.Errorf("bench: %w", err)
		}
	}
	if err := cfg.Validate(tr.Models(), pools); err != nil {
		return cfg, fmt.Errorf("bench: the cascades of %s do not fit the trace's models: %w", from, err)
	}
	return cfg, nil
}

// printCascades says how a coe row's cascades routed the frames: the
// deferral rate of each tier that defers.
func printCascades(w io.Writer, r report.Row) {
	for _, c := range r.Cascades {
		var tiers []string
		for t := range c.Reached {
			if t+1 < len(c.Reached) {
				tiers = append(tiers, fmt.Sprintf("tier %d %v θ=%.2f deferred %.0f%%", t+1, c.Tiers[t], c.Thetas[t], 100*c.Deferred(t)))
			}
		}
		if len(tiers) == 0 {
			tiers = []string{"one tier: " + fmt.Sprint(c.Tiers)}
		}
		fmt.Fprintf(w, "bench: %s at %s: cascade %s: %d visits; %s\n", r.Policy, r.Budget, c.Task, c.Visits, strings.Join(tiers, "; "))
	}
}
