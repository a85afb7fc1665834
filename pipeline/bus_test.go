package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestEmbeddedServerKeepsResultsForLateSubscribers(t *testing.T) {
	dataDir := t.TempDir()
	srv, err := StartEmbedded("127.0.0.1:-1", dataDir, 8<<20, DefaultSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if nc.MaxPayload() != 8<<20 {
		t.Errorf("max payload %d, want 8MiB so frames fit", nc.MaxPayload())
	}
	ctx := context.Background()
	if err := EnsureResultsStream(ctx, nc, &NATSConfig{ResultsMaxAge: time.Hour, ResultsMaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	// Idempotent: a second process starting up must not fail.
	if err := EnsureResultsStream(ctx, nc, &NATSConfig{ResultsMaxAge: time.Hour, ResultsMaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := nc.Publish(DefaultSubjects.Results("cam"), []byte(`{"seq":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	// A TCP client that connects afterwards (as mlink watch, with the
	// credentials it finds in the data dir) can still read them.
	remote, err := ConnectRole(&NATSConfig{URL: srv.ClientURL(), DataDir: dataDir}, RoleWatch, "late", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	js, _ := jetstream.New(remote)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := js.Stream(ctx, DefaultSubjects.ResultsStream())
		if err != nil {
			t.Fatal(err)
		}
		info, _ := s.Info(ctx)
		if info.State.Msgs == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream holds %d results, want 3", info.State.Msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConnectToMissingServerSaysWhatToDo(t *testing.T) {
	_, err := Connect("nats://127.0.0.1:1", "test", 0)
	if err == nil {
		t.Fatal("want an error")
	}
	if want := "is the server running"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q should say %q", err, want)
	}
}

func TestEmbeddedServerPortInUse(t *testing.T) {
	a, err := StartEmbedded("127.0.0.1:-1", t.TempDir(), 1<<20, DefaultSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	addr := a.ClientURL()[len("nats://"):]
	if b, err := StartEmbedded(addr, t.TempDir(), 1<<20, DefaultSubjects); err == nil {
		b.Shutdown()
		t.Fatal("a second server on the same port must fail")
	}
}
