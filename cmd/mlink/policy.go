package main

import (
	"context"
	"encoding"
	"sync"
	"time"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/stages/gpu"
)

// usesLinks: the policy trains and serves model links (the training
// modes, the trainer role and the link predictors apply).
func usesLinks(policy pipeline.PolicyName) bool {
	spec, _ := scheduler.LookupPolicy(policy)
	return spec.Links
}

// buildPolicy wires the configured policy over the loaded models.
func (a *app) buildPolicy(models []string) (scheduler.Policy, error) {
	cfg := a.cfg
	initial := map[string]scheduler.Cost{}
	for _, w := range a.liveWorkers() {
		initial[w.Spec().Name] = scheduler.Cost{Memory: w.Stats().MemoryBytes.Load()}
	}
	for _, m := range cfg.Models {
		if _, ok := initial[m.Name]; !ok && m.Memory > 0 {
			initial[m.Name] = scheduler.Cost{Memory: int64(m.Memory)}
		}
	}
	if a.costs == nil { // a reload's new policy keeps the costs measured so far
		a.costs = scheduler.NewCostModel(initial)
	}
	var learner scheduler.Learner
	remote := cfg.Scheduler.Training == pipeline.TrainingRemote
	if usesLinks(cfg.Scheduler.Policy) && !remote {
		var err error
		if learner, err = newLearner(cfg, models); err != nil {
			return nil, err
		}
	}
	c, err := scheduler.NewController(scheduler.ControllerConfig{
		Policy:          cfg.Scheduler.Policy,
		Models:          models,
		Budget:          schedulerBudget(cfg),
		Period:          cfg.Scheduler.Period,
		ProfileShare:    cfg.Scheduler.ProfileShare,
		BootstrapFrames: cfg.Scheduler.BootstrapFrames,
		HoldOut:         cfg.Scheduler.HoldOut,
		RemoteTraining:  remote,
		Synchronous:     cfg.Scheduler.InLineTraining,
		ActiveShare:     cfg.Scheduler.ActiveShare,
		ActiveBatch:     cfg.Scheduler.ActiveBatch,
		TuneFrames:      cfg.Scheduler.TuneFrames,
		TurnBatch:       cfg.Scheduler.TurnBatch,
		TurnEvidence:    cfg.Scheduler.TurnEvidence,
		Importance:      cfg.Scheduler.Importance,
		CoE:             cfg.Scheduler.CoE,
		JellyBean:       cfg.Scheduler.JellyBean,
		Pools:           cfg.Pools,
		Seed:            cfg.Scheduler.Seed,
	}, learner, a.costs, a.log)
	if err != nil {
		return nil, err
	}
	c.OnPredictor(func(p scheduler.Predictor) {
		if a.predictor != nil {
			// In one process the predictor takes new links at once...
			a.predictor.SetPredictor(p)
		}
		// ...and every predictor, here or in other processes, follows the
		// link store (where the trainer role publishes remote training's
		// links itself).
		if set, ok := p.(encoding.BinaryMarshaler); ok && a.linkStore != nil && !remote {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := a.linkStore.Publish(ctx, set); err != nil {
				a.log.Error().Err(err).Msg("links not published: predictors in other processes keep their links")
			}
		}
	})
	a.control = c
	return c, nil
}

var (
	gpuOnce  sync.Once
	gpuNVML  *gpu.NVML
	gpuError error
)

// gpuProbe returns the NVML probe, or nil where there is no GPU; the
// fallback is logged once per process.
func (a *app) gpuProbe() scheduler.MemoryProbe {
	gpuOnce.Do(func() {
		gpuNVML, gpuError = gpu.Open()
		if gpuError != nil {
			a.log.Info().Err(gpuError).Msg("no GPU memory measurement: model memory is the configured memory, else RSS growth at load")
		}
	})
	if gpuNVML == nil {
		return nil
	}
	return gpuNVML
}

func schedulerBudget(cfg *pipeline.Config) scheduler.Budget {
	b := scheduler.Budget{Memory: int64(cfg.Budget.GPUMemory), MS: cfg.Budget.MSPerFrame, Mode: scheduler.TimeMean}
	if cfg.Budget.TimeMode == pipeline.TimeModeCap {
		b.Mode = scheduler.TimeCap
	}
	return b
}
