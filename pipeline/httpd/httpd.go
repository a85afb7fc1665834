// Package httpd is the HTTP side of an mlink process: /healthz, /readyz,
// and whatever else a process mounts on its mux (/metrics, /-/reload, a
// dashboard) with one Handle call.
package httpd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// CheckFunc returns what keeps a part of the process from being ready; none
// means ready.
type CheckFunc func() []string

type check struct {
	name string
	fn   CheckFunc
}

// Server serves one process's endpoints. Create it with New, add handlers
// and checks, then Listen and Run.
type Server struct {
	mux *http.ServeMux
	ln  net.Listener
	srv *http.Server

	mu         sync.Mutex
	checks     []check
	onShutdown []func()
}

// New makes a server with /healthz and /readyz mounted.
func New() *Server {
	s := &Server{mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		// Alive is all it says: the process answers.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	return s
}

// Handle mounts h on pattern (http.ServeMux patterns: "GET /metrics",
// "POST /-/reload").
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddCheck adds a readiness check, reported under name in /readyz.
func (s *Server) AddCheck(name string, fn CheckFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, check{name, fn})
}

// OnShutdown adds f to what runs when the server starts to stop: handlers
// that stream until told to (server-sent events) end then, so that the
// shutdown does not wait its 5 s for them. Call it before Run.
func (s *Server) OnShutdown(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onShutdown = append(s.onShutdown, f)
}

// Ready runs every check and returns the reasons the process is not ready,
// each prefixed by its check's name.
func (s *Server) Ready() []string {
	s.mu.Lock()
	checks := append([]check(nil), s.checks...)
	s.mu.Unlock()
	var reasons []string
	for _, c := range checks {
		for _, p := range c.fn() {
			reasons = append(reasons, c.name+": "+p)
		}
	}
	return reasons
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	reasons := s.Ready()
	if len(reasons) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready\n%s\n", strings.Join(reasons, "\n"))
		return
	}
	fmt.Fprintln(w, "ready")
}

// Listen binds addr now, so that a port in use is a start-up error and
// port 0 resolves to the port picked (see Addr). flagName names where addr
// came from, for the error.
func (s *Server) Listen(addr, flagName string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w (give each process its own port, 0 for a free one, or %s off)", flagName, addr, err, flagName)
	}
	s.ln = ln
	return nil
}

// Addr is the address listened on (host:port), empty before Listen.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Run serves until ctx ends, then shuts down, letting requests in flight
// finish for up to 5 s.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("httpd: Run before Listen")
	}
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	for _, f := range s.onShutdown {
		s.srv.RegisterOnShutdown(f)
	}
	s.mu.Unlock()
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(s.ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("http on %s: %w", s.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
