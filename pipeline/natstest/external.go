package natstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// NATSServerBin returns the path of Debian's nats-server. Where it is
// missing the test is skipped on a developer's machine but fails under
// CI=true: CI must run every check, and a skip there would hide a gap.
func NATSServerBin(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("nats-server")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("nats-server not found (CI=true: this check must run): apt-get install nats-server (make deps)")
	}
	t.Skip("nats-server not found: apt-get install nats-server (make deps)")
	return ""
}

// External is a nats-server process started by a test.
type External struct {
	Port int
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreePorts returns n distinct TCP ports of 127.0.0.1 that were free a
// moment ago (held open together, so no two are the same).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// StartExternal runs Debian's nats-server on conf (a nats-server config
// without a listen address: it gets 127.0.0.1 and port) until the test
// ends, and waits until it is ready for clients.
func StartExternal(t testing.TB, port int, conf string) *External {
	t.Helper()
	file := filepath.Join(t.TempDir(), "nats.conf")
	full := fmt.Sprintf("listen: 127.0.0.1:%d\n%s\n", port, conf)
	if err := os.WriteFile(file, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	return StartConfigFile(t, port, file)
}

// StartConfigFile runs Debian's nats-server on a config file that listens
// for clients on 127.0.0.1:port, until the test ends (or Kill), and waits
// until it is ready for clients.
func StartConfigFile(t testing.TB, port int, file string) *External {
	t.Helper()
	bin := NATSServerBin(t)
	e := &External{Port: port, log: &syncBuffer{}, done: make(chan struct{})}
	e.cmd = exec.Command(bin, "-c", file)
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.cmd.Wait(); close(e.done) }()
	t.Cleanup(e.Kill)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(e.log.String(), "Server is ready") {
		select {
		case <-e.done:
			conf, _ := os.ReadFile(file)
			t.Fatalf("nats-server exited at start:\n%s\nconfig:\n%s", e.log.String(), conf)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not ready after 30s:\n%s", e.log.String())
		}
	}
	return e
}

// URL is the server's client URL (nats://127.0.0.1:port).
func (e *External) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", e.Port) }

// Log is what the server printed so far.
func (e *External) Log() string { return e.log.String() }

// Kill stops the server at once (SIGKILL, as a crashed node) and waits
// for it; a second call does nothing.
func (e *External) Kill() {
	select {
	case <-e.done:
		return
	default:
	}
	e.cmd.Process.Kill()
	<-e.done
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
