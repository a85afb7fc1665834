package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// clusterNode is one node of the shipped cluster configs, moved to free
// ports and a temporary store.
type clusterNode struct {
	name string // server_name
	port int
	file string
	srv  *natstest.External
}

// startShippedCluster runs configs/nats/node-{a,b,c}.conf, each port
// replaced by a free one and each store by a temporary directory.
func startShippedCluster(t *testing.T) []*clusterNode {
	t.Helper()
	natstest.NATSServerBin(t)
	src, dir := "../configs/nats", t.TempDir()
	shared, err := os.ReadFile(filepath.Join(src, "cluster.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.conf"), shared, 0o600); err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	free := natstest.FreePorts(t, 9)
	for i, p := range []string{"4251", "4252", "4253", "6251", "6252", "6253", "8251", "8252", "8253"} {
		ports["127.0.0.1:"+p] = fmt.Sprintf("127.0.0.1:%d", free[i])
	}
	var nodes []*clusterNode
	for i, n := range []string{"a", "b", "c"} {
		data, err := os.ReadFile(filepath.Join(src, "node-"+n+".conf"))
		if err != nil {
			t.Fatal(err)
		}
		// One pass: replacing one port after another could rewrite a free
		// port just written (free 42519 contains 4251).
		var pairs []string
		for from, to := range ports {
			pairs = append(pairs, from, to)
		}
		conf := strings.NewReplacer(pairs...).Replace(string(data))
		store := fmt.Sprintf("%q", ".mlink/nats-cluster/"+n)
		if !strings.Contains(conf, store) {
			t.Fatalf("node-%s.conf: no store_dir %s to move", n, store)
		}
		conf = strings.ReplaceAll(conf, store, fmt.Sprintf("%q", filepath.Join(dir, "store-"+n)))
		file := filepath.Join(dir, "node-"+n+".conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		var port int
		fmt.Sscanf(ports[fmt.Sprintf("127.0.0.1:%d", 4251+i)], "127.0.0.1:%d", &port)
		nodes = append(nodes, &clusterNode{name: "mlink-nats-" + n, port: port, file: file})
	}
	// A node is ready for clients before its routes are up; JetStream's
	// meta leader is elected once they are (the caller waits for that).
	for _, n := range nodes {
		n.srv = natstest.StartConfigFile(t, n.port, n.file)
	}
	return nodes
}

func clusterURL(nodes []*clusterNode) string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.srv.URL()
	}
	return strings.Join(urls, ",")
}

// TestClusterKeepsEveryAcknowledgedResultWhenANodeDies runs the shipped
// 3-node cluster, the results stream on all three (results_replicas: 3),
// publishes results with JetStream acknowledgements, and kills the
// stream's leader mid-run: results keep flowing (acknowledged and live)
// and every acknowledged result is in the stream afterwards.
func TestClusterKeepsEveryAcknowledgedResultWhenANodeDies(t *testing.T) {
	nodes := startShippedCluster(t)
	cfg, err := pipeline.ParseConfig([]byte(minimalConfig+fmt.Sprintf("nats: {url: %q, results_replicas: 3}\n", clusterURL(nodes))), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nc, err := pipeline.ConnectRole(&cfg.NATS, pipeline.RoleMerger, "cluster-publisher", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// JetStream's meta leader is elected once the routes are up.
	deadline := time.Now().Add(60 * time.Second)
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		err := pipeline.EnsureResultsStream(actx, nc, &cfg.NATS)
		acancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the R3 results stream: %v\nnode a:\n%s", err, nodes[0].srv.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, pipeline.DefaultSubjects.ResultsStream())
	if err != nil {
		t.Fatal(err)
	}
	if info := stream.CachedInfo(); info.Config.Replicas != 3 {
		t.Fatalf("results stream has %d replicas, want 3 from nats.results_replicas", info.Config.Replicas)
	}

	// A live subscriber, as mlink watch: it reconnects to a survivor.
	sub, err := pipeline.Connect(clusterURL(nodes), "cluster-watch", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var live atomic.Int64
	if _, err := sub.Subscribe(pipeline.DefaultSubjects.AllResults(), func(*nats.Msg) { live.Add(1) }); err != nil {
		t.Fatal(err)
	}
	sub.Flush()

	// The merger's publisher: each result is published again until the
	// stream acknowledges it; its message id makes a repeat of a stored one
	// a duplicate, not a second copy.
	pub, err := pipeline.NewResultPublisher(nc, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	pubCtx, stopPub := context.WithCancel(ctx)
	retryDone := make(chan struct{})
	go func() { defer close(retryDone); pub.Run(pubCtx, 30*time.Second) }()
	var published atomic.Uint64
	var maxGap atomic.Int64 // longest time between two acknowledgements, ns
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		tick := time.NewTicker(5 * time.Millisecond) // 200 results/s
		defer tick.Stop()
		for seq := uint64(1); pubCtx.Err() == nil; seq++ {
			r := &pipeline.Result{Camera: "plaza", Seq: seq, CapturedAt: time.Unix(1700000000, 0)}
			data, _ := json.Marshal(r)
			msg := nats.NewMsg(pipeline.DefaultSubjects.Results("plaza"))
			msg.Data = data
			if err := pub.Publish(msg, pipeline.ResultMsgID(r)); err != nil {
				t.Error(err)
				return
			}
			published.Store(seq)
			select {
			case <-pubCtx.Done():
			case <-tick.C:
			}
		}
	}()
	go func() { // the longest wait for an acknowledgement
		last, lastAt := int64(0), time.Now()
		for pubCtx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
			if n := pub.Stats().Acked.Load(); n != last {
				last, lastAt = n, time.Now()
			} else if gap := time.Since(lastAt); int64(gap) > maxGap.Load() {
				maxGap.Store(int64(gap))
			}
		}
	}()
	ackedCount := func() int { return int(pub.Stats().Acked.Load()) }
	natstest.WaitFor(t, 60*time.Second, "200 acknowledged results", func() bool { return ackedCount() >= 200 })

	// Kill the stream's leader, as a machine that dies.
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var victim *clusterNode
	for _, n := range nodes {
		if info.Cluster != nil && n.name == info.Cluster.Leader {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("no node leads the results stream: %+v", info.Cluster)
	}
	maxGap.Store(0) // from here on: the gap the failover makes
	beforeAcked, beforeLive, killedAt := ackedCount(), live.Load(), time.Now()
	victim.srv.Kill()
	natstest.WaitFor(t, 90*time.Second, "200 more acknowledged results after the leader died", func() bool { return ackedCount() >= beforeAcked+200 })
	natstest.WaitFor(t, 30*time.Second, "live results after the leader died", func() bool { return live.Load() >= beforeLive+200 })
	recovered := time.Since(killedAt)
	stopPub()
	<-feedDone
	<-retryDone // every outstanding acknowledgement awaited (up to 30 s)

	// Count: every acknowledged result is stored, once.
	info, err = stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader == victim.name || info.Cluster.Leader == "" {
		t.Errorf("the stream's leader after the kill: %+v (the dead %s must not lead)", info.Cluster, victim.name)
	}
	// Read back by sequence from the new leader (a direct get: no consumer
	// to place on a cluster that just lost a node).
	stored := map[uint64]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
		msg, err := stream.GetMsg(gctx, seq)
		gcancel()
		if err != nil {
			t.Fatalf("reading the stream back at sequence %d: %v", seq, err)
		}
		r, err := pipeline.Unmarshal[pipeline.Result](msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		stored[r.Seq]++
	}
	n := published.Load()
	st := pub.Stats()
	missing, dup := 0, 0
	for seq := uint64(1); seq <= n; seq++ {
		if stored[seq] == 0 {
			missing++
		}
	}
	for _, c := range stored {
		if c > 1 {
			dup++
		}
	}
	t.Logf("killed %s (stream leader) after %d acknowledged results; %d published, %d acknowledged, %d published again, %d lost; %d stored (%d duplicated), %d live; "+
		"longest wait for an acknowledgement across the failover %s; 200 more acknowledged %s after the kill",
		victim.name, beforeAcked, n, st.Acked.Load(), st.Retried.Load(), st.Lost.Load(), len(stored), dup, live.Load(),
		time.Duration(maxGap.Load()).Round(time.Millisecond), recovered.Round(time.Millisecond))
	if missing > 0 || st.Lost.Load() > 0 {
		t.Errorf("%d of %d published results are not in the stream after the node died (%d given up)", missing, n, st.Lost.Load())
	}
	if st.Acked.Load() != int64(n) || pub.Pending() != 0 {
		t.Errorf("%d of %d results acknowledged, %d pending: every result must be acknowledged once the cluster is back", st.Acked.Load(), n, pub.Pending())
	}
	if dup > 0 {
		t.Errorf("%d results are stored twice: a repeated publish must be a duplicate", dup)
	}
}
