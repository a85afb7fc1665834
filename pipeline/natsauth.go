package pipeline

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
)

// NATSTLSConfig is the client side of TLS to an external NATS server.
type NATSTLSConfig struct {
	// CAFile is the PEM bundle that signs the server's certificate (empty:
	// the system's roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate for servers that
	// verify clients (verify: true in nats-server's tls block).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must carry, when it
	// is not the URL's host (connecting by IP to a certificate for a name).
	ServerName string `yaml:"server_name"`
}

func (t NATSTLSConfig) enabled() bool { return t != NATSTLSConfig{} }

// tlsConfig builds the client TLS configuration from the files.
func (t NATSTLSConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("nats.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("nats.tls: cert_file and key_file go together (a client certificate needs its key)")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.tls.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// credentialKinds names the client credentials configured, for the rule
// that only one kind is.
func (c *NATSConfig) credentialKinds() []string {
	var kinds []string
	if c.User != "" || c.Password != "" {
		kinds = append(kinds, "user/password")
	}
	if c.Token != "" {
		kinds = append(kinds, "token")
	}
	if c.NKeySeedFile != "" {
		kinds = append(kinds, "nkey_seed_file")
	}
	if c.CredsFile != "" {
		kinds = append(kinds, "creds_file")
	}
	return kinds
}

func (c *NATSConfig) resolvePaths(path func(string) string) {
	c.DataDir = path(c.DataDir)
	c.NKeySeedFile = path(c.NKeySeedFile)
	c.CredsFile = path(c.CredsFile)
	c.TLS.CAFile = path(c.TLS.CAFile)
	c.TLS.CertFile = path(c.TLS.CertFile)
	c.TLS.KeyFile = path(c.TLS.KeyFile)
}

// validateSecurity adds every problem of the credentials and TLS options.
// No message quotes a secret: URLs are redacted, files named, not shown.
func (c *NATSConfig) validateSecurity(p *problems) {
	for _, u := range strings.Split(c.URL, ",") {
		if u = strings.TrimSpace(u); u == "" && c.URL != "" {
			p.add("nats.url: %s has an empty URL in its list", RedactURL(c.URL))
		} else if u != "" && strings.Contains(u, "://") {
			if _, err := url.Parse(u); err != nil {
				p.add("nats.url: %s is not a URL (nats://host:port, tls://host:port)", RedactURL(u))
			}
		}
	}
	kinds := c.credentialKinds()
	if len(kinds) > 1 {
		p.add("nats: %s are alternatives: set one kind of credentials", strings.Join(kinds, " and "))
	}
	if len(kinds) > 0 && len(urlSecrets(c.URL)) > 0 {
		p.add("nats.url: carries credentials and nats.%s is set too: keep one", kinds[0])
	}
	if c.User != "" && c.Password == "" {
		p.add("nats.password: user %q needs a password (or use nats.token)", c.User)
	}
	if c.Password != "" && c.User == "" {
		p.add("nats.user: a password needs a user")
	}
	if c.NKeySeedFile != "" {
		if _, err := nats.NkeyOptionFromSeed(c.NKeySeedFile); err != nil {
			p.add("nats.nkey_seed_file: %s: %v (a user seed starts with SU; `nsc` or `nk -gen user` make one)", c.NKeySeedFile, fileError(err))
		}
	}
	if c.CredsFile != "" {
		data, err := os.ReadFile(c.CredsFile)
		switch {
		case err != nil:
			p.add("nats.creds_file: %v", fileError(err))
		case !bytes.Contains(data, []byte("BEGIN NATS USER JWT")) || !bytes.Contains(data, []byte("BEGIN USER NKEY SEED")):
			p.add("nats.creds_file: %s is not a .creds file (a user JWT and its nkey seed, as `nsc generate creds` writes)", c.CredsFile)
		}
	}
	if c.TLS.enabled() {
		// Each file on its own, so that every problem is listed.
		for _, part := range []NATSTLSConfig{{CAFile: c.TLS.CAFile}, {CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile}} {
			if _, err := part.tlsConfig(); err != nil {
				p.add("%v", err)
			}
		}
	}
}

// fileError drops the operation from *fs.PathError texts ("open x: no such
// file") to keep the messages short, and keeps the path.
func fileError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// ClientOptions are the NATS client options of a connection in role r to
// the server of nats.url: the configured credentials and TLS; where none
// are configured and the URL is on this machine (loopback), the
// credentials mlink's embedded server generated in data_dir, if there are
// any. They are never sent to another machine's server unasked.
func (c *NATSConfig) ClientOptions(r Role) ([]nats.Option, error) {
	opts := []nats.Option{nats.CustomInboxPrefix(InboxPrefix(r))}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password.Reveal()))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token.Reveal()))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_seed_file: %w", fileError(err))
		}
		opts = append(opts, o)
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case len(urlSecrets(c.URL)) == 0 && loopbackURLs(c.URL) && c.DataDir != "":
		creds, err := readEmbeddedCredentials(c.DataDir)
		if err == nil {
			opts = append(opts, nats.UserInfo(string(r), creds.Users[r]))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if c.TLS.enabled() {
		t, err := c.TLS.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(t))
	}
	return opts, nil
}

// loopbackURLs reports whether every URL of a NATS URL list names this
// machine.
func loopbackURLs(list string) bool {
	for _, u := range strings.Split(list, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		parsed, err := url.Parse(u)
		if err != nil || !loopbackHost(parsed.Hostname()) {
			return false
		}
	}
	return true
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Warnings are what is valid but worth saying at start: an embedded server
// reachable from other machines.
func (c *NATSConfig) Warnings() []string {
	if c.URL != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil || loopbackHost(host) {
		return nil
	}
	return []string{fmt.Sprintf("nats.listen %s: the embedded NATS server is reachable beyond this machine; "+
		"it requires the credentials in %s, but anyone who can read that file, or sniff the unencrypted connection, can use the bus "+
		"(listen on 127.0.0.1 unless other machines run roles)", c.Listen, filepath.Join(c.DataDir, EmbeddedCredentialsFile))}
}

// Role is what one connection does on the bus. On the embedded server each
// role is a user with only the permissions the role needs (RolePermissions);
// run.go opens one connection per role.
type Role string

// Roles of mlink's connections. The first six are mlink run's --role
// values; RoleControl is each process's setup connection; RoleWatch is
// mlink watch; RoleAdmin has every permission, for operators' tools and
// tests.
const (
	RoleIngest    Role = "ingest"
	RoleScheduler Role = "scheduler"
	RoleTrainer   Role = "trainer"
	RoleWorker    Role = "worker"
	RolePredictor Role = "predictor"
	RoleMerger    Role = "merger"
	RoleControl   Role = "control"
	RoleWatch     Role = "watch"
	RoleAdmin     Role = "admin"
)

// Roles lists every role, in the order the README documents them.
var Roles = []Role{RoleIngest, RoleScheduler, RoleTrainer, RoleWorker, RolePredictor, RoleMerger, RoleControl, RoleWatch, RoleAdmin}

// Permissions are the subjects a role may publish to and subscribe to
// (NATS wildcards). Nil lists mean no restriction (RoleAdmin only).
type Permissions struct {
	Publish, Subscribe []string
}

// Subjects of JetStream and of the link store that the roles using them
// need: the JetStream API, its acks, the replies to their own requests,
// and the object store's subjects ($O.<bucket>.>, Subjects.LinksBucket).
const (
	jsAPI  = "$JS.API.>"
	jsAck  = "$JS.ACK.>"
	jsFlow = "$JS.FC.>" // flow control replies of push consumers (the link store's)
)

// InboxPrefix is where the connections of role r take replies (the
// client's custom inbox prefix, which ClientOptions and ConnectAs set):
// with a prefix per role a role's permissions can name its own inboxes,
// not every client's _INBOX.>.
func InboxPrefix(r Role) string { return "_INBOX_" + string(r) }

// RolePermissions is the least a role needs on the deployment's subjects
// s (subjects.go): only ingest publishes frames, only the scheduler plans
// and inference requests, only workers and predictors outputs, only the
// merger results and predict requests. JetStream's API is open to the
// roles that manage or read the stores (control, trainer: the results
// stream and the link store); mlink watch may only read the results stream.
func RolePermissions(r Role, s Subjects) Permissions {
	any1, any2 := "*", "*"
	// Replies (JetStream API answers, publish acknowledgements) come back
	// on the role's own inboxes only: no role reads another's.
	inboxes := InboxPrefix(r) + ".>"
	switch r {
	case RoleIngest:
		// Results release a camera's in-flight slots.
		return Permissions{Publish: []string{s.Frames(any1)}, Subscribe: []string{s.Results(any1)}}
	case RoleScheduler:
		return Permissions{
			Publish: []string{s.Plan(any1), s.Infer(any1), s.InferOn(any1, any2)},
			// Escalations re-send a kept frame to a cascade's next tier.
			Subscribe: []string{s.AllFrames(), s.AllResults(), s.AllHealth(), s.AllEscalations()},
		}
	case RoleWorker:
		return Permissions{
			Publish:   []string{s.Outputs(any1, any2), s.Health(any1)},
			Subscribe: []string{s.Infer(any1), s.InferOn(any1, any2)},
		}
	case RolePredictor:
		// The predicted models' outputs go to the merger like a worker's.
		return Permissions{Publish: []string{s.Outputs(any1, any2)}, Subscribe: []string{s.Predict()}}
	case RoleMerger:
		// Results are JetStream publishes: their acknowledgements come
		// back on an inbox.
		return Permissions{
			// It escalates a frame whose cascade tier disagreed (policy
			// coe): the scheduler, which has the frame, re-sends it.
			Publish:   []string{s.Results(any1), s.Predict(), s.Escalate(any1)},
			Subscribe: []string{s.AllPlans(), s.AllOutputs(), inboxes},
		}
	case RoleTrainer:
		// The durable consumer of the results stream.
		return Permissions{Publish: []string{jsAPI, jsAck, jsFlow}, Subscribe: []string{inboxes}}
	case RoleControl:
		// Creates the results stream and the link store, follows and
		// publishes links, counts results; reads frames for the HTTP
		// side's dashboard (only while a page is open; never publishes
		// them).
		return Permissions{Publish: []string{jsAPI, jsAck, jsFlow, "$O." + s.LinksBucket() + ".>"}, Subscribe: []string{inboxes, s.AllResults(), s.AllFrames()}}
	case RoleWatch:
		js, stream := "$JS.API.", s.ResultsStream()
		return Permissions{
			Publish: []string{js + "INFO", js + "STREAM.INFO." + stream,
				js + "CONSUMER.CREATE." + stream + ".>", js + "CONSUMER.DELETE." + stream + ".>",
				js + "CONSUMER.INFO." + stream + ".>", js + "CONSUMER.MSG.NEXT." + stream + ".>"},
			Subscribe: []string{s.AllResults(), inboxes},
		}
	}
	return Permissions{}
}

// EmbeddedCredentialsFile, in nats.data_dir, holds the password of every
// role on the embedded server: generated at its first start, mode 0600.
const EmbeddedCredentialsFile = "mlink-credentials.json"

// embeddedCredentials is that file's content.
type embeddedCredentials struct {
	// Users maps each role to its password.
	Users map[Role]string `json:"users"`
}

// readEmbeddedCredentials reads the embedded server's credentials; one
// that others may read is refused (anyone reading it owns the bus).
func readEmbeddedCredentials(dataDir string) (*embeddedCredentials, error) {
	path := filepath.Join(dataDir, EmbeddedCredentialsFile)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS credentials: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("embedded NATS credentials %s: mode %04o lets other users read them: run `chmod 600 %s`",
			path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS credentials: %w", err)
	}
	var creds embeddedCredentials
	if err := json.Unmarshal(data, &creds); err != nil {
		return nil, fmt.Errorf("embedded NATS credentials %s: %v (delete it: the next mlink run generates new ones)", path, err)
	}
	return &creds, nil
}

// loadOrCreateEmbeddedCredentials returns the embedded server's
// credentials, generating at the first start what is missing (every role's
// password: 24 random bytes) into a 0600 file.
func loadOrCreateEmbeddedCredentials(dataDir string) (*embeddedCredentials, error) {
	creds, err := readEmbeddedCredentials(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		creds, err = &embeddedCredentials{}, nil
	}
	if err != nil {
		return nil, err
	}
	if creds.Users == nil {
		creds.Users = map[Role]string{}
	}
	changed := false
	for _, r := range Roles {
		if creds.Users[r] != "" {
			continue
		}
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generate NATS credentials: %w", err)
		}
		creds.Users[r] = base64.RawURLEncoding.EncodeToString(b)
		changed = true
	}
	if !changed {
		return creds, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("nats.data_dir: %w", err)
	}
	data, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return nil, err
	}
	// Written whole under another name, then renamed: a reader never sees
	// half a file, and the file is 0600 from its first byte.
	tmp, err := os.CreateTemp(dataDir, EmbeddedCredentialsFile+".*")
	if err != nil {
		return nil, fmt.Errorf("write embedded NATS credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(dataDir, EmbeddedCredentialsFile))
	}
	if werr != nil {
		return nil, fmt.Errorf("write embedded NATS credentials: %w", werr)
	}
	return creds, nil
}
