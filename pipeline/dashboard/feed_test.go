package dashboard

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// publish puts a result on the bus as the merger does.
func publish(t testing.TB, pub interface {
	Publish(string, []byte) error
}, r *pipeline.Result) {
	t.Helper()
	data, err := pipeline.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(pipeline.DefaultSubjects.Results(r.Camera), data); err != nil {
		t.Fatal(err)
	}
}

func TestFeedReadsResultsAlwaysAndFramesWhileWatchedWithTheControlRole(t *testing.T) {
	srv := natstest.Start(t)
	admin := natstest.Connect(t, srv)
	// The connection that serves the dashboard in mlink run: the control
	// role, with its permissions on the embedded server.
	nc, err := srv.ConnectAs(pipeline.RoleControl, "dashboard-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hub := NewHub(Options{Cameras: []string{"plaza"}, Models: testModels})
	feed, err := Subscribe(nc, pipeline.DefaultSubjects, hub)
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	httpSrv := serve(t, hub)

	frame := func(seq uint64) {
		f := testFrame("plaza", seq, 1000)
		if err := admin.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Frames("plaza"), f)); err != nil {
			t.Fatal(err)
		}
		admin.Flush()
	}
	frame(1)
	publish(t, admin, testResult("plaza", 1))
	natstest.WaitFor(t, 5*time.Second, "the result without a viewer", func() bool { return hub.State().Cameras[0].Result != nil })
	if st := hub.Stats(); st.FrameBytes != 0 {
		t.Errorf("%d frame bytes kept while nobody watches", st.FrameBytes)
	}

	s := openStream(t, httpSrv.URL)
	s.next(t, EventState)
	// The frames subscription is in place once the server has it: a
	// round trip on the connection.
	nc.Flush()
	frame(2)
	publish(t, admin, testResult("plaza", 2))
	ev := decode[ResultEvent](t, s.next(t, EventResult).data)
	if ev.Seq != 2 || ev.Frame == nil || ev.Frame.Seq != 2 {
		t.Fatalf("result 2 with a viewer: %+v (frame %+v)", ev, ev.Frame)
	}
	admin.Publish(pipeline.DefaultSubjects.Results("plaza"), []byte("not json"))
	admin.Flush()
	natstest.WaitFor(t, 5*time.Second, "a bad result counted", func() bool { return feed.BadMessages() == 1 })

	s.cancel()
	natstest.WaitFor(t, 5*time.Second, "the frames subscription closed with the last viewer", func() bool {
		feed.mu.Lock()
		defer feed.mu.Unlock()
		return feed.frames == nil
	})
	if err := feed.Close(); err != nil {
		t.Fatal(err)
	}
	if n := nc.NumSubscriptions(); n != 0 {
		t.Errorf("%d subscriptions left after Close", n)
	}
}

// demoResult is a result of the size the demo config's eight models make:
// two detectors with ten boxes each, classes, counts, scalars.
func demoResult(camera string, seq uint64) *pipeline.Result {
	r := &pipeline.Result{Camera: camera, Seq: seq, CapturedAt: time.Now(), LatencyMS: 180, Outputs: map[string]*pipeline.Output{},
		Plan: pipeline.Plan{Camera: camera, Seq: seq, Policy: "mlink"}}
	for i, name := range demoModels {
		o := &pipeline.Output{Model: name.Name, Type: name.Type, Kind: name.Type.Kind(), Source: pipeline.SourceExact, InferMS: 20 + float64(i)}
		switch name.Type {
		case pipeline.TypeBoxes, pipeline.TypeLines:
			for j := range 10 {
				x := float32(j) / 12
				o.Boxes = append(o.Boxes, pipeline.Box{X1: x, Y1: .2, X2: x + .05, Y2: .5, Score: .8, Class: "person"})
			}
			o.Value = []float64{10}
		case pipeline.TypeClass:
			o.Value, o.Label = []float64{.1, .7, .2}, "medium"
		default:
			o.Value = []float64{3}
		}
		if i%3 == 1 {
			o.Source, o.InferMS, o.Confidence = pipeline.SourcePredicted, 0, .9
			r.Plan.Predicted = append(r.Plan.Predicted, name.Name)
		} else {
			r.Plan.Exact = append(r.Plan.Exact, name.Name)
		}
		r.Outputs[name.Name] = o
	}
	return r
}

var demoModels = []ModelInfo{{"people", pipeline.TypeBoxes}, {"faces", pipeline.TypeBoxes}, {"motion", pipeline.TypeClass},
	{"crowd", pipeline.TypeCount}, {"text", pipeline.TypeBoxes}, {"lines", pipeline.TypeLines}, {"scene", pipeline.TypeClass}, {"light", pipeline.TypeScalar}}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUpdateLatency is the dashboard's update latency: a result
// published on NATS (demo-sized, eight models) to its event parsed by
// each of 1 or 4 SSE clients over loopback HTTP, one result at a time. It
// reports the median and 99th percentile over every client's events, and
// the whole process's CPU per update (the bus, the feed's decode, the
// hub, the streams and the clients' parse: an upper bound of the
// dashboard's own).
func BenchmarkUpdateLatency(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) { benchUpdateLatency(b, n) })
	}
}

func benchUpdateLatency(b *testing.B, streams int) {
	srv := natstest.Start(b)
	pub, err := srv.Connect("publisher")
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	nc, err := srv.ConnectAs(pipeline.RoleControl, "dashboard-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	hub := NewHub(Options{Cameras: []string{"plaza"}, Models: demoModels})
	defer hub.Close()
	feed, err := Subscribe(nc, pipeline.DefaultSubjects, hub)
	if err != nil {
		b.Fatal(err)
	}
	defer feed.Close()
	url := serve(b, hub).URL
	var clients []*stream
	for range streams {
		s := openStream(b, url)
		s.next(b, EventState)
		clients = append(clients, s)
	}
	var lat []time.Duration
	seq := uint64(0)
	cpu0 := cpuTime()
	for b.Loop() {
		seq++
		data, _ := pipeline.Marshal(demoResult("plaza", seq))
		start := time.Now()
		if err := pub.Publish(pipeline.DefaultSubjects.Results("plaza"), data); err != nil {
			b.Fatal(err)
		}
		pub.Flush()
		for _, s := range clients {
			lat = append(lat, s.next(b, EventResult).at.Sub(start))
		}
	}
	cpu := cpuTime() - cpu0
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(cpu.Microseconds())/float64(seq), "cpu-µs/update")
}

// BenchmarkObserveResult is the hub's own CPU per result (build, encode,
// fan-out to four streams' buffers), without the bus or HTTP.
func BenchmarkObserveResult(b *testing.B) {
	hub := NewHub(Options{Cameras: []string{"plaza"}, Models: demoModels, ClientBuffer: 1 << 16})
	for range 4 {
		c, _ := hub.join()
		defer hub.leave(c)
	}
	results := make([]*pipeline.Result, 1024)
	for i := range results {
		results[i] = demoResult("plaza", uint64(i+1))
	}
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		seq++
		r := results[seq%uint64(len(results))]
		r.Seq = seq
		hub.ObserveResult(r)
		if seq%(1<<15) == 0 {
			hub.mu.Lock()
			for c := range hub.clients {
				for len(c.events) > 0 {
					<-c.events
				}
			}
			hub.mu.Unlock()
		}
	}
}

// BenchmarkHubMemory is the heap a hub holds per camera: its newest
// result (demo-sized) and window, and one 60 KB frame (about vtest's at
// its JPEG quality), with the results caught up.
func BenchmarkHubMemory(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run("cameras="+strconv.Itoa(n), func(b *testing.B) {
			const frameSize = 60_000
			var perCamera, withoutFrames float64
			for b.Loop() {
				ids := make([]string, n)
				for i := range ids {
					ids[i] = fmt.Sprintf("cam%d", i)
				}
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				hub := NewHub(Options{Cameras: ids, Models: demoModels})
				for _, id := range ids {
					for seq := uint64(1); seq <= 10; seq++ {
						hub.ObserveFrame(testFrame(id, seq, frameSize))
					}
					// Decoded from the bus, as the feed does: the hub
					// keeps parts of it.
					data, _ := pipeline.Marshal(demoResult(id, 10))
					r, _ := pipeline.Unmarshal[pipeline.Result](data)
					hub.ObserveResult(r)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
				perCamera = held / float64(n)
				withoutFrames = (held - float64(hub.Stats().FrameBytes)) / float64(n)
				runtime.KeepAlive(hub)
			}
			b.ReportMetric(perCamera, "bytes/camera")
			b.ReportMetric(withoutFrames, "bytes/camera-without-frame")
		})
	}
}
