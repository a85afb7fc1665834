package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The soak's verdict: an interval below 85% of the median throughput, or
// memory grown past 10% (+24 MB) of what it was once warm, fails it; the
// warm-up interval counts for neither.
func TestSoakVerdictCatchesDroppedThroughputAndGrowingMemory(t *testing.T) {
	steady := func() []soakSample {
		var s []soakSample
		for i := range 9 {
			s = append(s, soakSample{FPS: 16, RSSMB: 480 + float64(i%2)})
		}
		s[0].FPS, s[0].RSSMB = 3, 300 // the warm-up: slow, small
		return s
	}
	cases := []struct {
		name    string
		edit    func([]soakSample)
		problem string
	}{
		{"held", func([]soakSample) {}, ""},
		{"throughput dropped", func(s []soakSample) { s[5].FPS = 12 }, "throughput not held"},
		{"memory grew", func(s []soakSample) { s[8].RSSMB = 560 }, "memory not flat"},
		{"allocator noise", func(s []soakSample) { s[8].RSSMB = 520 }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := soakReport{Samples: steady()}
			c.edit(r.Samples)
			r.judge()
			got := strings.Join(r.Problems, "; ")
			if c.problem == "" && got != "" || c.problem != "" && !strings.Contains(got, c.problem) {
				t.Errorf("problems %q, want %q", got, c.problem)
			}
		})
	}
}

// A short soak of a real run: every interval sampled with the process's
// real memory and throughput, the JSON written, exit 0 when held.
func TestBenchSoakSamplesARealRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "soak.json")
	cfg := processConfig(t, motionModel)
	data, _ := os.ReadFile(cfg)
	// Paced as a camera (bench soak makes files live), 5 frames/s.
	os.WriteFile(cfg, []byte(strings.Replace(string(data), "loop: true}", "loop: true, fps: 5}", 1)), 0o644)
	p := startMlink(t, "bench", "soak", "-c", cfg, "--duration", "8s", "--every", "2s", "--json", out)
	if code := p.exitCode(t, 90*time.Second); code != 0 {
		t.Fatalf("exit %d, want 0:\nstdout %s\nstderr %s", code, p.out.String(), p.stderr())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep soakReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Samples) != 4 {
		t.Fatalf("%d samples of 8 s every 2 s, want 4:\n%s", len(rep.Samples), raw)
	}
	for i, s := range rep.Samples {
		if s.RSSMB <= 50 || s.Goroutines <= 0 {
			t.Errorf("sample %d: RSS %.0f MB, %d goroutines: not the process's own", i, s.RSSMB, s.Goroutines)
		}
		if i > 0 && (s.FPS < 3 || s.FPS > 6) {
			t.Errorf("sample %d: %.2f frames/s of a camera capped at 5", i, s.FPS)
		}
	}
	if rep.FPSMedian < 3 || len(rep.Problems) != 0 || !strings.Contains(p.out.String(), "verdict: held") {
		t.Errorf("report %+v\nstdout %s", rep, p.out.String())
	}
}
