package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

var testModels = []ModelInfo{{"people", pipeline.TypeBoxes}, {"motion", pipeline.TypeClass}, {"count", pipeline.TypeCount}}

func testResult(camera string, seq uint64) *pipeline.Result {
	return &pipeline.Result{Camera: camera, Seq: seq, CapturedAt: time.Now(), LatencyMS: 40,
		Plan: pipeline.Plan{Camera: camera, Seq: seq, Policy: "mlink", Exact: []string{"people"}, Predicted: []string{"count"}, Reused: []string{"motion"}},
		Outputs: map[string]*pipeline.Output{
			"people": {Model: "people", Type: pipeline.TypeBoxes, Kind: pipeline.KindSequence, Source: pipeline.SourceExact, Value: []float64{1},
				Boxes: []pipeline.Box{{X1: .1, Y1: .2, X2: .3, Y2: .6, Score: .9, Class: "person"}}, InferMS: 12.5},
			"motion": {Model: "motion", Type: pipeline.TypeClass, Source: pipeline.SourceReused, Value: []float64{.8, .2}, Label: "low", FromSeq: seq - min(seq, 2)},
			"count":  {Model: "count", Type: pipeline.TypeCount, Source: pipeline.SourcePredicted, Value: []float64{3}, Confidence: .9},
		}}
}

func testFrame(camera string, seq uint64, size int) *pipeline.Frame {
	return &pipeline.Frame{Camera: camera, Seq: seq, CapturedAt: time.Now(), Width: 64, Height: 48, JPEG: make([]byte, size)}
}

// serve mounts hub on a test server closed with the test (after the hub,
// so that open streams end first).
func serve(t testing.TB, hub *Hub) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	hub.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(hub.Close)
	return srv
}

// stream is a test client of /dashboard/events: its events arrive on a
// channel, in order.
type stream struct {
	events chan testEvent
	cancel context.CancelFunc
	done   chan struct{}
}

type testEvent struct {
	name string
	data []byte
	at   time.Time
}

func openStream(t testing.TB, url string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+PathEvents, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		cancel()
		t.Fatalf("%s: %s, Content-Type %q", PathEvents, resp.Status, ct)
	}
	s := &stream{events: make(chan testEvent, 1024), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		defer close(s.events)
		parseEvents(resp.Body, func(name string, data []byte) bool {
			s.events <- testEvent{name, data, time.Now()}
			return true
		})
	}()
	t.Cleanup(func() { s.cancel(); <-s.done })
	return s
}

// next returns the next event named name, skipping others.
func (s *stream) next(t testing.TB, name string) testEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended waiting for a %s event", name)
			}
			if ev.name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within 10 s", name)
		}
	}
}

func decode[T any](t testing.TB, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("event does not decode: %v\n%s", err, data)
	}
	return v
}

func TestEveryStreamGetsTheStateThenEveryResultInOrder(t *testing.T) {
	hub := NewHub(Options{Cameras: []string{"plaza", "gate"}, Models: testModels})
	srv := serve(t, hub)
	hub.ObserveResult(testResult("plaza", 1))
	var streams []*stream
	for range 3 {
		streams = append(streams, openStream(t, srv.URL))
	}
	natstest.WaitFor(t, 5*time.Second, "3 streams joined", func() bool { return hub.Stats().Clients == 3 })
	for seq := uint64(2); seq <= 6; seq++ {
		hub.ObserveResult(testResult("plaza", seq))
	}
	hub.ObserveResult(testResult("elsewhere", 9)) // not configured: ignored
	hub.ObserveResult(testResult("plaza", 6))     // a repeat: ignored
	hub.ObserveResult(testResult("gate", 1))
	for i, s := range streams {
		st := decode[State](t, s.next(t, EventState).data)
		if len(st.Cameras) != 2 || st.Cameras[0].Result == nil || st.Cameras[0].Result.Seq != 1 || st.Cameras[1].Result != nil {
			t.Fatalf("stream %d: first state %+v", i, st)
		}
		for seq := uint64(2); seq <= 6; seq++ {
			ev := decode[ResultEvent](t, s.next(t, EventResult).data)
			if ev.Camera != "plaza" || ev.Seq != seq {
				t.Fatalf("stream %d: result %s/%d, want plaza/%d", i, ev.Camera, ev.Seq, seq)
			}
		}
		if ev := decode[ResultEvent](t, s.next(t, EventResult).data); ev.Camera != "gate" {
			t.Fatalf("stream %d: %s/%d after plaza/6, want gate/1 (nothing else)", i, ev.Camera, ev.Seq)
		}
	}
	// A camera that restarted: its seqs start again.
	hub.ObserveResult(testResult("plaza", 1))
	for i, s := range streams {
		if ev := decode[ResultEvent](t, s.next(t, EventResult).data); ev.Camera != "plaza" || ev.Seq != 1 {
			t.Fatalf("stream %d: %s/%d after the camera restarted, want plaza/1", i, ev.Camera, ev.Seq)
		}
	}
	if st := hub.Stats(); st.Dropped != 0 || st.Events != 8 {
		t.Errorf("stats %+v: want 8 events (plaza 1-6, gate 1, plaza 1), none dropped", st)
	}
}

func TestResultEventsCarryEveryModelWithItsSource(t *testing.T) {
	hub := NewHub(Options{Cameras: []string{"plaza"}, Models: append(testModels, ModelInfo{"late", pipeline.TypeCount}, ModelInfo{"broken", pipeline.TypeCount})})
	srv := serve(t, hub)
	s := openStream(t, srv.URL)
	s.next(t, EventState)
	r := testResult("plaza", 7)
	r.Outputs["broken"] = &pipeline.Output{Model: "broken", Source: pipeline.SourceExact, Error: "model failed"}
	r.Partial, r.Reason, r.Missing = true, pipeline.PartialDeadline, []string{"late"}
	hub.ObserveResult(r)
	ev := decode[ResultEvent](t, s.next(t, EventResult).data)
	want := map[string]string{"people": "exact", "motion": "reused", "count": "predicted", "late": SourceMissing, "broken": SourceError}
	if len(ev.Models) != len(want) {
		t.Fatalf("%d models, want %d: %+v", len(ev.Models), len(want), ev.Models)
	}
	for i, m := range ev.Models {
		if m.Model != hub.opts.Models[i].Name || m.Source != want[m.Model] {
			t.Errorf("model %d: %s from %s, want %s from %s", i, m.Model, m.Source, hub.opts.Models[i].Name, want[m.Model])
		}
	}
	if p := ev.Models[0]; len(p.Boxes) != 1 || p.Boxes[0].Class != "person" || p.InferMS != 12.5 {
		t.Errorf("people: %+v", p)
	}
	if m := ev.Models[1]; m.AgeFrames != 2 || m.Label != "low" {
		t.Errorf("motion reused from 2 frames back: %+v", m)
	}
	if ev.Plan.UsedMS != 12.5 || ev.Plan.Policy != "mlink" || !ev.Partial || ev.Reason != pipeline.PartialDeadline {
		t.Errorf("plan %+v partial %v %s", ev.Plan, ev.Partial, ev.Reason)
	}
}

func TestASlowStreamMissesEventsCountedAndNeverBlocksTheFeed(t *testing.T) {
	hub := NewHub(Options{Cameras: []string{"plaza"}, Models: testModels, ClientBuffer: 4})
	stuck, _ := hub.join() // never reads
	defer hub.leave(stuck)
	fast, _ := hub.join()
	defer hub.leave(fast)
	got := make(chan struct{})
	go func() {
		defer close(got)
		for range 100 {
			<-fast.events
		}
	}()
	start := time.Now()
	for seq := uint64(1); seq <= 100; seq++ {
		hub.ObserveResult(testResult("plaza", seq))
		for len(fast.events) == cap(fast.events) {
			runtime.Gosched() // the fast reader keeps up
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("100 results took %s with a stuck stream", took)
	}
	if n := stuck.dropped.Load(); n != 96 {
		t.Errorf("the stuck stream dropped %d events, want 96 (100 - its buffer of 4)", n)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatalf("the fast stream got fewer than 100 events (dropped %d)", fast.dropped.Load())
	}
	if st := hub.Stats(); st.Dropped != 96 || st.Events != 100 {
		t.Errorf("hub stats %+v, want 100 events and 96 dropped", st)
	}
	if ev := hub.stats(stuck); ev.Dropped != 96 || ev.DroppedAll != 96 || ev.Clients != 2 {
		t.Errorf("stats event of the stuck stream: %+v", ev)
	}
}

func TestFramesAreBoundedAndPairedWithTheirResult(t *testing.T) {
	hub := NewHub(Options{Cameras: []string{"plaza", "gate"}, Models: testModels, WaitingFrames: 3})
	const size = 10_000
	for seq := uint64(1); seq <= 50; seq++ {
		hub.ObserveFrame(testFrame("plaza", seq, size))
		hub.ObserveFrame(testFrame("elsewhere", seq, size)) // not configured: not kept
	}
	// Without results: the first frame (shown until a result comes) and
	// the newest 3.
	if st := hub.Stats(); st.FrameBytes != 4*size {
		t.Errorf("%d frame bytes kept for 1 camera with 3 waiting + 1 shown, want %d", st.FrameBytes, 4*size)
	}
	hub.ObserveResult(testResult("plaza", 49))
	f, _ := hub.frameOf("plaza")
	if f == nil || f.Seq != 49 {
		t.Fatalf("shown frame %+v, want the result's own, 49", f)
	}
	if st := hub.Stats(); st.FrameBytes != 2*size {
		t.Errorf("%d bytes after result 49: want frame 49 (shown) and 50 (waiting)", st.FrameBytes)
	}
	// A result whose frame was never seen keeps the shown frame and says so.
	hub.ObserveResult(testResult("plaza", 60))
	if ev := hub.State().Cameras[0].Result; ev.Frame == nil || ev.Frame.Seq != 49 || ev.Seq != 60 {
		t.Errorf("result 60 without its frame: %+v", ev)
	}
	// A camera that restarted (seqs from 1 again) pairs its frames again
	// from its first result on.
	hub.ObserveFrame(testFrame("plaza", 1, size))
	hub.ObserveResult(testResult("plaza", 1))
	hub.ObserveFrame(testFrame("plaza", 2, size))
	hub.ObserveResult(testResult("plaza", 2))
	if f, _ := hub.frameOf("plaza"); f == nil || f.Seq != 2 {
		t.Errorf("after a restart, shown frame %+v, want 2", f)
	}
	// Many cameras: memory grows with the configured ones only.
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("cam%d", i)
	}
	hub.SetCameras(ids)
	for _, id := range ids {
		for seq := uint64(1); seq <= 10; seq++ {
			hub.ObserveFrame(testFrame(id, seq, size))
		}
		hub.ObserveResult(testResult(id, 10))
	}
	if st := hub.Stats(); st.FrameBytes != len(ids)*size {
		t.Errorf("%d frame bytes for %d cameras with their results in: want one frame each, %d", st.FrameBytes, len(ids), len(ids)*size)
	}
	if _, known := hub.frameOf("plaza"); known {
		t.Error("a camera removed by SetCameras is still kept")
	}
}

func TestFrameEndpoint(t *testing.T) {
	hub := NewHub(Options{Cameras: []string{"plaza", "gate"}, Models: testModels})
	srv := serve(t, hub)
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get(PathFrame + "nowhere"); resp.StatusCode != 404 || !strings.Contains(body, `no camera "nowhere"`) {
		t.Errorf("unknown camera: %s %q", resp.Status, body)
	}
	if resp, body := get(PathFrame + "gate"); resp.StatusCode != 404 || !strings.Contains(body, "no frame yet") {
		t.Errorf("camera without a frame: %s %q", resp.Status, body)
	}
	f := testFrame("plaza", 5, 0)
	f.JPEG = []byte("\xff\xd8jpeg bytes")
	hub.ObserveFrame(f)
	hub.ObserveResult(testResult("plaza", 5))
	resp, body := get(PathFrame + "plaza")
	if resp.StatusCode != 200 || body != string(f.JPEG) || resp.Header.Get("Content-Type") != "image/jpeg" ||
		resp.Header.Get(pipeline.HeaderSeq) != "5" || resp.Header.Get(pipeline.HeaderWidth) != "64" {
		t.Errorf("frame: %s %q %v", resp.Status, body, resp.Header)
	}
	resp, body = get(PathState)
	st := decode[State](t, []byte(body))
	if resp.Header.Get("Content-Type") != "application/json" || len(st.Cameras) != 2 || st.Cameras[0].Frame == nil || st.Cameras[0].Frame.Seq != 5 ||
		len(st.Models) != len(testModels) || len(st.Stats.Cameras) != 2 || st.Stats.Cameras[0].Results != 1 {
		t.Errorf("state: %s", body)
	}
	for _, path := range []string{"/", PathAssets + "dashboard.js", PathAssets + "dashboard.css"} {
		if resp, body := get(path); resp.StatusCode != 200 || len(body) < 100 {
			t.Errorf("%s: %s, %d bytes", path, resp.Status, len(body))
		}
	}
	if resp, _ := get("/nothing-here"); resp.StatusCode != 404 {
		t.Errorf("/nothing-here: %s (the page is at / only)", resp.Status)
	}
}

func TestStatsAndHeartbeatsParseBack(t *testing.T) {
	agreement := 0.93
	hub := NewHub(Options{Cameras: []string{"plaza"}, Models: testModels, StatsEvery: 20 * time.Millisecond, Heartbeat: 10 * time.Millisecond,
		Live: func() Live {
			return Live{BudgetMS: 450, Agreement: &agreement, IngestDropped: map[string]uint64{"plaza": 3}}
		}})
	srv := serve(t, hub)
	for seq := uint64(1); seq <= 20; seq++ {
		hub.ObserveResult(testResult("plaza", seq))
	}
	hub.ObserveResult(&pipeline.Result{Camera: "plaza", Seq: 21, Partial: true, Reason: pipeline.PartialLost})

	// Raw, to see the wire format: comments and named events.
	resp, err := http.Get(srv.URL + PathEvents)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var heartbeat, stats bool
	for sc.Scan() && !(heartbeat && stats) {
		line := sc.Text()
		heartbeat = heartbeat || line == ": heartbeat"
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, `"fps"`) && !strings.Contains(data, `"models"`) {
			ev := decode[StatsEvent](t, []byte(data))
			c := ev.Cameras[0]
			if ev.BudgetMS != 450 || ev.Agreement == nil || *ev.Agreement != agreement || ev.Clients != 1 ||
				c.Results != 20 || c.Lost != 1 || c.LatencyP50MS != 40 || c.FPS <= 0 || c.IngestDropped == nil || *c.IngestDropped != 3 {
				t.Errorf("stats event: %s", data)
			}
			stats = true
		}
	}
	if !heartbeat || !stats {
		t.Errorf("heartbeat %v, stats %v: %v", heartbeat, stats, sc.Err())
	}
}

func TestStreamsEndWhenTheClientGoesAndWhenTheHubCloses(t *testing.T) {
	before := runtime.NumGoroutine()
	hub := NewHub(Options{Cameras: []string{"plaza"}, Models: testModels})
	mux := http.NewServeMux()
	hub.Mount(mux)
	srv := httptest.NewServer(mux)

	gone := openStream(t, srv.URL)
	gone.next(t, EventState)
	natstest.WaitFor(t, 5*time.Second, "a stream", func() bool { return hub.Stats().Clients == 1 })
	gone.cancel()
	natstest.WaitFor(t, 5*time.Second, "the stream to end with its client", func() bool { return hub.Stats().Clients == 0 })

	open := openStream(t, srv.URL)
	open.next(t, EventState)
	hub.Close()
	select {
	case <-open.done:
	case <-time.After(5 * time.Second):
		t.Fatal("a stream still open 5 s after the hub closed")
	}
	resp, err := http.Get(srv.URL + PathEvents)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a stream after Close: %s, want 503", resp.Status)
	}
	srv.Close()
	http.DefaultClient.CloseIdleConnections()
	natstest.WaitFor(t, 5*time.Second, "goroutines back to where they were", func() bool { return runtime.NumGoroutine() <= before })
}

func TestWindowFigures(t *testing.T) {
	w := newWindow(8)
	now := time.Now()
	for i := range 20 { // 10 per second; the ring keeps the newest 8
		w.add(now.Add(time.Duration(i)*100*time.Millisecond), float64(i))
	}
	end := now.Add(1900 * time.Millisecond)
	fps, p50, p95 := w.figures(end, 10*time.Second)
	if fps < 9.9 || fps > 10.1 || p50 != 15 || p95 != 18 {
		t.Errorf("fps %.2f p50 %v p95 %v, want 10, 15, 18", fps, p50, p95)
	}
	if fps, _, _ := w.figures(end.Add(time.Minute), 10*time.Second); fps != 0 {
		t.Errorf("fps %v a minute after the last result, want 0", fps)
	}
}
