package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// A reload re-reads the config (with the command line's flags applied
// again: they keep precedence over the file), diffs it against the one in
// force, and applies what can change in a running process — as
// nats-server does, refusing the whole reload when any section that
// cannot change live has changed, so a reload is all or nothing.
//
// Live: cameras (added, removed, changed: a changed camera restarts),
// models (added, removed, changed: a changed model's new worker starts
// before the old one stops; the scheduler restarts over the new set),
// scheduler.* and budget.* (the scheduler stage restarts with the new
// policy; costs measured so far are kept). Refused: everything else.

// errReloadRefused marks a config that cannot be applied live.
var errReloadRefused = errors.New("reload refused")

// fixedSections are the config sections a running process cannot change:
// each is named by its YAML key in the refusal.
func fixedSections(c *pipeline.Config, httpFromFlag bool) map[string]any {
	m := map[string]any{
		"nats": c.NATS, "log": c.Log, "ingest": c.Ingest,
		"merger": c.Merger, "onnx": c.ONNX, "reducto": c.Reducto,
	}
	if !httpFromFlag { // --http wins over the file, so the file's value is moot
		m["http"] = c.HTTP
	}
	return m
}

// reloadPlan is what a reload will do.
type reloadPlan struct {
	added, removed, changed []pipeline.CameraConfig
	// Models added, removed and changed (their specs in the next config,
	// or the current one for removed models); workers only where this
	// process runs them.
	modelsAdded, modelsRemoved, modelsChanged []*pipeline.ModelSpec
	// models: the set of models changed (the scheduler plans another set).
	models    bool
	scheduler bool // policy, budget or models changed
}

func (p reloadPlan) String() string {
	var parts []string
	add := func(what string, names []string) {
		if len(names) > 0 {
			parts = append(parts, what+": "+strings.Join(names, ","))
		}
	}
	modelNames := func(ms []*pipeline.ModelSpec) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	add("cameras added", cameraIDs(p.added))
	add("cameras removed", cameraIDs(p.removed))
	add("cameras restarted", cameraIDs(p.changed))
	add("models added", modelNames(p.modelsAdded))
	add("models removed", modelNames(p.modelsRemoved))
	add("models reloaded", modelNames(p.modelsChanged))
	if p.scheduler {
		parts = append(parts, "scheduler restarted with the new policy/budget/models")
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, "; ")
}

// planReload diffs the config in force against next; an error lists every
// change that cannot be applied live.
func (a *app) planReload(cur, next *pipeline.Config) (reloadPlan, error) {
	var p reloadPlan
	var refused []string
	fromFlag := a.opts.httpFlag != ""
	now, want := fixedSections(cur, fromFlag), fixedSections(next, fromFlag)
	for _, key := range []string{"nats", "log", "ingest", "merger", "onnx", "reducto", "http"} {
		if _, ok := now[key]; ok && !reflect.DeepEqual(now[key], want[key]) {
			refused = append(refused, key+" changed")
		}
	}
	if !reflect.DeepEqual(cur.Scheduler, next.Scheduler) || !reflect.DeepEqual(cur.Budget, next.Budget) {
		p.scheduler = a.roles["scheduler"]
		switch {
		case usesLinks(cur.Scheduler.Policy) != usesLinks(next.Scheduler.Policy):
			refused = append(refused, fmt.Sprintf("scheduler.policy %s → %s: between link and non-link policies the link predictors and store must start or stop", cur.Scheduler.Policy, next.Scheduler.Policy))
		case cur.Scheduler.Training != next.Scheduler.Training:
			refused = append(refused, "scheduler.training changed: the trainer role is chosen at start")
		}
	}
	p.modelsAdded, p.modelsRemoved, p.modelsChanged = diffModels(cur, next)
	if p.models = len(p.modelsAdded)+len(p.modelsRemoved)+len(p.modelsChanged) > 0; p.models {
		p.scheduler = p.scheduler || a.roles["scheduler"]
		if usesLinks(next.Scheduler.Policy) && next.Scheduler.Training == pipeline.TrainingRemote && a.roles["trainer"] {
			refused = append(refused, "models changed with scheduler.training remote: the trainer learns links over the models it started with")
		}
	}
	if !a.roles["worker"] {
		p.modelsAdded, p.modelsRemoved, p.modelsChanged = nil, nil, nil
	}
	if _, err := checkRoles(next, a.opts.roles); err != nil {
		refused = append(refused, err.Error())
	}
	old := map[string]pipeline.CameraConfig{}
	for _, c := range cur.Cameras {
		old[c.ID] = c
	}
	for _, c := range next.Cameras {
		o, ok := old[c.ID]
		switch {
		case !ok:
			p.added = append(p.added, c)
		case !reflect.DeepEqual(o, c):
			p.changed = append(p.changed, c)
		}
		delete(old, c.ID)
	}
	for _, c := range cur.Cameras {
		if _, gone := old[c.ID]; gone {
			p.removed = append(p.removed, c)
		}
	}
	if !a.roles["ingest"] {
		p.added, p.removed, p.changed = nil, nil, nil
	}
	if len(refused) > 0 {
		return p, fmt.Errorf("%w: %s (restart mlink to apply these; nothing was changed)", errReloadRefused, strings.Join(refused, "; "))
	}
	return p, nil
}

// diffModels lists the models of next that cur lacks or has otherwise, and
// those of cur that next lacks.
func diffModels(cur, next *pipeline.Config) (added, removed, changed []*pipeline.ModelSpec) {
	for i := range next.Models {
		m := &next.Models[i]
		switch o, ok := cur.Model(m.Name); {
		case !ok:
			added = append(added, m)
		case !reflect.DeepEqual(*o, *m):
			changed = append(changed, m)
		}
	}
	for i := range cur.Models {
		if _, ok := next.Model(cur.Models[i].Name); !ok {
			removed = append(removed, &cur.Models[i])
		}
	}
	return added, removed, changed
}

// reload re-reads the config and applies it. It sets the reload gauges of
// /metrics either way.
func (a *app) reload(ctx context.Context) (string, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	start := time.Now()
	summary, err := a.applyReload(ctx)
	a.reloads.lastOK.Store(err == nil)
	if err != nil {
		a.log.Error().Err(err).Msg("config reload failed: the running config is unchanged")
		return "", err
	}
	a.reloads.lastSuccess.Store(time.Now().UnixNano())
	a.log.Info().Str("applied", summary).Dur("took", time.Since(start)).Msg("config reloaded")
	return summary, nil
}

func (a *app) applyReload(ctx context.Context) (string, error) {
	if a.opts.loadConfig == nil {
		return "", errors.New("this process has no config file to reload")
	}
	next, err := a.opts.loadConfig()
	if err != nil {
		return "", fmt.Errorf("re-read config: %w", err)
	}
	a.mu.RLock()
	cur := a.cfg
	a.mu.RUnlock()
	plan, err := a.planReload(cur, next)
	if err != nil {
		return "", err
	}
	// New and changed models load before anything changes: one that does
	// not load refuses the reload whole.
	var loaded []*workerRun
	for _, spec := range slices.Concat(plan.modelsAdded, plan.modelsChanged) {
		wr, err := a.loadWorker(spec)
		if err != nil {
			for _, l := range loaded {
				_ = a.release(l)
			}
			return "", fmt.Errorf("%w: model %s does not load: %v (fix models[%s] and reload again; nothing was changed)", errReloadRefused, spec.Name, err, spec.Name)
		}
		loaded = append(loaded, wr)
	}
	a.mu.Lock()
	a.cfg = next
	a.mu.Unlock()
	if a.dash != nil {
		a.dash.SetCameras(cameraIDs(next.Cameras))
		if plan.models {
			a.dash.SetModels(dashboardModels(next))
		}
	}
	// Cameras first: a removed camera stops publishing before the
	// scheduler changes.
	for _, c := range slices.Concat(plan.removed, plan.changed) {
		if err := a.stopCamera(ctx, c.ID); err != nil {
			return "", fmt.Errorf("reload: %w", err)
		}
	}
	if len(plan.added) > 0 {
		// Before the camera streams: the merger and the scheduler take
		// only configured cameras.
		if a.merger != nil {
			a.merger.OnlyCameras(next.Cameras)
		}
		if a.sched != nil {
			a.sched.OnlyCameras(next.Cameras)
		}
	}
	for _, c := range slices.Concat(plan.changed, plan.added) {
		if err := a.startCamera(c); err != nil {
			return "", fmt.Errorf("reload: camera %s: %w", c.ID, err)
		}
	}
	// A changed model's new worker runs before its old one stops (both
	// share the model's queue group for a moment), so no frame of it finds
	// no worker.
	var replaced []*workerRun
	for _, wr := range loaded {
		old := a.worker(wr.name())
		if err := a.runWorker(wr); err != nil {
			return "", fmt.Errorf("reload: worker %s: %w", wr.name(), err)
		}
		if old != nil {
			replaced = append(replaced, old)
		}
	}
	if plan.models {
		a.mu.Lock()
		a.schedModels = a.loadedModels(next)
		a.mu.Unlock()
	}
	if plan.scheduler {
		// Stop, then start: two schedulers at once would plan each frame
		// twice. Frames published in between (milliseconds) are not
		// planned; their cameras get the in-flight credit back after
		// ingest.in_flight_timeout.
		if err := a.schedHandle.Stop(ctx); err != nil {
			return "", fmt.Errorf("reload: %w", err)
		}
		if err := a.startScheduler(); err != nil {
			return "", fmt.Errorf("reload: the scheduler did not restart with the new policy: %w", err)
		}
		if a.control != nil && a.cfg.Scheduler.Training == pipeline.TrainingRemote {
			if set, err := a.linkStore.Latest(ctx); err == nil && set != nil {
				a.mu.RLock()
				a.installStoredLinks(set, a.schedModels)
				a.mu.RUnlock()
			}
		}
	}
	// Removed models' workers stop once the new scheduler no longer plans
	// them; each drains the frames it took.
	for _, spec := range plan.modelsRemoved {
		if wr := a.worker(spec.Name); wr != nil {
			replaced = append(replaced, wr)
		}
	}
	for _, wr := range replaced {
		if err := a.stopWorker(ctx, wr); err != nil {
			return "", fmt.Errorf("reload: %w", err)
		}
	}
	b := next.Budget
	a.liveBudget.Store(&b)
	return plan.String(), nil
}

// reloadHandler is POST /-/reload: 200 and what was applied, 400 when the
// config is invalid or refused (nothing applied), 500 otherwise.
func (a *app) reloadHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	summary, err := a.reload(r.Context())
	if err != nil {
		var ce *pipeline.ConfigError
		code := http.StatusInternalServerError
		if errors.Is(err, errReloadRefused) || errors.As(err, &ce) {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
		io.WriteString(w, err.Error()+"\n")
		return
	}
	fmt.Fprintf(w, "reloaded: %s\n", summary)
}
