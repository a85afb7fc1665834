package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/dashboard"
	"github.com/mlink-project/mlink/pipeline/httpd"
)

// startHTTP binds the HTTP side (a port in use fails the start, naming the
// flag or the config key it came from) and runs it as a stage stopped
// after the pipeline's, so /metrics, /readyz and the dashboard answer
// during a stop. nc is the control connection, which feeds the dashboard.
func (a *app) startHTTP(nc *nats.Conn) error {
	addr := a.opts.httpListen
	if addr == "" || addr == pipeline.HTTPOff {
		return nil
	}
	where := "http.listen"
	if a.opts.httpFlag != "" {
		where = "--http"
	}
	s := httpd.New()
	if err := s.Listen(addr, where); err != nil {
		return &exitError{1, err}
	}
	a.http = s
	a.addReadiness(s)
	s.Handle("GET /metrics", a.metrics.Handler())
	s.Handle("POST /-/reload", http.HandlerFunc(a.reloadHandler))
	var feed *dashboard.Feed
	if a.cfg.HTTP.DashboardOn() {
		var err error
		if feed, err = a.startDashboard(s, nc); err != nil {
			return err
		}
		a.log.Info().Str("addr", s.Addr()).Str("dashboard", "http://"+s.Addr()+"/").Msg("HTTP listening: /healthz /readyz /metrics, the dashboard at /")
	} else {
		a.log.Info().Str("addr", s.Addr()).Msg("HTTP listening: /healthz /readyz /metrics")
	}
	_, err := a.goStage(tierHTTP, "http", nil, false, func(ctx context.Context) error {
		if feed != nil {
			// Its subscriptions end with the server that shows them.
			defer feed.Close()
		}
		return s.Run(ctx)
	})
	if err != nil && feed != nil {
		feed.Close()
	}
	return err
}

// addReadiness adds the checks of /readyz: every stage started and running,
// every connection to NATS up, every model of this process loaded, every
// camera streaming.
func (a *app) addReadiness(s *httpd.Server) {
	s.AddCheck("stages", func() []string {
		if !a.started.Load() {
			return []string{"starting (models loading, stages subscribing)"}
		}
		var out []string
		for _, st := range a.group.Stages() {
			if st.Err != nil {
				out = append(out, st.Err.Error())
			}
		}
		return out
	})
	s.AddCheck("nats", func() []string {
		var out []string
		for _, nc := range a.connections() {
			if !nc.IsConnected() {
				out = append(out, fmt.Sprintf("%s is %s", nc.Opts.Name, nc.Status()))
			}
		}
		return out
	})
	s.AddCheck("models", func() []string {
		if !a.started.Load() {
			return nil // failedModels is still being written
		}
		a.mu.RLock()
		names := a.cfg.ModelNames()
		a.mu.RUnlock()
		var out []string
		for _, name := range names {
			if err := a.failed(name); err != nil {
				out = append(out, fmt.Sprintf("%s could not be loaded: %v", name, err))
			}
		}
		return out
	})
	s.AddCheck("cameras", func() []string {
		var out []string
		for _, cam := range a.liveCameras() {
			if st := cam.Stats(); !st.Connected {
				reason := "no frames yet"
				if st.LastError != "" {
					reason = st.LastError
				}
				out = append(out, fmt.Sprintf("%s is down: %s", cam.ID(), reason))
			}
		}
		return out
	})
}
