package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mlink-project/mlink/pipeline"
)

// scrapeMetrics GETs /metrics and parses it with Prometheus' own parser.
func scrapeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	return fams
}

// sample is the value of the series of family name whose labels include
// every pair given (name, value, name, value...); ok false if none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsOfARealRunMoveConsistently(t *testing.T) {
	cfg := demoConfig(t, "motion", "face_blazeface")
	cfg.Budget.MSPerFrame = 450
	const frames = 10
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{maxFrames: frames, roles: "all", httpListen: "127.0.0.1:0"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	if err := a.wait(ctx); err != nil {
		t.Fatal(err)
	}
	// A forged output (no plan's token) on the real subject: refused by the
	// merger, and counted where an operator looks.
	forger, err := a.srv.Connect("mlink-test-forger")
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	forged := []byte(`{"camera":"plaza","seq":3,"model":"motion","kind":"vector","type":"class","value":[1,0,0,0],"source":"exact","token":"forged"}`)
	if err := forger.Publish(pipeline.DefaultSubjects.Outputs("plaza", "motion"), forged); err != nil {
		t.Fatal(err)
	}
	if err := forger.Flush(); err != nil {
		t.Fatal(err)
	}
	var fams map[string]*dto.MetricFamily
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		fams = scrapeMetrics(t, a.http.Addr())
		if rejected(fams, "merger") > 0 || time.Now().After(deadline) {
			break
		}
	}
	if rejected(fams, "merger") < 1 {
		t.Errorf("a forged output is not counted in mlink_rejected_messages_total{stage=\"merger\"}")
	}
	if _, ok := fams["mlink_nats_connection_events_total"]; !ok {
		t.Error("/metrics has no mlink_nats_connection_events_total")
	}
	must := func(name string, labels ...string) float64 {
		t.Helper()
		v, ok := sample(fams, name, labels...)
		if !ok {
			t.Fatalf("/metrics has no %s%v", name, labels)
		}
		return v
	}
	ingested := must("mlink_camera_frames_ingested_total", "camera", "plaza")
	published := must("mlink_camera_frames_published_total", "camera", "plaza")
	complete := must("mlink_results_total", "camera", "plaza", "kind", "complete")
	if published != frames || ingested < published || complete != frames {
		t.Errorf("ingested %v ≥ published %v = results %v = %d frames expected", ingested, published, complete, frames)
	}
	if v, ok := sample(fams, "mlink_results_total", "kind", "partial"); ok && v != 0 {
		t.Errorf("%v partial results on a run that had time for every output", v)
	}
	for _, m := range cfg.ModelNames() {
		if n := must("mlink_model_outputs_total", "model", m, "source", "exact"); n != frames {
			t.Errorf("%s: %v exact outputs, want %d", m, n, frames)
		}
		if n := must("mlink_model_inference_seconds", "model", m); n != frames {
			t.Errorf("%s: inference histogram counted %v, want %d", m, n, frames)
		}
		if n := must("mlink_stage_sent_total", "stage", "worker "+m); n != frames {
			t.Errorf("worker %s sent %v outputs, want %d", m, n, frames)
		}
		if up := must("mlink_stage_up", "stage", "worker "+m, "tier", "worker"); up != 1 {
			t.Errorf("worker %s not up", m)
		}
	}
	if n := must("mlink_result_latency_seconds"); n != frames {
		t.Errorf("latency histogram counted %v results, want %d", n, frames)
	}
	// Every queue listed, and empty once the run's results are all out.
	for _, stage := range append([]string{"scheduler", "merger"}, func() (ws []string) {
		for _, m := range cfg.ModelNames() {
			ws = append(ws, "worker "+m)
		}
		return
	}()...) {
		if q := must("mlink_stage_queue_depth", "stage", stage); q != 0 {
			t.Errorf("%s: %v messages queued after the run", stage, q)
		}
	}
	if n := must("mlink_scheduler_frames_total"); n != frames {
		t.Errorf("scheduler planned %v frames, want %d", n, frames)
	}
	// No pools here: every execution went to the unpooled workers.
	if sent, ex := must("mlink_scheduler_pool_frames_total", "pool", ""), must("mlink_scheduler_executions_total"); sent != ex || ex == 0 || must("mlink_scheduler_pool_fallbacks_total") != 0 || must("mlink_scheduler_pool_unserved_total") != 0 {
		t.Errorf("%v frames sent to the unpooled workers for %v executions (want equal, > 0), %v fallbacks, %v unserved", sent, ex, must("mlink_scheduler_pool_fallbacks_total"), must("mlink_scheduler_pool_unserved_total"))
	}
	if n := must("mlink_stage_sent_total", "stage", "merger"); n != frames {
		t.Errorf("merger sent %v results, want %d", n, frames)
	}
	// Results are JetStream publishes: each acknowledged (stored), none
	// given up; the scrape may come before the last acknowledgement.
	if acked, lost := must("mlink_results_stream_acked_total"), must("mlink_results_stream_lost_total"); acked+must("mlink_results_stream_pending") != frames || lost != 0 {
		t.Errorf("results stream: %v acknowledged, %v pending, %v lost, want %d acknowledged or pending and none lost", acked, must("mlink_results_stream_pending"), lost, frames)
	}
	if used, budget := must("mlink_model_exact_seconds_total"), must("mlink_budget_ms_per_frame"); used <= 0 || budget != 450 {
		t.Errorf("model time %v s, budget %v ms/frame (want > 0 and 450)", used, budget)
	}
	// Frames out of ingest and into the workers all crossed the bus.
	if in := must("mlink_nats_messages_total", "conn", "mlink-worker-motion", "direction", "in"); in < frames {
		t.Errorf("the motion worker's connection received %v messages for %d frames", in, frames)
	}
	if out := must("mlink_nats_bytes_total", "conn", "mlink-ingest", "direction", "out"); out < frames*1000 {
		t.Errorf("ingest sent %v bytes for %d JPEG frames", out, frames)
	}
	if must("mlink_camera_up", "camera", "plaza") != 0 {
		t.Error("a camera whose file ended (--max-frames) still reads up")
	}
	if must("mlink_config_last_reload_successful") != 1 || must("mlink_config_last_reload_success_timestamp_seconds") <= 0 {
		t.Error("before any reload the reload gauges read success at the start")
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	// Every result on the bus, as the merger wrote it, matches the
	// published JSON Schema and carries its schema_version.
	schema, err := jsonschema.NewCompiler().Compile("../../docs/result.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	raw := storedMessages(t, a, cfg)
	if len(raw) != frames {
		t.Fatalf("%d stored results, want %d", len(raw), frames)
	}
	for _, data := range raw {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(inst); err != nil {
			t.Errorf("a result does not match docs/result.schema.json: %v\n%s", err, data)
		}
	}
}

// BenchmarkMetricsScrape is the cost of one /metrics scrape of a process
// that ran the pipeline (two models, one camera, results counted), over
// loopback HTTP as Prometheus scrapes it.
func BenchmarkMetricsScrape(b *testing.B) {
	cfg := demoConfig(b, "motion", "face_blazeface")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{maxFrames: 20, roles: "all", httpListen: "127.0.0.1:0"}, zerologNop())
	if err != nil {
		b.Fatal(err)
	}
	defer a.shutdown()
	if err := a.wait(ctx); err != nil {
		b.Fatal(err)
	}
	url := "http://" + a.http.Addr() + "/metrics"
	var size int64
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cpu0, n := pipeline.CPUTime(), 0
	for b.Loop() {
		n++
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		size = n
	}
	b.ReportMetric(float64(size), "bytes/scrape")
	// The process's CPU per scrape (server and this client together), and
	// the live heap the scrapes leave behind (the HTTP side must not grow).
	b.ReportMetric(float64((pipeline.CPUTime()-cpu0).Microseconds())/1000/float64(n), "cpu-ms/scrape")
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/(1<<20), "heap-MB-kept")
}

func zerologNop() zerolog.Logger { return zerolog.Nop() }

// rejected sums mlink_rejected_messages_total over the reasons of a stage.
func rejected(fams map[string]*dto.MetricFamily, stage string) float64 {
	f := fams["mlink_rejected_messages_total"]
	if f == nil {
		return 0
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "stage" && l.GetValue() == stage {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
