package opencv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// Cascades of Debian's opencv-data.
const (
	haarDir      = "/usr/share/opencv4/haarcascades/"
	fullbodyXML  = haarDir + "haarcascade_fullbody.xml"
	upperbodyXML = haarDir + "haarcascade_upperbody.xml"
	faceXML      = haarDir + "haarcascade_frontalface_default.xml"
	lbpFaceXML   = "/usr/share/opencv4/lbpcascades/lbpcascade_frontalface_improved.xml"
)

func newTestCascade(t testing.TB, spec *pipeline.ModelSpec, file string) *Cascade {
	t.Helper()
	if _, err := os.Stat(file); err != nil {
		t.Skipf("cascade not installed (apt-get install opencv-data): %v", err)
	}
	c, err := NewCascade(spec, file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCascadeDetects(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		spec       pipeline.ModelSpec
		class      string
	}{
		{"fullbody", fullbodyXML, pipeline.ModelSpec{Name: "fullbody"}, "fullbody"},
		{"upperbody", upperbodyXML, pipeline.ModelSpec{Name: "upperbody", Classes: []string{"person"}}, "person"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCascade(t, &tc.spec, tc.file)
			total := 0
			for _, i := range sampleFrames {
				out, err := c.Infer("cam", frame(t, i))
				if err != nil {
					t.Fatal(err)
				}
				checkBoxes(t, out, tc.class)
				t.Logf("frame %d: %d", i, len(out.Boxes))
				total += len(out.Boxes)
			}
			if total == 0 {
				t.Fatalf("no detection on frames %v", sampleFrames)
			}
		})
	}
}

func TestCascadeFaceLoads(t *testing.T) {
	for _, file := range []string{faceXML, lbpFaceXML} {
		c := newTestCascade(t, &pipeline.ModelSpec{Name: "face"}, file)
		// Faces are ~10 px at this distance: finding none is fine, failing is not.
		out, err := c.Infer("cam", frame(t, 100))
		if err != nil {
			t.Fatal(err)
		}
		checkBoxes(t, out, "face")
		t.Logf("%s: %d faces on frame 100", filepath.Base(file), len(out.Boxes))
	}
}

func TestCascadeParams(t *testing.T) {
	// Every knob at once: boxes stay relative to the original frame.
	native := newTestCascade(t, &pipeline.ModelSpec{Name: "ub"}, upperbodyXML)
	big := newTestCascade(t, &pipeline.ModelSpec{Name: "ub", NMS: 0.3, Params: map[string]float64{
		"upscale_width": 1152, "scale_factor": 1.2, "min_neighbors": 4, "min_size": 40,
	}}, upperbodyXML)
	img := frame(t, 200)
	a, err := native.Infer("cam", img)
	if err != nil {
		t.Fatal(err)
	}
	b, err := big.Infer("cam", img)
	if err != nil {
		t.Fatal(err)
	}
	checkBoxes(t, b, "ub")
	t.Logf("upper bodies on frame 200: %d native, %d at 1152 px wide", len(a.Boxes), len(b.Boxes))

	count, err := NewCascade(&pipeline.ModelSpec{Name: "ub", Output: pipeline.TypeCount}, upperbodyXML)
	if err != nil {
		t.Fatal(err)
	}
	defer count.Close()
	c, err := count.Infer("cam", img)
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != pipeline.TypeCount || len(c.Boxes) != 0 || c.Value[0] != float64(len(a.Boxes)) {
		t.Fatalf("count output %+v, want count %d", c, len(a.Boxes))
	}

	if _, err := NewCascade(&pipeline.ModelSpec{Params: map[string]float64{"min_neighbours": 3}}, upperbodyXML); err == nil ||
		!strings.Contains(err.Error(), "min_neighbours") {
		t.Fatalf("misspelt param: %v", err)
	}
}

func TestCascadeBadFiles(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.xml")
	truncated := filepath.Join(dir, "truncated.xml")
	empty := filepath.Join(dir, "empty.xml")
	notCascade := filepath.Join(dir, "storage.xml")
	full, err := os.ReadFile(fullbodyXML)
	if err != nil {
		t.Skip(err)
	}
	for path, data := range map[string][]byte{
		corrupt:    []byte("garbage \x00\x01\x02 not xml {{{"),
		truncated:  full[:len(full)/2],
		empty:      nil,
		notCascade: []byte("<?xml version=\"1.0\"?>\n<opencv_storage>\n<answer>42</answer>\n</opencv_storage>\n"),
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{filepath.Join(dir, "missing.xml"), corrupt, truncated, empty, notCascade, dir} {
		c, err := NewCascade(&pipeline.ModelSpec{Name: "x"}, path)
		if err == nil {
			c.Close()
			t.Errorf("%s: no error", filepath.Base(path))
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file", filepath.Base(path), err)
		}
		t.Logf("%s: %v", filepath.Base(path), err)
	}
}

func TestCascadeBadInput(t *testing.T) {
	c := newTestCascade(t, &pipeline.ModelSpec{Name: "fullbody"}, fullbodyXML)
	testBadInput(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Infer("cam", frame(t, 100)); err == nil {
		t.Fatal("Infer after Close: no error")
	}
}
