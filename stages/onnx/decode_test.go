package onnx

import (
	"math"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// These tests run the decoders on synthetic tensors: no runtime, no model.

func near(a, b, tol float32) bool { return float32(math.Abs(float64(a-b))) <= tol }

func boxNear(t *testing.T, got pipeline.Box, x1, y1, x2, y2, tol float32) {
	t.Helper()
	if !near(got.X1, x1, tol) || !near(got.Y1, y1, tol) || !near(got.X2, x2, tol) || !near(got.Y2, y2, tol) {
		t.Errorf("box (%.3f,%.3f)-(%.3f,%.3f), want (%.3f,%.3f)-(%.3f,%.3f) ±%.3f",
			got.X1, got.Y1, got.X2, got.Y2, x1, y1, x2, y2, tol)
	}
}

// yoloRows builds N rows of cx,cy,w,h,obj,classes...
func yoloRows(rows [][]float32) []float32 {
	var d []float32
	for _, r := range rows {
		d = append(d, r...)
	}
	return d
}

func transpose(d []float32, n, attrs int) []float32 {
	out := make([]float32, len(d))
	for i := 0; i < n; i++ {
		for k := 0; k < attrs; k++ {
			out[k*n+i] = d[i*attrs+k]
		}
	}
	return out
}

func TestDecodeYOLOBothLayouts(t *testing.T) {
	rows := [][]float32{
		{320, 240, 100, 200, 0.9, 0.1, 0.8},               // person 0.72
		{322, 242, 100, 200, 0.8, 0.1, 0.7},               // duplicate of the first: suppressed
		{100, 100, 50, 50, 0.9, 0.9, 0.05},                // car 0.81
		{500, 400, 40, 40, 0.1, 0.9, 0.9},                 // low objectness
		{200, 200, 40, 40, 0.9, float32(math.NaN()), 0.2}, // NaN class score, 0.18 < thr
	}
	p := detParams{classes: []string{"car", "person"}, threshold: 0.25, nms: 0.45}
	data := yoloRows(rows)
	for _, tc := range []struct {
		name  string
		shape []int64
		data  []float32
	}{
		{"[1,N,5+C]", []int64{1, 5, 7}, data},
		{"[1,5+C,N]", []int64{1, 7, 5}, transpose(data, 5, 7)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			boxes, err := decodeYOLO(tensor{shape: tc.shape, data: tc.data}, 640, 480, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(boxes) != 2 {
				t.Fatalf("got %d boxes, want 2: %+v", len(boxes), boxes)
			}
			if boxes[0].Class != "car" || !near(boxes[0].Score, 0.81, 1e-5) {
				t.Errorf("best box %+v, want car 0.81", boxes[0])
			}
			boxNear(t, boxes[0], 75.0/640, 75.0/480, 125.0/640, 125.0/480, 1e-5)
			if boxes[1].Class != "person" || !near(boxes[1].Score, 0.72, 1e-5) {
				t.Errorf("second box %+v, want person 0.72", boxes[1])
			}
			boxNear(t, boxes[1], 270.0/640, 140.0/480, 370.0/640, 340.0/480, 1e-5)
		})
	}
}

func TestDecodeYOLOKeepAndNoObjectness(t *testing.T) {
	// YOLOv8 style: [1,4+C,N], no objectness.
	rows := [][]float32{
		{320, 240, 100, 200, 0.1, 0.8},
		{100, 100, 50, 50, 0.9, 0.05},
	}
	p := detParams{classes: []string{"car", "person"}, keep: []string{"person"}, threshold: 0.25, nms: 0.45}
	boxes, err := decodeYOLO(tensor{shape: []int64{1, 6, 2}, data: transpose(yoloRows(rows), 2, 6)}, 640, 480, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) != 1 || boxes[0].Class != "person" || !near(boxes[0].Score, 0.8, 1e-6) {
		t.Fatalf("got %+v, want one person box of 0.8 (cars not kept)", boxes)
	}
	if _, err := decodeYOLO(tensor{shape: []int64{1, 2, 9}, data: make([]float32, 18)}, 640, 480, p); err == nil {
		t.Error("a shape that fits no class count must fail")
	}
}

func TestDecodeSSD(t *testing.T) {
	// Boxes as y1,x1,y2,x2; scores with a background column.
	boxes := []float32{
		0.1, 0.2, 0.5, 0.4,
		0.11, 0.21, 0.5, 0.4, // overlaps the first, same class: suppressed
		0.6, 0.6, 0.9, 0.8,
		0.0, 0.0, 0.1, 0.1, // background
	}
	scores := []float32{
		0.1, 0.9, 0.0,
		0.2, 0.7, 0.1,
		0.1, 0.2, 0.7,
		0.95, 0.03, 0.02,
	}
	p := detParams{classes: []string{"person", "car"}, threshold: 0.5, nms: 0.45}
	got, err := decodeSSD(tensor{shape: []int64{1, 4, 4}, data: boxes}, tensor{shape: []int64{1, 4, 3}, data: scores}, true, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d boxes, want 2: %+v", len(got), got)
	}
	if got[0].Class != "person" || got[1].Class != "car" {
		t.Errorf("classes %q %q, want person car", got[0].Class, got[1].Class)
	}
	boxNear(t, got[0], 0.2, 0.1, 0.4, 0.5, 1e-6)
	boxNear(t, got[1], 0.6, 0.6, 0.8, 0.9, 1e-6)

	// Same boxes read as x1,y1,x2,y2.
	got, err = decodeSSD(tensor{shape: []int64{1, 4, 4}, data: boxes}, tensor{shape: []int64{1, 4, 3}, data: scores}, false, p)
	if err != nil || len(got) != 2 {
		t.Fatalf("xyxy: %v %+v", err, got)
	}
	boxNear(t, got[0], 0.1, 0.2, 0.5, 0.4, 1e-6)

	if _, err := decodeSSD(tensor{shape: []int64{1, 4, 4}, data: boxes}, tensor{shape: []int64{1, 4, 3}, data: scores}, false,
		detParams{classes: []string{"a", "b", "c", "d"}, threshold: 0.5}); err == nil {
		t.Error("a class count mismatch must fail")
	}
}

func TestDecodeClassifier(t *testing.T) {
	classes := []string{"0", "180"}
	// Logits go through a softmax.
	probs, label, err := decodeClassifier([]float32{1, 3}, classes)
	if err != nil {
		t.Fatal(err)
	}
	want := 1 / (1 + math.Exp(-2))
	if label != "180" || math.Abs(probs[1]-want) > 1e-6 || math.Abs(probs[0]+probs[1]-1) > 1e-9 {
		t.Errorf("logits: %v %q, want [%.4f %.4f] 180", probs, label, 1-want, want)
	}
	// Probabilities are kept as they are.
	probs, label, err = decodeClassifier([]float32{0.7, 0.3}, classes)
	if err != nil || label != "0" || math.Abs(probs[0]-0.7) > 1e-6 {
		t.Errorf("probabilities: %v %q %v, want [0.7 0.3] 0", probs, label, err)
	}
	// Values in [0,1] that do not sum to 1 are scores, not a distribution.
	probs, _, _ = decodeClassifier([]float32{0.2, 0.2}, classes)
	if math.Abs(probs[0]-0.5) > 1e-6 {
		t.Errorf("non-distribution: %v, want [0.5 0.5]", probs)
	}
	if _, _, err := decodeClassifier([]float32{0.1, 0.2, 0.7}, classes); err == nil {
		t.Error("C != len(classes) must fail")
	}
	if _, _, err := decodeClassifier([]float32{float32(math.NaN()), 1}, classes); err == nil {
		t.Error("NaN must fail")
	}
}

func TestDecodeCount(t *testing.T) {
	if v, err := decodeCount([]float32{4.6}); err != nil || math.Abs(v-4.6) > 1e-6 {
		t.Errorf("count 4.6: got %v %v", v, err)
	}
	if v, _ := decodeCount([]float32{-0.3}); v != 0 {
		t.Errorf("negative count: got %v, want 0", v)
	}
	if _, err := decodeCount([]float32{1, 2}); err == nil {
		t.Error("two values must fail")
	}
	if _, err := decodeCount([]float32{float32(math.Inf(1))}); err == nil {
		t.Error("Inf must fail")
	}
}

func TestNMS(t *testing.T) {
	boxes := []pipeline.Box{
		{X1: 0, Y1: 0, X2: 1, Y2: 1, Score: 0.5, Class: "a"},
		{X1: 0, Y1: 0, X2: 1, Y2: 0.9, Score: 0.9, Class: "a"},
		{X1: 0, Y1: 0, X2: 1, Y2: 1, Score: 0.8, Class: "b"}, // other class: kept
		{X1: 2, Y1: 2, X2: 3, Y2: 3, Score: 0.3, Class: "a"},
	}
	got := nms(boxes, 0.5)
	if len(got) != 3 || got[0].Score != 0.9 || got[1].Class != "b" || got[2].Score != 0.3 {
		t.Errorf("nms: %+v", got)
	}
	w := weightedNMS([]pipeline.Box{
		{X1: 0, Y1: 0, X2: 1, Y2: 1, Score: 0.9},
		{X1: 0.1, Y1: 0.1, X2: 1.1, Y2: 1.1, Score: 0.9},
		{X1: 5, Y1: 5, X2: 6, Y2: 6, Score: 0.6},
	}, 0.3)
	if len(w) != 2 {
		t.Fatalf("weighted nms: %+v", w)
	}
	boxNear(t, w[0], 0.05, 0.05, 1.05, 1.05, 1e-6)
}

func TestDecodeBlazeFace(t *testing.T) {
	layers := []blazeLayer{
		{scores: make([]float32, 512), regs: make([]float32, 512*16)},
		{scores: make([]float32, 384), regs: make([]float32, 384*16)},
	}
	for i := range layers {
		for j := range layers[i].scores {
			layers[i].scores[j] = -10
		}
	}
	// Cell (x=5,y=3) of the 8×8 grid, 4th anchor: centre (5.5/8, 3.5/8),
	// shifted by (+6.4,-12.8) pixels of 128, 32×48 pixels.
	i := (3*8+5)*6 + 3
	layers[1].scores[i] = 3
	copy(layers[1].regs[i*16:], []float32{6.4, -12.8, 32, 48})
	// A neighbour anchor of the same cell with a slightly shifted box is
	// blended into it.
	layers[1].scores[i+1] = 3
	copy(layers[1].regs[(i+1)*16:], []float32{6.4, -12.8, 32, 48})
	boxes, err := decodeBlazeFace(layers, 128, 0.5, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) != 1 {
		t.Fatalf("got %d faces, want 1: %+v", len(boxes), boxes)
	}
	cx, cy := 5.5/8+0.05, 3.5/8-0.1
	boxNear(t, boxes[0], float32(cx-0.125), float32(cy-0.1875), float32(cx+0.125), float32(cy+0.1875), 1e-5)
	if !near(boxes[0].Score, sigmoid(3), 1e-6) {
		t.Errorf("score %v, want %v", boxes[0].Score, sigmoid(3))
	}
	// Nothing above the threshold: no face.
	layers[1].scores[i], layers[1].scores[i+1] = -1, -1
	if boxes, _ := decodeBlazeFace(layers, 128, 0.5, 0.3); len(boxes) != 0 {
		t.Errorf("got %d faces from low scores", len(boxes))
	}
}

func TestDecodeDB(t *testing.T) {
	w, h := 100, 50
	prob := make([]float32, w*h)
	fill := func(x0, y0, x1, y1 int, v float32) {
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				prob[y*w+x] = v
			}
		}
	}
	fill(10, 10, 50, 20, 0.9) // text line 40×10
	fill(70, 30, 72, 32, 0.9) // 2×2 speck: below min size
	fill(60, 5, 90, 15, 0.4)  // weak region: mean below box threshold
	boxes, err := decodeDB(prob, w, h, dbParams{binThreshold: 0.3, boxThreshold: 0.6, unclip: 1.5, minSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) != 1 {
		t.Fatalf("got %d boxes, want 1: %+v", len(boxes), boxes)
	}
	d := float32(40*10) * 1.5 / float32(2*(40+10)) // 6 pixels
	boxNear(t, boxes[0], (10-d)/100, (10-d)/50, (50+d)/100, (20+d)/50, 1e-5)
	if boxes[0].Score < 0.89 {
		t.Errorf("score %v, want 0.9", boxes[0].Score)
	}
	if boxes, _ := decodeDB(make([]float32, w*h), w, h, dbParams{binThreshold: 0.3, boxThreshold: 0.6, unclip: 1.5, minSize: 3}); len(boxes) != 0 {
		t.Errorf("blank map gave %d boxes", len(boxes))
	}
}

func TestPPOCRSize(t *testing.T) {
	for _, tc := range []struct{ w, h, max, ww, wh int }{
		{768, 576, 640, 640, 480},
		{640, 480, 640, 640, 480},
		{100, 50, 640, 96, 64},
		{1920, 1080, 960, 960, 544},
		{10, 10, 640, 32, 32},
	} {
		if w, h := ppocrSize(tc.w, tc.h, tc.max); w != tc.ww || h != tc.wh {
			t.Errorf("ppocrSize(%d,%d,%d) = %d,%d, want %d,%d", tc.w, tc.h, tc.max, w, h, tc.ww, tc.wh)
		}
	}
}

func TestDecodeMLSD(t *testing.T) {
	mw, mh := 20, 20
	scores := make([]float32, mw*mh)
	offsets := make([]float32, 4*mw*mh)
	set := func(x, y int, s float32, o ...float32) {
		scores[y*mw+x] = s
		copy(offsets[(y*mw+x)*4:], o)
	}
	set(10, 5, 0.8, -6, 0, 6, 0)   // horizontal, 12 cells = 24 px at 40 px input
	set(11, 5, 0.7, -6, 0, 6, 0)   // neighbour of a stronger centre: not a peak
	set(3, 15, 0.9, 0, -1, 0, 1)   // 2 cells = 4 px: too short
	set(15, 15, 0.05, -5, 0, 5, 0) // below threshold
	lines, err := decodeMLSD(scores, offsets, mw, mh, 40, 0.1, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1: %+v", len(lines), lines)
	}
	boxNear(t, lines[0], 4.0/20, 5.0/20, 16.0/20, 5.0/20, 1e-6)
}

func TestGeometryLetterbox(t *testing.T) {
	// A 200×100 frame letterboxed into 64×64: content 64×32 at y=16.
	g := newGeometry(200, 100, 64, 64, true)
	if g.x != 0 || g.y != 16 || g.w != 64 || g.h != 32 {
		t.Fatalf("geometry %+v", g)
	}
	b := g.toFrame(pipeline.Box{X1: 0.25, Y1: 0.25, X2: 0.5, Y2: 0.75})
	boxNear(t, b, 0.25, 0, 0.5, 1, 1e-6)
	// Stretch is the identity.
	b = newGeometry(200, 100, 64, 64, false).toFrame(pipeline.Box{X1: 0.25, Y1: 0.25, X2: 0.5, Y2: 0.75})
	boxNear(t, b, 0.25, 0.25, 0.5, 0.75, 1e-6)
}

func TestPrepLayouts(t *testing.T) {
	// One 2×1 BGR image: pixel 0 = (b=10,g=20,r=30), pixel 1 = (40,50,60).
	px := []uint8{10, 20, 30, 40, 50, 60}
	p, err := newPrep(false, 3, true, false, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 6)
	p.fill(dst, px, 2, 1)
	if want := []float32{30, 60, 20, 50, 10, 40}; !equal(dst, want) {
		t.Errorf("nchw rgb: %v, want %v", dst, want)
	}
	p, _ = newPrep(true, 3, false, false, 0.5, []float64{1}, []float64{2})
	p.fill(dst, px, 2, 1)
	if want := []float32{2, 4.5, 7, 9.5, 12, 14.5}; !equal(dst, want) {
		t.Errorf("nhwc bgr scaled: %v, want %v", dst, want)
	}
	p, _ = newPrep(true, 4, true, false, 1, nil, nil)
	dst4 := make([]float32, 8)
	p.fill(dst4, px, 2, 1)
	if want := []float32{30, 20, 10, 1, 60, 50, 40, 1}; !equal(dst4, want) {
		t.Errorf("nhwc rgba: %v, want %v", dst4, want)
	}
	if _, err := newPrep(false, 3, true, false, 1, nil, []float64{0}); err == nil {
		t.Error("zero std must fail")
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(a[i], b[i], 1e-5) {
			return false
		}
	}
	return true
}
