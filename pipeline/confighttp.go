package pipeline

import (
	"net"
	"strconv"
)

// HTTPConfig is the HTTP side of a process: /healthz, /readyz, /metrics,
// POST /-/reload, and the dashboard at /.
type HTTPConfig struct {
	// Listen is host:port (port 0: a free one, logged), or HTTPOff.
	// `mlink run --http` overrides it.
	Listen string `yaml:"listen"`
	// Dashboard serves the live dashboard (/ and /dashboard/...) on the
	// same port; nil means the default, true. Use DashboardOn.
	Dashboard *bool `yaml:"dashboard"`
}

// DashboardOn reports whether the dashboard is served (when the HTTP side
// is: Listen not HTTPOff).
func (h *HTTPConfig) DashboardOn() bool { return h.Dashboard == nil || *h.Dashboard }

// HTTPOff as http.listen (or --http) disables the HTTP side.
const HTTPOff = "off"

// DefaultHTTPListen is loopback only, since the endpoints are not
// authenticated; 9464 clashes with neither NATS monitoring (8222) nor
// Prometheus (9090).
const DefaultHTTPListen = "127.0.0.1:9464"

func (h *HTTPConfig) ensureDefaults() {
	if h.Listen == "" {
		h.Listen = DefaultHTTPListen
	}
	if h.Dashboard == nil {
		on := true
		h.Dashboard = &on
	}
}

func (h *HTTPConfig) validate(p *problems) {
	if err := CheckHTTPListen(h.Listen); err != nil {
		p.add("http.listen: %v", err)
	}
}

// CheckHTTPListen checks an HTTP address: host:port with a port in
// 0..65535, or HTTPOff.
func CheckHTTPListen(addr string) error {
	if addr == HTTPOff {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return &httpAddrError{addr}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return &httpAddrError{addr}
	}
	return nil
}

type httpAddrError struct{ addr string }

func (e *httpAddrError) Error() string {
	return strconv.Quote(e.addr) + " is not host:port (port 0 for a free one) or off"
}
