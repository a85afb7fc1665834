package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestFuncBackedCountersAndFamiliesAreReadAtScrapeTime(t *testing.T) {
	r := New()
	var rejected atomic.Int64
	cameras := map[string]float64{"plaza": 3}
	r.MustRegister(CounterFunc("mlink_bus_rejected_total", "Rejected.", func() float64 { return float64(rejected.Load()) }))
	r.MustRegister(NewCounterFamily("mlink_camera_frames_published_total", "Published.", []string{"camera"}, func(emit Emit) {
		for id, n := range cameras {
			emit(n, id)
		}
	}))
	rejected.Add(2)
	cameras["gate"] = 5
	fams := scrape(t, r)
	if v := fams["mlink_bus_rejected_total"].Metric[0].GetCounter().GetValue(); v != 2 {
		t.Errorf("rejected %v, want 2 (read at scrape time)", v)
	}
	got := map[string]float64{}
	for _, m := range fams["mlink_camera_frames_published_total"].Metric {
		got[m.Label[0].GetValue()] = m.GetCounter().GetValue()
	}
	if len(got) != 2 || got["plaza"] != 3 || got["gate"] != 5 {
		t.Errorf("family %v: a camera added later must show", got)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("the Go runtime's metrics are missing")
	}
}

func TestNamesWithoutThePrefixAreRefused(t *testing.T) {
	if err := New().Register(CounterFunc("frames_total", "x", func() float64 { return 0 })); err == nil || !strings.Contains(err.Error(), "mlink_") {
		t.Fatalf("got %v", err)
	}
}

func scrape(t testing.TB, r *Registry) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.Reader(rec.Body))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// BenchmarkScrape measures one /metrics scrape of a registry with the
// runtime's collectors and 100 func-backed series.
func BenchmarkScrape(b *testing.B) {
	r := New()
	r.MustRegister(NewCounterFamily("mlink_bench_total", "x", []string{"camera"}, func(emit Emit) {
		for i := range 100 {
			emit(float64(i), string(rune('a'+i%26))+string(rune('a'+i/26)))
		}
	}))
	req := httptest.NewRequest("GET", "/metrics", nil)
	h := r.Handler()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
