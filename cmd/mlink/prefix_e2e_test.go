package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
)

// Two deployments with different nats.subject_prefix share one NATS
// server (one account) and each sees only its own frames and results:
// the same camera ID in both, their own results streams, their own
// worker queue groups.
func TestTwoDeploymentsShareOneNATSServerByPrefix(t *testing.T) {
	bin := needTool(t, "nats-server", "run `make deps` (Debian package nats-server)")
	port := freePort(t)
	srv := exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", t.TempDir())
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	// Everything any deployment publishes, by its first token.
	spy, err := connectWhenUp(url)
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	var defaultTraffic atomic.Int64
	sub, err := spy.Subscribe(">", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		prefix, rest, _ := strings.Cut(m.Subject, ".")
		kind, _, _ := strings.Cut(rest, ".")
		seen[prefix+"."+kind]++
		if prefix == pipeline.DefaultSubjectPrefix {
			defaultTraffic.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	frames := map[string]int{"site-a": 12, "site-b": 20}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfgs := map[string]*pipeline.Config{}
	apps := map[string]*app{}
	for prefix, n := range frames {
		cfg := demoConfig(t, "face_haar")
		cfg.NATS.URL = url
		cfg.NATS.SubjectPrefix = prefix
		a, err := startApp(ctx, cfg, runOptions{roles: "all", maxFrames: n}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer a.shutdown()
		cfgs[prefix], apps[prefix] = cfg, a
	}
	for prefix, a := range apps {
		if err := a.wait(ctx); err != nil {
			t.Fatalf("%s: %v", prefix, err)
		}
	}

	// Counted before the streams are read back below: a consumer's
	// deliveries carry the original subjects, and the spy would see them.
	count := func(key string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[key]
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if count("site-a.results") >= frames["site-a"] && count("site-b.results") >= frames["site-b"] {
			break
		}
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	for prefix, n := range frames {
		for _, kind := range []string{"frames", "plan"} {
			if got := count(prefix + "." + kind); got != n {
				t.Errorf("%s.%s: %d messages, want %d", prefix, kind, got, n)
			}
		}
		// A result not acknowledged in time is published again: at
		// least n, never the other deployment's.
		if got := count(prefix + ".results"); got < n || got > n+n/2 {
			t.Errorf("%s.results: %d messages, want %d", prefix, got, n)
		}
	}
	for prefix, n := range frames {
		// The deployment's own stream holds its results only, complete.
		checkComplete(t, storedResults(t, apps[prefix], cfgs[prefix]), "plaza", n, cfgs[prefix].ModelNames())
		// Its worker ran its frames only: queue groups are per prefix.
		if got := apps[prefix].liveWorkers()[0].Stats().Frames.Load(); got != int64(n) {
			t.Errorf("%s: its worker ran %d frames, want its own %d", prefix, got, n)
		}
	}
	js, err := jetstream.New(spy)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"SITE-A_RESULTS", "SITE-B_RESULTS"} {
		if _, err := js.Stream(ctx, name); err != nil {
			t.Errorf("stream %s: %v", name, err)
		}
	}
	if _, err := js.Stream(ctx, pipeline.DefaultSubjects.ResultsStream()); err == nil {
		t.Errorf("stream %s exists: no deployment uses the default prefix", pipeline.DefaultSubjects.ResultsStream())
	}
	if n := defaultTraffic.Load(); n != 0 {
		t.Errorf("%d messages on mlink.>: a deployment with its own prefix must not use the default subjects", n)
	}
}

// connectWhenUp connects to a NATS server that may still be starting.
func connectWhenUp(url string) (*nats.Conn, error) {
	var err error
	for range 50 {
		var nc *nats.Conn
		if nc, err = nats.Connect(url); err == nil {
			return nc, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, err
}

// The embedded server's per-role permissions follow the prefix: a whole
// run with its own prefix completes, with the link store and results
// stream under the prefix's names.
func TestEmbeddedServerRunsAPrefixedDeployment(t *testing.T) {
	cfg := demoConfig(t, "face_haar", "face_blazeface")
	cfg.NATS.SubjectPrefix = "site-c"
	cfg.Scheduler.Policy = scheduler.PolicyMLink
	cfg.Scheduler.BootstrapFrames = 8
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{maxFrames: 12, roles: "all"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	if err := a.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if results := storedResults(t, a, cfg); len(results) != 12 {
		t.Fatalf("%d results in SITE-C_RESULTS, want 12", len(results))
	}
	nc, err := a.srv.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.ObjectStore(ctx, "SITE-C_LINKS"); err != nil {
		t.Errorf("links bucket SITE-C_LINKS: %v", err)
	}
	if _, err := js.Stream(ctx, pipeline.DefaultSubjects.ResultsStream()); err == nil {
		t.Errorf("stream %s exists under prefix site-c", pipeline.DefaultSubjects.ResultsStream())
	}
}
