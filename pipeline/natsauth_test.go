package pipeline_test

// Client security against Debian's nats-server, started by each test with
// a config that requires the credentials under test: each kind connects
// and round-trips a message, and a wrong credential is refused without
// being printed.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// minimalConfig is a valid config but for its nats section.
const minimalConfig = `
cameras:
  - {id: cam1, source: rtsp, url: "rtsp://127.0.0.1:8554/x"}
models:
  - {name: hog, backend: opencv-hog}
`

// connectAs connects with the config's client options and checks that the
// connection carries a message to itself: the server accepted it.
func connectAs(t *testing.T, c pipeline.NATSConfig) error {
	t.Helper()
	opts, err := c.ClientOptions(pipeline.RoleAdmin)
	if err != nil {
		t.Fatalf("client options: %v", err)
	}
	nc, err := pipeline.Connect(c.URL, "security-test", 0, pipeline.WithNATSOptions(opts...))
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("security.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("security.test", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("connected but no round trip: %v", err)
	}
	return nil
}

// wantRefused checks a refused connection's error: it says what to check
// and quotes none of the secrets.
func wantRefused(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("a wrong credential was accepted")
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error quotes the secret %q: %v", s, err)
		}
	}
}

func TestUserPasswordConnectsAndAWrongOneIsRefusedUnprinted(t *testing.T) {
	srv := natstest.StartExternal(t, natstest.FreePort(t), `authorization { user: alice, password: "right-pass-7f3" }`)
	if err := connectAs(t, pipeline.NATSConfig{URL: srv.URL(), User: "alice", Password: "right-pass-7f3"}); err != nil {
		t.Fatalf("the right password was refused: %v", err)
	}
	err := connectAs(t, pipeline.NATSConfig{URL: srv.URL(), User: "alice", Password: "wrong-pass-91c"})
	wantRefused(t, err, "wrong-pass-91c")
	if err != nil && !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("the error should say the credentials were refused: %v", err)
	}
	// The same in the URL, as most NATS tools take it: the user stays,
	// the password does not.
	err = connectAs(t, pipeline.NATSConfig{URL: fmt.Sprintf("nats://alice:wrong-pass-url@127.0.0.1:%d", srv.Port)})
	wantRefused(t, err, "wrong-pass-url")
	if err != nil && !strings.Contains(err.Error(), "alice:"+pipeline.Redacted+"@") {
		t.Errorf("the error should name the URL with its password redacted: %v", err)
	}
	if err := connectAs(t, pipeline.NATSConfig{URL: fmt.Sprintf("nats://alice:right-pass-7f3@127.0.0.1:%d", srv.Port)}); err != nil {
		t.Fatalf("the right password in the URL was refused: %v", err)
	}
}

func TestTokenConnectsAndAWrongOneIsRefusedUnprinted(t *testing.T) {
	srv := natstest.StartExternal(t, natstest.FreePort(t), `authorization { token: "right-token-a1" }`)
	if err := connectAs(t, pipeline.NATSConfig{URL: srv.URL(), Token: "right-token-a1"}); err != nil {
		t.Fatalf("the right token was refused: %v", err)
	}
	wantRefused(t, connectAs(t, pipeline.NATSConfig{URL: srv.URL(), Token: "wrong-token-b2"}), "wrong-token-b2")
	wantRefused(t, connectAs(t, pipeline.NATSConfig{URL: fmt.Sprintf("nats://wrong-token-c3@127.0.0.1:%d", srv.Port)}), "wrong-token-c3")
}

// writeSeed writes a new user nkey's seed to a 0600 file and returns the
// file and the public key.
func writeSeed(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, pub
}

func TestNKeySeedConnectsAndAnotherKeyIsRefused(t *testing.T) {
	dir := t.TempDir()
	good, pub := writeSeed(t, dir, "good.nk")
	other, _ := writeSeed(t, dir, "other.nk")
	srv := natstest.StartExternal(t, natstest.FreePort(t), fmt.Sprintf(`authorization { users: [ { nkey: %s } ] }`, pub))
	if err := connectAs(t, pipeline.NATSConfig{URL: srv.URL(), NKeySeedFile: good}); err != nil {
		t.Fatalf("the configured nkey was refused: %v", err)
	}
	otherSeed, _ := os.ReadFile(other)
	wantRefused(t, connectAs(t, pipeline.NATSConfig{URL: srv.URL(), NKeySeedFile: other}), string(otherSeed))
}

// writeJWTs sets up operator mode: an operator, an account it signs, and a
// user of that account in a .creds file; the server config trusts the
// operator and preloads the account.
func writeJWTs(t *testing.T, dir string) (conf, creds, strangerCreds string) {
	t.Helper()
	op, _ := nkeys.CreateOperator()
	opPub, _ := op.PublicKey()
	opClaims := jwt.NewOperatorClaims(opPub)
	opJWT, err := opClaims.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	acc, _ := nkeys.CreateAccount()
	accPub, _ := acc.PublicKey()
	accJWT, err := jwt.NewAccountClaims(accPub).Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	user := func(signer nkeys.KeyPair, issuer, name string) string {
		u, _ := nkeys.CreateUser()
		uPub, _ := u.PublicKey()
		claims := jwt.NewUserClaims(uPub)
		claims.IssuerAccount = issuer
		uJWT, err := claims.Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := u.Seed()
		data, err := jwt.FormatUserConfig(uJWT, seed)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	creds = user(acc, accPub, "user.creds")
	// A user of an account the server does not know.
	stranger, _ := nkeys.CreateAccount()
	strangerPub, _ := stranger.PublicKey()
	strangerCreds = user(stranger, strangerPub, "stranger.creds")
	opFile := filepath.Join(dir, "operator.jwt")
	if err := os.WriteFile(opFile, []byte(opJWT), 0o600); err != nil {
		t.Fatal(err)
	}
	conf = fmt.Sprintf("operator: %q\nresolver: MEMORY\nresolver_preload: { %s: %q }\n", opFile, accPub, accJWT)
	return conf, creds, strangerCreds
}

func TestCredsFileConnectsAndAnUnknownAccountIsRefused(t *testing.T) {
	dir := t.TempDir()
	conf, creds, stranger := writeJWTs(t, dir)
	srv := natstest.StartExternal(t, natstest.FreePort(t), conf)
	if err := connectAs(t, pipeline.NATSConfig{URL: srv.URL(), CredsFile: creds}); err != nil {
		t.Fatalf("the .creds file was refused: %v\n%s", err, srv.Log())
	}
	wantRefused(t, connectAs(t, pipeline.NATSConfig{URL: srv.URL(), CredsFile: stranger}), "SU")
}

// testPKI is a CA and the certificates it signs, in PEM files.
type testPKI struct {
	dir    string
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	CAFile string
}

func newTestPKI(t *testing.T, dir, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: dir, caKey: key, caCert: cert, CAFile: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, p.CAFile, "CERTIFICATE", der)
	return p
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue writes a certificate signed by the CA and its key; dns and ips
// are its names (a server's), usage what it is for.
func (p *testPKI) issue(t *testing.T, name string, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func TestTLSWithCAClientCertAndServerName(t *testing.T) {
	dir := t.TempDir()
	ca := newTestPKI(t, dir, "mlink-test")
	// The server's certificate names it nats.mlink.test only: connecting by
	// IP needs server_name.
	srvCert, srvKey := ca.issue(t, "server", x509.ExtKeyUsageServerAuth, []string{"nats.mlink.test"}, nil)
	cliCert, cliKey := ca.issue(t, "client", x509.ExtKeyUsageClientAuth, nil, nil)
	stranger := newTestPKI(t, dir, "stranger")
	strangerCert, strangerKey := stranger.issue(t, "stranger-client", x509.ExtKeyUsageClientAuth, nil, nil)

	srv := natstest.StartExternal(t, natstest.FreePort(t), fmt.Sprintf(
		"tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true, timeout: 5 }", srvCert, srvKey, ca.CAFile))
	url := fmt.Sprintf("tls://127.0.0.1:%d", srv.Port)
	good := pipeline.NATSTLSConfig{CAFile: ca.CAFile, CertFile: cliCert, KeyFile: cliKey, ServerName: "nats.mlink.test"}
	if err := connectAs(t, pipeline.NATSConfig{URL: url, TLS: good}); err != nil {
		t.Fatalf("TLS with the CA, a client certificate and the server name was refused: %v\n%s", err, srv.Log())
	}
	cases := map[string]pipeline.NATSTLSConfig{
		"no client certificate":       {CAFile: ca.CAFile, ServerName: "nats.mlink.test"},
		"a client cert of another CA": {CAFile: ca.CAFile, CertFile: strangerCert, KeyFile: strangerKey, ServerName: "nats.mlink.test"},
		"another CA for the server":   {CAFile: stranger.CAFile, CertFile: cliCert, KeyFile: cliKey, ServerName: "nats.mlink.test"},
		"no server name (by IP)":      {CAFile: ca.CAFile, CertFile: cliCert, KeyFile: cliKey},
		"a wrong server name":         {CAFile: ca.CAFile, CertFile: cliCert, KeyFile: cliKey, ServerName: "other.mlink.test"},
	}
	for name, c := range cases {
		if err := connectAs(t, pipeline.NATSConfig{URL: url, TLS: c}); err == nil {
			t.Errorf("%s: the connection succeeded; it must be refused", name)
		}
	}
	// Through the config file, relative paths against its directory.
	cfg, err := pipeline.ParseConfig([]byte(minimalConfig+fmt.Sprintf(`
nats:
  url: %s
  tls: {ca_file: mlink-test-ca.pem, cert_file: client.pem, key_file: client-key.pem, server_name: nats.mlink.test}
`, url)), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := connectAs(t, cfg.NATS); err != nil {
		t.Fatalf("the config's tls section: %v", err)
	}
}

func TestSecurityOptionsListEveryProblemAndNoSecret(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "not.creds"), []byte("hello"), 0o600)
	os.WriteFile(filepath.Join(dir, "bad.nk"), []byte("SUNOTASEED"), 0o600)
	os.WriteFile(filepath.Join(dir, "empty-ca.pem"), []byte("no pem here"), 0o600)
	_, err := pipeline.ParseConfig([]byte(minimalConfig+`
nats:
  url: "nats://bob:p%zz-secret-9@127.0.0.1:4222"
  user: carol
  token: token-secret-8
  nkey_seed_file: bad.nk
  creds_file: not.creds
  tls: {ca_file: empty-ca.pem, cert_file: client.pem}
`), dir)
	var ce *pipeline.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	for _, want := range []string{
		"nats.url:", // not a URL (bad escape), redacted
		"user/password and token and nkey_seed_file and creds_file are alternatives",
		"nats.password: user \"carol\" needs a password",
		"nats.nkey_seed_file:",
		"nats.creds_file:",
		"cert_file and key_file go together",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems should include %q:\n%v", want, err)
		}
	}
	for _, secret := range []string{"p%zz-secret-9", "token-secret-8", "SUNOTASEED"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("a problem quotes the secret %q:\n%v", secret, err)
		}
	}
	// A CA file without a certificate is named as such.
	_, err = pipeline.ParseConfig([]byte(minimalConfig+"nats: {tls: {ca_file: empty-ca.pem}}\n"), dir)
	if err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("want the CA file refused, got %v", err)
	}
}

func TestEnvSubstitutionInConfig(t *testing.T) {
	// A value that is hard to paste into YAML: quotes, a backslash, a colon
	// and a hash.
	hard := `p"a\ss: #1'`
	t.Setenv("MLINK_TEST_NATS_PASSWORD", hard)
	t.Setenv("MLINK_TEST_NATS_USER", "dave")
	t.Setenv("MLINK_TEST_NATS_HOST", "127.0.0.1")
	cfg, err := pipeline.ParseConfig([]byte(minimalConfig+`
# ${MLINK_TEST_UNSET_IN_A_COMMENT} is a comment: not expanded
nats:
  url: nats://${MLINK_TEST_NATS_HOST}:4222
  user: ${MLINK_TEST_NATS_USER}
  password: "${MLINK_TEST_NATS_PASSWORD}"
  data_dir: "cost-$${literal}"
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.URL != "nats://127.0.0.1:4222" || cfg.NATS.User != "dave" {
		t.Errorf("url %q user %q: the variables were not substituted", cfg.NATS.URL, cfg.NATS.User)
	}
	if cfg.NATS.Password.Reveal() != hard {
		t.Errorf("password %q, want %q exactly", cfg.NATS.Password.Reveal(), hard)
	}
	if !strings.HasSuffix(cfg.NATS.DataDir, "cost-${literal}") {
		t.Errorf("$${ is a literal ${: data_dir %q", cfg.NATS.DataDir)
	}
	// Secrets never print, whichever way the config is printed.
	dump, _ := json.Marshal(cfg)
	for _, s := range []string{fmt.Sprintf("%v", cfg.NATS), fmt.Sprintf("%+v", cfg.NATS), fmt.Sprintf("%#v", cfg.NATS), string(dump)} {
		if strings.Contains(s, `p"a`) || strings.Contains(s, `p\"a`) {
			t.Errorf("the password is printed: %s", s)
		}
	}

	// An unset variable is a problem with its line, listed with the others.
	_, err = pipeline.ParseConfig([]byte(minimalConfig+`
nats:
  password: "${MLINK_TEST_UNSET_VARIABLE}"
  max_payload: 1KB
`), t.TempDir())
	if err == nil {
		t.Fatal("an unset variable must be an error")
	}
	for _, want := range []string{"line 8: environment variable MLINK_TEST_UNSET_VARIABLE is not set", "nats.max_payload"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems should include %q:\n%v", want, err)
		}
	}
	// A value with a line break cannot add keys to an unquoted place.
	t.Setenv("MLINK_TEST_INJECT", "x\nscheduler: {policy: mlink}")
	if _, err := pipeline.ParseConfig([]byte(minimalConfig+"nats:\n  user: ${MLINK_TEST_INJECT}\n  password: x\n"), t.TempDir()); err == nil ||
		!strings.Contains(err.Error(), "holds a line break") {
		t.Errorf("want a value with a line break refused unquoted, got %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                 "nats://127.0.0.1:4222",
		"nats://alice:secret@h:4222":            "nats://alice:" + pipeline.Redacted + "@h:4222",
		"nats://s3cr3t-token@h:4222":            "nats://" + pipeline.Redacted + "@h:4222",
		"nats://a:x@h1:4222,nats://b:y@h2:4222": "nats://a:" + pipeline.Redacted + "@h1:4222,nats://b:" + pipeline.Redacted + "@h2:4222",
		"nats://bob:p a ss@h:4222":              "nats://bob:" + pipeline.Redacted + "@h:4222",
		"tls://u:p@ss@h:1":                      "tls://u:" + pipeline.Redacted + "@h:1",
	} {
		if got := pipeline.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
