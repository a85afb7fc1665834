package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
)

// A policy registered once is everywhere: config validation accepts it
// (with a budget of the kind it needs), --policy and the usage text list
// it, the bench runs it by default and gives it a row of its own, and the
// README's policy table describes it.
func TestEveryRegisteredPolicyIsValidatedBenchedAndDocumented(t *testing.T) {
	policies := scheduler.Policies()
	if len(policies) < 9 {
		t.Fatalf("%d registered policies (%v), want at least the 9 of all, standalone, skip, skip-per-model, mlink, mlink-hybrid and its 3 ablations", len(policies), policies)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfgPath, []byte("cameras: [{id: c, source: rtsp, url: \"rtsp://127.0.0.1:8554/x\"}]\nmodels: [{name: m, backend: opencv-mog2}]\nbudget: {ms_per_frame: 100}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	usageText := usage()
	defaults := strings.Join(benchPolicies(), ",")
	for _, p := range policies {
		name := string(p)
		cf := configFlags{path: cfgPath, policy: name}
		_, err := cf.load()
		info, _ := pipeline.LookupPolicy(p)
		switch {
		case info.BenchOnly && (err == nil || !strings.Contains(err.Error(), "bench-only") || !strings.Contains(err.Error(), "mlink bench")):
			t.Errorf("%s is bench-only: a live config with it gives %v, want an error saying so and pointing to mlink bench", name, err)
		case !info.BenchOnly && err != nil:
			t.Errorf("%s: config with a time budget does not validate: %v", name, err)
		}
		if !strings.Contains(usageText, name) {
			t.Errorf("%s: not in the usage text", name)
		}
		if !strings.Contains(","+defaults+",", ","+name+",") {
			t.Errorf("%s: not among the bench's default policies %s", name, defaults)
		}
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("%s: no row in the README's policy table (| `%s` | …)", name, name)
		}
	}
	// Every one replays a short trace into a row named after it.
	trace := shortTrace(t, 200)
	o, err := parseBenchTrace([]string{"--trace", trace, "--budgets", "1/3", "--auto-budgets=false", "--sampling", "native",
		"--budget-mode", "mean", "--epochs", "5", "--policies", strings.Join(pipeline.PolicyNames(), ",")})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := benchTrace(o, zerolog.Nop(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r.Policy] = r.Frames
	}
	for _, p := range policies {
		if got[string(p)] == 0 {
			t.Errorf("%s: no bench row with frames (rows: %v)", p, got)
		}
	}
}
