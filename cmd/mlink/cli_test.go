package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// captureStdout runs f with os.Stdout redirected and returns what it wrote.
func captureStdout(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	ferr := f()
	os.Stdout = saved
	w.Close()
	return <-done, ferr
}

const vtestTrace = "../../links/testdata/vtest.trace.gz"

func TestLinksTrainAndEvalCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "links")
	if _, err := captureStdout(t, func() error {
		return cmdLinks([]string{"train", "--trace", vtestTrace, "--out", dir, "--epochs", "3", "--no-temporal"})
	}); err != nil {
		t.Fatal(err)
	}
	out, err := captureStdout(t, func() error {
		return cmdLinks([]string{"eval", "--trace", vtestTrace, "--links", dir, "--json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Pairs []struct {
			Source, Target, Kind string
			Accuracy             float64
		} `json:"pairs"`
		Ensembles []struct {
			Target  string   `json:"target"`
			Sources []string `json:"sources"`
		} `json:"ensembles"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("eval --json is not JSON: %v\n%.300s", err, out)
	}
	if len(ev.Pairs) != 8*7 {
		t.Errorf("%d pairs, want 56 (every ordered pair of the 8 models)", len(ev.Pairs))
	}
	for _, p := range ev.Pairs {
		if p.Accuracy < 0 || p.Accuracy > 1 || p.Source == p.Target || p.Kind == "" {
			t.Errorf("bad pair %+v", p)
		}
	}
	if len(ev.Ensembles) == 0 {
		t.Error("no ensemble accuracies")
	}
	table, err := captureStdout(t, func() error {
		return cmdLinks([]string{"eval", "--trace", vtestTrace, "--links", dir})
	})
	if err != nil || !strings.Contains(table, "hog_people") {
		t.Errorf("table output: %v\n%.300s", err, table)
	}
}

func TestLinksCLIBadInput(t *testing.T) {
	corrupt := t.TempDir()
	os.WriteFile(filepath.Join(corrupt, "manifest.json"), []byte("{garbage"), 0o644)
	cases := [][]string{
		{"train", "--trace", "/nonexistent.trace.gz", "--out", t.TempDir()},
		{"eval", "--trace", vtestTrace, "--links", corrupt},
		{"eval", "--trace", vtestTrace, "--links", "/nonexistent-links"},
		{"nonsense"},
	}
	for _, args := range cases {
		if _, err := captureStdout(t, func() error { return cmdLinks(args) }); err == nil {
			t.Errorf("mlink links %v: want an error", args)
		}
	}
}
