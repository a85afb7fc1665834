package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlink-project/mlink/pipeline/natstest"
)

func TestReloadBySIGHUPAndHTTPAppliesWhatCanChangeLiveAndRefusesTheRest(t *testing.T) {
	path := processConfig(t, motionModel)
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The file says policy all at 450 ms; the command line says 300 ms,
	// and keeps saying it across reloads.
	write(string(base) + "scheduler: {policy: all}\nbudget: {ms_per_frame: 450}\n")
	p := startMlink(t, "run", "-c", path, "--status", "off", "--http", "127.0.0.1:0", "--budget", "300ms")
	addr := p.httpAddr(t)
	natstest.WaitFor(t, 60*time.Second, "results of plaza", func() bool {
		v, _ := sample(scrapeMetrics(t, addr), "mlink_results_total", "camera", "plaza")
		return v > 0
	})
	fams := scrapeMetrics(t, addr)
	if v, _ := sample(fams, "mlink_budget_ms_per_frame"); v != 300 {
		t.Fatalf("budget %v ms, want 300 from --budget", v)
	}
	start, _ := sample(fams, "mlink_config_last_reload_success_timestamp_seconds")

	// SIGHUP: a camera added, the policy changed in the file, the file's
	// budget changed (the flag's stays).
	second := strings.Replace(string(base), "cameras:\n", "cameras:\n  - {id: second, source: file, url: "+vtestPath+", loop: true}\n", 1)
	write(second + "scheduler: {policy: skip}\nbudget: {ms_per_frame: 600}\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, 60*time.Second, `"message":"config reloaded"`)
	if log := p.stderr(); !strings.Contains(log, "cameras added: second; scheduler restarted with the new policy/budget/models") {
		t.Errorf("the reload's log does not say it added the camera and restarted the scheduler:\n%s", log)
	}
	natstest.WaitFor(t, 60*time.Second, "results of the camera the reload added", func() bool {
		v, _ := sample(scrapeMetrics(t, addr), "mlink_results_total", "camera", "second")
		return v > 0
	})
	fams = scrapeMetrics(t, addr)
	if v, _ := sample(fams, "mlink_budget_ms_per_frame"); v != 300 {
		t.Errorf("budget %v ms after reload, want 300: flags keep precedence over the re-read file", v)
	}
	if v, ok := sample(fams, "mlink_scheduler_policy_info", "policy", "skip"); !ok || v != 1 {
		t.Errorf("policy skip not in force after reload")
	}
	if v, _ := sample(fams, "mlink_config_last_reload_successful"); v != 1 {
		t.Errorf("last reload successful = %v", v)
	}
	if ts, _ := sample(fams, "mlink_config_last_reload_success_timestamp_seconds"); ts <= start {
		t.Errorf("reload timestamp %v not after the start's %v", ts, start)
	}
	skipFrames, _ := sample(fams, "mlink_scheduler_frames_total")

	// POST /-/reload adding a model: its worker loads and runs, and the
	// restarted scheduler plans it.
	withMotion2 := strings.Replace(second, "models:\n", "models:\n  - {name: motion2, backend: opencv-mog2}\n", 1)
	write(withMotion2 + "scheduler: {policy: skip}\n")
	resp, err := http.Post("http://"+addr+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(body, "models added: motion2") {
		t.Fatalf("POST /-/reload adding a model: %d %q", resp.StatusCode, body)
	}
	natstest.WaitFor(t, 60*time.Second, "exact outputs of the model the reload added", func() bool {
		v, _ := sample(scrapeMetrics(t, addr), "mlink_model_outputs_total", "model", "motion2", "source", "exact")
		return v > 0
	})
	if v, ok := sample(scrapeMetrics(t, addr), "mlink_stage_up", "stage", "worker motion2", "tier", tierWorker); !ok || v != 1 {
		t.Errorf("worker motion2 up = %v (listed %v)", v, ok)
	}

	// A model that does not load refuses the reload whole: motion2 keeps
	// running, nothing else changes.
	corrupt := filepath.Join(t.TempDir(), "corrupt.onnx")
	if err := os.WriteFile(corrupt, []byte("definitely not protobuf"), 0o644); err != nil {
		t.Fatal(err)
	}
	write(strings.Replace(withMotion2, "models:\n", "models:\n  - {name: broken, backend: onnx, decoder: count, file: "+corrupt+"}\n", 1) + "scheduler: {policy: skip}\n")
	resp, err = http.Post("http://"+addr+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 400 || !strings.Contains(body, "model broken does not load") || !strings.Contains(body, "nothing was changed") {
		t.Errorf("POST /-/reload of a model that does not load: %d %q; want 400 naming it", resp.StatusCode, body)
	}
	if _, ok := sample(scrapeMetrics(t, addr), "mlink_stage_up", "stage", "worker broken", "tier", tierWorker); ok {
		t.Error("the model that did not load is listed as a stage")
	}

	// POST /-/reload with a change that cannot be applied live: refused
	// whole, with the reason, and the gauge says so.
	write(withMotion2 + "scheduler: {policy: skip}\nmerger: {deadline: 7s}\n")
	resp, err = http.Post("http://"+addr+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != 400 || !strings.Contains(body, "merger changed") || !strings.Contains(body, "restart mlink") {
		t.Errorf("POST /-/reload of a merger change: %d %q; want 400 naming the section", resp.StatusCode, body)
	}
	fams = scrapeMetrics(t, addr)
	if v, _ := sample(fams, "mlink_config_last_reload_successful"); v != 0 {
		t.Errorf("last reload successful = %v after a refused one", v)
	}
	if _, ok := sample(fams, "mlink_camera_up", "camera", "second"); !ok {
		t.Error("a refused reload must change nothing: camera second is gone")
	}
	if v, _ := sample(fams, "mlink_scheduler_frames_total"); v < skipFrames {
		t.Errorf("frames planned went from %v to %v: the refused reload restarted the scheduler", skipFrames, v)
	}

	// Back to one camera, over HTTP.
	write(string(base) + "scheduler: {policy: skip}\n")
	resp, err = http.Post("http://"+addr+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(body, "cameras removed: second") || !strings.Contains(body, "models removed: motion2") {
		t.Errorf("POST /-/reload removing a camera and a model: %d %q", resp.StatusCode, body)
	}
	fams = scrapeMetrics(t, addr)
	if _, ok := sample(fams, "mlink_stage_up", "stage", "worker motion2", "tier", tierWorker); ok {
		t.Error("worker motion2 still listed after its model's removal")
	}
	if _, ok := sample(fams, "mlink_stage_up", "stage", "nats worker-motion2", "tier", tierBus); ok {
		t.Error("the connection watch of the removed worker still runs")
	}
	// Outputs the worker sent while draining may still reach the merger
	// after the reload returns (a loaded machine lags): the count settles
	// over the next frames, and then does not move while frames go on.
	moreResults := func(what string) {
		before, _ := sample(scrapeMetrics(t, addr), "mlink_results_total", "camera", "plaza", "kind", "complete")
		natstest.WaitFor(t, 60*time.Second, what, func() bool {
			v, _ := sample(scrapeMetrics(t, addr), "mlink_results_total", "camera", "plaza", "kind", "complete")
			return v > before+5
		})
	}
	moreResults("results after the model's removal")
	settled, _ := sample(scrapeMetrics(t, addr), "mlink_model_outputs_total", "model", "motion2", "source", "exact")
	moreResults("more results after the model's removal")
	if v, _ := sample(scrapeMetrics(t, addr), "mlink_model_outputs_total", "model", "motion2", "source", "exact"); v != settled {
		t.Errorf("motion2 ran %v more times over 5 frames, well after its removal", v-settled)
	}
	if _, ok := sample(fams, "mlink_camera_up", "camera", "second"); ok {
		t.Error("camera second still listed after its removal")
	}
	if v, _ := sample(fams, "mlink_config_last_reload_successful"); v != 1 {
		t.Errorf("last reload successful = %v", v)
	}
	for _, line := range strings.Split(p.stderr(), "\n") {
		if strings.Contains(line, "config reload") {
			t.Log(line)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr())
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
