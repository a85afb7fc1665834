package pipeline

import (
	"errors"
	"strings"
	"testing"
)

const jellybeanModels = `
cameras: [{id: cam, source: rtsp, url: "rtsp://127.0.0.1:8554/x"}]
models: [{name: hog, backend: opencv-hog}, {name: hog_960, backend: opencv-hog}, {name: motion, backend: opencv-mog2}]
`

func TestJellyBeanConfigParses(t *testing.T) {
	cfg, err := ParseConfig([]byte(jellybeanModels+`
pools:
  - {name: box, tier: edge, price_per_hour: 0.05, workers: 2}
  - {name: gpu, tier: cloud, price_per_hour: 1.2, workers: 4, speed: 6, link_price_per_gb: 0.09}
scheduler:
  jellybean:
    slo: {throughput_fps: 10, accuracy: 0.8, tasks: {people: 0.75, motion: 0.5}}
    variants: {people: [hog, hog_960]}
    frame_bytes: 80KB
`), "")
	if err != nil {
		t.Fatal(err)
	}
	jb := cfg.Scheduler.JellyBean
	if jb.SLO.ThroughputFPS != 10 || jb.SLO.Tasks["people"] != 0.75 || len(jb.Variants["people"]) != 2 ||
		len(cfg.Pools) != 2 || cfg.Pools[1].Speed != 6 || jb.FrameBytes != 80<<10 {
		t.Errorf("parsed as %+v", jb)
	}
}

// Every problem of the section at once, checked whatever the policy.
func TestInvalidJellyBeanListsEveryProblem(t *testing.T) {
	_, err := ParseConfig([]byte(jellybeanModels+`
scheduler:
  jellybean:
    slo: {throughput_fps: -1, accuracy: 1.5, tasks: {nobody: 0.5, people: 2}}
    variants: {people: [hog, yolo, hog], faces: [], motion2: [motion], also: [motion]}
pools:
  - {name: box, tier: fog, price_per_hour: -1, workers: 0}
  - {name: box, tier: edge, workers: 1, speed: -2, link_price_per_gb: -0.1}
`), "")
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	want := []string{
		`scheduler.jellybean.slo.throughput_fps: must be a number ≥ 0`,
		`scheduler.jellybean.slo.accuracy: must be within [0,1]`,
		`scheduler.jellybean.variants.motion2: "motion" is already a variant of task also`,
		`scheduler.jellybean.variants.faces: no models`,
		`scheduler.jellybean.variants.people: "yolo" is not a model of this config`,
		`scheduler.jellybean.variants.people: "hog" listed twice`,
		`scheduler.jellybean.slo.tasks: "nobody" is neither a task`,
		`scheduler.jellybean.slo.tasks.people: must be within [0,1]`,
		`pools[0] (box).tier: "fog" is not one of edge, hub, cloud`,
		`pools[0] (box).workers: must be at least 1`,
		`pools[0] (box).price_per_hour: must be a number ≥ 0`,
		`pools[1] (box).name: duplicate pool name`,
		`pools[1] (box).speed: must be a number ≥ 0`,
		`pools[1] (box).link_price_per_gb: must be a number ≥ 0`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("problem %q not reported in:\n%s", w, err)
		}
	}
	if len(ce.Problems) != len(want) {
		t.Errorf("want %d problems, got %d:\n%s", len(want), len(ce.Problems), err)
	}
}
