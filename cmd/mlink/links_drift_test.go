package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlink-project/mlink/links"
)

const driftTrace = "../../testdata/drift/left-then-right.trace.gz"

func TestLinksDriftCLIFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--trace", driftTrace, "--change-at", "x"},
		{"--trace", driftTrace, "--change-at", "0"},
		{"--trace", driftTrace, "--window", "20", "--period", "30"},
		{"--trace", driftTrace, "--labels", "0"},
		{"--trace", driftTrace, "--epochs", "0"},
		{"--trace", driftTrace, "--no-such-flag"},
		// A trace that records no change point needs --change-at.
		{"--trace", vtestTrace},
	} {
		_, err := captureStdout(t, func() error { return cmdLinks(append([]string{"drift"}, args...)) })
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("mlink links drift %v: %v; want an exit code 2 error", args, err)
		}
	}
}

// TestLinksDriftCLI runs the command on the committed drift trace with
// few epochs (its numbers are TestDriftAdaptation's, in links) and
// checks the JSON, and that --make rewrites the committed trace exactly.
func TestLinksDriftCLI(t *testing.T) {
	out, err := captureStdout(t, func() error {
		return cmdLinks([]string{"drift", "--trace", driftTrace, "--epochs", "5", "--finetune-epochs", "2", "--window", "100", "--period", "200", "--json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var res links.DriftResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if res.ChangeAt != 795 || res.After != 795 || len(res.Strategies) != 6 {
		t.Fatalf("change at %d, %d frames after, %d strategies; want 795, 795, 6", res.ChangeAt, res.After, len(res.Strategies))
	}
	for _, s := range res.Strategies {
		if len(s.Windows) != 8 {
			t.Errorf("%s: %d windows of 100 frames; want 8", s.Name, len(s.Windows))
		}
	}

	made := filepath.Join(t.TempDir(), "drift.trace.gz")
	if _, err := captureStdout(t, func() error {
		return cmdLinks([]string{"drift", "--make", "--trace", made,
			"--before", "../../testdata/traces/vtest-left.trace.gz", "--after", "../../testdata/traces/vtest-right.trace.gz"})
	}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(made)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(driftTrace)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("--make wrote %d bytes, not the committed %s (%d bytes)", len(got), driftTrace, len(want))
	}
}
