package main

import (
	"github.com/nats-io/nats.go"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/dashboard"
	"github.com/mlink-project/mlink/pipeline/httpd"
)

// startDashboard mounts the dashboard on the HTTP side, fed from the bus
// through the process's control connection: every process has one,
// whatever its roles, so a split deployment's dashboard is any process's
// with its HTTP side on. The caller closes the feed once the HTTP side has
// stopped.
func (a *app) startDashboard(s *httpd.Server, nc *nats.Conn) (*dashboard.Feed, error) {
	a.mu.RLock()
	cfg := a.cfg
	a.mu.RUnlock()
	hub := dashboard.NewHub(dashboard.Options{Cameras: cameraIDs(cfg.Cameras), Models: dashboardModels(cfg), Live: a.dashboardLive,
		WaitingFrames: cfg.Ingest.MaxInFlight + 1})
	feed, err := dashboard.Subscribe(nc, a.subjects, hub)
	if err != nil {
		return nil, err
	}
	hub.Mount(s)
	// Event streams end as the server starts to stop: its shutdown waits
	// for requests in flight, and a stream would never finish.
	s.OnShutdown(hub.Close)
	a.dash = hub
	return feed, nil
}

// dashboardLive is what the dashboard shows beyond the results: the
// budget in force, the links' measured agreement (with the scheduler
// role), the stale frames dropped (with the ingest role).
func (a *app) dashboardLive() dashboard.Live {
	live := dashboard.Live{BudgetMS: a.budget().MSPerFrame}
	a.mu.RLock()
	if a.control != nil {
		if v, ok := a.control.Stats().MeasuredAccuracy(); ok {
			live.Agreement = &v
		}
	}
	a.mu.RUnlock()
	if cams := a.liveCameras(); len(cams) > 0 {
		live.IngestDropped = make(map[string]uint64, len(cams))
		for _, cam := range cams {
			live.IngestDropped[cam.ID()] = cam.Stats().Dropped
		}
	}
	return live
}

func cameraIDs(cams []pipeline.CameraConfig) []string {
	ids := make([]string, len(cams))
	for i, c := range cams {
		ids[i] = c.ID
	}
	return ids
}

// dashboardModels are the models the dashboard lists, in the config's order.
func dashboardModels(cfg *pipeline.Config) []dashboard.ModelInfo {
	models := make([]dashboard.ModelInfo, 0, len(cfg.Models))
	for _, m := range cfg.Models {
		models = append(models, dashboard.ModelInfo{Name: m.Name, Type: m.Output})
	}
	return models
}
