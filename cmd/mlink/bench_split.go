package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// measureSplitRun runs the pipeline of measureRun over two processes: this
// one (NATS, ingest, scheduler, merger) and a child `mlink run --role
// worker` holding every model, as a deployment that moves its models to
// another process (or machine) does. Every frame then crosses process
// boundaries twice. CPU counts both processes.
func measureSplitRun(cfg *pipeline.Config, cfgPath string, frames int) (runMeasure, error) {
	var m runMeasure
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	port, err := freeLoopbackPort()
	if err != nil {
		return m, err
	}
	core := *cfg
	core.NATS.Listen = fmt.Sprintf("127.0.0.1:%d", port)
	a, err := startApp(ctx, &core, runOptions{roles: "scheduler,merger,predictor", status: "off"}, log)
	if err != nil {
		return m, err
	}
	defer a.shutdown()
	url := a.srv.ClientURL()

	exe, err := os.Executable()
	if err != nil {
		return m, err
	}
	child := exec.Command(exe, "run", "-c", cfgPath, "--nats", url, "--data-dir", cfg.NATS.DataDir,
		"--role", "worker", "--http", "off", "--status", "off")
	child.Env = append(os.Environ(), "MLINK_TEST_MAIN=1") // a test binary runs main too
	var stderr strings.Builder
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		return m, fmt.Errorf("start the worker process: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	defer func() {
		select {
		case <-exited:
		default:
			child.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				child.Process.Kill()
				<-exited
			}
		}
	}()
	// Frames published before the workers subscribe would be lost: wait
	// for every model's heartbeat.
	if err := waitHeartbeats(ctx, a, cfg.ModelNames(), exited, &stderr); err != nil {
		return m, err
	}

	ing := *cfg
	ing.NATS.URL = url
	cpu0, childCPU0, t0 := pipeline.CPUTime(), processCPU(child.Process.Pid), time.Now()
	in, err := startApp(ctx, &ing, runOptions{maxFrames: frames, roles: "ingest", status: "off"}, log)
	if err != nil {
		return m, err
	}
	defer in.shutdown()
	if err := in.wait(ctx); err != nil {
		return m, err
	}
	// Ingest alone does not wait for results: the core's merger emits
	// each frame by its deadline.
	limit := time.Now().Add(cfg.Merger.Deadline + 10*time.Second)
	for !in.resultsCaughtUp() {
		if time.Now().After(limit) || ctx.Err() != nil {
			return m, errors.New("split run: results did not catch up with the frames published")
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(t0)
	cpu := pipeline.CPUTime() - cpu0 + processCPU(child.Process.Pid) - childCPU0
	m.RSSEndMB = float64(pipeline.RSS()+processRSS(child.Process.Pid)) / (1 << 20)
	in.results.measure(&m, elapsed, cpu)
	return m, nil
}

// waitHeartbeats waits until every model's worker has sent a heartbeat.
func waitHeartbeats(ctx context.Context, a *app, models []string, exited <-chan error, stderr *strings.Builder) error {
	nc, err := a.srv.ConnectAs(pipeline.RoleAdmin, "mlink-bench-health")
	if err != nil {
		return err
	}
	defer nc.Close()
	seen := make(chan string, 64)
	sub, err := nc.Subscribe(a.subjects.AllHealth(), func(m *nats.Msg) {
		if hb, err := pipeline.Unmarshal[pipeline.Heartbeat](m.Data); err == nil {
			select {
			case seen <- hb.Model:
			default:
			}
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	waiting := map[string]bool{}
	for _, name := range models {
		waiting[name] = true
	}
	timeout := time.After(2 * time.Minute)
	for len(waiting) > 0 {
		select {
		case name := <-seen:
			delete(waiting, name)
		case err := <-exited:
			return fmt.Errorf("the worker process ended (%v):\n%s", err, stderr.String())
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-timeout:
			return fmt.Errorf("no heartbeat from every model's worker in 2 minutes:\n%s", stderr.String())
		}
	}
	return nil
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("a free port for NATS: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// processCPU is the user+system CPU a process has used (Linux /proc).
func processCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces) in parentheses.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}

// processRSS is a process's resident set size in bytes (Linux /proc).
func processRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(fields[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
