package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

func TestEmbeddedServerRequiresCredentialsFromItsDataDir(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "nats")
	srv, err := pipeline.StartEmbedded("127.0.0.1:-1", dataDir, 1<<20, pipeline.DefaultSubjects)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dataDir, pipeline.EmbeddedCredentialsFile)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("no credentials generated at the first start: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %04o, want 0600", fi.Mode().Perm())
	}
	first, _ := os.ReadFile(file)

	// Anyone on the machine: refused.
	if nc, err := nats.Connect(srv.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("a client without credentials was accepted")
	}
	// A role of another process of the same config: accepted.
	nc, err := pipeline.ConnectRole(&pipeline.NATSConfig{URL: srv.ClientURL(), DataDir: dataDir}, pipeline.RoleWorker, "test", 0)
	if err != nil {
		t.Fatalf("a role with the data dir's credentials was refused: %v", err)
	}
	nc.Close()
	srv.Shutdown()

	// A restart keeps the credentials: processes started before still fit.
	srv, err = pipeline.StartEmbedded("127.0.0.1:-1", dataDir, 1<<20, pipeline.DefaultSubjects)
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	if again, _ := os.ReadFile(file); string(again) != string(first) {
		t.Error("a restart generated new credentials: running roles would be locked out")
	}

	// Credentials others can read are refused, with what to do.
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.StartEmbedded("127.0.0.1:-1", dataDir, 1<<20, pipeline.DefaultSubjects)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable credentials file: %v, want it refused with chmod 600", err)
	}
}

// subjectsOfTheBus are one subject of each kind mlink uses, each with the
// roles that may publish on it: what the permissions must give, written
// out here rather than read from RolePermissions, so a wrong table fails.
var subjectsOfTheBus = []struct {
	subject    string
	publishers []pipeline.Role
}{
	{pipeline.DefaultSubjects.Frames("plaza"), []pipeline.Role{pipeline.RoleIngest}},
	{pipeline.DefaultSubjects.Plan("plaza"), []pipeline.Role{pipeline.RoleScheduler}},
	{pipeline.DefaultSubjects.Infer("hog"), []pipeline.Role{pipeline.RoleScheduler}},
	{pipeline.DefaultSubjects.InferOn("cloud-gpu", "hog"), []pipeline.Role{pipeline.RoleScheduler}},
	{pipeline.DefaultSubjects.Outputs("plaza", "hog"), []pipeline.Role{pipeline.RoleWorker, pipeline.RolePredictor}},
	{pipeline.DefaultSubjects.Health("hog"), []pipeline.Role{pipeline.RoleWorker}},
	{pipeline.DefaultSubjects.Predict(), []pipeline.Role{pipeline.RoleMerger}},
	{pipeline.DefaultSubjects.Escalate("plaza"), []pipeline.Role{pipeline.RoleMerger}},
	{pipeline.DefaultSubjects.Results("plaza"), []pipeline.Role{pipeline.RoleMerger}},
}

// violations collects the permission violations the server reports to a
// client (asynchronously, as -ERR).
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err.Error())
}

func (v *violations) of(subject string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.errs {
		if strings.Contains(strings.ToLower(e), "permissions violation") && strings.Contains(e, `"`+subject+`"`) {
			return true
		}
	}
	return false
}

func TestEveryRolePublishesOnlyWhatItMust(t *testing.T) {
	dataDir := t.TempDir()
	srv, err := pipeline.StartEmbedded("127.0.0.1:-1", dataDir, 1<<20, pipeline.DefaultSubjects)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	admin := natstest.Connect(t, srv)
	spy, err := admin.SubscribeSync("mlink.>")
	if err != nil {
		t.Fatal(err)
	}
	admin.Flush()
	cfg := &pipeline.NATSConfig{URL: srv.ClientURL(), DataDir: dataDir}
	for _, role := range []pipeline.Role{pipeline.RoleIngest, pipeline.RoleScheduler, pipeline.RoleTrainer, pipeline.RoleWorker,
		pipeline.RolePredictor, pipeline.RoleMerger, pipeline.RoleControl, pipeline.RoleWatch} {
		var v violations
		opts, err := cfg.ClientOptions(role)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := pipeline.Connect(cfg.URL, "perm-"+string(role), 0, pipeline.WithNATSOptions(append(opts, nats.ErrorHandler(v.handler))...))
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		for _, s := range subjectsOfTheBus {
			allowed := false
			for _, r := range s.publishers {
				allowed = allowed || r == role
			}
			if err := nc.Publish(s.subject, []byte("from "+string(role))); err != nil {
				t.Fatal(err)
			}
			nc.Flush()
			if allowed {
				msg, err := spy.NextMsg(10 * time.Second)
				if err != nil || msg.Subject != s.subject || string(msg.Data) != "from "+string(role) {
					t.Errorf("%s may publish on %s, but it did not arrive (%v)", role, s.subject, err)
				}
				continue
			}
			natstest.WaitFor(t, 10*time.Second, string(role)+" refused publishing on "+s.subject, func() bool { return v.of(s.subject) })
			if msg, err := spy.NextMsg(50 * time.Millisecond); err == nil {
				t.Errorf("%s published on %s, outside its permissions", role, msg.Subject)
			}
		}
		nc.Close()
	}

	// Subscriptions too: a worker cannot read the frames of every camera
	// (it gets them per model from the scheduler), nor watch plans or
	// escalations.
	var v violations
	opts, _ := cfg.ClientOptions(pipeline.RoleWorker)
	worker, err := pipeline.Connect(cfg.URL, "perm-worker-sub", 0, pipeline.WithNATSOptions(append(opts, nats.ErrorHandler(v.handler))...))
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	for _, s := range []string{pipeline.DefaultSubjects.AllFrames(), pipeline.DefaultSubjects.AllPlans(), pipeline.DefaultSubjects.AllEscalations()} {
		if _, err := worker.SubscribeSync(s); err != nil {
			t.Fatal(err)
		}
		worker.Flush()
		natstest.WaitFor(t, 10*time.Second, "worker refused subscribing to "+s, func() bool { return v.of(s) })
	}
	// A pooled worker takes its pool's frames (no violation).
	pooled := pipeline.DefaultSubjects.InferOn("cloud-gpu", "hog")
	if _, err := worker.QueueSubscribe(pooled, pipeline.DefaultSubjects.InferQueueOn("cloud-gpu", "hog"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := worker.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if v.of(pooled) {
		t.Errorf("a worker may not subscribe to its pool's frames on %s", pooled)
	}

	// Replies: the merger takes its acknowledgements on its own inboxes,
	// and cannot read the control role's (JetStream API answers) nor
	// every client's.
	var mv violations
	opts, _ = cfg.ClientOptions(pipeline.RoleMerger)
	merger, err := pipeline.Connect(cfg.URL, "perm-merger-sub", 0, pipeline.WithNATSOptions(append(opts, nats.ErrorHandler(mv.handler))...))
	if err != nil {
		t.Fatal(err)
	}
	defer merger.Close()
	if in := merger.NewInbox(); !strings.HasPrefix(in, pipeline.InboxPrefix(pipeline.RoleMerger)+".") {
		t.Errorf("the merger's inbox %s is not under its role's prefix", in)
	}
	own, _ := merger.SubscribeSync(merger.NewInbox())
	for _, s := range []string{pipeline.InboxPrefix(pipeline.RoleControl) + ".>", "_INBOX.>"} {
		if _, err := merger.SubscribeSync(s); err != nil {
			t.Fatal(err)
		}
		merger.Flush()
		natstest.WaitFor(t, 10*time.Second, "merger refused subscribing to "+s, func() bool { return mv.of(s) })
	}
	if !own.IsValid() || mv.of(own.Subject) {
		t.Errorf("the merger may not subscribe to its own inbox %s", own.Subject)
	}
}

func TestWatchReadsResultsButCannotDeleteTheStream(t *testing.T) {
	dataDir := t.TempDir()
	srv, err := pipeline.StartEmbedded("127.0.0.1:-1", dataDir, 1<<20, pipeline.DefaultSubjects)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	admin := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pipeline.EnsureResultsStream(ctx, admin, &pipeline.NATSConfig{ResultsMaxAge: time.Hour, ResultsMaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	admin.Publish(pipeline.DefaultSubjects.Results("plaza"), []byte(`{"camera":"plaza","seq":1}`))
	admin.Flush()

	watch, err := pipeline.ConnectRole(&pipeline.NATSConfig{URL: srv.ClientURL(), DataDir: dataDir}, pipeline.RoleWatch, "watch", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	js, _ := jetstream.New(watch)
	cons, err := js.OrderedConsumer(ctx, pipeline.DefaultSubjects.ResultsStream(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("watch cannot read the results stream: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil || !strings.Contains(string(msg.Data()), `"seq":1`) {
		t.Fatalf("watch read %v (%v)", msg, err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	defer dcancel()
	if err := js.DeleteStream(dctx, pipeline.DefaultSubjects.ResultsStream()); err == nil {
		t.Fatal("watch deleted the results stream")
	}
	ajs, _ := jetstream.New(admin)
	if _, err := ajs.Stream(ctx, pipeline.DefaultSubjects.ResultsStream()); err != nil {
		t.Fatalf("the results stream is gone after watch tried to delete it: %v", err)
	}
}

func TestWarningWhenTheEmbeddedServerListensBeyondLocalhost(t *testing.T) {
	for listen, warn := range map[string]bool{"127.0.0.1:4242": false, "[::1]:4242": false, "localhost:4242": false,
		"0.0.0.0:4242": true, "192.0.2.7:4242": true, ":4242": true} {
		c := pipeline.NATSConfig{Listen: listen, DataDir: "d"}
		if got := len(c.Warnings()) > 0; got != warn {
			t.Errorf("listen %s: warning %v, want %v", listen, got, warn)
		}
	}
	c := pipeline.NATSConfig{URL: "nats://10.0.0.1:4222", Listen: "0.0.0.0:4242"}
	if len(c.Warnings()) != 0 {
		t.Error("with nats.url set no embedded server listens: no warning")
	}
}
