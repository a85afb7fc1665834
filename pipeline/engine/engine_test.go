package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder notes the order stages stop in.
type recorder struct {
	mu    sync.Mutex
	order []string
}

func (r *recorder) stage(name string, ready chan struct{}) Func {
	return Func{StageName: name, ReadyChan: ready, RunFunc: func(ctx context.Context) error {
		<-ctx.Done()
		r.mu.Lock()
		r.order = append(r.order, name)
		r.mu.Unlock()
		return nil
	}}
}

func TestStopsTiersInTheStatedOrder(t *testing.T) {
	g := New("ingest", "worker", "merger")
	var r recorder
	// Started downstream first, as a process does.
	for _, s := range []struct{ tier, name string }{{"merger", "merger"}, {"worker", "worker a"}, {"worker", "worker b"}, {"ingest", "camera"}} {
		if _, err := g.Go(s.tier, r.stage(s.name, nil), Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(r.order, ",")
	if got != "camera,worker a,merger" && got != "camera,worker b,worker a,merger" && got != "camera,worker a,worker b,merger" {
		t.Fatalf("stop order %s: ingest, then the workers, then the merger", got)
	}
	if len(r.order) != 4 {
		t.Fatalf("stopped %v", r.order)
	}
	if g.Err() != nil {
		t.Fatalf("a clean stop is no failure: %v", g.Err())
	}
}

func TestAStageFailureFailsTheGroup(t *testing.T) {
	g := New("worker")
	boom := errors.New("boom")
	var r recorder
	if _, err := g.Go("worker", r.stage("healthy", nil), Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Go("worker", Func{StageName: "worker hog", RunFunc: func(context.Context) error { return boom }}, Options{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("a failed stage must fail the group")
	}
	if err := g.Err(); !errors.Is(err, boom) || !strings.Contains(err.Error(), "worker hog") {
		t.Fatalf("group error %v: must wrap the stage's error and name it", err)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAStageEndingOnItsOwnIsAFailureUnlessFinite(t *testing.T) {
	g := New("ingest", "worker")
	h, err := g.Go("ingest", Func{StageName: "camera file", RunFunc: func(context.Context) error { return nil }}, Options{Finite: true})
	if err != nil {
		t.Fatal(err)
	}
	<-h.Done()
	if g.Err() != nil {
		t.Fatalf("a finite stage ending is not a failure: %v", g.Err())
	}
	if _, err := g.Go("worker", Func{StageName: "worker quiet", RunFunc: func(context.Context) error { return nil }}, Options{}); err != nil {
		t.Fatal(err)
	}
	<-g.Failed()
	if !strings.Contains(g.Err().Error(), "worker quiet: ended on its own") {
		t.Fatalf("got %v", g.Err())
	}
}

func TestStopIsForcedWhenTheDeadlineEnds(t *testing.T) {
	g := New("worker", "merger")
	release := make(chan struct{})
	defer close(release)
	stuck := Func{StageName: "worker stuck", RunFunc: func(context.Context) error { <-release; return nil }}
	var r recorder
	if _, err := g.Go("merger", r.stage("merger", nil), Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Go("worker", stuck, Options{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := g.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "worker stuck") || !strings.Contains(err.Error(), "merger") {
		t.Fatalf("a stop past its deadline must name what still runs: %v", err)
	}
}

func TestGoWaitsForReadyAndRefusesWhileStopping(t *testing.T) {
	g := New("worker")
	ready := make(chan struct{})
	var r recorder
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		if _, err := g.Go("worker", r.stage("slow to subscribe", ready), Options{}); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-returned:
		t.Fatal("Go returned before the stage was ready")
	case <-time.After(50 * time.Millisecond):
	}
	close(ready)
	<-returned
	if _, err := g.Go("worker", r.stage("never ready", make(chan struct{})), Options{ReadyTimeout: 20 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("want a ready timeout, got %v", err)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Go("worker", r.stage("late", nil), Options{}); err == nil {
		t.Fatal("a stopping group must refuse new stages")
	}
	if _, err := New("a").Go("b", r.stage("x", nil), Options{}); err == nil {
		t.Fatal("an unknown tier must be refused")
	}
}

func TestHandleStopsOneStage(t *testing.T) {
	g := New("ingest")
	var r recorder
	a, _ := g.Go("ingest", r.stage("camera a", nil), Options{})
	if _, err := g.Go("ingest", r.stage("camera b", nil), Options{}); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := g.Stages(); len(st) != 1 || st[0].Name != "camera b" || !st[0].Running {
		t.Fatalf("after removing camera a: %+v", st)
	}
	if g.Err() != nil {
		t.Fatalf("a stage stopped on purpose is no failure: %v", g.Err())
	}
	g.Stop(context.Background())
}
