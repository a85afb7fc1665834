// Package natstest holds test fixtures for code on the bus: an embedded NATS
// server per test, connections closed with the test, and a polling wait.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlink-project/mlink/pipeline"
)

// Start runs an embedded NATS server (JetStream on, a free port) for the
// test's lifetime.
func Start(t testing.TB) *pipeline.EmbeddedServer {
	t.Helper()
	srv, err := pipeline.StartEmbedded("127.0.0.1:-1", t.TempDir(), 8<<20, pipeline.DefaultSubjects)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Connect opens an in-process connection closed with the test.
func Connect(t testing.TB, srv *pipeline.EmbeddedServer) *nats.Conn {
	t.Helper()
	nc, err := srv.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// WaitFor polls cond until it holds, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
