package pipeline

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func startServerOn(t *testing.T, port int) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Connect's handlers count a server's loss and its return; a deliberate
// Close is not an outage.
func TestConnectCountsDisconnectsAndReconnects(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := startServerOn(t, port)
	ev := &ConnEvents{}
	nc, err := Connect(srv.ClientURL(), "test", 0, WithEvents(ev))
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	waitUntil(t, "a disconnect", func() bool { return ev.Count(EventDisconnect) == 1 })
	startServerOn(t, port)
	waitUntil(t, "a reconnect", func() bool { return ev.Count(EventReconnect) == 1 })
	nc.Close()
	waitUntil(t, "closed", func() bool { return ev.Count(EventClosed) == 1 })
	if got := ev.Snapshot(); got[EventDisconnect] != 1 || got[EventReconnect] != 1 || got[EventAsyncError] != 0 {
		t.Fatalf("events %v, want one disconnect and one reconnect", got)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
