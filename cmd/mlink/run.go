package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/ingest"
	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/stages"
	"github.com/mlink-project/mlink/stages/backends"
	"github.com/mlink-project/mlink/stages/reducto"
)

// runOptions are the flags of `mlink run` (and of the benchmark, which runs
// the same pipeline).
type runOptions struct {
	maxFrames int
	roles     string
	status    string
	// opener loads model backends (nil: the configured backends); the
	// benchmark swaps in no-op models to measure the pipeline alone.
	opener stages.Opener
	// onResult sees every result of the run (mlink profile records them).
	onResult func(*pipeline.Result)
}

// runFlags builds the flags of mlink run, bound to the options and the
// config flags they set.
func runFlags() (*flag.FlagSet, *runOptions, *configFlags) {
	fs := newFlagSet("run")
	o, cf := &runOptions{}, &configFlags{}
	cf.register(fs, true)
	fs.IntVar(&o.maxFrames, "max-frames", 0, "stop each camera after N published frames and exit once their results are out")
	fs.StringVar(&o.roles, "role", "all", "roles to run in this process: all, or a comma list of "+strings.Join(allRoles, ","))
	fs.StringVar(&o.status, "status", "auto", "live status on stdout: auto (in a terminal), on, off")
	return fs, o, cf
}

func cmdRun(args []string) error {
	fs, o, cf := runFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, log, ctx, stop, err := cf.start()
	if err != nil {
		return err
	}
	defer stop()

	a, err := startApp(ctx, cfg, *o, log)
	if err != nil {
		return err
	}
	showStatus := o.status == "on" || (o.status == "auto" && isatty.IsTerminal(os.Stdout.Fd()))
	var statusDone chan struct{}
	statusCtx, stopStatus := context.WithCancel(ctx)
	if showStatus {
		statusDone = make(chan struct{})
		go func() {
			defer close(statusDone)
			a.printStatus(statusCtx, os.Stdout)
		}()
	}
	err = a.wait(ctx)
	stopStatus()
	if statusDone != nil {
		<-statusDone
	}
	a.shutdown()
	if err == nil {
		a.printSummary(os.Stderr)
	}
	return err
}

// app is one mlink process: the stages of its roles and the bus they share.
type app struct {
	cfg   *pipeline.Config
	opts  runOptions
	log   zerolog.Logger
	roles map[string]bool

	srv   *pipeline.EmbeddedServer
	conns []*nats.Conn

	cameras []*ingest.Camera
	workers []*stages.ModelWorker
	// frames shares decoded frames between this process's workers.
	frames    *stages.FrameCache
	merger    *stages.Merger
	sched     *scheduler.Scheduler
	reducto   *reducto.FrameFilter // nil unless reducto.enabled
	predictor *stages.LinkPredictor
	linkStore *stages.LinkStore
	// trainer learns links from the results stream (trainer role, with
	// scheduler.training remote).
	trainer *scheduler.Trainer
	// control is the budget-aware policy (nil for policy all).
	control *scheduler.Controller
	// skip is the frame-skipping policy (policies skip, skip-per-model).
	skip    *scheduler.SkipPolicy
	costs   *scheduler.CostModel
	results *resultTracker
	// failedModels are the models that could not be loaded: the pipeline
	// runs without them rather than not at all.
	failedModels map[string]error

	// Each group stops separately, in order: ingest, scheduler, workers,
	// merger (see shutdown).
	ingestCancel, schedCancel, trainerCancel, workerCancel, predictorCancel, mergerCancel context.CancelFunc
	ingestWG, schedWG, trainerWG, workerWG, predictorWG, mergerWG                         sync.WaitGroup
	camerasDone                                                                           chan struct{}

	errMu sync.Mutex
	errs  []error
}

var allRoles = []string{"ingest", "scheduler", "trainer", "worker", "predictor", "merger"}

func parseRoles(s string) (map[string]bool, error) {
	roles := map[string]bool{}
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		switch r {
		case "all":
			for _, x := range allRoles {
				roles[x] = true
			}
		case "ingest", "scheduler", "trainer", "worker", "predictor", "merger":
			roles[r] = true
		default:
			return nil, fmt.Errorf("--role: %q is not one of all, %s", r, strings.Join(allRoles, ", "))
		}
	}
	return roles, nil
}

// checkRoles parses --role against the config: a trainer role on its own
// needs links trained remotely. Checked before anything starts, and by
// the compose test on every service.
func checkRoles(cfg *pipeline.Config, s string) (map[string]bool, error) {
	roles, err := parseRoles(s)
	if err != nil {
		return nil, &exitError{2, err}
	}
	remoteTraining := usesLinks(cfg.Scheduler.Policy) && cfg.Scheduler.Training == pipeline.TrainingRemote
	if roles["trainer"] && !remoteTraining && !slices.Contains(strings.Split(s, ","), "all") {
		return nil, &exitError{2, errors.New("--role trainer: links are trained by the scheduler here (set scheduler.training: remote, with policy mlink or mlink-hybrid)")}
	}
	return roles, nil
}

func startApp(ctx context.Context, cfg *pipeline.Config, o runOptions, log zerolog.Logger) (a *app, err error) {
	roles, err := checkRoles(cfg, o.roles)
	if err != nil {
		return nil, err
	}
	a = &app{cfg: cfg, opts: o, log: log, roles: roles, camerasDone: make(chan struct{}), failedModels: map[string]error{}}
	defer func() {
		if err != nil {
			a.shutdown()
		}
	}()
	if cfg.NATS.URL == "" {
		a.srv, err = pipeline.StartEmbedded(cfg.NATS.Listen, cfg.Path(cfg.NATS.DataDir), cfg.NATS.MaxPayload)
		if err != nil {
			return a, err
		}
		log.Info().Str("url", a.srv.ClientURL()).Msg("embedded NATS server started")
	}
	for _, w := range cfg.NATS.Warnings() {
		log.Warn().Msg(w)
	}
	connect := func(name string) (*nats.Conn, error) {
		// Names are "role" or "role-detail": the role is the connection's
		// user and permissions on the bus.
		role := pipeline.Role(strings.SplitN(name, "-", 2)[0])
		var nc *nats.Conn
		var err error
		if a.srv != nil {
			nc, err = a.srv.ConnectAs(role, "mlink-"+name)
		} else {
			nc, err = pipeline.ConnectRole(&cfg.NATS, role, "mlink-"+name, 10*time.Second)
		}
		if err == nil {
			a.conns = append(a.conns, nc)
		}
		return nc, err
	}

	nc, err := connect("control")
	if err != nil {
		return a, err
	}
	if err := pipeline.EnsureResultsStream(ctx, nc, &cfg.NATS); err != nil {
		return a, err
	}
	if a.results, err = trackResults(nc, o.onResult); err != nil {
		return a, err
	}

	// Start downstream first so nothing published is missed: merger,
	// workers, scheduler, then ingest.
	if roles["merger"] {
		mc, err := connect("merger")
		if err != nil {
			return a, err
		}
		a.merger = stages.NewMerger(mc, cfg.Merger, log)
		var mctx context.Context
		mctx, a.mergerCancel = context.WithCancel(context.Background())
		a.goRun(&a.mergerWG, "merger", func() error { return a.merger.Run(mctx) })
	}
	if roles["worker"] {
		wctx, cancel := context.WithCancel(context.Background())
		a.workerCancel = cancel
		opener := o.opener
		if opener == nil {
			opener = backends.Opener(cfg, log)
		}
		// Room for every frame the cameras may have in flight, and slack for
		// workers that lag behind.
		a.frames = stages.NewFrameCache(max(8, 4*len(cfg.Cameras)*cfg.Ingest.MaxInFlight))
		for i := range cfg.Models {
			spec := &cfg.Models[i]
			wc, err := connect("worker-" + spec.Name)
			if err != nil {
				return a, err
			}
			start := time.Now()
			var w *stages.ModelWorker
			load, err := scheduler.MeasureLoad(a.gpuProbe(), int64(spec.Memory), func() error {
				var err error
				w, err = stages.NewModelWorker(wc, spec, opener, log)
				return err
			})
			if err != nil {
				// A corrupt model loses that model, not the pipeline.
				log.Error().Err(err).Str("model", spec.Name).Msg("model disabled: it could not be loaded")
				a.failedModels[spec.Name] = err
				continue
			}
			w.Stats().MemoryBytes.Store(load.Memory())
			w.ShareFrames(a.frames)
			log.Info().Str("model", spec.Name).Str("backend", spec.Backend).Dur("load", time.Since(start)).
				Int64("memory_bytes", load.Memory()).Bool("gpu_measured", load.GPUMeasured).Msg("model loaded")
			a.workers = append(a.workers, w)
			a.goRun(&a.workerWG, "worker "+spec.Name, func() error { return w.Run(wctx) })
		}
	}
	remoteTraining := usesLinks(cfg.Scheduler.Policy) && cfg.Scheduler.Training == pipeline.TrainingRemote
	if usesLinks(cfg.Scheduler.Policy) && (roles["predictor"] || roles["scheduler"] || roles["trainer"]) {
		if a.linkStore, err = stages.OpenLinkStore(ctx, nc, log); err != nil {
			return a, err
		}
	}
	if roles["predictor"] && usesLinks(cfg.Scheduler.Policy) {
		pc, err := connect("predictor")
		if err != nil {
			return a, err
		}
		a.predictor = stages.NewLinkPredictor(pc, log)
		pctx, cancel := context.WithCancel(context.Background())
		a.predictorCancel = cancel
		a.goRun(&a.predictorWG, "predictor", func() error { return a.predictor.Run(pctx) })
		a.goRun(&a.predictorWG, "predictor links", func() error {
			return a.linkStore.Follow(pctx, func(set *links.Set) { a.predictor.SetPredictor(set) })
		})
	}
	if roles["trainer"] && remoteTraining {
		tc, err := connect("trainer")
		if err != nil {
			return a, err
		}
		if err := a.startTrainer(ctx, tc); err != nil {
			return a, err
		}
	}
	if roles["scheduler"] {
		sc, err := connect("scheduler")
		if err != nil {
			return a, err
		}
		var models []string
		for _, name := range cfg.ModelNames() {
			if a.failedModels[name] == nil {
				models = append(models, name)
			}
		}
		if len(models) == 0 {
			return a, errors.New("no model could be loaded (see the errors above)")
		}
		policy, err := a.buildPolicy(models)
		if err != nil {
			return a, err
		}
		a.sched = scheduler.New(sc, policy, log)
		if cfg.Scheduler.InLineTraining {
			a.sched.ObserveInLine()
		}
		if cfg.Reducto.Enabled {
			if err := a.startReducto(); err != nil {
				return a, err
			}
		}
		sctx, cancel := context.WithCancel(context.Background())
		a.schedCancel = cancel
		filter := a.reducto
		a.goRun(&a.schedWG, "scheduler", func() error {
			if filter != nil {
				// Closed once routing has stopped: nothing decides any more.
				defer filter.Close()
			}
			return a.sched.Run(sctx)
		})
		if remoteTraining && a.control != nil {
			// Links come from the trainer role, through the link store.
			a.goRun(&a.schedWG, "scheduler links", func() error {
				return a.linkStore.Follow(sctx, func(set *links.Set) { a.installStoredLinks(set, models) })
			})
		}
	}
	// Subscriptions of the stages above must be live before frames flow.
	var ready []<-chan struct{}
	if a.merger != nil {
		ready = append(ready, a.merger.Ready())
	}
	if a.predictor != nil {
		ready = append(ready, a.predictor.Ready())
	}
	if a.sched != nil {
		ready = append(ready, a.sched.Ready())
	}
	for _, w := range a.workers {
		ready = append(ready, w.Ready())
	}
	for _, r := range ready {
		select {
		case <-r:
		case <-time.After(10 * time.Second):
			return a, errors.Join(errors.New("stages did not subscribe within 10s"), a.firstError())
		}
	}
	if roles["ingest"] {
		ic, err := connect("ingest")
		if err != nil {
			return a, err
		}
		ictx, cancel := context.WithCancel(ctx)
		a.ingestCancel = cancel
		for _, cc := range cfg.Cameras {
			cam, err := ingest.NewCamera(cc, cfg.Ingest, ic, log)
			if err != nil {
				return a, err
			}
			a.cameras = append(a.cameras, cam)
			a.goRun(&a.ingestWG, "camera "+cc.ID, func() error { return cam.Run(ictx, o.maxFrames) })
		}
	}
	go func() {
		a.ingestWG.Wait()
		close(a.camerasDone)
	}()
	return a, nil
}

// startReducto puts Reducto's frame filter in front of the policy: it
// composes with every policy (filter first, then the policy's plan).
func (a *app) startReducto() error {
	opts := reducto.ConfigOptions(a.cfg.Reducto)
	log := pipeline.Component(a.log, "reducto")
	opts.OnProfile = func(camera string, segment int64, p reducto.Profile) {
		log.Debug().Str("camera", camera).Int64("segment", segment).Float64("threshold", p.Threshold).
			Float64("accuracy", p.Accuracy).Float64("sent", p.Sent).Msg("segment profiled")
	}
	f, err := reducto.NewFrameFilter(opts)
	if err != nil {
		return fmt.Errorf("reducto: %w", err)
	}
	a.reducto = f
	a.sched.SetFilter(f)
	log.Info().Str("feature", opts.Feature).Float64("target_accuracy", opts.Selector.Target).
		Dur("segment", opts.Segment).Msg("frame filter on")
	return nil
}

func (a *app) goRun(wg *sync.WaitGroup, name string, run func() error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := run(); err != nil {
			a.log.Error().Err(err).Str("stage", name).Msg("stage failed")
			a.errMu.Lock()
			a.errs = append(a.errs, fmt.Errorf("%s: %w", name, err))
			a.errMu.Unlock()
		}
	}()
}

// wait returns when the process should stop: on a signal, or, when every
// camera has ended (--max-frames or the end of a file), once their frames'
// results are out.
func (a *app) wait(ctx context.Context) error {
	if !a.roles["ingest"] {
		<-ctx.Done()
		return nil
	}
	select {
	case <-ctx.Done():
		a.log.Info().Msg("stopping")
		return nil
	case <-a.camerasDone:
	}
	if a.roles["merger"] {
		// Wait for the results of every published frame; the merger emits
		// each planned frame by its deadline, so this ends.
		limit := time.After(a.cfg.Merger.Deadline + 5*time.Second)
		for !a.resultsCaughtUp() {
			select {
			case <-ctx.Done():
				return nil
			case <-limit:
				a.log.Warn().Msg("some results did not arrive before the merger deadline")
				return a.firstError()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return a.firstError()
}

func (a *app) resultsCaughtUp() bool {
	for _, cam := range a.cameras {
		st := cam.Stats()
		if uint64(a.results.count(cam.ID())) < st.Published {
			return false
		}
	}
	return true
}

func (a *app) firstError() error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return errors.Join(a.errs...)
}

// shutdown stops the stages in dependency order: ingest first (no new
// frames), then the scheduler, then workers (which drain their queues), then
// the merger (which emits what is pending as partial), then the bus.
func (a *app) shutdown() {
	for _, step := range []struct {
		cancel context.CancelFunc
		wg     *sync.WaitGroup
	}{
		{a.ingestCancel, &a.ingestWG},
		{a.schedCancel, &a.schedWG},
		{a.trainerCancel, &a.trainerWG},
		{a.workerCancel, &a.workerWG},
		{a.predictorCancel, &a.predictorWG},
		{a.mergerCancel, &a.mergerWG},
	} {
		if step.cancel != nil {
			step.cancel()
		}
		step.wg.Wait()
	}
	if a.frames != nil {
		a.frames.Close() // workers have stopped
	}
	if a.results != nil {
		a.results.close()
	}
	for i := len(a.conns) - 1; i >= 0; i-- {
		if err := a.conns[i].Drain(); err != nil {
			a.conns[i].Close()
		}
	}
	for _, c := range a.conns {
		for !c.IsClosed() {
			time.Sleep(5 * time.Millisecond)
		}
	}
	a.conns = nil
	if a.srv != nil {
		a.srv.Shutdown()
		a.srv = nil
	}
}
