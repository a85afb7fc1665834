package main

import (
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlink-project/mlink/ingest"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/metrics"
	"github.com/mlink-project/mlink/scheduler"
)

// resultMetrics are counted from the results the merger emits (in the
// process that runs the merger, so that no two processes count one
// result): per model inference time and outputs by source, merges, end to
// end latency, the model time the budget pays for.
type resultMetrics struct {
	inference *prometheus.HistogramVec
	outputs   *prometheus.CounterVec
	results   *prometheus.CounterVec
	latency   prometheus.Histogram
	exactMS   prometheus.Counter
}

// Output sources as counted: the three of an output, and error for one
// that could not be produced.
const sourceError = "error"

func newResultMetrics() *resultMetrics {
	return &resultMetrics{
		inference: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mlink_model_inference_seconds",
			Help:    "Time of one model execution on one frame (exact outputs, as the worker measured it).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"model"}),
		outputs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mlink_model_outputs_total",
			Help: "Model outputs in emitted results, by source: exact (ran), predicted (links), reused (last exact output), error."}, []string{"model", "source"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mlink_results_total",
			Help: "Results emitted by the merger: complete, or partial (deadline passed or evicted, some outputs missing)."}, []string{"camera", "kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mlink_result_latency_seconds",
			Help:    "End-to-end latency: a frame's capture to its result's emission.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		exactMS: prometheus.NewCounter(prometheus.CounterOpts{Name: "mlink_model_exact_seconds_total",
			Help: "Model time spent on the emitted results' exact outputs (what a time budget pays for)."}),
	}
}

func (m *resultMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.inference, m.outputs, m.results, m.latency, m.exactMS}
}

func (m *resultMetrics) observe(r *pipeline.Result) {
	kind := "complete"
	if r.Partial {
		kind = "partial"
	}
	m.results.WithLabelValues(r.Camera, kind).Inc()
	m.latency.Observe(r.LatencyMS / 1e3)
	for name, o := range r.Outputs {
		source := string(o.Source)
		if o.Error != "" {
			source = sourceError
		}
		m.outputs.WithLabelValues(name, source).Inc()
		if o.Source == pipeline.SourceExact && o.Error == "" {
			m.inference.WithLabelValues(name).Observe(o.InferMS / 1e3)
			m.exactMS.Add(o.InferMS / 1e3)
		}
	}
}

// registerMetrics exports what the process's stages count. Stages keep
// their own atomic counters (Stats); these read them at scrape time, so
// the pipeline does no metrics work between scrapes.
func (a *app) registerMetrics() {
	reg := a.metrics
	c := func(v uint64) float64 { return float64(v) }
	i := func(v int64) float64 { return float64(v) }

	// Every stage of the run group, as the engine sees it.
	reg.MustRegister(metrics.NewGaugeFamily("mlink_stage_up", "1 while a stage of the process runs, 0 once it ended (failed stages stay listed).", []string{"stage", "tier"}, func(emit metrics.Emit) {
		for _, st := range a.group.Stages() {
			up := 0.0
			if st.Running {
				up = 1
			}
			emit(up, st.Name, st.Tier)
		}
	}))
	// Received, sent and errors per stage, from each stage's own counters
	// (the stages are NATS subscribers: the engine sees their lifetime,
	// not their messages).
	stageCounter := func(name, help string, pick func(s stageCounts) (float64, bool)) {
		reg.MustRegister(metrics.NewCounterFamily(name, help, []string{"stage"}, func(emit metrics.Emit) {
			for _, s := range a.stageCounts() {
				if v, ok := pick(s); ok {
					emit(v, s.stage)
				}
			}
		}))
	}
	stageCounter("mlink_stage_received_total", "Messages a stage took in: frames read (cameras), frames (scheduler), frames offered (workers), prediction requests (predictors).",
		func(s stageCounts) (float64, bool) { return s.received, s.hasReceived })
	stageCounter("mlink_stage_sent_total", "Messages a stage sent on: frames published (cameras), frames planned (scheduler), outputs (workers), predictions (predictors), results (merger).",
		func(s stageCounts) (float64, bool) { return s.sent, true })
	stageCounter("mlink_stage_errors_total", "Messages a stage failed on or rejected.",
		func(s stageCounts) (float64, bool) { return s.errors, true })
	reg.MustRegister(metrics.NewGaugeFamily("mlink_stage_queue_depth",
		"Messages waiting in a stage's input queue: frames (scheduler, each model's worker), plans and outputs (merger), predict requests (predictor). A queue that stays full is a stage that cannot keep up.",
		[]string{"stage"}, func(emit metrics.Emit) {
			for _, s := range a.stageCounts() {
				if s.hasQueue {
					emit(s.queue, s.stage)
				}
			}
		}))

	// Cameras (a reload adds and removes them: listed at scrape time).
	camera := func(name, help string, gauge bool, v func(st cameraSnap) float64) {
		collect := func(emit metrics.Emit) {
			for _, cam := range a.liveCameras() {
				emit(v(cameraSnap{cam.Stats()}), cam.ID())
			}
		}
		if gauge {
			reg.MustRegister(metrics.NewGaugeFamily(name, help, []string{"camera"}, collect))
		} else {
			reg.MustRegister(metrics.NewCounterFamily(name, help, []string{"camera"}, collect))
		}
	}
	camera("mlink_camera_up", "1 while the camera's source streams.", true, func(s cameraSnap) float64 { return b2f(s.Connected) })
	camera("mlink_camera_frames_ingested_total", "Frames read from the source: published, dropped as stale, or skipped by the fps cap.", false,
		func(s cameraSnap) float64 { return c(s.Published + s.Dropped + s.Skipped) })
	camera("mlink_camera_frames_published_total", "Frames published to the pipeline.", false, func(s cameraSnap) float64 { return c(s.Published) })
	camera("mlink_camera_frames_dropped_total", "Stale frames of a live source dropped because the pipeline had no room.", false, func(s cameraSnap) float64 { return c(s.Dropped) })
	camera("mlink_camera_reconnects_total", "Recoveries of the source after a failure.", false, func(s cameraSnap) float64 { return c(s.Reconnects) })
	camera("mlink_camera_errors_total", "Source failures: opens, reads, bad frames, encode and publish errors.", false, func(s cameraSnap) float64 { return c(s.Errors) })
	camera("mlink_camera_in_flight", "Published frames awaiting their result (bounded by ingest.max_in_flight).", true, func(s cameraSnap) float64 { return float64(s.InFlight) })

	// NATS connections of this process.
	conn := func(name, help string, gauge bool, labels []string, each func(emit metrics.Emit, name string, st natsSnap)) {
		collect := func(emit metrics.Emit) {
			for _, nc := range a.connections() {
				each(emit, nc.Opts.Name, natsSnap{nc.Stats(), nc.IsConnected()})
			}
		}
		if gauge {
			reg.MustRegister(metrics.NewGaugeFamily(name, help, labels, collect))
		} else {
			reg.MustRegister(metrics.NewCounterFamily(name, help, labels, collect))
		}
	}
	conn("mlink_nats_messages_total", "Messages through a NATS connection.", false, []string{"conn", "direction"}, func(emit metrics.Emit, n string, s natsSnap) {
		emit(c(s.InMsgs), n, "in")
		emit(c(s.OutMsgs), n, "out")
	})
	conn("mlink_nats_bytes_total", "Payload bytes through a NATS connection.", false, []string{"conn", "direction"}, func(emit metrics.Emit, n string, s natsSnap) {
		emit(c(s.InBytes), n, "in")
		emit(c(s.OutBytes), n, "out")
	})
	conn("mlink_nats_reconnects_total", "Reconnections of a NATS connection.", false, []string{"conn"}, func(emit metrics.Emit, n string, s natsSnap) { emit(c(s.Reconnects), n) })
	conn("mlink_nats_connected", "1 while a NATS connection is connected.", true, []string{"conn"}, func(emit metrics.Emit, n string, s natsSnap) { emit(b2f(s.connected), n) })

	reg.MustRegister(metrics.NewGaugeFamily("mlink_scheduler_policy_info", "1 for the scheduling policy in force (a reload may change it).", []string{"policy"}, func(emit metrics.Emit) {
		a.mu.RLock()
		defer a.mu.RUnlock()
		emit(1, string(a.cfg.Scheduler.Policy))
	}))
	// The budget the policy plans within, and what it spends.
	reg.MustRegister(metrics.GaugeFunc("mlink_budget_ms_per_frame", "Configured time budget per frame in ms (0: none).", func() float64 { return a.budget().MSPerFrame }))
	reg.MustRegister(metrics.GaugeFunc("mlink_budget_gpu_memory_bytes", "Configured memory budget in bytes (0: none).", func() float64 { return float64(a.budget().GPUMemory) }))
	// The scheduler and its policy are read at each scrape: a reload
	// replaces them (their counters then restart from zero).
	sched := func(f func(st *scheduler.Stats) int64) func() float64 {
		return func() float64 {
			a.mu.RLock()
			defer a.mu.RUnlock()
			return i(f(a.sched.Stats()))
		}
	}
	schedPools := func(f func(t scheduler.PoolTraffic) int64) func(metrics.Emit) {
		return func(emit metrics.Emit) {
			a.mu.RLock()
			defer a.mu.RUnlock()
			for pool, t := range a.sched.Stats().Pools() {
				emit(i(f(t)), pool)
			}
		}
	}
	control := func(f func(st *scheduler.ControllerStats) float64) func() float64 {
		return func() float64 {
			a.mu.RLock()
			defer a.mu.RUnlock()
			if a.control == nil {
				return 0
			}
			return f(a.control.Stats())
		}
	}
	if a.sched != nil {
		reg.MustRegister(
			metrics.CounterFunc("mlink_scheduler_frames_total", "Frames the scheduler planned.", sched(func(st *scheduler.Stats) int64 { return st.Frames.Load() })),
			metrics.CounterFunc("mlink_scheduler_executions_total", "Model executions the scheduler requested.", sched(func(st *scheduler.Stats) int64 { return st.Executions.Load() })),
			metrics.CounterFunc("mlink_scheduler_planned_outputs_total", "Model outputs planned (executed, predicted or reused); 1 - executions/planned is the share saved.", sched(func(st *scheduler.Stats) int64 { return st.Planned.Load() })),
			metrics.CounterFunc("mlink_scheduler_filtered_frames_total", "Frames the frame filter (Reducto) kept from the models.", sched(func(st *scheduler.Stats) int64 { return st.Filtered.Load() })),
			metrics.CounterFunc("mlink_scheduler_escalations_total", "Frames re-sent to a cascade's next tier because the tier before disagreed (policy coe).", sched(func(st *scheduler.Stats) int64 { return st.Escalations.Load() })),
			metrics.CounterFunc("mlink_scheduler_escalated_bytes_total", "JPEG bytes re-sent to later cascade tiers' workers: what crossed tiers (policy coe).", sched(func(st *scheduler.Stats) int64 { return st.EscalatedBytes.Load() })),
			metrics.NewCounterFamily("mlink_scheduler_pool_frames_total", "Frames sent to each worker pool's workers, one per model execution (pool=\"\": the unpooled workers).", []string{"pool"},
				schedPools(func(t scheduler.PoolTraffic) int64 { return t.Frames })),
			metrics.NewCounterFamily("mlink_scheduler_pool_bytes_total", "JPEG bytes sent to each worker pool's workers: sent to pools above the edge, the bytes that crossed tiers.", []string{"pool"},
				schedPools(func(t scheduler.PoolTraffic) int64 { return t.Bytes })),
			metrics.CounterFunc("mlink_scheduler_pool_fallbacks_total", "Model executions sent elsewhere than their placement pool because its workers stopped answering.",
				control(func(st *scheduler.ControllerStats) float64 { return i(st.PoolFallbacks.Load()) })),
			metrics.CounterFunc("mlink_scheduler_pool_unserved_total", "Model executions sent elsewhere than their placement pool because no worker of the model ever joined it (a deployment that does not follow the placement: workers without --pool).",
				control(func(st *scheduler.ControllerStats) float64 { return i(st.PoolUnserved.Load()) })),
			metrics.GaugeFunc("mlink_links_agreement", "Measured agreement of predicted outputs with exact ones on held-out profiling frames (0..1; 0 before any or without links).",
				control(func(st *scheduler.ControllerStats) float64 { v, _ := st.MeasuredAccuracy(); return v })),
			metrics.CounterFunc("mlink_scheduler_profiled_frames_total", "Frames profiled (every model run) for link training and measurement.",
				control(func(st *scheduler.ControllerStats) float64 { return i(st.Profiled.Load()) })),
		)
	}
	if a.merger != nil {
		st := a.merger.Stats()
		reg.MustRegister(
			metrics.CounterFunc("mlink_merger_late_outputs_total", "Outputs that arrived after their frame's result was emitted (dropped).", func() float64 { return i(st.LateOutputs.Load()) }),
			metrics.CounterFunc("mlink_merger_evicted_total", "Frames emitted partial early because merger.max_pending frames were held.", func() float64 { return i(st.Evicted.Load()) }),
		)
		reg.MustRegister(a.resultMetrics.collectors()...)
		if pub := a.merger.ResultPublisher(); pub != nil {
			ps := pub.Stats()
			reg.MustRegister(
				metrics.CounterFunc("mlink_results_stream_acked_total", "Results the results stream acknowledged (stored).", func() float64 { return i(ps.Acked.Load()) }),
				metrics.CounterFunc("mlink_results_stream_republished_total", "Result publishes repeated because the stream did not acknowledge them in time (an election, an outage); live subscribers see each repeat.", func() float64 { return i(ps.Retried.Load()) }),
				metrics.CounterFunc("mlink_results_stream_lost_total", "Results given up unacknowledged (not stored in the results stream).", func() float64 { return i(ps.Lost.Load()) }),
				metrics.GaugeFunc("mlink_results_stream_pending", "Results published and not yet acknowledged.", func() float64 { return float64(pub.Pending()) }),
			)
		}
	}
	// Messages refused at the trust boundaries, by stage and reason; and
	// the NATS connections' disconnects, reconnects and async errors.
	rejecters := map[string]*pipeline.Rejects{}
	if a.merger != nil {
		rejecters["merger"] = a.merger.Rejects()
	}
	if a.predictor != nil {
		rejecters["predictor"] = a.predictor.Rejects()
	}
	if a.schedRejects != nil {
		rejecters["scheduler"] = a.schedRejects
	}
	reg.MustRegister(metrics.NewCounterFamily("mlink_rejected_messages_total",
		"Bus messages refused at a trust boundary (forged, out of window, unknown camera, oversized frame, ...), by stage and reason.",
		[]string{"stage", "reason"}, func(emit metrics.Emit) {
			sums := map[[2]string]uint64{}
			for stage, r := range rejecters {
				for reason, n := range r.Snapshot() {
					sums[[2]string{stage, string(reason)}] += n
				}
			}
			for _, w := range a.liveWorkers() {
				for reason, n := range w.Rejects().Snapshot() {
					sums[[2]string{"worker", string(reason)}] += n
				}
			}
			for k, n := range sums {
				emit(float64(n), k[0], k[1])
			}
		}))
	reg.MustRegister(metrics.NewCounterFamily("mlink_nats_connection_events_total",
		"Events of the process's NATS connections: disconnects, reconnects, slow consumers, async errors, closes.",
		[]string{"event"}, func(emit metrics.Emit) {
			for ev, n := range pipeline.Bus.Snapshot() {
				emit(float64(n), string(ev))
			}
		}))
	reg.MustRegister(
		metrics.GaugeFunc("mlink_config_last_reload_successful", "1 if the last config reload succeeded (or none was tried), 0 if it was refused.", func() float64 { return b2f(a.reloads.lastOK.Load()) }),
		metrics.GaugeFunc("mlink_config_last_reload_success_timestamp_seconds", "Unix time of the last successful reload (the start, before any).", func() float64 { return float64(a.reloads.lastSuccess.Load()) / 1e9 }),
	)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type cameraSnap struct{ ingest.CameraStats }
type natsSnap struct {
	nats.Statistics
	connected bool
}

// stageCounts are one stage's message counts, from its own Stats.
type stageCounts struct {
	stage                  string
	received, sent, errors float64
	hasReceived            bool
	queue                  float64 // messages waiting in the stage's input queue
	hasQueue               bool
}

func (a *app) stageCounts() []stageCounts {
	var out []stageCounts
	for _, cam := range a.liveCameras() {
		st := cam.Stats()
		out = append(out, stageCounts{stage: "camera " + cam.ID(), received: float64(st.Published + st.Dropped + st.Skipped), hasReceived: true,
			sent: float64(st.Published), errors: float64(st.Errors)})
	}
	a.mu.RLock()
	sch := a.sched
	a.mu.RUnlock()
	if sch != nil {
		st := sch.Stats()
		out = append(out, stageCounts{stage: "scheduler", received: float64(st.Frames.Load() + st.Rejected.Load()), hasReceived: true,
			sent: float64(st.Frames.Load()), errors: float64(st.Rejected.Load() + st.FilterErrors.Load()),
			queue: float64(sch.QueueDepth()), hasQueue: true})
	}
	for _, w := range a.liveWorkers() {
		st := w.Stats()
		out = append(out, stageCounts{stage: "worker " + w.Spec().Name, received: float64(st.Frames.Load() + st.Rejected.Load()), hasReceived: true,
			sent: float64(st.Frames.Load()), errors: float64(st.Errors.Load() + st.Rejected.Load()),
			queue: float64(w.QueueDepth()), hasQueue: true})
	}
	if a.predictor != nil {
		st := a.predictor.Stats()
		out = append(out, stageCounts{stage: "predictor", received: float64(st.Requests.Load()), hasReceived: true,
			sent: float64(st.Predictions.Load()), errors: float64(st.Errors.Load()),
			queue: float64(a.predictor.QueueDepth()), hasQueue: true})
	}
	if a.merger != nil {
		st := a.merger.Stats()
		out = append(out, stageCounts{stage: "merger", sent: float64(st.Results.Load()), errors: float64(st.BadMessages.Load()),
			queue: float64(a.merger.QueueDepth()), hasQueue: true})
	}
	return out
}

// budget is the budget in force (a reload may change it).
func (a *app) budget() pipeline.BudgetConfig { return *a.liveBudget.Load() }

// reloadState is what /metrics says of reloads, as Prometheus does of its own.
type reloadState struct {
	lastOK      atomic.Bool
	lastSuccess atomic.Int64 // Unix ns
}

func newReloadState() *reloadState {
	r := &reloadState{}
	r.lastOK.Store(true)
	r.lastSuccess.Store(time.Now().UnixNano())
	return r
}
