package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/scheduler/report"
)

// shortTrace writes the first n frames of the committed vtest trace.
func shortTrace(t *testing.T, n int) string {
	t.Helper()
	return shortTraceWith(t, n, func(*links.TraceHeader) {})
}

// shortTraceWith is shortTrace with an edited header.
func shortTraceWith(t *testing.T, n int, edit func(*links.TraceHeader)) string {
	t.Helper()
	h, recs, err := links.ReadTrace(vtestTrace)
	if err != nil {
		t.Fatal(err)
	}
	edit(&h)
	path := filepath.Join(t.TempDir(), "short.trace.gz")
	w, err := links.CreateTrace(path, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[:n] {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBenchTraceCLI(t *testing.T) {
	trace := shortTrace(t, 300)
	dir := filepath.Join(t.TempDir(), "bench")
	out, err := captureStdout(t, func() error {
		return cmdBench([]string{"--trace", trace, "--policies", "all,standalone,mlink-hybrid,reducto",
			"--budgets", "460ms,1490ms", "--budget-mode", "mean", "--epochs", "10", "--out", dir})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sampling native", "sampling 1fps", "all", "standalone", "mlink-hybrid", "460ms", "100.0 / 0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	rows, err := report.ReadJSON(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]report.Row{}
	for _, r := range rows {
		byKey[r.Policy+"@"+r.Budget+"/"+r.Sampling] = r
		if r.PerModel == nil || len(r.PerModel) != 8 {
			t.Errorf("%s at %s: per-model scores of %d models", r.Policy, r.Budget, len(r.PerModel))
		}
	}
	all, ok := byKey["all@none/native"]
	if !ok || all.Accuracy != 1 || all.ExecutionsSaved > 0.01 {
		t.Errorf("all: %+v", all)
	}
	for _, sampling := range []string{"native", "1fps"} {
		s, h := byKey["standalone@460ms/"+sampling], byKey["mlink-hybrid@460ms/"+sampling]
		if s.Frames == 0 || h.Frames == 0 {
			t.Fatalf("missing rows at 460ms (%s): %v", sampling, rowKeys(byKey))
		}
		if h.Accuracy < s.Accuracy {
			t.Errorf("%s: mlink-hybrid %.3f below standalone %.3f at 460ms", sampling, h.Accuracy, s.Accuracy)
		}
	}
	if byKey["standalone@460ms/1fps"].Frames >= byKey["standalone@460ms/native"].Frames/5 {
		t.Errorf("1 fps replays %d of %d frames", byKey["standalone@460ms/1fps"].Frames, byKey["standalone@460ms/native"].Frames)
	}
	// Reducto sends fewer frames than it sees and reuses the rest.
	reducto := false
	for _, r := range rows {
		if r.Policy == "reducto" && r.Sampling == "native" {
			reducto = true
			if r.FilteredShare <= 0 || r.ExecutionsSaved <= 0 || r.Accuracy >= 1 {
				t.Errorf("reducto at %s: filtered %.3f saved %.3f accuracy %.3f", r.Budget, r.FilteredShare, r.ExecutionsSaved, r.Accuracy)
			}
		}
	}
	if !reducto {
		t.Error("no reducto row fits any budget")
	}
	for _, name := range []string{"accuracy_vs_budget.svg", "accuracy_vs_budget.png", "accuracy_vs_saved.svg", "accuracy_vs_saved_1fps.png"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Size() < 1000 {
			t.Errorf("plot %s: %v (%d bytes)", name, err, sizeOf(st))
		}
	}
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}

func rowKeys(m map[string]report.Row) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestBenchTraceBadInput(t *testing.T) {
	err := cmdBench([]string{"--trace", "/nonexistent/x.trace.gz"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/x.trace.gz") {
		t.Errorf("missing trace: %v", err)
	}
	err = cmdBench([]string{"--trace", vtestTrace, "--policies", "mlink,magic", "--budgets", "fast", "--sampling", "2x"})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("bad flags: %v, want exit 2", err)
	}
	for _, want := range []string{`unknown policy "magic"`, `budget "fast"`, `--sampling "2x"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.trace.gz")
	if err := os.WriteFile(bad, []byte("not a trace"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmdBench([]string{"--trace", bad}); err == nil || !strings.Contains(err.Error(), "bad.trace.gz") {
		t.Errorf("corrupt trace: %v", err)
	}
}

// -c takes the replay's re-profiling settings from a config; flags given
// override them.
func TestBenchTraceTakesSettingsFromAConfig(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "configs/demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "../", root+"/")
	text = strings.Replace(text, "period: 2m", "period: 10s", 1)
	text = strings.Replace(text, "profile_share: 0.05", "profile_share: 0.5", 1)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	trace := shortTrace(t, 200)
	profiled := func(extra ...string) float64 {
		dir := t.TempDir()
		// A capped budget: under a mean one evidence is paid at the
		// budget's pace, and fewer frames would be profiled.
		args := append([]string{"--trace", trace, "-c", cfg, "--policies", "mlink", "--sampling", "native",
			"--budgets", "200ms", "--budget-mode", "cap", "--epochs", "5", "--out", dir}, extra...)
		if _, err := captureStdout(t, func() error { return cmdBench(args) }); err != nil {
			t.Fatal(err)
		}
		rows, err := report.ReadJSON(filepath.Join(dir, "results.json"))
		if err != nil || len(rows) == 0 {
			t.Fatalf("rows %v: %v", rows, err)
		}
		return rows[0].ProfiledShare
	}
	if got := profiled(); got < 0.45 {
		t.Errorf("the config profiles half of every 10 s: %.2f of frames profiled", got)
	}
	if got := profiled("--profile-share", "0.05"); got > 0.3 {
		t.Errorf("--profile-share 0.05 overrides the config: %.2f of frames profiled", got)
	}
}

// A trace whose video is gone: by default the bench skips Reducto and runs
// the rest; asked for Reducto explicitly, it says why it cannot.
func TestBenchTraceWithoutItsVideo(t *testing.T) {
	trace := shortTraceWith(t, 120, func(h *links.TraceHeader) {
		h.Videos = map[string]string{"plaza": "/nonexistent/vtest.avi"}
	})
	out, err := captureStdout(t, func() error {
		return cmdBenchTrace([]string{"--trace", trace, "--sampling", "native", "--epochs", "3", "--budgets", "300ms",
			"--auto-budgets=false", "--budget-mode", "mean"})
	})
	if err != nil {
		t.Fatalf("default policies without the video: %v", err)
	}
	if !strings.Contains(out, "mlink-hybrid") || strings.Contains(out, "reducto") {
		t.Errorf("table without Reducto expected:\n%s", out)
	}
	err = cmdBenchTrace([]string{"--trace", trace, "--policies", "standalone,reducto", "--sampling", "native"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/vtest.avi") {
		t.Errorf("reducto asked for without its video: %v", err)
	}
}
