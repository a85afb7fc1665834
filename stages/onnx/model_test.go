package onnx

import (
	"bytes"
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// These tests run the real bundled models (fetched by `make deps`) on real
// and synthetic images.

const (
	blazeFaceFile = "blazeface/face_detection_front_128x128_barracuda.onnx"
	ppocrDetFile  = "ppocr/ch_PP-OCRv4_det_infer.onnx"
	ppocrClsFile  = "ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx"
	mlsdFile      = "mlsd/mlsd_320x320_tiny.onnx"

	vtestPath = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
	messiPath = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg"
)

var depsDir = filepath.Join("..", "..", ".deps")

// modelFile initialises the runtime and returns a bundled model's path, or
// skips the test when `make deps` has not been run.
func modelFile(t testing.TB, name string) string {
	t.Helper()
	lib := filepath.Join(depsDir, "onnxruntime", "libonnxruntime.so.1")
	if _, err := os.Stat(lib); err != nil {
		t.Skip("ONNX Runtime library missing: run `make deps`")
	}
	path := filepath.Join(depsDir, "models", name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("model %s missing: run `make deps`", name)
	}
	if err := Init(lib); err != nil {
		t.Fatal(err)
	}
	return path
}

func newModel(t testing.TB, spec pipeline.ModelSpec, file string) *Model {
	t.Helper()
	if spec.Name == "" {
		spec.Name = spec.Decoder
	}
	m, err := New(&spec, modelFile(t, file), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func clsSpec() pipeline.ModelSpec {
	return pipeline.ModelSpec{Name: "text-angle", Decoder: pipeline.DecoderClassifier, Classes: []string{"0", "180"},
		Input: pipeline.InputSpec{Width: 192, Height: 48, Color: "bgr", Mean: []float64{0.5}, Std: []float64{0.5}}}
}

// readImage loads an image file or skips.
func readImage(t testing.TB, path string) gocv.Mat {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s missing: run `make deps` (opencv-doc)", path)
	}
	img := gocv.IMRead(path, gocv.IMReadColor)
	if img.Empty() {
		t.Fatalf("cannot decode %s", path)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// vtestFrames reads n frames of vtest.avi, step frames apart.
func vtestFrames(t testing.TB, n, step int) []gocv.Mat {
	t.Helper()
	if _, err := os.Stat(vtestPath); err != nil {
		t.Skip("vtest.avi missing: run `make deps` (opencv-doc)")
	}
	vc, err := gocv.VideoCaptureFile(vtestPath)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	var frames []gocv.Mat
	frame := gocv.NewMat()
	defer frame.Close()
	for i := 0; len(frames) < n; i++ {
		if !vc.Read(&frame) || frame.Empty() {
			t.Fatalf("vtest.avi ended after %d frames", i)
		}
		if i%step == 0 {
			frames = append(frames, frame.Clone())
		}
	}
	t.Cleanup(func() {
		for _, f := range frames {
			f.Close()
		}
	})
	return frames
}

func whiteImage(t testing.TB, w, h int) gocv.Mat {
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(255, 255, 255, 0), h, w, gocv.MatTypeCV8UC3)
	t.Cleanup(func() { img.Close() })
	return img
}

// textImage renders large black text lines on white; it returns the image
// and each line's bounding rectangle in pixels.
func textImage(t testing.TB, w, h int, lines []string, scale float64, thickness int) (gocv.Mat, []image.Rectangle) {
	img := whiteImage(t, w, h)
	var rects []image.Rectangle
	y := 0
	for _, s := range lines {
		sz, base := gocv.GetTextSizeWithBaseline(s, gocv.FontHersheySimplex, scale, thickness)
		y += sz.Y + base + 40
		org := image.Pt(40, y)
		gocv.PutText(&img, s, org, gocv.FontHersheySimplex, scale, color.RGBA{A: 255}, thickness)
		rects = append(rects, image.Rect(org.X, org.Y-sz.Y, org.X+sz.X, org.Y+base))
	}
	return img, rects
}

// gradientImage is a synthetic image without faces or text: a colour
// gradient.
func gradientImage(t testing.TB) gocv.Mat {
	img := gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC3)
	t.Cleanup(func() { img.Close() })
	px, _ := img.DataPtrUint8()
	for y := 0; y < 480; y++ {
		for x := 0; x < 640; x++ {
			i := (y*640 + x) * 3
			px[i], px[i+1], px[i+2] = uint8(x*255/640), uint8(y*255/480), 128
		}
	}
	return img
}

// sceneImage is the gradient with two flat shapes.
func sceneImage(t testing.TB) gocv.Mat {
	img := gradientImage(t)
	gocv.Rectangle(&img, image.Rect(60, 60, 200, 160), color.RGBA{R: 200, G: 40, B: 40, A: 255}, -1)
	gocv.Circle(&img, image.Pt(450, 300), 70, color.RGBA{R: 30, G: 160, B: 60, A: 255}, -1)
	return img
}

// checkOutput asserts the invariants every output must hold.
func checkOutput(t testing.TB, out pipeline.Output) {
	t.Helper()
	if out.Kind != out.Type.Kind() || !out.Type.Valid() {
		t.Errorf("kind %q / type %q", out.Kind, out.Type)
	}
	if len(out.Value) == 0 {
		t.Fatalf("no value")
	}
	for _, v := range out.Value {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("value %v", out.Value)
		}
	}
	if out.Type.Kind() == pipeline.KindSequence && int(out.Value[0]) != len(out.Boxes) {
		t.Errorf("value %v for %d boxes", out.Value, len(out.Boxes))
	}
	for _, b := range out.Boxes {
		for _, v := range []float32{b.X1, b.Y1, b.X2, b.Y2, b.Score} {
			if !finite(v) || v < 0 || v > 1 {
				t.Errorf("box %+v outside [0,1]", b)
			}
		}
		if out.Type == pipeline.TypeBoxes && (b.X2 < b.X1 || b.Y2 < b.Y1) {
			t.Errorf("box %+v inverted", b)
		}
	}
}

func infer(t testing.TB, m *Model, img gocv.Mat) pipeline.Output {
	t.Helper()
	out, err := m.Infer("test", img)
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out)
	return out
}

func centre(b pipeline.Box) (float32, float32) { return (b.X1 + b.X2) / 2, (b.Y1 + b.Y2) / 2 }

// gocvFace is gocv's own test portrait, from the module cache.
func gocvFace(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "gocv.io/x/gocv").Output()
	if err != nil {
		return ""
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "images", "face.jpg")
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}

func TestBlazeFace(t *testing.T) {
	m := newModel(t, pipeline.ModelSpec{Decoder: pipeline.DecoderBlazeFace}, blazeFaceFile)

	t.Run("no face", func(t *testing.T) {
		for name, img := range map[string]gocv.Mat{"white": whiteImage(t, 640, 480), "scene": sceneImage(t)} {
			if out := infer(t, m, img); len(out.Boxes) != 0 {
				t.Errorf("%s: %d faces: %+v", name, len(out.Boxes), out.Boxes)
			}
		}
	})

	t.Run("messi", func(t *testing.T) {
		// The face is ~35 px in the full photo, too small for the
		// short-range front model: crop around it.
		messi := readImage(t, messiPath)
		crop := messi.Region(image.Rect(170, 40, 300, 170))
		defer crop.Close()
		out := infer(t, m, crop)
		if len(out.Boxes) != 1 {
			t.Fatalf("%d faces, want 1: %+v", len(out.Boxes), out.Boxes)
		}
		// The face is at about (240,116) of the photo: (0.54,0.58) of the crop.
		if cx, cy := centre(out.Boxes[0]); !near(cx, 0.54, 0.08) || !near(cy, 0.58, 0.08) {
			t.Errorf("face centre (%.2f,%.2f), want about (0.54,0.58)", cx, cy)
		}
		t.Logf("messi: %+v", out.Boxes[0])
	})

	t.Run("portrait", func(t *testing.T) {
		path := gocvFace(t)
		if path == "" {
			t.Skip("gocv's images/face.jpg not in the module cache")
		}
		img := readImage(t, path)
		out := infer(t, m, img)
		if len(out.Boxes) != 1 || out.Boxes[0].Score < 0.8 {
			t.Fatalf("faces %+v, want 1 with score >= 0.8", out.Boxes)
		}
		// Eyes at about (330,245) and (410,245), mouth at (360,330) of 640×480.
		if cx, cy := centre(out.Boxes[0]); !near(cx, 0.56, 0.06) || !near(cy, 0.58, 0.08) {
			t.Errorf("face centre (%.2f,%.2f), want about (0.56,0.58)", cx, cy)
		}
		// Letterboxing must map back to the same place.
		spec := pipeline.ModelSpec{Decoder: pipeline.DecoderBlazeFace, Input: pipeline.InputSpec{Resize: "letterbox"}}
		lb := newModel(t, spec, blazeFaceFile)
		out2 := infer(t, lb, img)
		if len(out2.Boxes) != 1 {
			t.Fatalf("letterbox: faces %+v, want 1", out2.Boxes)
		}
		a, b := out.Boxes[0], out2.Boxes[0]
		if !near(a.X1, b.X1, 0.04) || !near(a.Y1, b.Y1, 0.04) || !near(a.X2, b.X2, 0.04) || !near(a.Y2, b.Y2, 0.04) {
			t.Errorf("stretch %+v and letterbox %+v disagree", a, b)
		}
	})

	t.Run("vtest", func(t *testing.T) {
		total := 0
		for _, f := range vtestFrames(t, 5, 40) {
			total += len(infer(t, m, f).Boxes)
		}
		// People in vtest are 60–90 px tall: their faces are far below what
		// the short-range model sees at 128×128.
		t.Logf("vtest: %d faces in 5 frames", total)
	})
}

func TestPPOCRDet(t *testing.T) {
	m := newModel(t, pipeline.ModelSpec{Decoder: pipeline.DecoderPPOCRDet}, ppocrDetFile)

	t.Run("text", func(t *testing.T) {
		img, lines := textImage(t, 800, 400, []string{"Hello mlink", "TEXT 2026"}, 2.5, 5)
		out := infer(t, m, img)
		if len(out.Boxes) < 2 {
			t.Fatalf("%d text boxes, want at least 2", len(out.Boxes))
		}
		// Every box lies on a text line, and every line is covered.
		covered := make([]bool, len(lines))
		for _, b := range out.Boxes {
			cx, cy := centre(b)
			p := image.Pt(int(cx*800), int(cy*400))
			on := false
			for i, r := range lines {
				if p.In(r.Inset(-10)) {
					on, covered[i] = true, true
				}
			}
			if !on {
				t.Errorf("box %+v (centre %v) is on no text line %v", b, p, lines)
			}
		}
		for i, c := range covered {
			if !c {
				t.Errorf("line %d %v has no box", i, lines[i])
			}
		}
		t.Logf("%d boxes for 2 lines (4 words)", len(out.Boxes))
		if s := m.input.GetShape(); s[2] != 320 || s[3] != 640 {
			t.Errorf("input %v, want 640×320 for an 800×400 frame", s)
		}
	})

	t.Run("blank", func(t *testing.T) {
		if out := infer(t, m, whiteImage(t, 640, 480)); len(out.Boxes) != 0 {
			t.Errorf("%d boxes on a blank image", len(out.Boxes))
		}
		if out := infer(t, m, gradientImage(t)); len(out.Boxes) != 0 {
			t.Errorf("%d boxes on a colour gradient: %+v", len(out.Boxes), out.Boxes)
		}
		// Not asserted: the DB model reads an isolated solid blob as a text
		// block (like a "■"), so the scene's rectangle and disc come out as
		// text in either channel order.
		t.Logf("flat shapes: %d boxes", len(infer(t, m, sceneImage(t)).Boxes))
	})

	t.Run("vtest", func(t *testing.T) {
		var counts []int
		for _, f := range vtestFrames(t, 3, 50) {
			counts = append(counts, len(infer(t, m, f).Boxes))
		}
		if s := m.input.GetShape(); s[2] != 480 || s[3] != 640 {
			t.Errorf("input %v, want 640×480 for vtest's 768×576", s)
		}
		t.Logf("vtest text boxes per frame: %v", counts)
	})
}

func TestMLSD(t *testing.T) {
	m := newModel(t, pipeline.ModelSpec{Decoder: pipeline.DecoderMLSD}, mlsdFile)
	const w, h = 640, 480

	img := whiteImage(t, w, h)
	drawn := [][2]image.Point{
		{image.Pt(100, 100), image.Pt(500, 120)},
		{image.Pt(300, 200), image.Pt(320, 420)},
		{image.Pt(80, 400), image.Pt(250, 250)},
	}
	for _, l := range drawn {
		gocv.Line(&img, l[0], l[1], color.RGBA{A: 255}, 4)
	}
	out := infer(t, m, img)
	if out.Type != pipeline.TypeLines {
		t.Errorf("type %q, want lines", out.Type)
	}
	dist := func(x, y float32, p image.Point) float64 {
		return math.Hypot(float64(x*w)-float64(p.X), float64(y*h)-float64(p.Y))
	}
	for _, l := range drawn {
		best := math.Inf(1)
		for _, b := range out.Boxes {
			// A segment may come out in either direction.
			d := max(dist(b.X1, b.Y1, l[0]), dist(b.X2, b.Y2, l[1]))
			d = min(d, max(dist(b.X1, b.Y1, l[1]), dist(b.X2, b.Y2, l[0])))
			best = min(best, d)
		}
		if best > 12 {
			t.Errorf("line %v: nearest segment's end points are %.1f px away", l, best)
		}
	}
	t.Logf("%d segments for %d drawn lines", len(out.Boxes), len(drawn))

	if out := infer(t, m, whiteImage(t, w, h)); len(out.Boxes) != 0 {
		t.Errorf("%d segments on a blank image", len(out.Boxes))
	}
	var counts []int
	for _, f := range vtestFrames(t, 3, 50) {
		counts = append(counts, len(infer(t, m, f).Boxes))
	}
	t.Logf("vtest segments per frame: %v", counts)
}

// The PP-OCR text angle classifier runs through the generic classifier
// decoder with the pre-processing PaddleOCR uses.
func TestPPOCRClsClassifier(t *testing.T) {
	m := newModel(t, clsSpec(), ppocrClsFile)
	for _, s := range []string{"Hello world", "mlink 2026"} {
		img := whiteImage(t, 384, 96)
		gocv.PutText(&img, s, image.Pt(10, 66), gocv.FontHersheySimplex, 1.6, color.RGBA{A: 255}, 3)
		out := infer(t, m, img)
		if out.Label != "0" || len(out.Value) != 2 || out.Value[0] < 0.9 {
			t.Errorf("%q upright: %s %v, want 0", s, out.Label, out.Value)
		}
		rot := gocv.NewMat()
		gocv.Rotate(img, &rot, gocv.Rotate180Clockwise)
		out = infer(t, m, rot)
		rot.Close()
		if out.Label != "180" || out.Value[1] < 0.9 {
			t.Errorf("%q rotated: %s %v, want 180", s, out.Label, out.Value)
		}
		if math.Abs(out.Value[0]+out.Value[1]-1) > 1e-4 {
			t.Errorf("probabilities %v do not sum to 1", out.Value)
		}
	}
	// Class count mismatch is caught at load.
	spec := clsSpec()
	spec.Classes = []string{"0", "90", "180"}
	if _, err := New(&spec, modelFile(t, ppocrClsFile), zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "3 classes") {
		t.Errorf("3 classes on a 2-class model: %v", err)
	}
}

func TestModelFileErrors(t *testing.T) {
	modelFile(t, blazeFaceFile) // initialises the runtime
	spec := pipeline.ModelSpec{Name: "bad", Decoder: pipeline.DecoderBlazeFace}

	_, err := New(&spec, filepath.Join(t.TempDir(), "nope.onnx"), zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("missing file: %v", err)
	}

	garbage := filepath.Join(t.TempDir(), "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("this is not a protobuf \x00\x01\x02\xff\xfe model"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = New(&spec, garbage, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "not a valid ONNX model") {
		t.Errorf("corrupt file: %v", err)
	}
	t.Logf("corrupt file error: %v", err)

	// A real model with the wrong decoder is refused at load.
	spec.Decoder = pipeline.DecoderMLSD
	if _, err := New(&spec, modelFile(t, blazeFaceFile), zerolog.Nop()); err == nil {
		t.Error("blazeface model with the mlsd decoder must fail")
	}
	spec.Decoder = "nope"
	if _, err := New(&spec, modelFile(t, blazeFaceFile), zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "unknown decoder") {
		t.Errorf("unknown decoder: %v", err)
	}
}

func TestInitLibrary(t *testing.T) {
	_, err := resolveLibrary("/nonexistent/libonnxruntime.so")
	if err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("missing library: %v", err)
	}
	t.Setenv("ONNXRUNTIME_LIB", "/nonexistent/from-env.so")
	_, err = resolveLibrary("")
	if err == nil || !strings.Contains(err.Error(), "$ONNXRUNTIME_LIB") || !strings.Contains(err.Error(), "from-env.so") {
		t.Errorf("missing library from the environment: %v", err)
	}

	// Concurrent and repeated Init calls with the same library succeed.
	lib := filepath.Join(depsDir, "onnxruntime", "libonnxruntime.so.1")
	modelFile(t, blazeFaceFile)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = Init(lib) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("repeated Init: %v", err)
		}
	}
	t.Setenv("ONNXRUNTIME_LIB", "")
	if err := Init(""); err != nil {
		t.Errorf("Init(\"\") after initialisation: %v", err)
	}
	// A different library cannot replace the loaded one.
	other := filepath.Join(t.TempDir(), "libother.so")
	os.WriteFile(other, nil, 0o644)
	if err := Init(other); err == nil {
		t.Error("Init with another library must fail")
	}
}

func TestCUDAFallback(t *testing.T) {
	var buf bytes.Buffer
	spec := pipeline.ModelSpec{Name: "faces-gpu", Decoder: pipeline.DecoderBlazeFace, Provider: "cuda"}
	m, err := New(&spec, modelFile(t, blazeFaceFile), zerolog.New(&buf))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Provider() == "cuda" {
		t.Skip("CUDA is available here: nothing falls back")
	}
	logs := strings.TrimSpace(buf.String())
	if strings.Count(logs, "\n") != 0 || !strings.Contains(logs, "CUDA execution provider unavailable, falling back to CPU") || !strings.Contains(logs, `"level":"warn"`) {
		t.Errorf("want one warning line, got:\n%s", logs)
	}
	t.Logf("log: %s", logs)
	messi := readImage(t, messiPath)
	crop := messi.Region(image.Rect(170, 40, 300, 170))
	defer crop.Close()
	if out := infer(t, m, crop); len(out.Boxes) != 1 {
		t.Errorf("on the CPU fallback: %d faces, want 1", len(out.Boxes))
	}
}

func TestCloseAndBadFrames(t *testing.T) {
	spec := pipeline.ModelSpec{Name: "faces", Decoder: pipeline.DecoderBlazeFace}
	m, err := New(&spec, modelFile(t, blazeFaceFile), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := m.Infer("c", empty); err == nil {
		t.Error("empty frame must fail")
	}
	// Grey frames are converted, not refused.
	grey := gocv.NewMatWithSize(100, 120, gocv.MatTypeCV8UC1)
	defer grey.Close()
	if _, err := m.Infer("c", grey); err != nil {
		t.Errorf("grey frame: %v", err)
	}
	// A frame of a new size after the first one is fine.
	infer(t, m, whiteImage(t, 333, 211))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := m.Infer("c", grey); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Infer after Close: %v", err)
	}
}

// Frame sizes change the PP-OCR input: tensors are reallocated and the
// outputs stay right.
func TestPPOCRDetResize(t *testing.T) {
	m := newModel(t, pipeline.ModelSpec{Decoder: pipeline.DecoderPPOCRDet, Params: map[string]float64{"max_side": 480}}, ppocrDetFile)
	for _, sz := range []image.Point{{800, 400}, {400, 600}, {800, 400}} {
		img, lines := textImage(t, sz.X, sz.Y, []string{"Size"}, 2.5, 5)
		out := infer(t, m, img)
		if len(out.Boxes) == 0 {
			t.Errorf("%v: no text box", sz)
			continue
		}
		cx, cy := centre(out.Boxes[0])
		if p := image.Pt(int(cx*float32(sz.X)), int(cy*float32(sz.Y))); !p.In(lines[0].Inset(-10)) {
			t.Errorf("%v: box centre %v not on the text %v", sz, p, lines[0])
		}
	}
}

// The tensors bound to a session must survive garbage collection: results
// stay identical across forced collections (the onnxruntime_go pitfall).
func TestStableUnderGC(t *testing.T) {
	m := newModel(t, pipeline.ModelSpec{Decoder: pipeline.DecoderBlazeFace}, blazeFaceFile)
	p := newModel(t, pipeline.ModelSpec{Decoder: pipeline.DecoderPPOCRDet}, ppocrDetFile)
	messi := readImage(t, messiPath)
	crop := messi.Region(image.Rect(170, 40, 300, 170))
	defer crop.Close()
	text, _ := textImage(t, 640, 320, []string{"Garbage"}, 2.5, 5)
	first, firstText := infer(t, m, crop), infer(t, p, text)
	for i := 0; i < 10; i++ {
		runtime.GC()
		garbage := make([][]byte, 64)
		for j := range garbage {
			garbage[j] = make([]byte, 64<<10)
		}
		out, outText := infer(t, m, crop), infer(t, p, text)
		if !reflect.DeepEqual(out.Boxes, first.Boxes) || !reflect.DeepEqual(outText.Boxes, firstText.Boxes) {
			t.Fatalf("run %d differs: %+v %+v, first %+v %+v", i, out.Boxes, outText.Boxes, first.Boxes, firstText.Boxes)
		}
	}
}

// Separate models run in parallel, as a worker's instances do.
func TestConcurrentModels(t *testing.T) {
	frames := vtestFrames(t, 4, 20)
	specs := []struct {
		spec pipeline.ModelSpec
		file string
	}{
		{pipeline.ModelSpec{Decoder: pipeline.DecoderBlazeFace}, blazeFaceFile},
		{pipeline.ModelSpec{Decoder: pipeline.DecoderBlazeFace, Params: map[string]float64{"threads": 2}}, blazeFaceFile},
		{pipeline.ModelSpec{Decoder: pipeline.DecoderMLSD}, mlsdFile},
		{clsSpec(), ppocrClsFile},
	}
	models := make([]*Model, len(specs))
	for i, s := range specs {
		models[i] = newModel(t, s.spec, s.file)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(models))
	for i, m := range models {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, f := range frames {
				if _, err := m.Infer("cam", f); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	bad := pipeline.ModelSpec{Name: "bad", Decoder: pipeline.DecoderBlazeFace, Params: map[string]float64{"threads": 0}}
	if _, err := New(&bad, modelFile(t, blazeFaceFile), zerolog.Nop()); err == nil {
		t.Error("threads 0 must fail")
	}
}
