package onnx

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages/opencv"
	"github.com/mlink-project/mlink/stages/vision"
)

const nanodetFile = "nanodet/nanodet-m-416.onnx"

// nanodetOutputs builds the six outputs of a 64×64 NanoDet-shaped head
// (strides 8, 16, 32: grids 8×8, 4×4, 2×2; 3 classes, 8 bins) with every
// score low and every distance at bin 0.
func nanodetOutputs() []tensor {
	var outs []tensor
	for _, grid := range []int64{8, 4, 2} {
		n := grid * grid
		outs = append(outs,
			tensor{name: "cls", shape: []int64{1, n, 3}, data: make([]float32, n*3)},
			tensor{name: "reg", shape: []int64{1, n, 32}, data: make([]float32, n*32)})
	}
	return outs
}

// peak puts the distance distribution of one side of location i on bin k.
func peak(reg tensor, i, side, k int) {
	for b := range 8 {
		reg.data[i*32+side*8+b] = -50
	}
	reg.data[i*32+side*8+k] = 50
}

func TestDecodeNanoDetPlacesBoxesFromDistances(t *testing.T) {
	outs := nanodetOutputs()
	cls, reg := outs[2], outs[3] // stride 16, grid 4×4
	i := 1*4 + 2                 // row 1, column 2: centre (40, 24)
	cls.data[i*3+0] = 0.9
	for side, k := range []int{2, 1, 1, 3} { // left, top, right, bottom in strides
		peak(reg, i, side, k)
	}
	cls.data[5*3+1] = 0.95 // a class-1 hit, not kept
	levels, err := nanodetLevels(outs, 64, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(levels) != 3 || levels[0].stride != 8 || levels[1].stride != 16 || levels[2].stride != 32 || levels[1].bins != 8 {
		t.Fatalf("levels %+v: want strides 8, 16, 32 with 8 bins", levels)
	}
	p := detParams{classes: []string{"person", "car", "dog"}, keep: []string{"person"}, threshold: 0.5, nms: 0.5}
	boxes, err := decodeNanoDet(levels, 64, 64, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) != 1 {
		t.Fatalf("%d boxes, want the one kept person: %+v", len(boxes), boxes)
	}
	want := pipeline.Box{X1: (40 - 32) / 64.0, Y1: (24 - 16) / 64.0, X2: (40 + 16) / 64.0, Y2: (24 + 48) / 64.0}
	b := boxes[0]
	for _, d := range []float32{b.X1 - want.X1, b.Y1 - want.Y1, b.X2 - want.X2, b.Y2 - want.Y2} {
		if math.Abs(float64(d)) > 1e-4 {
			t.Fatalf("box %+v, want %+v", b, want)
		}
	}
	if b.Class != "person" || b.Score != 0.9 {
		t.Errorf("class %q score %v, want person 0.9", b.Class, b.Score)
	}
	// Below the threshold there is nothing.
	cls.data[i*3+0] = 0.4
	if boxes, _ := decodeNanoDet(levels, 64, 64, p); len(boxes) != 0 {
		t.Errorf("a 0.4 score passed the 0.5 threshold: %+v", boxes)
	}
}

func TestNanoDetLevelsRefuseMismatchedOutputs(t *testing.T) {
	outs := nanodetOutputs()
	if _, err := nanodetLevels(outs, 96, 64, 3); err == nil {
		t.Error("64×64 grids accepted for a 96×64 input")
	}
	if _, err := nanodetLevels(outs, 64, 64, 80); err == nil {
		t.Error("3-class scores accepted as 80 classes")
	}
	if _, err := nanodetLevels(outs[:5], 64, 64, 3); err == nil {
		t.Error("an odd number of outputs accepted")
	}
}

// nanodetSpec is the zoo's declaration: RangiLyu's BGR normalisation.
func nanodetSpec() pipeline.ModelSpec {
	return pipeline.ModelSpec{Name: "person_nanodet", Decoder: pipeline.DecoderNanoDet, Keep: []string{"person"},
		Input: pipeline.InputSpec{Color: "bgr", Scale: 1, Mean: []float64{103.53, 116.28, 123.675}, Std: []float64{57.375, 57.12, 58.395}}}
}

// The converted NanoDet finds the people of vtest.avi that HOG (the zoo's
// expensive people detector) finds: the two look at the same things, which
// is what makes one a link source for the other.
func TestNanoDetFindsThePeopleHOGFinds(t *testing.T) {
	if _, err := os.Stat(filepath.Join(depsDir, "models", nanodetFile)); err != nil && os.Getenv("CI") == "true" {
		t.Fatalf("%s missing under CI: make deps converts it", nanodetFile)
	}
	m := newModel(t, nanodetSpec(), nanodetFile)
	hog, err := opencv.NewHOG(&pipeline.ModelSpec{Name: "hog", Backend: pipeline.BackendHOG, Params: map[string]float64{"upscale_width": 1280}})
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	var nano, hogs, matched, tall int
	for _, f := range vtestFrames(t, 6, 100) {
		out := infer(t, m, f)
		h, err := hog.Infer("plaza", f)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range out.Boxes {
			if b.Class != "person" {
				t.Fatalf("class %q kept, want person only", b.Class)
			}
			// People standing in a plaza: taller than wide, in pixels.
			if hw := float64(b.Y2-b.Y1) * 576 / (float64(b.X2-b.X1) * 768); hw >= 1.5 {
				tall++
			}
		}
		nano += len(out.Boxes)
		hogs += len(h.Boxes)
		for _, hb := range h.Boxes {
			for _, nb := range out.Boxes {
				if vision.IoU(hb, nb) >= 0.3 {
					matched++
					break
				}
			}
		}
	}
	t.Logf("6 frames: NanoDet %d people (%d upright), HOG %d, HOG's matched by NanoDet at IoU ≥ 0.3: %d", nano, tall, hogs, matched)
	if nano < 18 {
		t.Errorf("NanoDet found %d people in 6 frames of a busy plaza, want ≥ 18", nano)
	}
	if float64(tall) < 0.8*float64(nano) {
		t.Errorf("%d of NanoDet's %d people are at least 1.5 times as tall as wide, want ≥ 80 %% in a plaza of walkers", tall, nano)
	}
	if hogs == 0 || float64(matched) < 0.6*float64(hogs) {
		t.Errorf("NanoDet matched %d of HOG's %d people, want ≥ 60 %%", matched, hogs)
	}
}
