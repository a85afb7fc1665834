package main

import (
	"slices"
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
