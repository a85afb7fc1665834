package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline/natstest"
)

// mlinkProc is `mlink` running in a child process (the test binary as
// main, see TestMain), with its stderr kept for the assertions.
type mlinkProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	out  lockedBuffer
	done chan struct{}
	err  error
}

func (p *mlinkProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.Write(b)
}

func (p *mlinkProc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(b)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startMlink starts mlink with args; the process is killed at the end of
// the test if it is still running.
func startMlink(t *testing.T, args ...string) *mlinkProc {
	t.Helper()
	p := &mlinkProc{done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), "MLINK_TEST_MAIN=1")
	p.cmd.Stderr = p
	p.cmd.Stdout = &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitLog waits until stderr holds s.
func (p *mlinkProc) waitLog(t *testing.T, timeout time.Duration, s string) {
	t.Helper()
	natstest.WaitFor(t, timeout, fmt.Sprintf("%q in mlink's log", s), func() bool {
		select {
		case <-p.done:
			t.Fatalf("mlink exited (%v) before logging %q:\n%s", p.err, s, p.stderr())
		default:
		}
		return strings.Contains(p.stderr(), s)
	})
}

// exitCode waits for the process to end and returns its exit status.
func (p *mlinkProc) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("mlink did not exit within %s:\n%s", timeout, p.stderr())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("mlink was killed by %s instead of exiting:\n%s", ws.Signal(), p.stderr())
		}
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// processConfig writes a config for a child process: vtest looped as a
// camera, a private embedded NATS server, and the given models (YAML list
// items).
func processConfig(t *testing.T, models string) string {
	t.Helper()
	if _, err := os.Stat(vtestPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sample video missing (CI=true: this check must run): run `make deps`")
		}
		t.Skip("sample video missing: run `make deps`")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "mlink.yaml")
	cfg := fmt.Sprintf(`cameras:
  - {id: plaza, source: file, url: %s, loop: true}
models:
%s
nats: {listen: "127.0.0.1:-1", data_dir: %s}
log: {level: info, format: json}
`, vtestPath, models, filepath.Join(dir, "nats"))
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const motionModel = "  - {name: motion, backend: opencv-mog2}"

func TestSIGTERMAndSIGINTStopGracefullyWithExitZero(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startMlink(t, "run", "-c", processConfig(t, motionModel), "--status", "off", "--http", "off")
			p.waitLog(t, 60*time.Second, `"model":"motion"`)
			time.Sleep(500 * time.Millisecond) // frames flowing
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.exitCode(t, 60*time.Second); code != 0 {
				t.Fatalf("exit %d after %s, want 0:\n%s", code, sig, p.stderr())
			}
			if log := p.stderr(); !strings.Contains(log, `"message":"stopped"`) || !strings.Contains(log, "stopping gracefully") {
				t.Errorf("a graceful stop logs that it stopped:\n%s", log)
			}
		})
	}
}

// slowModel is HOG on frames upscaled far beyond need: seconds per frame,
// so that a worker still has frames to drain when the stop begins.
const slowModel = "  - {name: slow_hog, backend: opencv-hog, params: {upscale_width: 6000}}"

func TestASecondSignalForcesTheExit(t *testing.T) {
	p := startMlink(t, "run", "-c", processConfig(t, slowModel+"\n"+motionModel), "--status", "off", "--http", "off", "--stop-timeout", "10m")
	p.waitLog(t, 60*time.Second, `"model":"slow_hog"`)
	time.Sleep(time.Second) // frames queued at the slow model
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, 30*time.Second, "stopping gracefully")
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t, 60*time.Second); code != 1 {
		t.Fatalf("exit %d after a second SIGTERM, want 1 (forced):\n%s", code, p.stderr())
	}
	log := p.stderr()
	if !strings.Contains(log, "second signal: forcing the exit") || !strings.Contains(log, "still running") || !strings.Contains(log, "worker slow_hog") {
		t.Errorf("a forced exit says so and names the stages still running:\n%s", log)
	}
}

func TestAStopPastItsDeadlineIsForced(t *testing.T) {
	p := startMlink(t, "run", "-c", processConfig(t, slowModel), "--status", "off", "--http", "off", "--stop-timeout", "1s")
	p.waitLog(t, 60*time.Second, `"model":"slow_hog"`)
	time.Sleep(time.Second)
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.exitCode(t, 60*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1 (the stop outlived --stop-timeout):\n%s", code, p.stderr())
	}
	if log := p.stderr(); !strings.Contains(log, "forced stop: ") || !strings.Contains(log, "worker slow_hog") {
		t.Errorf("the forced stop names what still ran:\n%s", log)
	}
}

func TestAWorkerProcessWhoseBusIsGoneFails(t *testing.T) {
	cfg := demoConfig(t, "motion")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{roles: "worker"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	waited := make(chan error, 1)
	go func() { waited <- a.wait(ctx) }()
	// The worker's own connection is closed under it, as when the client
	// gives up on the server: the process must stop with an error, not sit
	// doing nothing.
	for _, nc := range a.conns {
		if nc.Opts.Name == "mlink-worker-motion" {
			nc.Close()
		}
	}
	select {
	case err := <-waited:
		if err == nil || !strings.Contains(err.Error(), "mlink-worker-motion") || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("wait returned %v; want the closed connection named", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a worker whose connection closed kept running")
	}
}

// withCamera writes a copy of the config at path with one more camera (a
// YAML list item) and returns the copy's path.
func withCamera(t *testing.T, path, camera string) string {
	t.Helper()
	return editConfig(t, path, func(s string) string { return strings.Replace(s, "cameras:\n", "cameras:\n"+camera+"\n", 1) })
}

// withLine writes a copy of the config at path with a top-level line added.
func withLine(t *testing.T, path, line string) string {
	t.Helper()
	return editConfig(t, path, func(s string) string { return s + line + "\n" })
}

func editConfig(t *testing.T, path string, edit func(string) string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, []byte(edit(string(data))), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBenchLiveEndsOnSIGINTWithTheWindowMeasured(t *testing.T) {
	p := startMlink(t, "bench", "live", "-c", processConfig(t, motionModel), "--seconds", "600")
	time.Sleep(5 * time.Second) // frames flowing
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.exitCode(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, p.stderr())
	}
	if !strings.Contains(p.stderr(), "interrupted: reporting the") || !strings.Contains(p.out.String(), "frames/s processed") {
		t.Errorf("bench live on SIGINT reports what it measured:\nstdout %s\nstderr %s", p.out.String(), p.stderr())
	}
}
