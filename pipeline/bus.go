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
	srv   *server.Server
	creds *embeddedCredentials
}

// StartEmbedded starts a NATS server listening on listen (host:port, port -1
// for a free one) with JetStream storing in dataDir. It requires
// authentication: one user per Role with that role's permissions, their
// passwords generated at the first start into dataDir (0600, see
// EmbeddedCredentialsFile), where every mlink process of the same config,
// and mlink watch, find them.
func StartEmbedded(listen, dataDir string, maxPayload ByteSize, subjects Subjects) (*EmbeddedServer, error) {
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
	creds, err := loadOrCreateEmbeddedCredentials(dataDir)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		Users:      embeddedUsers(creds, subjects),
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
	return &EmbeddedServer{srv: srv, creds: creds}, nil
}

// embeddedUsers are the embedded server's users: one per role, with its
// permissions on the deployment's subjects (RolePermissions).
func embeddedUsers(creds *embeddedCredentials, subjects Subjects) []*server.User {
	users := make([]*server.User, 0, len(Roles))
	for _, r := range Roles {
		u := &server.User{Username: string(r), Password: creds.Users[r]}
		if perm := RolePermissions(r, subjects); perm.Publish != nil || perm.Subscribe != nil {
			u.Permissions = &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: perm.Publish},
				Subscribe: &server.SubjectPermission{Allow: perm.Subscribe},
			}
		}
		users = append(users, u)
	}
	return users
}

// ClientURL is the URL other processes (mlink watch) connect to.
func (e *EmbeddedServer) ClientURL() string { return e.srv.ClientURL() }

// Connect opens an in-process connection with every permission
// (RoleAdmin): for tools and tests; mlink's stages use ConnectAs.
func (e *EmbeddedServer) Connect(name string) (*nats.Conn, error) {
	return e.ConnectAs(RoleAdmin, name)
}

// ConnectAs opens an in-process connection in role r, with only its
// permissions: no TCP hop for the stages that run in the server's own
// process.
func (e *EmbeddedServer) ConnectAs(r Role, name string) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name(name), nats.InProcessServer(e.srv), nats.MaxReconnects(-1),
		nats.UserInfo(string(r), e.creds.Users[r]), nats.CustomInboxPrefix(InboxPrefix(r))},
		connectionHandlers(name, connOptions{log: zerolog.Nop(), events: Bus})...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s to embedded NATS as %s: %w", name, r, err)
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
// WithLogger, logged. WithNATSOptions carries credentials and TLS
// (NATSConfig.ClientOptions). Errors never quote a credential: the URL's
// are redacted.
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
	// Given options come last: an explicit handler replaces the counting one.
	natsOpts = append(natsOpts, o.nats...)
	nc, err := nats.Connect(url, natsOpts...)
	deadline := time.Now().Add(wait)
	for err != nil && time.Now().Before(deadline) && !errors.Is(err, nats.ErrAuthorization) {
		time.Sleep(250 * time.Millisecond)
		nc, err = nats.Connect(url, natsOpts...)
	}
	if errors.Is(err, nats.ErrAuthorization) {
		return nil, redactError(fmt.Errorf("connect %s to NATS at %s: the server refused the credentials: %w (check nats.user/password, token, nkey_seed_file or creds_file; for mlink's embedded server, the data dir's %s)",
			name, RedactURL(url), err, EmbeddedCredentialsFile), urlSecrets(url)...)
	}
	if err != nil {
		return nil, redactError(fmt.Errorf("connect %s to NATS at %s: %w (is the server running? check nats.url or --nats)", name, RedactURL(url), err), urlSecrets(url)...)
	}
	return nc, nil
}

// ConnectRole connects to the server of c.URL in role r with c's
// credentials and TLS (ClientOptions).
func ConnectRole(c *NATSConfig, r Role, name string, wait time.Duration, opts ...ConnOption) (*nats.Conn, error) {
	natsOpts, err := c.ClientOptions(r)
	if err != nil {
		return nil, fmt.Errorf("connect %s to NATS: %w", name, err)
	}
	return Connect(c.URL, name, wait, append(opts, WithNATSOptions(natsOpts...))...)
}

// EnsureResultsStream creates or updates the JetStream stream that keeps
// results, so that a subscriber that was away can catch up: bounded by
// c's results_max_age and results_max_bytes, on results_replicas servers
// of a cluster.
func EnsureResultsStream(ctx context.Context, nc *nats.Conn, c *NATSConfig) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	subjects := SubjectsFor(c)
	cfg := jetstream.StreamConfig{
		Name:      subjects.ResultsStream(),
		Subjects:  []string{subjects.AllResults()},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		MaxAge:    c.ResultsMaxAge,
		MaxBytes:  int64(c.ResultsMaxBytes),
		Replicas:  max(1, c.ResultsReplicas),
	}
	_, err = js.CreateOrUpdateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return fmt.Errorf("results stream: JetStream is not enabled on the NATS server (start it with -js): %w", err)
	}
	if err != nil && cfg.Replicas > 1 {
		return fmt.Errorf("results stream %s with %d replicas: %w (nats.results_replicas needs a cluster of at least as many JetStream servers)", cfg.Name, cfg.Replicas, err)
	}
	if err != nil {
		return fmt.Errorf("results stream %s: %w", cfg.Name, err)
	}
	return nil
}
