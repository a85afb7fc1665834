package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/ingest"
	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/dashboard"
	"github.com/mlink-project/mlink/pipeline/engine"
	"github.com/mlink-project/mlink/pipeline/httpd"
	"github.com/mlink-project/mlink/pipeline/metrics"
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
	// pool is the worker pool this process's model workers join ("":
	// the unpooled workers).
	pool   string
	status string
	// stopTimeout bounds a graceful stop (cmdRun only).
	stopTimeout time.Duration
	// loadConfig re-reads the config file with the command line's flags
	// applied (reload); nil: nothing to reload.
	loadConfig func() (*pipeline.Config, error)
	// httpFlag is --http as given ("" when not given: http.listen).
	httpFlag string
	// httpListen is where the HTTP side listens ("" or off: none); cmdRun
	// resolves it from --http and http.listen, tests leave it off.
	httpListen string
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
	fs.StringVar(&o.pool, "pool", "", "worker pool this process's model workers join (a name under pools; default: none, the unpooled workers that take every model's frames not sent to a pool)")
	fs.StringVar(&o.status, "status", "auto", "live status on stdout: auto (in a terminal), on, off")
	fs.StringVar(&o.httpFlag, "http", "", "HTTP side (/healthz, /readyz, /metrics, POST /-/reload, the dashboard at /): host:port, port 0 for a free one, or off (overrides http.listen; default "+pipeline.DefaultHTTPListen+")")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 30*time.Second, "on SIGINT/SIGTERM, stop gracefully for most of this, then force the exit")
	return fs, o, cf
}

func cmdRun(args []string) error {
	fs, o, cf := runFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	log, err := pipeline.NewLogger(cfg.Log, os.Stderr)
	if err != nil {
		return err
	}
	if o.stopTimeout <= 0 {
		return &exitError{2, fmt.Errorf("--stop-timeout %s: must be positive", o.stopTimeout)}
	}
	o.loadConfig = cf.load
	o.httpListen = cfg.HTTP.Listen
	if o.httpFlag != "" {
		if err := pipeline.CheckHTTPListen(o.httpFlag); err != nil {
			return &exitError{2, fmt.Errorf("--http: %w", err)}
		}
		o.httpListen = o.httpFlag
	}
	// Signals are taken before anything starts, so that one arriving during
	// start-up is not the default (death by signal, nothing flushed).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	waitErr := make(chan error, 1)
	go func() { waitErr <- a.wait(ctx) }()
	var runErr error
wait:
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				a.log.Info().Msg("SIGHUP: reloading the config")
				rctx, rcancel := context.WithTimeout(ctx, time.Minute)
				a.reload(rctx) // logs what it applied or why not
				rcancel()
				continue
			}
			a.log.Info().Str("signal", s.String()).Dur("deadline", o.stopTimeout).Msg("stopping gracefully (a second signal forces)")
			cancel()
			<-waitErr
			break wait
		case runErr = <-waitErr:
			break wait
		}
	}
	stopStatus()
	if statusDone != nil {
		<-statusDone
	}
	if err := a.stopWithin(o.stopTimeout, sigs); err != nil {
		return err
	}
	if runErr == nil {
		if runErr = a.group.Err(); runErr == nil {
			a.printSummary(os.Stderr)
		}
	}
	return runErr
}

// stopWithin stops the process gracefully for most of the deadline and
// forces the exit after it, or at once on a second SIGINT/SIGTERM. The
// last tenth is left for the connections to drain and the embedded server
// to shut down.
func (a *app) stopWithin(deadline time.Duration, sigs <-chan os.Signal) error {
	ctx, cancel := context.WithTimeout(context.Background(), deadline*9/10)
	defer cancel()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGHUP {
					continue // no reload while stopping
				}
				a.log.Warn().Str("signal", s.String()).Msg("second signal: forcing the exit")
				cancel()
				return
			case <-stopped:
				return
			}
		}
	}()
	start := time.Now()
	if err := a.stop(ctx); err != nil {
		a.log.Error().Err(err).Msg("not stopped gracefully")
		return &exitError{1, err}
	}
	a.log.Info().Dur("took", time.Since(start)).Msg("stopped")
	return nil
}

// app is one mlink process: the stages of its roles, the run group that
// owns them, and the bus they share.
type app struct {
	cfg *pipeline.Config
	// subjects are the deployment's (nats.subject_prefix), fixed for the
	// process: a reload that changes the prefix is refused.
	subjects pipeline.Subjects
	opts     runOptions
	log      zerolog.Logger
	roles    map[string]bool

	srv *pipeline.EmbeddedServer
	// connMu guards conns, read by /readyz and /metrics while start-up
	// still opens connections.
	connMu sync.Mutex
	conns  []*nats.Conn

	// group runs every stage and stops them in stopOrder.
	group *engine.Group
	// http is the HTTP side (nil when off); started is set once every
	// stage has started (until then /readyz says so).
	http    *httpd.Server
	started atomic.Bool
	// dash is the dashboard's hub (nil when off); a reload gives it the
	// new cameras.
	dash *dashboard.Hub
	// metrics is the process's registry; resultMetrics count the results
	// (merger role only).
	metrics       *metrics.Registry
	resultMetrics *resultMetrics
	// liveBudget is the budget in force once a reload changed it.
	liveBudget atomic.Pointer[pipeline.BudgetConfig]
	reloads    *reloadState
	// mu guards cfg and the policy's parts (sched, control, skip, reducto)
	// that a reload replaces while the status, /metrics and the link
	// follower read them.
	mu sync.RWMutex
	// The scheduler stage's connection, models and handle, to restart it
	// with a new policy on reload.
	schedConn   *nats.Conn
	schedModels []string
	schedHandle *engine.Handle
	// reloadMu serialises reloads (SIGHUP and POST /-/reload).
	reloadMu sync.Mutex

	// camMu guards cameras and camHandles: a reload adds and removes
	// cameras while the status, metrics and health read them.
	camMu      sync.Mutex
	cameras    []*ingest.Camera
	camHandles map[string]*engine.Handle
	ingestConn *nats.Conn

	// workersMu guards workers and failedModels: a reload adds, swaps and
	// removes model workers while the status, metrics and health read them.
	workersMu sync.Mutex
	workers   []*workerRun
	// opener opens a model's backend (kept for a reload's new workers).
	opener stages.Opener
	// frames shares decoded frames between this process's workers.
	frames *stages.FrameCache
	merger *stages.Merger
	sched  *scheduler.Scheduler
	// schedRejects counts the scheduler's refusals across its restarts.
	schedRejects *pipeline.Rejects
	reducto      *reducto.FrameFilter // nil unless reducto.enabled
	predictor    *stages.LinkPredictor
	linkStore    *stages.LinkStore[*links.Set]
	// trainer learns links from the results stream (trainer role, with
	// scheduler.training remote).
	trainer *scheduler.Trainer
	// control runs the configured policy (nil without the scheduler role).
	control *scheduler.Controller
	costs   *scheduler.CostModel
	results *resultTracker
	// failedModels are the models that could not be loaded at start: the
	// pipeline runs without them rather than not at all.
	failedModels map[string]error
}

// The tiers of the run group, in the order they stop: ingest first (no new
// frames), then the scheduler and the trainer, then workers (which drain
// their queues), then the predictors and the merger (which emits what is
// pending as partial), then the HTTP side (so /metrics and /readyz answer
// while the rest stops), then the watch on the bus connections. They start
// in the reverse order, each stage ready before the next starts.
const (
	tierIngest    = "ingest"
	tierScheduler = "scheduler"
	tierTrainer   = "trainer"
	tierWorker    = "worker"
	tierPredictor = "predictor"
	tierMerger    = "merger"
	tierHTTP      = "http"
	tierBus       = "bus"
)

var stopOrder = []string{tierIngest, tierScheduler, tierTrainer, tierWorker, tierPredictor, tierMerger, tierHTTP, tierBus}

// goStage starts a stage in the run group; a failure is logged once here,
// where the stage's name is known, and stops the process through the group.
func (a *app) goStage(tier, name string, ready <-chan struct{}, finite bool, run func(ctx context.Context) error) (*engine.Handle, error) {
	return a.group.Go(tier, engine.Func{StageName: name, ReadyChan: ready, RunFunc: func(ctx context.Context) error {
		err := run(ctx)
		if err != nil {
			a.log.Error().Err(err).Str("stage", name).Msg("stage failed: stopping the process")
		}
		return err
	}}, engine.Options{Finite: finite})
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

// checkPool: --pool names a declared pool, and the process runs workers.
func checkPool(cfg *pipeline.Config, roles map[string]bool, pool string) error {
	if pool == "" {
		return nil
	}
	if _, ok := cfg.Pool(pool); !ok {
		declared := "none are: add it to the config's pools"
		if names := cfg.PoolNames(); len(names) > 0 {
			declared = "declared: " + strings.Join(names, ", ")
		}
		return &exitError{2, fmt.Errorf("--pool %s: not a pool of the config (%s)", pool, declared)}
	}
	if !roles["worker"] {
		return &exitError{2, fmt.Errorf("--pool %s: only model workers join a pool; add the worker role (--role worker)", pool)}
	}
	return nil
}

func startApp(ctx context.Context, cfg *pipeline.Config, o runOptions, log zerolog.Logger) (a *app, err error) {
	roles, err := checkRoles(cfg, o.roles)
	if err != nil {
		return nil, err
	}
	if err := checkPool(cfg, roles, o.pool); err != nil {
		return nil, err
	}
	a = &app{cfg: cfg, subjects: pipeline.SubjectsFor(&cfg.NATS), opts: o, log: log, roles: roles, failedModels: map[string]error{},
		group: engine.New(stopOrder...), camHandles: map[string]*engine.Handle{},
		metrics: metrics.New(), reloads: newReloadState()}
	budget := cfg.Budget
	a.liveBudget.Store(&budget)
	onResult := o.onResult
	if roles["merger"] {
		a.resultMetrics = newResultMetrics()
		onResult = func(r *pipeline.Result) {
			a.resultMetrics.observe(r)
			if o.onResult != nil {
				o.onResult(r)
			}
		}
	}
	defer func() {
		if err != nil {
			a.shutdown()
		}
	}()
	if cfg.NATS.URL == "" {
		a.srv, err = pipeline.StartEmbedded(cfg.NATS.Listen, cfg.Path(cfg.NATS.DataDir), cfg.NATS.MaxPayload, pipeline.SubjectsFor(&cfg.NATS))
		if err != nil {
			return a, err
		}
		log.Info().Str("url", a.srv.ClientURL()).Msg("embedded NATS server started")
	}
	for _, w := range cfg.NATS.Warnings() {
		log.Warn().Msg(w)
	}
	connect := a.connect

	nc, err := connect("control")
	if err != nil {
		return a, err
	}
	if err := pipeline.EnsureResultsStream(ctx, nc, &cfg.NATS); err != nil {
		return a, err
	}
	if a.results, err = trackResults(nc, a.subjects, onResult); err != nil {
		return a, err
	}
	if err := a.startHTTP(nc); err != nil {
		return a, err
	}

	// Start downstream first so nothing published is missed: merger,
	// workers, scheduler, then ingest. The group waits for each stage's
	// subscriptions before the next starts.
	if roles["merger"] {
		mc, err := connect("merger")
		if err != nil {
			return a, err
		}
		a.merger = stages.NewMerger(mc, cfg.Merger, log)
		a.merger.UseSubjects(a.subjects)
		a.merger.OnlyCameras(cfg.Cameras)
		// The stream exists (EnsureResultsStream above): results are
		// stored even across an election or an outage. A stop waits for
		// the last acknowledgements for a part of its deadline.
		if err := a.merger.AckResults(resultsDrain(o.stopTimeout)); err != nil {
			return a, err
		}
		if _, err := a.goStage(tierMerger, "merger", a.merger.Ready(), false, a.merger.Run); err != nil {
			return a, err
		}
	}
	if roles["worker"] {
		opener := o.opener
		if opener == nil {
			opener = backends.Opener(cfg, log)
		}
		a.opener = opener
		// Room for every frame the cameras may have in flight, and slack for
		// workers that lag behind.
		a.frames = stages.NewFrameCache(max(8, 4*len(cfg.Cameras)*cfg.Ingest.MaxInFlight))
		for i := range cfg.Models {
			wr, err := a.loadWorker(&cfg.Models[i])
			if err != nil {
				// A corrupt model loses that model, not the pipeline.
				log.Error().Err(err).Str("model", cfg.Models[i].Name).Msg("model disabled: it could not be loaded")
				a.setFailed(cfg.Models[i].Name, err)
				continue
			}
			if err := a.runWorker(wr); err != nil {
				return a, err
			}
		}
	}
	remoteTraining := usesLinks(cfg.Scheduler.Policy) && cfg.Scheduler.Training == pipeline.TrainingRemote
	if usesLinks(cfg.Scheduler.Policy) && (roles["predictor"] || roles["scheduler"] || roles["trainer"]) {
		if a.linkStore, err = stages.OpenLinkStore(ctx, nc, a.subjects, links.UnmarshalSet, log); err != nil {
			return a, err
		}
	}
	if roles["predictor"] && usesLinks(cfg.Scheduler.Policy) {
		pc, err := connect("predictor")
		if err != nil {
			return a, err
		}
		a.predictor = stages.NewLinkPredictor(pc, log)
		a.predictor.UseSubjects(a.subjects)
		if _, err := a.goStage(tierPredictor, "predictor", a.predictor.Ready(), false, a.predictor.Run); err != nil {
			return a, err
		}
		if _, err := a.goStage(tierPredictor, "predictor links", nil, false, func(ctx context.Context) error {
			return a.linkStore.Follow(ctx, func(set *links.Set) { a.predictor.SetPredictor(set) })
		}); err != nil {
			return a, err
		}
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
		models := a.loadedModels(cfg)
		if len(models) == 0 {
			return a, errors.New("no model could be loaded (see the errors above)")
		}
		a.schedConn, a.schedModels = sc, models
		if err := a.startScheduler(); err != nil {
			return a, err
		}
		if remoteTraining && a.control != nil {
			// Links come from the trainer role, through the link store.
			if _, err := a.goStage(tierScheduler, "scheduler links", nil, false, func(ctx context.Context) error {
				return a.linkStore.Follow(ctx, func(set *links.Set) {
					a.mu.RLock() // a reload may be swapping the controller
					defer a.mu.RUnlock()
					a.installStoredLinks(set, models)
				})
			}); err != nil {
				return a, err
			}
		}
	}
	if roles["ingest"] {
		if a.ingestConn, err = connect("ingest"); err != nil {
			return a, err
		}
		for _, cc := range cfg.Cameras {
			if err := a.startCamera(cc); err != nil {
				return a, err
			}
		}
	}
	a.registerMetrics()
	a.started.Store(true)
	return a, nil
}

// resultsDrain is how long a stopping merger waits for the results
// stream's last acknowledgements: a sixth of the stop's deadline, at most
// 5 s (an election takes 6–8 s; a stop should not wait for one).
func resultsDrain(stop time.Duration) time.Duration {
	if stop <= 0 {
		return 5 * time.Second
	}
	return min(stop/6, 5*time.Second)
}

// startScheduler builds the configured policy over the loaded models and
// starts the scheduler stage with it (at start-up, and again when a reload
// changes the policy or the budget). Measured costs are kept across.
func (a *app) startScheduler() error {
	a.mu.Lock()
	a.control, a.reducto = nil, nil
	policy, err := a.buildPolicy(a.schedModels)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	sched := scheduler.New(a.schedConn, policy, a.log)
	sched.UseSubjects(a.subjects)
	sched.OnlyCameras(a.cfg.Cameras)
	if a.schedRejects == nil {
		a.schedRejects = sched.Rejects()
	}
	sched.UseRejects(a.schedRejects)
	a.sched = sched
	if a.control != nil {
		// This process's own workers answer from the start: routing need
		// not wait for their first heartbeat to reach the bus (a frame sent
		// to a pool before it is known would wait out the deadline).
		for _, w := range a.liveWorkers() {
			a.control.ObserveHeartbeat(w.Heartbeat())
		}
	}
	if a.cfg.Scheduler.InLineTraining {
		sched.ObserveInLine()
	}
	if a.cfg.Reducto.Enabled {
		if err := a.startReducto(); err != nil {
			a.mu.Unlock()
			return err
		}
	}
	filter := a.reducto
	a.mu.Unlock()
	h, err := a.goStage(tierScheduler, "scheduler", sched.Ready(), false, func(ctx context.Context) error {
		if filter != nil {
			// Closed once routing has stopped: nothing decides any more.
			defer filter.Close()
		}
		return sched.Run(ctx)
	})
	a.schedHandle = h
	return err
}

// startCamera adds one camera to the running process. A camera ends on its
// own at the end of a file or after --max-frames: that is no failure.
func (a *app) startCamera(cc pipeline.CameraConfig) error {
	cam, err := ingest.NewCamera(cc, a.cfg.Ingest, a.ingestConn, a.log)
	if err != nil {
		return err
	}
	cam.UseSubjects(a.subjects)
	a.camMu.Lock()
	defer a.camMu.Unlock()
	h, err := a.goStage(tierIngest, "camera "+cc.ID, nil, true, func(ctx context.Context) error { return cam.Run(ctx, a.opts.maxFrames) })
	if err != nil {
		return err
	}
	a.cameras = append(a.cameras, cam)
	a.camHandles[cc.ID] = h
	return nil
}

// stopCamera stops and forgets one camera (removed by a reload).
func (a *app) stopCamera(ctx context.Context, id string) error {
	a.camMu.Lock()
	h := a.camHandles[id]
	a.camMu.Unlock()
	if h == nil {
		return fmt.Errorf("camera %s is not running", id)
	}
	if err := h.Stop(ctx); err != nil {
		return err
	}
	a.camMu.Lock()
	defer a.camMu.Unlock()
	delete(a.camHandles, id)
	a.cameras = slices.DeleteFunc(a.cameras, func(c *ingest.Camera) bool { return c.ID() == id })
	return nil
}

// liveCameras is a snapshot of the running cameras.
func (a *app) liveCameras() []*ingest.Camera {
	a.camMu.Lock()
	defer a.camMu.Unlock()
	return slices.Clone(a.cameras)
}

// camerasEnded reports whether every camera has ended on its own (files
// read to their end, --max-frames reached).
func (a *app) camerasEnded() bool {
	a.camMu.Lock()
	defer a.camMu.Unlock()
	for _, h := range a.camHandles {
		select {
		case <-h.Done():
		default:
			return false
		}
	}
	return true
}

// watchConn returns an error once nc is closed by the client itself, not
// by this process's shutdown (which stops this stage first). It polls
// rather than setting the connection's closed handler, which belongs to
// whoever opened the connection.
func watchConn(ctx context.Context, nc *nats.Conn) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if nc.IsClosed() {
				return fmt.Errorf("NATS connection %q closed: the process cannot work without it (check the server, nats.url or --nats)", nc.Opts.Name)
			}
		}
	}
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

// wait returns when the process should stop: on ctx's end, on a stage's
// failure (its error), or, when every camera has ended (--max-frames or
// the end of a file), once their frames' results are out.
func (a *app) wait(ctx context.Context) error {
	var tick <-chan time.Time
	if a.roles["ingest"] {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	for !a.camerasEnded() || tick == nil {
		select {
		case <-ctx.Done():
			a.log.Info().Msg("stopping")
			return nil
		case <-a.group.Failed():
			return a.group.Err()
		case <-tick:
		}
	}
	if a.roles["merger"] {
		// Wait for the results of every published frame; the merger emits
		// each planned frame by its deadline, so this ends.
		a.mu.RLock()
		deadline := a.cfg.Merger.Deadline
		a.mu.RUnlock()
		limit := time.After(deadline + 5*time.Second)
		for !a.resultsCaughtUp() {
			select {
			case <-ctx.Done():
				return nil
			case <-a.group.Failed():
				return a.group.Err()
			case <-limit:
				a.log.Warn().Msg("some results did not arrive before the merger deadline")
				return a.group.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return a.group.Err()
}

func (a *app) resultsCaughtUp() bool {
	for _, cam := range a.liveCameras() {
		st := cam.Stats()
		if uint64(a.results.count(cam.ID())) < st.Published {
			return false
		}
	}
	return true
}

// connect opens a connection for the stage called name ("role" or
// "role-detail": the role is the connection's user and permissions on the
// bus), watched by a stage of its own: a connection closed under a stage
// (the client gave up on the server) leaves that stage doing nothing, so it
// fails the process instead.
func (a *app) connect(name string) (*nats.Conn, error) {
	nc, _, err := a.connectWatched(name)
	return nc, err
}

// connectWatched is connect, with the handle of the connection's watch: a
// reload that removes the stage stops the watch, then closes the
// connection (closeConn).
func (a *app) connectWatched(name string) (*nats.Conn, *engine.Handle, error) {
	role := pipeline.Role(strings.SplitN(name, "-", 2)[0])
	var nc *nats.Conn
	var err error
	if a.srv != nil {
		nc, err = a.srv.ConnectAs(role, "mlink-"+name)
	} else {
		nc, err = pipeline.ConnectRole(&a.cfg.NATS, role, "mlink-"+name, 10*time.Second, pipeline.WithLogger(a.log))
	}
	if err != nil {
		return nil, nil, err
	}
	a.connMu.Lock()
	a.conns = append(a.conns, nc)
	a.connMu.Unlock()
	h, err := a.goStage(tierBus, "nats "+name, nil, false, func(ctx context.Context) error { return watchConn(ctx, nc) })
	if err != nil {
		return nil, nil, err
	}
	return nc, h, nil
}

// closeConn closes the connection of a stage a reload removed (its watch
// stopped first) and forgets it.
func (a *app) closeConn(nc *nats.Conn) {
	a.connMu.Lock()
	a.conns = slices.DeleteFunc(a.conns, func(c *nats.Conn) bool { return c == nc })
	a.connMu.Unlock()
	if err := nc.Drain(); err != nil {
		nc.Close()
	}
}

// shutdown stops the process with no deadline (tests, benchmarks).
func (a *app) shutdown() { _ = a.stop(context.Background()) }

// stop stops the stages in the group's order, then closes what they
// shared: the frame cache, the results subscription, the connections and
// the embedded server. When ctx ends first it returns at once with an
// error naming what still runs: the caller forces the exit.
func (a *app) stop(ctx context.Context) error {
	if err := a.group.Stop(ctx); err != nil {
		return err
	}
	if a.frames != nil {
		a.frames.Close() // workers have stopped
		a.frames = nil
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
			select {
			case <-ctx.Done():
				return fmt.Errorf("forced stop: NATS connections still draining: %w", ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	a.connMu.Lock()
	a.conns = nil
	a.connMu.Unlock()
	if a.srv != nil {
		a.srv.Shutdown()
		a.srv = nil
	}
	return nil
}

// connections is a snapshot of the process's NATS connections.
func (a *app) connections() []*nats.Conn {
	a.connMu.Lock()
	defer a.connMu.Unlock()
	return slices.Clone(a.conns)
}
