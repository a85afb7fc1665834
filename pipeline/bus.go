package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// EmbeddedServer is a NATS server (JetStream on) run inside the mlink
// process: the default, so that `mlink run` needs nothing installed.
type EmbeddedServer struct {
	srv *server.Server
}

// StartEmbedded starts a NATS server listening on listen (host:port, port -1
// for a free one) with JetStream storing in dataDir.
func StartEmbedded(listen, dataDir string, maxPayload ByteSize) (*EmbeddedServer, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("nats.listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats.listen %q: bad port: %w", listen, err)
	}
	if port > 0 {
		// Fail fast with a clear message: the server itself would only time out.
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS server cannot listen on %s: %w (set nats.listen to another port, or -1 for a free one)", listen, err)
		}
		l.Close()
	}
	opts := &server.Options{
		ServerName: "mlink-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dataDir,
		MaxPayload: int32(maxPayload),
		// Bursts of frames to slow model workers must not get a client cut
		// off as a slow consumer: frames are bounded upstream by ingest's
		// in-flight window, so a generous pending limit is safe.
		MaxPending: 256 << 20,
		NoSigs:     true,
		NoLog:      true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create embedded NATS server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s did not start (is the port in use? set nats.listen to another address or port -1)", listen)
	}
	return &EmbeddedServer{srv: srv}, nil
}

// ClientURL is the URL other processes (mlink watch) connect to.
func (e *EmbeddedServer) ClientURL() string { return e.srv.ClientURL() }

// Connect opens an in-process connection: no TCP hop for the stages that
// run in the server's own process.
func (e *EmbeddedServer) Connect(name string) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name(name), nats.InProcessServer(e.srv), nats.MaxReconnects(-1)},
		connectionHandlers(name, connOptions{log: zerolog.Nop(), events: Bus})...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s to embedded NATS: %w", name, err)
	}
	return nc, nil
}

// Shutdown stops the server and waits for it.
func (e *EmbeddedServer) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Connect opens a connection to an external NATS server. It retries the
// first connection for up to wait so that mlink can start before its server.
// The connection reconnects for ever; its disconnects, reconnects and
// asynchronous errors are counted (in Bus unless WithEvents) and, with
// WithLogger, logged.
func Connect(url, name string, wait time.Duration, opts ...ConnOption) (*nats.Conn, error) {
	o := connOptions{log: zerolog.Nop(), events: Bus}
	for _, opt := range opts {
		opt(&o)
	}
	natsOpts := append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}, connectionHandlers(name, o)...)
	nc, err := nats.Connect(url, natsOpts...)
	deadline := time.Now().Add(wait)
	for err != nil && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		nc, err = nats.Connect(url, natsOpts...)
	}
	if err != nil {
		return nil, fmt.Errorf("connect %s to NATS at %s: %w (is the server running? check nats.url or --nats)", name, url, err)
	}
	return nc, nil
}

// EnsureResultsStream creates or updates the JetStream stream that keeps
// results, so that a subscriber that was away can catch up.
func EnsureResultsStream(ctx context.Context, nc *nats.Conn, maxAge time.Duration, maxBytes ByteSize) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	cfg := jetstream.StreamConfig{
		Name:      ResultsStream,
		Subjects:  []string{AllResults},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		MaxAge:    maxAge,
		MaxBytes:  int64(maxBytes),
	}
	_, err = js.CreateOrUpdateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return fmt.Errorf("results stream: JetStream is not enabled on the NATS server (start it with -js): %w", err)
	}
	if err != nil {
		return fmt.Errorf("results stream %s: %w", ResultsStream, err)
	}
	return nil
}
