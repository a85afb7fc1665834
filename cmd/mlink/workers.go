package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/engine"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/stages"
)

// workerRun is one model's worker in this process with what it owns: its
// connection and the stages that run it and watch the connection, so that
// a reload can stop it and release all of it.
type workerRun struct {
	w            *stages.ModelWorker
	conn         *nats.Conn
	stage, watch *engine.Handle
}

func (wr *workerRun) name() string { return wr.w.Spec().Name }

// loadWorker connects and loads one model's worker; it does not run yet.
// On an error nothing stays open.
func (a *app) loadWorker(spec *pipeline.ModelSpec) (*workerRun, error) {
	nc, watch, err := a.connectWatched("worker-" + spec.Name)
	if err != nil {
		return nil, err
	}
	wr := &workerRun{conn: nc, watch: watch}
	start := time.Now()
	load, err := scheduler.MeasureLoad(a.gpuProbe(), int64(spec.Memory), func() error {
		var err error
		wr.w, err = stages.NewModelWorker(nc, spec, a.opener, a.log)
		return err
	})
	if err != nil {
		a.release(wr)
		return nil, err
	}
	w := wr.w
	w.Stats().MemoryBytes.Store(load.Memory())
	w.UseSubjects(a.subjects)
	if a.opts.pool != "" {
		w.UsePool(a.opts.pool)
	}
	w.ShareFrames(a.frames)
	w.LimitFramePixels(a.cfg.Ingest.MaxFramePixels)
	a.log.Info().Str("model", spec.Name).Str("backend", spec.Backend).Dur("load", time.Since(start)).
		Int64("memory_bytes", load.Memory()).Bool("gpu_measured", load.GPUMeasured).Msg("model loaded")
	return wr, nil
}

// runWorker starts a loaded worker and lists it (replacing a listed worker
// of the same model: the caller stops that one).
func (a *app) runWorker(wr *workerRun) error {
	h, err := a.goStage(tierWorker, "worker "+wr.name(), wr.w.Ready(), false, wr.w.Run)
	if err != nil {
		return err
	}
	wr.stage = h
	a.workersMu.Lock()
	defer a.workersMu.Unlock()
	a.workers = slices.DeleteFunc(a.workers, func(o *workerRun) bool { return o.name() == wr.name() })
	a.workers = append(a.workers, wr)
	delete(a.failedModels, wr.name())
	return nil
}

// stopWorker stops a worker (it drains the frames it took), then its
// connection's watch, then closes the connection.
func (a *app) stopWorker(ctx context.Context, wr *workerRun) error {
	if wr.stage != nil {
		if err := wr.stage.Stop(ctx); err != nil {
			return fmt.Errorf("stop worker %s: %w", wr.name(), err)
		}
	}
	a.workersMu.Lock()
	a.workers = slices.DeleteFunc(a.workers, func(o *workerRun) bool { return o == wr })
	a.workersMu.Unlock()
	return a.release(wr)
}

// release stops a worker's connection watch and closes the connection
// (a loaded worker's instances close when its Run returns; one that never
// ran closes them here).
func (a *app) release(wr *workerRun) error {
	if wr.stage == nil && wr.w != nil {
		wr.w.Close()
	}
	if err := wr.watch.Stop(context.Background()); err != nil {
		return fmt.Errorf("stop the connection watch of worker %s: %w", wr.name(), err)
	}
	a.closeConn(wr.conn)
	return nil
}

// liveWorkers is a snapshot of the running workers.
func (a *app) liveWorkers() []*stages.ModelWorker {
	a.workersMu.Lock()
	defer a.workersMu.Unlock()
	out := make([]*stages.ModelWorker, len(a.workers))
	for i, wr := range a.workers {
		out[i] = wr.w
	}
	return out
}

// worker is the running worker of a model (nil: none in this process).
func (a *app) worker(model string) *workerRun {
	a.workersMu.Lock()
	defer a.workersMu.Unlock()
	for _, wr := range a.workers {
		if wr.name() == model {
			return wr
		}
	}
	return nil
}

func (a *app) setFailed(model string, err error) {
	a.workersMu.Lock()
	defer a.workersMu.Unlock()
	a.failedModels[model] = err
}

// failed is why a model could not be loaded (nil: it was, or it is not
// this process's).
func (a *app) failed(model string) error {
	a.workersMu.Lock()
	defer a.workersMu.Unlock()
	return a.failedModels[model]
}

// loadedModels are cfg's models less those that failed to load: what the
// scheduler plans.
func (a *app) loadedModels(cfg *pipeline.Config) []string {
	var out []string
	for _, name := range cfg.ModelNames() {
		if a.failed(name) == nil {
			out = append(out, name)
		}
	}
	return out
}
