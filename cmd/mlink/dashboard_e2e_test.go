package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium (scripts/deps.sh installs it).
const chromiumPath = "/usr/bin/chromium"

// needChromium skips where chromium is missing, and fails under CI=true
// (as needTool): CI must run the browser test.
func needChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (CI=true: this check must run): run `make deps` (apt-get install chromium)", chromiumPath)
	}
	t.Skipf("%s not found: run `make deps` (apt-get install chromium)", chromiumPath)
	return ""
}

// artifactDir is where a test leaves files for people to look at:
// $MLINK_ARTIFACTS when set, else the test's temporary directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MLINK_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("MLINK_ARTIFACTS: %v", err)
	}
	return dir
}

// modelRow is one row of a camera's models table, as the page shows it.
type modelRow struct {
	Model  string `json:"model"`
	Source string `json:"source"`
	Value  string `json:"value"`
}

func TestDashboardInHeadlessChromiumUpdatesLive(t *testing.T) {
	chromium := needChromium(t)
	cfg := demoConfig(t, "motion", "face_blazeface", "upperbody_fast")
	// A live camera: vtest paced at its own rate, looped, so results keep
	// coming while the browser watches.
	cfg.Cameras[0].Realtime, cfg.Cameras[0].Loop = true, true
	// Under a budget the detectors skip frames and are tracked in between:
	// the page shows more than one source.
	cfg.Scheduler.Policy = "skip-per-model/track"
	cfg.Budget.MSPerFrame = 40
	cfg.Merger.Deadline = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	a, err := startApp(ctx, cfg, runOptions{roles: "all", httpListen: "127.0.0.1:0"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	url := "http://" + a.http.Addr() + "/"

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.WindowSize(1280, 1100),
		chromedp.NoSandbox) // tests run as root in containers
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	const cam = `section.camera[data-camera="plaza"]`
	seqShown := func() string {
		t.Helper()
		attr, err := chromedp.Run(bctx, chromedp.AttributeValue(cam, "data-seq"))
		if err != nil {
			t.Fatal(err)
		}
		return attr.Value
	}
	if err := chromedp.Do(bctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(cam+`[data-seq]`),
	); err != nil {
		t.Fatalf("the page did not show a result of plaza: %v", err)
	}
	// A mark that a reload would wipe.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.mlinkTestMark = 1`)); err != nil {
		t.Fatal(err)
	}
	first := seqShown()
	// Live: the seq shown moves on without a reload.
	later := first
	for deadline := time.Now().Add(60 * time.Second); later == first && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		later = seqShown()
	}
	mark, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.mlinkTestMark || 0`))
	if err != nil {
		t.Fatal(err)
	}
	if later == first || mark != 1 {
		t.Fatalf("seq shown %s then %s, page mark %d: want a live update without a reload", first, later, mark)
	}

	// The canvas drew the frame: many distinct colours, not a blank.
	colours := 0
	for deadline := time.Now().Add(30 * time.Second); colours < 64 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if colours, err = chromedp.Run(bctx, chromedp.Evaluate[int](`(() => {
			const c = document.querySelector('`+cam+` canvas');
			const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
			const seen = new Set();
			for (let i = 0; i < d.length; i += 4 * 97) seen.add((d[i] << 16) | (d[i+1] << 8) | d[i+2]);
			return seen.size;
		})()`)); err != nil {
			t.Fatal(err)
		}
	}
	if colours < 64 {
		t.Errorf("the camera's canvas has %d distinct colours sampled: the frame was not drawn", colours)
	}

	// Every configured model is in the table with a source. Once the
	// policy has measured the costs, some are not exact: wait a little for
	// that, for a screenshot that shows it.
	var rows []modelRow
	sources := map[string]bool{}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if rows, err = chromedp.Run(bctx, chromedp.Evaluate[[]modelRow](`[...document.querySelectorAll('`+cam+` tbody tr')].map(tr => ({
			model: tr.dataset.model, source: tr.dataset.source || "", value: tr.querySelector('.value').textContent}))`)); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			sources[r.Source] = true
		}
		if len(sources) > 1 && !sources[""] {
			break
		}
	}
	got := map[string]modelRow{}
	for _, r := range rows {
		got[r.Model] = r
	}
	known := map[string]bool{"exact": true, "predicted": true, "reused": true, "tracked": true, "error": true, "missing": true}
	for _, m := range cfg.ModelNames() {
		if r, ok := got[m]; !ok || !known[r.Source] {
			t.Errorf("model %s: row %+v, want it listed with its source (rows %+v)", m, r, rows)
		}
	}
	if len(got) != len(cfg.ModelNames()) {
		t.Errorf("%d rows for %d models: %+v", len(got), len(cfg.ModelNames()), rows)
	}
	stats, err := chromedp.Run(bctx, chromedp.Text(cam+` .stats`))
	if err != nil || stats == "" {
		t.Errorf("no stats line (%v)", err)
	}

	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifactDir(t), "dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (seq %s → %s; sources seen %v; stats: %s)", path, first, later, sources, stats)

	// Stopping with the page open: its stream ends as the HTTP side stops
	// (not after the server's 5 s grace), and the page notices.
	start := time.Now()
	a.shutdown()
	took := time.Since(start)
	conn, err := chromedp.Run(bctx, chromedp.Text(`#conn`))
	t.Logf("stopped in %s with the page open; page says %q", took, conn)
	if took > 4*time.Second {
		t.Errorf("the stop took %s with the page open: its stream held the HTTP side's shutdown", took)
	}
	if err != nil || conn == "live" {
		t.Errorf("the page still says %q (%v) after the process stopped", conn, err)
	}
}
