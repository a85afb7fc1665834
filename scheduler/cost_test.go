package scheduler

import (
	"math"
	"testing"
)

func TestLoadMeasurePrefersGPUThenConfiguredThenRSS(t *testing.T) {
	cases := []struct {
		m    LoadMeasure
		want int64
	}{
		{LoadMeasure{GPU: 900, GPUMeasured: true, RSS: 50, Configured: 700}, 900},
		{LoadMeasure{GPUMeasured: false, RSS: 50, Configured: 700}, 700},
		{LoadMeasure{GPUMeasured: true, GPU: 0, RSS: 50}, 50}, // a CPU-only model on a GPU host
		{LoadMeasure{RSS: -10}, 0},
	}
	for i, c := range cases {
		if got := c.m.Memory(); got != c.want {
			t.Errorf("case %d: memory %d, want %d", i, got, c.want)
		}
	}
}

func TestCostModelAveragesMeasuredTime(t *testing.T) {
	c := NewCostModel(map[string]Cost{"hog": {Memory: 100}})
	c.ObserveMS("hog", 100)
	if got := c.Costs()["hog"]; got.MS != 100 || got.Memory != 100 {
		t.Fatalf("first observation sets the time: %+v", got)
	}
	for i := 0; i < 200; i++ {
		c.ObserveMS("hog", 200)
	}
	if got := c.Costs()["hog"].MS; math.Abs(got-200) > 1 {
		t.Errorf("time should converge to 200, got %v", got)
	}
	c.ObserveMS("hog", -5) // ignored
	c.SetMemory("hog", 42)
	if got := c.Costs()["hog"]; got.Memory != 42 || math.Abs(got.MS-200) > 1 {
		t.Errorf("got %+v", got)
	}
}

// fakeProbe is a GPU that grows by a fixed step each call: what a model
// load looks like on a GPU host.
type fakeProbe struct{ used, step int64 }

func (f *fakeProbe) ProcessMemory() (int64, error) { f.used += f.step; return f.used, nil }

func TestMeasureLoadWithAGPUProbe(t *testing.T) {
	p := &fakeProbe{used: 1000, step: 300}
	m, _ := MeasureLoad(p, 0, func() error { return nil })
	if !m.GPUMeasured || m.GPU != 300 || m.Memory() != 300 {
		t.Fatalf("GPU growth not measured: %+v", m)
	}
	m, _ = MeasureLoad(nil, 512, func() error { return nil })
	if m.GPUMeasured || m.Memory() != 512 {
		t.Fatalf("without a GPU the configured memory counts: %+v", m)
	}
}
