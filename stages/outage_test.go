package stages

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// natsServerBin finds Debian's nats-server (in /usr/sbin, often not on a
// user's PATH).
func natsServerBin(t *testing.T) string {
	t.Helper()
	if bin, err := exec.LookPath("nats-server"); err == nil {
		return bin
	}
	needFile(t, "/usr/sbin/nats-server", "apt-get install nats-server")
	return "/usr/sbin/nats-server"
}

// natsProcess is Debian's nats-server run as a separate process, on a
// fixed port and store directory, so that it can be killed and started
// again as the same server.
type natsProcess struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

func startNATSProcess(t *testing.T) *natsProcess {
	t.Helper()
	bin := natsServerBin(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &natsProcess{t: t, bin: bin, port: l.Addr().(*net.TCPAddr).Port, dir: t.TempDir()}
	l.Close()
	n.start()
	t.Cleanup(n.kill)
	return n
}

func (n *natsProcess) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// start runs the server and waits until it accepts connections.
func (n *natsProcess) start() {
	n.t.Helper()
	n.cmd = exec.Command(n.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(n.port), "-js", "-sd", n.dir)
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("nats-server on port %d did not start: %v", n.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the server at once (SIGKILL: no goodbye to its clients).
func (n *natsProcess) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
	n.cmd = nil
}

// storedResults reads every result in the results stream, by seq.
func storedResults(t *testing.T, nc *nats.Conn) map[uint64]*pipeline.Result {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, pipeline.DefaultSubjects.ResultsStream(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]*pipeline.Result{}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			r, err := pipeline.Unmarshal[pipeline.Result](m.Data())
			if err != nil {
				t.Fatal(err)
			}
			if out[r.Seq] != nil {
				t.Errorf("seq %d has two results in the stream", r.Seq)
			}
			out[r.Seq] = r
		}
		if n == 0 {
			return out
		}
	}
}

// The NATS server (Debian's, a separate process) is killed mid-run and
// started again 5 s later on the same port with its JetStream store: every
// connection notices and says so, results flow again within 8 s of the
// server's return (the in-flight credits of the frames lost in the outage
// are released on reconnect, not after in_flight_timeout), and every frame
// the camera published has a result in the results stream — complete,
// partial with its reason, or a gap record.
func TestNATSOutageRecoversAndLosesNothingSilently(t *testing.T) {
	ns := startNATSProcess(t)
	events := &pipeline.ConnEvents{}
	conns := 0
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	dial := func(name string) *nats.Conn {
		nc, err := pipeline.Connect(ns.url(), name, 10*time.Second, pipeline.WithEvents(events), pipeline.WithLogger(log))
		if err != nil {
			t.Fatal(err)
		}
		conns++
		t.Cleanup(nc.Close)
		return nc
	}
	setup := dial("setup")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pipeline.EnsureResultsStream(ctx, setup, &pipeline.NATSConfig{ResultsMaxAge: time.Hour, ResultsMaxBytes: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, dial, 2*time.Second, ackResults)
	p.waitResults(t, 20)

	killed := time.Now()
	ns.kill()
	waitFor(t, 30*time.Second, "every connection to notice the outage", func() bool {
		return events.Count(pipeline.EventDisconnect) >= uint64(conns)
	})
	detected := time.Since(killed)
	time.Sleep(5*time.Second - detected)

	back := time.Now()
	ns.start()
	waitFor(t, 60*time.Second, "a result of a frame captured after the server's return", func() bool {
		rs := p.get()
		return rs[len(rs)-1].CapturedAt.After(back)
	})
	recovered := time.Since(back)
	waitFor(t, 30*time.Second, "every connection back", func() bool {
		return events.Count(pipeline.EventReconnect) >= uint64(conns)
	})
	reconnected := time.Since(back)
	p.waitResults(t, 20)
	t.Logf("outage: all %d connections detected it in %s; all back %s after the server's return; results flowing again after %s",
		conns, detected.Round(time.Millisecond), reconnected.Round(time.Millisecond), recovered.Round(time.Millisecond))
	if recovered > 8*time.Second {
		t.Errorf("results flowed again %s after the server's return, want within 8 s", recovered)
	}

	p.stopCamera()
	last := p.camera.Stats().LastSeq
	var stored map[uint64]*pipeline.Result
	missing := func() []uint64 {
		var out []uint64
		for seq := uint64(1); seq <= last; seq++ {
			if stored[seq] == nil {
				out = append(out, seq)
			}
		}
		return out
	}
	waitFor(t, 30*time.Second, "a result for every published frame in the stream", func() bool {
		stored = storedResults(t, setup)
		return len(missing()) == 0
	})
	counts := map[string]int{}
	for seq := uint64(1); seq <= last; seq++ {
		r := stored[seq]
		key := "complete"
		if r.Partial {
			key = "partial (" + string(r.Reason) + ")"
		}
		counts[key]++
	}
	st := p.camera.Stats()
	ps := p.merger.ResultPublisher().Stats()
	t.Logf("%d frames published: %v; in-flight slots released on reconnect %d, by timeout %d; results published %d, acknowledged %d, published again %d, given up %d",
		last, fmt.Sprint(counts), st.InFlightReleased, st.InFlightTimeouts, ps.Published.Load(), ps.Acked.Load(), ps.Retried.Load(), ps.Lost.Load())
	if ps.Lost.Load() != 0 {
		t.Errorf("the merger gave up on %d results", ps.Lost.Load())
	}
	if st.InFlightTimeouts != 0 {
		t.Errorf("%d in-flight slots came back only by timeout", st.InFlightTimeouts)
	}
}
