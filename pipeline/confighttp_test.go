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
}
