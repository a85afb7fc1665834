package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline/natstest"
)

var httpAddrLog = regexp.MustCompile(`"addr":"([^"]+)"[^\n]*HTTP listening`)

// httpAddr waits for the process to log the address its HTTP side listens on.
func (p *mlinkProc) httpAddr(t *testing.T) string {
	t.Helper()
	p.waitLog(t, 60*time.Second, "HTTP listening")
	m := httpAddrLog.FindStringSubmatch(p.stderr())
	if m == nil {
		t.Fatalf("no address in the HTTP log line:\n%s", p.stderr())
	}
	return m[1]
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHTTPHealthAndReadinessOfARealProcess(t *testing.T) {
	dead := freePort(t)
	models := motionModel
	cfg := processConfig(t, models)
	// A second camera that never connects keeps the process unready, and
	// /readyz must say which and why.
	p := startMlink(t, "run", "-c", withCamera(t, cfg, fmt.Sprintf("  - {id: dead, source: rtsp, url: rtsp://127.0.0.1:%d/x, reconnect_min: 50ms, reconnect_max: 200ms}", dead)),
		"--status", "off", "--http", "127.0.0.1:0")
	base := "http://" + p.httpAddr(t)
	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	natstest.WaitFor(t, 60*time.Second, "/readyz to name the dead camera", func() bool {
		code, body := httpGet(t, base+"/readyz")
		return code == 503 && strings.Contains(body, "cameras: dead is down") && !strings.Contains(body, "plaza")
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr())
	}

	ok := startMlink(t, "run", "-c", cfg, "--status", "off", "--http", "127.0.0.1:0")
	base = "http://" + ok.httpAddr(t)
	natstest.WaitFor(t, 60*time.Second, "/readyz 200 once models are loaded and the camera streams", func() bool {
		code, body := httpGet(t, base+"/readyz")
		return code == 200 && body == "ready\n"
	})
}

func TestHTTPPortInUseIsAStartUpError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	cfg := processConfig(t, motionModel)
	code, _, stderr := mlinkCLI(t, "run", "-c", cfg, "--status", "off", "--http", addr)
	if code != 1 || !strings.Contains(stderr, "--http "+addr) || !strings.Contains(stderr, "address already in use") {
		t.Errorf("--http on a port in use: exit %d, want 1 and the flag named:\n%s", code, stderr)
	}
	// From the config, the error names the config key.
	code, _, stderr = mlinkCLI(t, "run", "-c", withLine(t, cfg, "http: {listen: \""+addr+"\"}"), "--status", "off")
	if code != 1 || !strings.Contains(stderr, "http.listen "+addr) {
		t.Errorf("http.listen on a port in use: exit %d, want 1 and the key named:\n%s", code, stderr)
	}
	code, _, stderr = mlinkCLI(t, "run", "-c", cfg, "--http", "9464")
	if code != 2 || !strings.Contains(stderr, "--http") {
		t.Errorf("--http 9464 (no host:port): exit %d, want 2:\n%s", code, stderr)
	}
	code, _, stderr = mlinkCLI(t, "run", "-c", cfg, "--stop-timeout", "0s")
	if code != 2 || !strings.Contains(stderr, "--stop-timeout") {
		t.Errorf("--stop-timeout 0s: exit %d, want 2:\n%s", code, stderr)
	}
}
