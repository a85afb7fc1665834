package opencv

import (
	"math"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

func newTestMOG2(t testing.TB, params map[string]float64) *MOG2 {
	t.Helper()
	m, err := NewMOG2(&pipeline.ModelSpec{Name: "motion", Backend: pipeline.BackendMOG2, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func checkMotion(t *testing.T, out pipeline.Output) {
	t.Helper()
	if out.Type != pipeline.TypeClass || out.Kind != pipeline.KindVector {
		t.Fatalf("type %s kind %s, want class vector", out.Type, out.Kind)
	}
	if len(out.Value) != len(MotionLevels) {
		t.Fatalf("Value %v: want %d probabilities", out.Value, len(MotionLevels))
	}
	sum := 0.0
	for i, v := range out.Value {
		sum += v
		if v == 1 && MotionLevels[i] != out.Label {
			t.Fatalf("Value %v does not match label %q", out.Value, out.Label)
		}
	}
	if sum != 1 {
		t.Fatalf("Value %v is not one-hot", out.Value)
	}
	fg, blobs := out.Extra["foreground"], out.Extra["blobs"]
	if !(fg >= 0 && fg <= 1) || math.IsNaN(blobs) || blobs < 0 || blobs != math.Trunc(blobs) {
		t.Fatalf("Extra %v", out.Extra)
	}
}

func TestMOG2Motion(t *testing.T) {
	m := newTestMOG2(t, nil)
	var out pipeline.Output
	for i := runStart; i <= runEnd; i++ {
		var err error
		out, err = m.Infer("a", frame(t, i))
		if err != nil {
			t.Fatal(err)
		}
		checkMotion(t, out)
		if i == runStart && (out.Label != "none" || out.Extra["foreground"] != 0) {
			t.Fatalf("first frame of a camera: %s %v, want none and no foreground", out.Label, out.Extra)
		}
	}
	t.Logf("frame %d after %d frames: %s %v", runEnd, runEnd-runStart+1, out.Label, out.Extra)
	if out.Label == "none" || out.Extra["foreground"] <= 0 || out.Extra["blobs"] < 1 {
		t.Fatalf("walking people: %s %v, want motion and blobs", out.Label, out.Extra)
	}

	// Each camera has its own background: a new camera starts from scratch
	// and does not disturb camera a.
	b, err := m.Infer("b", frame(t, runEnd))
	if err != nil {
		t.Fatal(err)
	}
	if b.Label != "none" {
		t.Fatalf("first frame of camera b: %s %v", b.Label, b.Extra)
	}

	// A frozen camera becomes background: none within a few frames, no
	// foreground at all soon after (measured: none after 5, 0 after 10).
	noneAfter := 0
	for k := 1; k <= 30; k++ {
		if out, err = m.Infer("a", frame(t, runEnd)); err != nil {
			t.Fatal(err)
		}
		checkMotion(t, out)
		if out.Label == "none" && noneAfter == 0 {
			noneAfter = k
		}
	}
	t.Logf("static frame: none after %d repeats; after 30: %v", noneAfter, out.Extra)
	if noneAfter == 0 || noneAfter > 15 || out.Label != "none" || out.Extra["foreground"] > 0.001 || out.Extra["blobs"] != 0 {
		t.Fatalf("static frame: none after %d repeats, then %s %v; want none within 15 and no foreground after 30",
			noneAfter, out.Label, out.Extra)
	}
}

func TestMOG2Levels(t *testing.T) {
	m := newTestMOG2(t, map[string]float64{"low": 0.01, "medium": 0.02, "high": 0.05})
	for _, tc := range []struct {
		share float64
		want  string
	}{{0, "none"}, {0.009, "none"}, {0.01, "low"}, {0.019, "low"}, {0.02, "medium"}, {0.05, "high"}, {1, "high"}} {
		if got := MotionLevels[m.level(tc.share)]; got != tc.want {
			t.Errorf("share %g: %s, want %s", tc.share, got, tc.want)
		}
	}
	zero := newTestMOG2(t, map[string]float64{"low": 0, "medium": 0, "high": 0})
	if got := MotionLevels[zero.level(0)]; got != "none" {
		t.Errorf("share 0 with all thresholds 0: %s, want none", got)
	}
}

func TestMOG2BadConfig(t *testing.T) {
	for _, spec := range []pipeline.ModelSpec{
		{Params: map[string]float64{"low": 0.1, "medium": 0.05}},
		{Params: map[string]float64{"high": 2}},
		{Params: map[string]float64{"process_widht": 320}},
		{Params: map[string]float64{"min_blob_area": -1}},
		{Output: pipeline.TypeBoxes},
		{Classes: []string{"still", "moving"}},
	} {
		if m, err := NewMOG2(&spec); err == nil {
			m.Close()
			t.Errorf("%+v: no error", spec)
		} else {
			t.Logf("%v", err)
		}
	}
	m, err := NewMOG2(&pipeline.ModelSpec{Output: pipeline.TypeClass, Classes: MotionLevels})
	if err != nil {
		t.Fatalf("explicit classes and output: %v", err)
	}
	m.Close()
}

func TestMOG2BadInputAndClose(t *testing.T) {
	m := newTestMOG2(t, nil)
	testBadInput(t, m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Infer("a", frame(t, 100)); err == nil {
		t.Fatal("Infer after Close: no error")
	}
}
