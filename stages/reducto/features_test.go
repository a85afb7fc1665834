package reducto

import (
	"image"
	"math"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

func TestIdenticalFramesDiffZero(t *testing.T) {
	synth := withRects(blank(320, 240), image.Rect(10, 10, 50, 90))
	defer synth.Close()
	for _, name := range FeatureNames {
		f := newFeature(t, name)
		for label, img := range map[string]gocv.Mat{"vtest": frame(t, 100), "synthetic": synth} {
			cp := img.Clone()
			d, err := DiffFrames(f, img, cp)
			cp.Close()
			if err != nil || d != 0 {
				t.Errorf("%s on identical %s frames: %g, %v; want 0", name, label, d, err)
			}
		}
	}
}

// A black frame against the same frame with a white rectangle covering
// exactly 10 % of it (96×80 of 320×240, the working width: no resize).
func TestSyntheticRectangle(t *testing.T) {
	black := blank(320, 240)
	defer black.Close()
	rect := withRects(black, image.Rect(100, 60, 196, 140))
	defer rect.Close()
	if n := gocv.CountNonZero(firstChannel(t, rect)); n != 96*80 {
		t.Fatalf("rectangle has %d pixels, want %d", n, 96*80)
	}
	got := map[string]float64{}
	for _, name := range FeatureNames {
		d, err := DiffFrames(newFeature(t, name), black, rect)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got[name] = d
	}
	t.Logf("diffs: %v", got)
	if math.Abs(got[FeaturePixel]-0.10) > 1e-9 {
		t.Errorf("pixel = %g, want exactly 0.10", got[FeaturePixel])
	}
	// The 11×11 blur spreads the rectangle by about two pixels each side
	// before the threshold, the dilation by one more: ≈ 0.116.
	if a := got[FeatureArea]; a < 0.10 || a > 0.12 {
		t.Errorf("area = %g, want ≈ 0.10 (0.10..0.12: blur and dilation grow it)", a)
	}
	// Edges and corners change only along the rectangle's outline.
	if e := got[FeatureEdge]; e <= 0 || e > 0.02 {
		t.Errorf("edge = %g, want a small positive share (the outline)", e)
	}
	if c := got[FeatureCorner]; c <= 0 || c > 0.05 {
		t.Errorf("corner = %g, want a small positive share (around the outline)", c)
	}
}

func firstChannel(t *testing.T, img gocv.Mat) gocv.Mat {
	t.Helper()
	ch := gocv.Split(img)
	for _, c := range ch[1:] {
		c.Close()
	}
	t.Cleanup(func() { ch[0].Close() })
	return ch[0]
}

// Consecutive vtest frames differ a little (people walk a few pixels);
// frames 100 apart (10 s) differ more.
func TestVtestDiffs(t *testing.T) {
	for _, name := range FeatureNames {
		f := newFeature(t, name)
		near, err := DiffFrames(f, frame(t, 100), frame(t, 101))
		if err != nil {
			t.Fatal(err)
		}
		far, err := DiffFrames(f, frame(t, 100), frame(t, 200))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: consecutive %.4f, 100 apart %.4f", name, near, far)
		if near <= 0 || far <= near || far > 1 {
			t.Errorf("%s: consecutive %g, 100 apart %g; want 0 < consecutive < 100 apart <= 1", name, near, far)
		}
		// The corner response is not thresholded (as in Reducto): sensor
		// noise changes most textured pixels, so it is large even between
		// consecutive frames.
		if name != FeatureCorner && near > 0.05 {
			t.Errorf("%s: consecutive frames differ by %g, want a small share", name, near)
		}
	}
}

func TestWorkingWidth(t *testing.T) {
	for _, name := range FeatureNames {
		p, err := newFeature(t, name).Prepare(frame(t, 0))
		if err != nil {
			t.Fatal(err)
		}
		if w, h := p.Size(); w != 320 || h != 240 {
			t.Errorf("%s: prepared %dx%d from 768x576, want 320x240", name, w, h)
		}
		p.Close()
	}
	// Narrower frames are not upscaled.
	small := blank(160, 100)
	defer small.Close()
	p, err := newFeature(t, FeatureEdge).Prepare(small)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if w, h := p.Size(); w != 160 || h != 100 {
		t.Errorf("prepared %dx%d from 160x100", w, h)
	}
}

func TestBadInput(t *testing.T) {
	empty := gocv.NewMat()
	defer empty.Close()
	var zero gocv.Mat
	float := gocv.NewMatWithSize(10, 10, gocv.MatTypeCV32F)
	defer float.Close()
	a, b := blank(320, 240), blank(320, 200)
	defer a.Close()
	defer b.Close()
	for _, name := range FeatureNames {
		f := newFeature(t, name)
		for label, img := range map[string]gocv.Mat{"empty": empty, "zero": zero, "float": float} {
			if p, err := f.Prepare(img); err == nil {
				p.Close()
				t.Errorf("%s: Prepare(%s Mat) gave no error", name, label)
			}
		}
		if _, err := DiffFrames(f, a, b); err == nil || !strings.Contains(err.Error(), "size") {
			t.Errorf("%s: 320x240 vs 320x200: %v, want a size error", name, err)
		}
		pa, _ := f.Prepare(a)
		if _, err := f.Diff(pa, nil); err == nil {
			t.Errorf("%s: Diff with nil gave no error", name)
		}
		other := newFeature(t, FeatureNames[(indexOf(name)+1)%len(FeatureNames)])
		po, _ := other.Prepare(a)
		if _, err := f.Diff(pa, po); err == nil {
			t.Errorf("%s: Diff with a %s representation gave no error", name, other.Name())
		}
		po.Close()
		pc, _ := f.Prepare(a)
		pc.Close()
		pc.Close() // closing twice is harmless
		if _, err := f.Diff(pa, pc); err == nil {
			t.Errorf("%s: Diff with a closed representation gave no error", name)
		}
		pa.Close()
	}
	if _, err := NewFeature("hog", FeatureOptions{}); err == nil {
		t.Error("unknown feature accepted")
	}
	err := (&FeatureOptions{Width: 2, BlurSize: 4, HarrisK: 2, HarrisBlock: 5, HarrisKSize: 3, CannyHigh: 1, CannyLow: 2, DiffThreshold: 21}).Validate()
	for _, want := range []string{"width", "blur", "harris k", "canny"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to mention %q", err, want)
		}
	}
}

func indexOf(name string) int {
	for i, n := range FeatureNames {
		if n == name {
			return i
		}
	}
	return -1
}

// Per frame at the default width, from a 768×576 vtest frame: Prepare
// (downscale, representation) plus one Diff against the last sent frame.
func benchmarkFeature(b *testing.B, name string) {
	f := newFeature(b, name)
	last, err := f.Prepare(frame(b, 100))
	if err != nil {
		b.Fatal(err)
	}
	defer last.Close()
	img := frame(b, 101)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cur, err := f.Prepare(img)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Diff(last, cur); err != nil {
			b.Fatal(err)
		}
		cur.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/frame")
}

func BenchmarkPixel(b *testing.B)  { benchmarkFeature(b, FeaturePixel) }
func BenchmarkArea(b *testing.B)   { benchmarkFeature(b, FeatureArea) }
func BenchmarkEdge(b *testing.B)   { benchmarkFeature(b, FeatureEdge) }
func BenchmarkCorner(b *testing.B) { benchmarkFeature(b, FeatureCorner) }

// The Diff alone: what profiling pays per (last, cur) pair.
func BenchmarkDiffOnly(b *testing.B) {
	for _, name := range FeatureNames {
		b.Run(name, func(b *testing.B) {
			f := newFeature(b, name)
			p1, _ := f.Prepare(frame(b, 100))
			p2, _ := f.Prepare(frame(b, 101))
			defer p1.Close()
			defer p2.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.Diff(p1, p2); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/diff")
		})
	}
}
