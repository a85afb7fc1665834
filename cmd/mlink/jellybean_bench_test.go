package main

import (
	"slices"
	"strings"
	"testing"
)

// mlink bench -c takes policy jellybean's SLOs, variants and pools from the
// config, as mlink run does.
func TestBenchTakesJellyBeanFromTheConfig(t *testing.T) {
	o, err := parseBenchTrace([]string{"--trace", "t.gz", "-c", "../../configs/demo.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	jb := o.jellybean
	if !slices.Equal(jb.Variants["faces"], []string{"face_haar", "face_haar_fast", "face_blazeface"}) || len(o.pools) != 3 || jb.SLO.ThroughputFPS != 10 {
		t.Errorf("jellybean from the demo config: %+v", jb)
	}
}

// --turn-evidence and --log-level reach the replay; a bad level is named
// with every other problem, not after it.
func TestBenchTurnEvidenceAndLogLevelFlags(t *testing.T) {
	o, err := parseBenchTrace([]string{"--trace", "t.gz", "--turn-evidence", "--log-level", "debug"})
	if err != nil || !o.turnEvidence || o.logLevel != "debug" {
		t.Fatalf("parsed %+v, %v: want turn evidence on, log level debug", o, err)
	}
	if o, err = parseBenchTrace([]string{"--trace", "t.gz"}); err != nil || o.turnEvidence || o.logLevel != "warn" {
		t.Fatalf("defaults %+v, %v: want turn evidence off, log level warn", o, err)
	}
	_, err = parseBenchTrace([]string{"--trace", "t.gz", "--log-level", "loud", "--unit", "gallons"})
	if err == nil || !strings.Contains(err.Error(), "--log-level \"loud\"") || !strings.Contains(err.Error(), "--unit") {
		t.Fatalf("bad level and unit: %v, want both named", err)
	}
}
