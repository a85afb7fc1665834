package httpd

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthReadinessAndHandlersOnARealPort(t *testing.T) {
	s := New()
	var down atomic.Bool
	down.Store(true)
	s.AddCheck("cameras", func() []string {
		if down.Load() {
			return []string{"plaza down: connection refused"}
		}
		return nil
	})
	s.Handle("GET /extra", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "mounted") }))
	if err := s.Listen("127.0.0.1:0", "--http"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + s.Addr()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "cameras: plaza down: connection refused") {
		t.Errorf("/readyz with a camera down: %d %q; want 503 and the reason", code, body)
	}
	down.Store(false)
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, body := get(t, base+"/extra"); code != 200 || body != "mounted" {
		t.Errorf("a mounted handler: %d %q", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the server still answers after Run returned")
	}
}

func TestAPortInUseIsAStartUpErrorNamingTheFlag(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = New().Listen(l.Addr().String(), "--http")
	if err == nil || !strings.Contains(err.Error(), "--http "+l.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("got %v", err)
	}
}

func TestAStreamingHandlerEndsAtShutdownWithoutTheGracePeriod(t *testing.T) {
	s := New()
	stop := make(chan struct{})
	s.OnShutdown(func() { close(stop) })
	s.Handle("GET /stream", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "open\n")
		http.NewResponseController(w).Flush()
		<-stop // as an event stream: until told
	}))
	if err := s.Listen("127.0.0.1:0", "--http"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	resp, err := http.Get("http://" + s.Addr() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, line); err != nil || string(line) != "open\n" {
		t.Fatalf("stream: %q %v", line, err)
	}
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %s with a stream open: the stream was not told to end", took)
	}
}
