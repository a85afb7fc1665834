package pipeline

import (
	"strings"
	"testing"
)

func TestHTTPListenDefaultsAndValidation(t *testing.T) {
	var cfg Config
	cfg.EnsureDefaults()
	if cfg.HTTP.Listen != DefaultHTTPListen {
		t.Errorf("default http.listen %q, want %q", cfg.HTTP.Listen, DefaultHTTPListen)
	}
	for _, ok := range []string{"off", "127.0.0.1:0", ":9464", "[::1]:9000"} {
		if err := CheckHTTPListen(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	_, err := ParseConfig([]byte("http: {listen: 9464}\n"), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `http.listen: "9464" is not host:port`) {
		t.Errorf("a bare port must be refused with the field named: %v", err)
	}
	if err := CheckHTTPListen("127.0.0.1:70000"); err == nil {
		t.Error("port 70000 accepted")
	}
	if !cfg.HTTP.DashboardOn() || cfg.HTTP.Dashboard == nil {
		t.Error("the dashboard is on by default")
	}
	off, err := ParseConfig([]byte(minimalHTTPConfig+"http: {dashboard: false}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if off.HTTP.DashboardOn() || off.HTTP.Listen != DefaultHTTPListen {
		t.Errorf("http.dashboard: false: dashboard %v, listen %q", off.HTTP.DashboardOn(), off.HTTP.Listen)
	}
	_, err = ParseConfig([]byte(minimalHTTPConfig+"http: {dashboard: maybe}\n"), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "line 5") || !strings.Contains(err.Error(), "bool") {
		t.Errorf("http.dashboard: maybe must be refused with its line: %v", err)
	}
}

const minimalHTTPConfig = `cameras:
  - {id: cam1, source: rtsp, url: "rtsp://127.0.0.1:8554/x"}
models:
  - {name: hog, backend: opencv-hog}
`
