package onnx

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// letterboxPad is the grey that fills a letterboxed input (YOLO's value).
const letterboxPad = 114

// prep is a model's pixel-to-tensor conversion.
type prep struct {
	nhwc      bool
	channels  int  // 1 (grey), 3 or 4 (colour plus a constant alpha)
	rgb       bool // tensor channel order; frames are BGR
	letterbox bool
	// lut maps a byte of tensor channel c to its normalised value, so the
	// per-pixel work is a table look-up instead of a multiply-add-divide.
	lut   [3][256]float32
	alpha float32
}

// newPrep builds the conversion (p*scale - mean[c]) / std[c]; mean and std
// hold 0, 1 or 3 values in the tensor's channel order.
func newPrep(nhwc bool, channels int, rgb, letterbox bool, scale float64, mean, std []float64) (*prep, error) {
	if channels != 1 && channels != 3 && channels != 4 {
		return nil, fmt.Errorf("input has %d channels; supported are 1, 3 and 4", channels)
	}
	if scale == 0 {
		scale = 1.0 / 255
	}
	pick := func(v []float64, c int, def float64) (float64, error) {
		switch len(v) {
		case 0:
			return def, nil
		case 1:
			return v[0], nil
		case 3:
			return v[c], nil
		}
		return 0, fmt.Errorf("input mean/std take 1 or 3 values, got %d", len(v))
	}
	p := &prep{nhwc: nhwc, channels: channels, rgb: rgb, letterbox: letterbox, alpha: 1}
	for c := 0; c < 3; c++ {
		m, err := pick(mean, c, 0)
		if err != nil {
			return nil, err
		}
		s, err := pick(std, c, 1)
		if err != nil {
			return nil, err
		}
		if s == 0 {
			return nil, fmt.Errorf("input std must not be zero")
		}
		for v := 0; v < 256; v++ {
			p.lut[c][v] = float32((float64(v)*scale - m) / s)
		}
	}
	return p, nil
}

// geometry places the frame inside the model input: the frame's content
// occupies the rectangle (x,y,w,h) of an inW×inH input (all of it unless
// letterboxed). It maps boxes normalised to the input back to the frame.
type geometry struct {
	inW, inH   int
	x, y, w, h int
}

func newGeometry(frameW, frameH, inW, inH int, letterbox bool) geometry {
	g := geometry{inW: inW, inH: inH, w: inW, h: inH}
	if letterbox {
		s := math.Min(float64(inW)/float64(frameW), float64(inH)/float64(frameH))
		g.w = min(max(int(math.Round(float64(frameW)*s)), 1), inW)
		g.h = min(max(int(math.Round(float64(frameH)*s)), 1), inH)
		g.x, g.y = (inW-g.w)/2, (inH-g.h)/2
	}
	return g
}

// toFrame maps a box normalised to the input to one normalised to the frame.
func (g geometry) toFrame(b pipeline.Box) pipeline.Box {
	fx := func(v float32) float32 { return clamp01((v*float32(g.inW) - float32(g.x)) / float32(g.w)) }
	fy := func(v float32) float32 { return clamp01((v*float32(g.inH) - float32(g.y)) / float32(g.h)) }
	b.X1, b.Y1, b.X2, b.Y2 = fx(b.X1), fy(b.Y1), fx(b.X2), fy(b.Y2)
	return b
}

// frameMats are the scratch images of one model, reused across frames so
// that a frame costs no Mat allocation.
type frameMats struct {
	bgr, resized, canvas gocv.Mat
}

func newFrameMats() frameMats {
	return frameMats{bgr: gocv.NewMat(), resized: gocv.NewMat(), canvas: gocv.NewMat()}
}

func (f *frameMats) close() {
	f.bgr.Close()
	f.resized.Close()
	f.canvas.Close()
}

// asBGR returns img as 8-bit 3-channel BGR, converting grey or BGRA frames.
func (f *frameMats) asBGR(img gocv.Mat) (gocv.Mat, error) {
	if img.Empty() {
		return img, fmt.Errorf("empty image")
	}
	switch img.Type() {
	case gocv.MatTypeCV8UC3:
		return img, nil
	case gocv.MatTypeCV8UC1:
		gocv.CvtColor(img, &f.bgr, gocv.ColorGrayToBGR)
	case gocv.MatTypeCV8UC4:
		gocv.CvtColor(img, &f.bgr, gocv.ColorBGRAToBGR)
	default:
		return img, fmt.Errorf("unsupported image type %v: want 8-bit BGR", img.Type())
	}
	return f.bgr, nil
}

// render resizes img into the geometry's input image and returns its pixels
// (BGR, inW×inH, contiguous). They stay valid until the next call.
func (f *frameMats) render(img gocv.Mat, g geometry) ([]uint8, error) {
	src, err := f.asBGR(img)
	if err != nil {
		return nil, err
	}
	out := src
	if src.Cols() != g.w || src.Rows() != g.h {
		// Area averaging when shrinking avoids the aliasing that makes thin
		// text strokes and lines vanish; linear when enlarging.
		interp := gocv.InterpolationLinear
		if g.w < src.Cols() && g.h < src.Rows() {
			interp = gocv.InterpolationArea
		}
		gocv.Resize(src, &f.resized, image.Pt(g.w, g.h), 0, 0, interp)
		out = f.resized
	}
	if g.w != g.inW || g.h != g.inH {
		if f.canvas.Cols() != g.inW || f.canvas.Rows() != g.inH || f.canvas.Type() != gocv.MatTypeCV8UC3 {
			f.canvas.Close()
			f.canvas = gocv.NewMatWithSize(g.inH, g.inW, gocv.MatTypeCV8UC3)
		}
		f.canvas.SetTo(gocv.NewScalar(letterboxPad, letterboxPad, letterboxPad, 0))
		roi := f.canvas.Region(image.Rect(g.x, g.y, g.x+g.w, g.y+g.h))
		out.CopyTo(&roi)
		roi.Close()
		out = f.canvas
	}
	if !out.IsContinuous() {
		// Only an unresized ROI of a larger Mat gets here.
		out.CopyTo(&f.resized)
		out = f.resized
	}
	px, err := out.DataPtrUint8()
	if err != nil {
		return nil, fmt.Errorf("read pixels: %w", err)
	}
	if len(px) < 3*g.inW*g.inH {
		return nil, fmt.Errorf("resized image has %d bytes, want %d", len(px), 3*g.inW*g.inH)
	}
	return px, nil
}

// fill writes w×h BGR pixels into dst in the tensor's layout.
func (p *prep) fill(dst []float32, px []uint8, w, h int) {
	n := w * h
	ch := p.channels
	var v [4]float32
	v[3] = p.alpha
	for i := 0; i < n; i++ {
		b, g, r := px[3*i], px[3*i+1], px[3*i+2]
		if ch == 1 {
			grey := (299*int(r) + 587*int(g) + 114*int(b) + 500) / 1000
			v[0] = p.lut[0][grey]
		} else if p.rgb {
			v[0], v[1], v[2] = p.lut[0][r], p.lut[1][g], p.lut[2][b]
		} else {
			v[0], v[1], v[2] = p.lut[0][b], p.lut[1][g], p.lut[2][r]
		}
		if p.nhwc {
			copy(dst[i*ch:i*ch+ch], v[:ch])
			continue
		}
		for c := 0; c < ch; c++ {
			dst[c*n+i] = v[c]
		}
	}
}
